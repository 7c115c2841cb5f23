import { closeSync, existsSync, openSync, readSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { NeuwerkError } from '../errors.js';
import { makeDirectory } from '../fs-util.js';

export type SqliteDatabase = Database.Database;

/** The file name of the replicated store under the cluster data dir (DESIGN §4). */
export const STORE_FILE_NAME = 'raft.db';

const SQLITE_HEADER = 'SQLite format 3\u0000';

/**
 * The tables of the replicated state machine, in dependency order. A snapshot is a copy of exactly
 * these tables (plus the applied index in `sm_meta`); the Raft tables are never part of one.
 */
export const STATE_MACHINE_TABLES = ['sm_meta', 'members', 'settings', 'keyval', 'policy', 'auth_keys', 'service_accounts', 'sa_tokens', 'cluster_ca', 'ca_envelopes', 'removed_members'] as const;

/**
 * Schema migrations, applied in order; `PRAGMA user_version` records how many ran. A migration is
 * never edited once released: add a new one.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE raft_log (
    idx INTEGER PRIMARY KEY,
    term INTEGER NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('normal', 'conf-change')),
    data TEXT NOT NULL
  );
  CREATE TABLE raft_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE sm_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE members (
    node_id TEXT PRIMARY KEY,
    cluster_addr TEXT,
    http_addr TEXT NOT NULL,
    role TEXT NOT NULL,
    joined_at TEXT NOT NULL,
    raft_index INTEGER NOT NULL
  );
  CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, raft_index INTEGER NOT NULL);
  CREATE TABLE keyval (
    zone TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    version INTEGER NOT NULL,
    expires_at INTEGER,
    raft_index INTEGER NOT NULL,
    PRIMARY KEY (zone, key)
  ) WITHOUT ROWID;
  CREATE INDEX keyval_expiry ON keyval (expires_at) WHERE expires_at IS NOT NULL;
  CREATE TABLE policy (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    document TEXT NOT NULL,
    version INTEGER NOT NULL,
    raft_index INTEGER NOT NULL
  );
  `,
  `
  CREATE TABLE auth_keys (
    kid TEXT PRIMARY KEY,
    public_key_pem TEXT NOT NULL,
    private_key_pem TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'previous', 'retired')),
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    retired_at TEXT,
    raft_index INTEGER NOT NULL
  );
  CREATE TABLE service_accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'readonly')),
    status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    raft_index INTEGER NOT NULL
  );
  CREATE TABLE sa_tokens (
    id TEXT PRIMARY KEY,
    sa_id TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'readonly')),
    kid TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT,
    raft_index INTEGER NOT NULL
  );
  CREATE INDEX sa_tokens_by_account ON sa_tokens (sa_id);
  `,
  `
  ALTER TABLE policy ADD COLUMN set_by TEXT NOT NULL DEFAULT '';
  ALTER TABLE policy ADD COLUMN set_at TEXT NOT NULL DEFAULT '';
  `,
  `
  CREATE TABLE cluster_ca (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    cluster_id TEXT NOT NULL,
    cert_pem TEXT NOT NULL,
    raft_index INTEGER NOT NULL
  );
  CREATE TABLE ca_envelopes (node_id TEXT PRIMARY KEY, envelope TEXT NOT NULL, raft_index INTEGER NOT NULL);
  CREATE TABLE removed_members (node_id TEXT PRIMARY KEY, removed_at TEXT NOT NULL, raft_index INTEGER NOT NULL);
  `,
  `
  ALTER TABLE members ADD COLUMN proxy_addr TEXT;
  ALTER TABLE members ADD COLUMN dns_addr TEXT;
  `,
];

function corruptStore(file: string, reason: string, cause?: unknown): NeuwerkError {
  return new NeuwerkError('NW_ERR_STORE_CORRUPT', `store ${file} is damaged and was not opened: ${reason}`, {
    cause,
    actions: [
      `Restore ${file} (with its -wal file) from a backup taken while the node was stopped, or`,
      'remove this node from the cluster, move its data dir aside, and join it again with a bootstrap token.',
      'neuwerk never resets a damaged store by itself.',
    ],
  });
}

function checkHeader(file: string): void {
  const size = statSync(file).size;
  if (size === 0) return; // A crash right after creation leaves an empty file; SQLite initialises it.
  if (size < 100) throw corruptStore(file, `the file is truncated (${size} bytes)`);
  const fd = openSync(file, 'r');
  try {
    const header = Buffer.alloc(16);
    readSync(fd, header, 0, 16, 0);
    if (header.toString('latin1') !== SQLITE_HEADER) throw corruptStore(file, 'it is not an SQLite database');
  } finally {
    closeSync(fd);
  }
}

/**
 * What keeps the store from being written when `err` (or an error it was caused by) is the disk's
 * doing rather than neuwerk's: full, over quota, read-only, a file over the size limit, or a
 * failing device. Null for any other error.
 */
export function storageFailure(err: unknown): string | null {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current !== null && typeof current === 'object'; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') {
      if (code === 'SQLITE_FULL' || code === 'ENOSPC') return `the disk is full (${code})`;
      if (code === 'EDQUOT') return `the disk quota is used up (${code})`;
      if (code === 'EFBIG') return `a file would exceed the file size limit (${code})`;
      if (code.startsWith('SQLITE_READONLY') || code === 'EROFS') return `the file system is read-only (${code})`;
      if (code.startsWith('SQLITE_IOERR') || code === 'EIO') return `the disk failed a write (${code})`;
    }
    current = (current as { cause?: unknown }).cause;
  }
  return null;
}

/**
 * Opens (creating if needed) the node's store with the durability settings of DESIGN §4: WAL and
 * `synchronous=FULL`, so a committed transaction survives power loss. A damaged file is refused
 * with recovery advice; it is never reset.
 */
export function openStoreDatabase(file: string): SqliteDatabase {
  makeDirectory(dirname(file), 0o700);
  if (existsSync(file)) checkHeader(file);
  // The store will hold key envelopes and auth material: owner-only from the first byte. SQLite
  // gives its -wal and -shm files the mode of the database file.
  else writeFileSync(file, '', { mode: 0o600 });
  let db: SqliteDatabase;
  try {
    db = new Database(file);
  } catch (err) {
    throw new NeuwerkError('NW_ERR_STORE_UNAVAILABLE', `store ${file} cannot be opened: ${(err as Error).message}`, { cause: err });
  }
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw corruptStore(file, `integrity check failed: ${String(check)}`);
    migrate(db, file);
  } catch (err) {
    db.close();
    if (err instanceof NeuwerkError) throw err;
    const code = (err as { code?: string }).code ?? '';
    if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB' || /malformed|not a database/i.test((err as Error).message)) {
      throw corruptStore(file, (err as Error).message, err);
    }
    throw new NeuwerkError('NW_ERR_STORE_UNAVAILABLE', `store ${file} cannot be opened: ${(err as Error).message}`, { cause: err });
  }
  return db;
}

function migrate(db: SqliteDatabase, file: string): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new NeuwerkError(
      'NW_ERR_STORE_UNAVAILABLE',
      `store ${file} has schema version ${current}, newer than this build of neuwerk understands (${MIGRATIONS.length})`,
      { actions: ['Run the neuwerk version that wrote this store, or a newer one.'] },
    );
  }
  for (let version = current; version < MIGRATIONS.length; version += 1) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version] as string);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}
