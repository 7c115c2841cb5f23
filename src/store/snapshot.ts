/**
 * State-machine snapshots (DESIGN §4): a consistent copy of exactly `STATE_MACHINE_TABLES` (with
 * `sm_meta`, which carries the applied index) in a standalone SQLite file. The bytes of that file
 * are the opaque `Snapshot.data` the Raft core streams to followers in chunks.
 *
 * Files live in the node's `cluster/snapshots/` as `snap-<term>-<index>.db`. Every file is written
 * under a temporary name, fsynced and renamed (then the directory is fsynced), so a file with a
 * final name is always complete; older files are deleted only after a newer one is durable and
 * recorded.
 *
 * The copy keeps each table's own DDL (primary keys, NOT NULL, WITHOUT ROWID), so the file is
 * self-describing and can be opened with the sqlite3 shell. Measured at 1M keyval rows this is
 * as fast as `CREATE TABLE AS SELECT` or `VACUUM INTO` and gives the smallest file (see
 * `npm run bench -- --only raft-snapshot`). Secondary indexes are not copied: install rebuilds
 * them as it inserts into the live tables.
 */
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { open as openAsync, rename as renameAsync } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { invariant, NeuwerkError } from '../errors.js';
import { makeDirectory } from '../fs-util.js';
import { STATE_MACHINE_TABLES, type SqliteDatabase } from './database.js';

/** Schema name under which a snapshot file is attached to the live database. */
export const SNAPSHOT_SCHEMA = 'neuwerk_snapshot';

/** Suffix of a snapshot file still being written; such files are never read and are deleted at start. */
export const SNAPSHOT_TEMP_SUFFIX = '.tmp';

/** Mode of snapshot files: they hold the same material as the store (owner only). */
const SNAPSHOT_FILE_MODE = 0o600;
/** Mode of the snapshots directory. */
const SNAPSHOTS_DIR_MODE = 0o700;
/** Bytes written per `writeSync` call when storing received snapshot bytes. */
const WRITE_CHUNK_BYTES = 4 * 1024 * 1024;

const SQLITE_HEADER = 'SQLite format 3\u0000';
/** Smallest possible SQLite file: one page of the smallest page size is 512 bytes; the header alone is 100. */
const SQLITE_HEADER_BYTES = 100;
const SNAPSHOT_FILE_PATTERN = /^snap-(\d+)-(\d+)\.db$/;

/** Where a snapshot sits in the log; enough to name its file. */
export interface SnapshotPosition {
  readonly index: number;
  readonly term: number;
}

/** A durable snapshot file. */
export interface SnapshotFile {
  readonly path: string;
  readonly sizeBytes: number;
}

/** The file name of the snapshot at `position`: `snap-<term>-<index>.db`. */
export function snapshotFileName(position: SnapshotPosition): string {
  return `snap-${position.term}-${position.index}.db`;
}

/** The path of the snapshot at `position` in `snapshotsDir`. */
export function snapshotFilePath(snapshotsDir: string, position: SnapshotPosition): string {
  return join(snapshotsDir, snapshotFileName(position));
}

/** The position encoded in a snapshot file name, or null for any other name. */
export function parseSnapshotFileName(name: string): SnapshotPosition | null {
  const match = SNAPSHOT_FILE_PATTERN.exec(name);
  if (match === null) return null;
  return { term: Number(match[1]), index: Number(match[2]) };
}

function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Flushes a file's data and metadata to stable storage. */
function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Makes a rename or unlink in `dir` durable. */
function fsyncDirectory(dir: string): void {
  fsyncPath(dir);
}

/** Renames a fully written, fsynced temporary file to its final name, durably. */
function publish(temporary: string, final: string, dir: string): void {
  fsyncPath(temporary);
  renameSync(temporary, final);
  fsyncDirectory(dir);
}

function appliedIndexOf(db: SqliteDatabase, schema: string): number | null {
  const row = db.prepare(`SELECT value FROM ${schema}.sm_meta WHERE key = 'applied_index'`).get() as { value: string } | undefined;
  return row === undefined ? null : Number(row.value);
}

/** Flushes a file's (or directory's) data and metadata to stable storage off the event loop. */
async function fsyncPathAsync(path: string): Promise<void> {
  const handle = await openAsync(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A snapshot copied to its temporary file but not yet durable under its final name. */
export interface UnpublishedSnapshot {
  readonly temporary: string;
  readonly final: string;
  readonly snapshotsDir: string;
}

/**
 * Copies the state-machine tables, as of ONE read transaction on `db`, into the new file
 * `temporary` (each table with its own DDL) and returns the applied index that transaction saw:
 * the copy is exactly the state at that index, because every apply (and every snapshot install)
 * changes the tables and `sm_meta.applied_index` in one transaction. `check` runs inside the
 * transaction with that index and may throw to abandon the copy. The file skips SQLite's journal
 * and fsyncs (it is fsynced once, whole, when published). On failure the file is removed.
 */
function copyTablesAsOfOneReadTransaction(db: SqliteDatabase, temporary: string, check: (applied: number) => void): number {
  rmSync(temporary, { force: true });
  writeFileSync(temporary, '', { mode: SNAPSHOT_FILE_MODE });
  try {
    const out = new Database(temporary);
    try {
      out.pragma('journal_mode = OFF');
      out.pragma('synchronous = OFF');
      for (const table of STATE_MACHINE_TABLES) {
        const row = db.prepare("SELECT sql FROM main.sqlite_master WHERE type = 'table' AND name = ?").get(table) as { sql: string } | undefined;
        invariant(row !== undefined, () => `state-machine table ${table} is missing from the store`);
        out.exec(row.sql);
      }
    } finally {
      out.close();
    }
    db.prepare(`ATTACH DATABASE ? AS ${SNAPSHOT_SCHEMA}`).run(temporary);
    try {
      db.pragma(`${SNAPSHOT_SCHEMA}.journal_mode = OFF`);
      db.pragma(`${SNAPSHOT_SCHEMA}.synchronous = OFF`);
      return db.transaction(() => {
        // The first read of `main` in the transaction fixes the state every later read sees (WAL).
        const applied = appliedIndexOf(db, 'main') ?? 0;
        check(applied);
        for (const table of STATE_MACHINE_TABLES) {
          const name = quoteIdentifier(table);
          db.exec(`INSERT INTO ${SNAPSHOT_SCHEMA}.${name} SELECT * FROM main.${name}`);
        }
        return applied;
      })();
    } finally {
      db.exec(`DETACH DATABASE ${SNAPSHOT_SCHEMA}`);
    }
  } catch (err) {
    rmSync(temporary, { force: true });
    throw err;
  }
}

/**
 * Writes a consistent copy of the state-machine tables at `position` to a temporary file beside
 * `snapshotsDir/snap-<term>-<index>.db`, WITHOUT flushing it: `publishSnapshot` (or
 * `publishSnapshotSync`) makes it durable under its final name.
 *
 * Contract: the live state machine's applied index is exactly `position.index` (the caller
 * snapshots right after applying, before applying more) — checked inside the copy's read
 * transaction. Runs synchronously on the caller's connection. The Raft host copies off its event
 * loop instead (`StoreWorker`); this is for tools, tests and benchmarks.
 */
export function copyStateMachineSnapshot(db: SqliteDatabase, snapshotsDir: string, position: SnapshotPosition): UnpublishedSnapshot {
  makeDirectory(snapshotsDir, SNAPSHOTS_DIR_MODE);
  const final = snapshotFilePath(snapshotsDir, position);
  const temporary = `${final}${SNAPSHOT_TEMP_SUFFIX}`;
  copyTablesAsOfOneReadTransaction(db, temporary, (applied) =>
    invariant(applied === position.index, () => `snapshot at index ${position.index} requested, but the state machine applied ${applied}`),
  );
  return { temporary, final, snapshotsDir };
}

/** A copy of the state machine under a temporary name, and the applied index it is exactly the state at. */
export interface SnapshotCopy {
  readonly temporary: string;
  readonly index: number;
}

/**
 * Copies the state-machine tables of `db` to the temporary file `temporary` as of one read
 * transaction, at whatever applied index that transaction sees (returned). Meant for a second
 * connection on the store file (`store-worker-thread.ts`), so the copy runs while the owner of the
 * live connection keeps applying: WAL gives the read transaction one fixed state.
 */
export function copyStateMachineAsOfNow(db: SqliteDatabase, temporary: string): SnapshotCopy {
  const index = copyTablesAsOfOneReadTransaction(db, temporary, () => undefined);
  return { temporary, index };
}

/**
 * The `UnpublishedSnapshot` for a `SnapshotCopy` once the caller knows its position (the term and
 * configuration at `copy.index`): `publishSnapshot` renames the copy to the position's final name.
 */
export function unpublishedSnapshotOf(copy: SnapshotCopy, snapshotsDir: string, position: SnapshotPosition): UnpublishedSnapshot {
  invariant(copy.index === position.index, () => `the copy holds the state at ${copy.index}, not at ${position.index}`);
  return { temporary: copy.temporary, final: snapshotFilePath(snapshotsDir, position), snapshotsDir };
}

/**
 * Makes a copied snapshot durable under its final name (fsync the file, rename, fsync the
 * directory) on libuv's thread pool, so the event loop keeps serving writes during the I/O wait.
 * Resolves with the durable file; on failure the temporary file is removed (best effort) and the
 * promise rejects. A file with a final name is complete either way.
 */
export async function publishSnapshot(snapshot: UnpublishedSnapshot): Promise<SnapshotFile> {
  try {
    await fsyncPathAsync(snapshot.temporary);
    await renameAsync(snapshot.temporary, snapshot.final);
  } catch (err) {
    rmSync(snapshot.temporary, { force: true });
    throw err;
  }
  await fsyncPathAsync(snapshot.snapshotsDir);
  return { path: snapshot.final, sizeBytes: statSync(snapshot.final).size };
}

/** `publishSnapshot` on the caller's thread, for tools and tests that need the file at once. */
export function publishSnapshotSync(snapshot: UnpublishedSnapshot): SnapshotFile {
  try {
    publish(snapshot.temporary, snapshot.final, snapshot.snapshotsDir);
  } catch (err) {
    rmSync(snapshot.temporary, { force: true });
    throw err;
  }
  return { path: snapshot.final, sizeBytes: statSync(snapshot.final).size };
}

/**
 * Writes a consistent copy of the state-machine tables at `position` to
 * `snapshotsDir/snap-<term>-<index>.db` and returns it once durable: `copyStateMachineSnapshot`
 * then `publishSnapshotSync`, with the same contract.
 */
export function createStateMachineSnapshot(db: SqliteDatabase, snapshotsDir: string, position: SnapshotPosition): SnapshotFile {
  return publishSnapshotSync(copyStateMachineSnapshot(db, snapshotsDir, position));
}

/**
 * Stores snapshot bytes received from the leader as `snap-<term>-<index>.db`, durably (temporary
 * name, fsync, rename, directory fsync). It is not validated here: `installStateMachineSnapshot`
 * (or `attachSnapshot` + `validateAttachedSnapshot`) does that before any live table is touched.
 */
export function writeSnapshotFile(snapshotsDir: string, position: SnapshotPosition, data: Uint8Array): SnapshotFile {
  makeDirectory(snapshotsDir, SNAPSHOTS_DIR_MODE);
  const final = snapshotFilePath(snapshotsDir, position);
  const temporary = `${final}${SNAPSHOT_TEMP_SUFFIX}`;
  const fd = openSync(temporary, 'w', SNAPSHOT_FILE_MODE);
  try {
    for (let at = 0; at < data.length; ) {
      at += writeSync(fd, data, at, Math.min(WRITE_CHUNK_BYTES, data.length - at));
    }
  } catch (err) {
    closeSync(fd);
    rmSync(temporary, { force: true });
    throw err;
  }
  closeSync(fd);
  publish(temporary, final, snapshotsDir);
  return { path: final, sizeBytes: data.length };
}

/** The bytes of a snapshot file: the `Snapshot.data` handed to the Raft core. */
export function readSnapshotData(path: string): Uint8Array {
  return readFileSync(path);
}

function badSnapshot(path: string, reason: string, cause?: unknown): NeuwerkError {
  return new NeuwerkError('NW_ERR_STORE_CORRUPT', `snapshot ${path} is not a valid neuwerk state-machine snapshot: ${reason}`, {
    cause,
    detail: { file: path },
    actions: [
      'The live tables were not changed. If the leader sent it, its snapshot file may be damaged: restart the leader so it',
      'creates a new one, or remove this node and join it again with a bootstrap token.',
    ],
  });
}

/** Checks the SQLite header before the file is handed to SQLite at all. */
function checkSnapshotHeader(path: string): void {
  if (!existsSync(path)) throw badSnapshot(path, 'the file does not exist');
  const size = statSync(path).size;
  if (size < SQLITE_HEADER_BYTES) throw badSnapshot(path, `the file is truncated (${size} bytes)`);
  const fd = openSync(path, 'r');
  try {
    const header = Buffer.alloc(SQLITE_HEADER.length);
    readSync(fd, header, 0, header.length, 0);
    if (header.toString('latin1') !== SQLITE_HEADER) throw badSnapshot(path, 'it is not an SQLite database');
  } finally {
    closeSync(fd);
  }
}

/**
 * Attaches a snapshot file to `db` as `SNAPSHOT_SCHEMA` after checking its SQLite header. Must be
 * called outside a transaction (SQLite refuses ATTACH inside one); pair with `detachSnapshot`.
 */
export function attachSnapshot(db: SqliteDatabase, path: string): void {
  checkSnapshotHeader(path);
  try {
    db.prepare(`ATTACH DATABASE ? AS ${SNAPSHOT_SCHEMA}`).run(path);
  } catch (err) {
    throw badSnapshot(path, (err as Error).message, err);
  }
}

/** Detaches the snapshot attached by `attachSnapshot`; harmless when none is attached. */
export function detachSnapshot(db: SqliteDatabase): void {
  const attached = (db.pragma('database_list') as { name: string }[]).some((d) => d.name === SNAPSHOT_SCHEMA);
  if (attached) db.exec(`DETACH DATABASE ${SNAPSHOT_SCHEMA}`);
}

function columnsOf(db: SqliteDatabase, schema: string, table: string): string[] {
  return (db.pragma(`${schema}.table_info(${quoteIdentifier(table)})`) as { name: string }[]).map((c) => c.name);
}

/**
 * Validates the attached snapshot before any live table is touched: SQLite's structural check
 * passes, every state-machine table exists with exactly the live table's columns, and its
 * `sm_meta` says it was taken at `expectedIndex`. Throws `NW_ERR_STORE_CORRUPT` naming `path`.
 */
export function validateAttachedSnapshot(db: SqliteDatabase, path: string, expectedIndex: number): void {
  let check: unknown;
  try {
    check = db.pragma(`${SNAPSHOT_SCHEMA}.quick_check`, { simple: true });
  } catch (err) {
    throw badSnapshot(path, (err as Error).message, err);
  }
  if (check !== 'ok') throw badSnapshot(path, `integrity check failed: ${String(check)}`);
  for (const table of STATE_MACHINE_TABLES) {
    const live = columnsOf(db, 'main', table);
    const received = columnsOf(db, SNAPSHOT_SCHEMA, table);
    if (received.length === 0) throw badSnapshot(path, `table ${table} is missing`);
    const same = received.length === live.length && live.every((c) => received.includes(c));
    if (!same) throw badSnapshot(path, `table ${table} has columns (${received.join(', ')}), this node expects (${live.join(', ')})`);
  }
  const applied = appliedIndexOf(db, SNAPSHOT_SCHEMA);
  if (applied !== expectedIndex) throw badSnapshot(path, `it holds the state at index ${String(applied)}, expected ${expectedIndex}`);
}

/**
 * Replaces every state-machine table's rows with the attached snapshot's. Contract: the caller
 * runs this inside its own transaction (with whatever Raft metadata must change atomically with
 * it) after `validateAttachedSnapshot`, and calls `StateMachine.reload()` after the commit. The
 * applied index arrives with `sm_meta`.
 */
export function copyAttachedSnapshotIntoLiveTables(db: SqliteDatabase): void {
  invariant(db.inTransaction, 'snapshot install must run inside a transaction');
  // Children before parents on delete, parents before children on insert (foreign keys).
  for (const table of [...STATE_MACHINE_TABLES].reverse()) db.exec(`DELETE FROM main.${quoteIdentifier(table)}`);
  for (const table of STATE_MACHINE_TABLES) {
    const columns = columnsOf(db, 'main', table).map(quoteIdentifier).join(', ');
    const name = quoteIdentifier(table);
    db.exec(`INSERT INTO main.${name} (${columns}) SELECT ${columns} FROM ${SNAPSHOT_SCHEMA}.${name}`);
  }
}

/**
 * Installs the snapshot file at `path` (taken at `expectedIndex`) into the live tables in one
 * transaction, after validating it; then the caller must `reload()` its `StateMachine`. For hosts
 * that do not need Raft metadata in the same transaction (tools, benchmarks); the Raft storage
 * uses the attach/validate/copy steps directly.
 */
export function installStateMachineSnapshot(db: SqliteDatabase, path: string, expectedIndex: number): void {
  attachSnapshot(db, path);
  try {
    validateAttachedSnapshot(db, path, expectedIndex);
    db.transaction(() => copyAttachedSnapshotIntoLiveTables(db))();
  } finally {
    detachSnapshot(db);
  }
}

/**
 * Deletes every snapshot file in `snapshotsDir` except the one at `keep`, and every temporary
 * file. Called only after the snapshot at `keep` is durable and recorded in `raft_meta`, and at
 * start (orphans of a crash). Returns the deleted names.
 */
export function pruneSnapshots(snapshotsDir: string, keep: SnapshotPosition | null): string[] {
  if (!existsSync(snapshotsDir)) return [];
  const keepName = keep === null ? null : snapshotFileName(keep);
  const deleted: string[] = [];
  for (const name of readdirSync(snapshotsDir)) {
    const ours = parseSnapshotFileName(name) !== null || (name.startsWith('snap-') && name.endsWith(SNAPSHOT_TEMP_SUFFIX));
    if (!ours || name === keepName) continue;
    rmSync(join(snapshotsDir, name), { force: true });
    deleted.push(name);
  }
  if (deleted.length > 0) fsyncDirectory(snapshotsDir);
  return deleted;
}
