import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { NeuwerkError } from '../../src/errors.js';
import { encodeCommand } from '../../src/store/commands.js';
import { openStoreDatabase, STATE_MACHINE_TABLES, type SqliteDatabase } from '../../src/store/database.js';
import { RaftStorage } from '../../src/store/raft-storage.js';
import { createStateMachineSnapshot, installStateMachineSnapshot, SNAPSHOT_SCHEMA, snapshotFileName } from '../../src/store/snapshot.js';
import { StateMachine, type AppliedEntry } from '../../src/store/state-machine.js';

const KEYVAL_ROWS = 2_000;

function puts(from: number, count: number, term: number, value: string): AppliedEntry[] {
  const out: AppliedEntry[] = [];
  for (let i = 0; i < count; i++) {
    out.push({ index: from + i, term, data: encodeCommand({ v: 1, type: 'keyval.put', zone: `zone-${i % 7}`, key: `key-${i}`, value: `${value}-${i}`, expires_at: i % 5 === 0 ? 1_000_000 + i : null }) });
  }
  return out;
}

function dump(db: SqliteDatabase): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {};
  for (const table of STATE_MACHINE_TABLES) out[table] = db.prepare(`SELECT * FROM ${table} ORDER BY 1, 2`).all();
  return out;
}

function assertBadSnapshot(fn: () => unknown, reason: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof NeuwerkError);
    assert.equal(err.code, 'NW_ERR_STORE_CORRUPT');
    assert.match(err.message, reason);
    return true;
  });
}

describe('state-machine snapshots', () => {
  const dir = mkdtempSync(join(tmpdir(), 'neuwerk-snapshot-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** A leader-side store with KEYVAL_ROWS keys, a member and a setting, applied through index KEYVAL_ROWS + 2. */
  function source(name: string): { db: SqliteDatabase; machine: StateMachine; applied: number } {
    const db = openStoreDatabase(join(dir, name, 'raft.db'));
    const machine = new StateMachine(db);
    const rows = puts(1, KEYVAL_ROWS, 3, 'v');
    rows.push({ index: KEYVAL_ROWS + 1, term: 3, data: encodeCommand({ v: 1, type: 'member.upsert', node_id: 'n1', cluster_addr: null, http_addr: '127.0.0.1:8443', role: 'voter', joined_at: '2025-01-01T00:00:00Z' }) });
    rows.push({ index: KEYVAL_ROWS + 2, term: 3, data: encodeCommand({ v: 1, type: 'settings.put', key: 'a', value: 'b' }) });
    machine.apply(rows);
    return { db, machine, applied: KEYVAL_ROWS + 2 };
  }

  it('round trip: a copy of exactly the state-machine tables, installed into another store, gives the same rows and applied index', () => {
    const leader = source('leader');
    const snapshotsDir = join(dir, 'leader', 'snapshots');
    const file = createStateMachineSnapshot(leader.db, snapshotsDir, { index: leader.applied, term: 3 });
    assert.equal(file.path, join(snapshotsDir, 'snap-3-2002.db'));
    assert.deepEqual(readdirSync(snapshotsDir), ['snap-3-2002.db'], 'no temporary file left behind');
    const image = new Database(file.path, { readonly: true });
    const tables = (image.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
    image.close();
    assert.deepEqual(tables, [...STATE_MACHINE_TABLES].sort(), 'no Raft tables in a snapshot');

    // The follower has other, older state, which the install replaces wholesale.
    const followerDb = openStoreDatabase(join(dir, 'follower', 'raft.db'));
    const follower = new StateMachine(followerDb);
    follower.apply(puts(1, 10, 1, 'stale'));
    installStateMachineSnapshot(followerDb, file.path, leader.applied);
    follower.reload();
    assert.equal(follower.appliedIndex, leader.applied);
    assert.equal(follower.appliedTerm, 3);
    assert.deepEqual(dump(followerDb), dump(leader.db));
    assert.equal(follower.getKeyval('zone-3', 'key-10', 0)?.value, 'v-10');
    // The partial expiry index was rebuilt by the install.
    assert.equal(follower.nextExpiryMs(), 1_000_000);
    leader.db.close();
    followerDb.close();
  });

  it('refuses a damaged or foreign file before touching the live tables', () => {
    const leader = source('leader2');
    const good = createStateMachineSnapshot(leader.db, join(dir, 'leader2', 'snapshots'), { index: leader.applied, term: 3 });
    const db = openStoreDatabase(join(dir, 'victim', 'raft.db'));
    const machine = new StateMachine(db);
    machine.apply(puts(1, 5, 1, 'mine'));
    const before = dump(db);

    const garbage = join(dir, 'garbage.db');
    writeFileSync(garbage, Buffer.alloc(4096, 7));
    assertBadSnapshot(() => installStateMachineSnapshot(db, garbage, leader.applied), /is not an SQLite database/);

    const truncated = join(dir, 'truncated.db');
    writeFileSync(truncated, readFileSync(good.path).subarray(0, 50));
    assertBadSnapshot(() => installStateMachineSnapshot(db, truncated, leader.applied), /truncated/);

    assertBadSnapshot(() => installStateMachineSnapshot(db, good.path, leader.applied + 1), /holds the state at index 2002, expected 2003/);

    const missingTable = join(dir, 'missing-table.db');
    writeFileSync(missingTable, readFileSync(good.path));
    const edit = new Database(missingTable);
    edit.exec('DROP TABLE keyval');
    edit.close();
    assertBadSnapshot(() => installStateMachineSnapshot(db, missingTable, leader.applied), /table keyval is missing/);

    assert.deepEqual(dump(db), before, 'live tables untouched');
    assert.deepEqual((db.pragma('database_list') as { name: string }[]).filter((d) => d.name === SNAPSHOT_SCHEMA), [], 'nothing left attached');
    leader.db.close();
    db.close();
  });

  it('a received snapshot is installed with the Raft metadata in one transaction: log discarded, file kept for followers, older files deleted', () => {
    const leader = source('leader3');
    const file = createStateMachineSnapshot(leader.db, join(dir, 'leader3', 'snapshots'), { index: leader.applied, term: 3 });
    const data = readFileSync(file.path);

    const path = join(dir, 'joined', 'raft.db');
    const snapshotsDir = join(dir, 'joined', 'snapshots');
    const db = openStoreDatabase(path);
    const machine = new StateMachine(db);
    const storage = RaftStorage.open({ db, dbPath: path, snapshotsDir, nodeId: 'n2', bootstrapVoters: ['n1', 'n2'], appliedIndex: 0 });
    storage.persist({ hardState: { term: 2, vote: 'n1', commit: 0 }, entries: [{ index: 1, term: 2, type: 'normal', data: '' }] });
    mkdirSync(snapshotsDir);
    writeFileSync(join(snapshotsDir, 'notes.txt'), 'an operator file: never touched');

    const meta = { index: leader.applied, term: 3, conf: { voters: ['n1', 'n2'], learners: [] } };
    const outcome = storage.persist({ hardState: { term: 3, vote: null, commit: leader.applied }, entries: [], snapshot: { meta, data } });
    assert.equal(outcome.snapshotInstalled, true);
    machine.reload();
    assert.equal(machine.appliedIndex, leader.applied);
    assert.deepEqual(dump(db), dump(leader.db));
    assert.equal((db.prepare('SELECT COUNT(*) AS n FROM raft_log').get() as { n: number }).n, 0, 'the whole log is discarded');
    assert.deepEqual(readdirSync(snapshotsDir).sort(), ['notes.txt', snapshotFileName(meta)]);
    db.close();

    // Restart: the snapshot metadata and its file are what the core starts from.
    const again = openStoreDatabase(path);
    const reopened = RaftStorage.open({ db: again, dbPath: path, snapshotsDir, nodeId: 'n2', bootstrapVoters: null, appliedIndex: new StateMachine(again).appliedIndex });
    assert.deepEqual(reopened.initialState.snapshotMeta, meta);
    assert.deepEqual(Buffer.from(reopened.initialState.snapshotData ?? []), data);
    assert.deepEqual(reopened.initialState.entries, []);
    again.close();
    leader.db.close();
  });

  it('a received snapshot that fails validation changes nothing in the database', () => {
    const path = join(dir, 'refuses', 'raft.db');
    const snapshotsDir = join(dir, 'refuses', 'snapshots');
    const db = openStoreDatabase(path);
    const storage = RaftStorage.open({ db, dbPath: path, snapshotsDir, nodeId: 'n2', bootstrapVoters: ['n1', 'n2'], appliedIndex: 0 });
    storage.persist({ hardState: { term: 2, vote: 'n1', commit: 0 }, entries: [{ index: 1, term: 2, type: 'normal', data: '' }] });
    const meta = { index: 50, term: 3, conf: { voters: ['n1', 'n2'], learners: [] } };
    assertBadSnapshot(() => storage.persist({ hardState: { term: 3, vote: null, commit: 50 }, entries: [], snapshot: { meta, data: new Uint8Array(300) } }), /not an SQLite database/);
    assert.equal((db.prepare('SELECT COUNT(*) AS n FROM raft_log').get() as { n: number }).n, 1);
    assert.equal(storage.snapshotMeta.index, 0);
    assert.deepEqual(readdirSync(snapshotsDir), [], 'the bad file is not kept');
    db.close();
  });
});
