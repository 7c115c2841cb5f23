import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Entry, SnapshotMeta } from '../../src/raft/index.js';
import { encodeCommand } from '../../src/store/commands.js';
import { openStoreDatabase, type SqliteDatabase } from '../../src/store/database.js';
import { LOG_TRIM_BATCH_ENTRIES, RaftStorage } from '../../src/store/raft-storage.js';
import { publishSnapshot, snapshotFileName } from '../../src/store/snapshot.js';
import { StateMachine } from '../../src/store/state-machine.js';

const CONF = { voters: ['n1'], learners: [] };

function puts(from: number, to: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) {
    out.push({ index: i, term: 1, type: 'normal', data: encodeCommand({ v: 1, type: 'keyval.put', zone: 'z', key: `k${i}`, value: `v${i}`, expires_at: null }) });
  }
  return out;
}

describe('raft storage compaction in two steps (copy, then record once the file is durable)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'neuwerk-raft-compaction-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  interface Store {
    db: SqliteDatabase;
    storage: RaftStorage;
    sm: StateMachine;
    snapshotsDir: string;
  }

  function open(name: string): Store {
    const path = join(dir, name, 'raft.db');
    const db = openStoreDatabase(path);
    const sm = new StateMachine(db);
    const snapshotsDir = join(dir, name, 'snapshots');
    const storage = RaftStorage.open({ db, dbPath: path, snapshotsDir, nodeId: 'n1', bootstrapVoters: ['n1'], appliedIndex: sm.appliedIndex });
    return { db, storage, sm, snapshotsDir };
  }

  /** Persists and applies entries `from..to`, as the host does. */
  function write(store: Store, from: number, to: number): void {
    const entries = puts(from, to);
    store.storage.persist({ entries, hardState: { term: 1, vote: 'n1', commit: to } });
    store.sm.apply(entries.map((e) => ({ index: e.index, term: e.term, data: e.data })));
  }

  function firstLogIndex(db: SqliteDatabase): number | null {
    return (db.prepare('SELECT MIN(idx) AS first FROM raft_log').get() as { first: number | null }).first;
  }

  it('records the snapshot, trims the log below the retained index, and restarts from it', async () => {
    const store = open('record');
    write(store, 1, 30);
    const meta: SnapshotMeta = { index: 30, term: 1, conf: CONF };
    const file = await publishSnapshot(store.storage.beginCompaction(meta));
    const snapshot = store.storage.recordCompaction(meta, file, 26);
    assert.ok(snapshot !== null);
    assert.deepEqual(snapshot.meta, meta);
    assert.equal(firstLogIndex(store.db), 26, 'rows from the retained index on are kept');
    assert.deepEqual(store.storage.snapshotMeta, meta);
    store.db.close();

    const again = open('record');
    assert.deepEqual(again.storage.initialState.snapshotMeta, meta);
    assert.equal(again.storage.initialState.entries.length, 0, 'the log after the snapshot is empty');
    assert.equal(again.sm.getKeyval('z', 'k30', 0)?.value, 'v30');
    again.db.close();
  });

  it('deletes the log prefix in bounded batches, and a restart in between ignores the rows left below the snapshot', async () => {
    const store = open('batches');
    const last = 2 * LOG_TRIM_BATCH_ENTRIES + 500;
    write(store, 1, last);
    const meta: SnapshotMeta = { index: last, term: 1, conf: CONF };
    const retainFrom = last - 99;
    store.storage.recordCompaction(meta, await publishSnapshot(store.storage.beginCompaction(meta)), retainFrom);
    assert.equal(firstLogIndex(store.db), LOG_TRIM_BATCH_ENTRIES + 1, 'the record deleted one batch');
    assert.equal(store.storage.logTrimPending, true);
    assert.equal(store.storage.trimLog(), true, 'a full batch: more may remain');
    assert.equal(firstLogIndex(store.db), 2 * LOG_TRIM_BATCH_ENTRIES + 1);
    store.db.close();

    const again = open('batches');
    assert.deepEqual(again.storage.initialState.snapshotMeta, meta);
    assert.equal(again.storage.initialState.entries.length, 0, 'rows below the snapshot are not loaded');
    write(again, last + 1, last + 2);
    const next: SnapshotMeta = { index: last + 2, term: 1, conf: CONF };
    again.storage.recordCompaction(next, await publishSnapshot(again.storage.beginCompaction(next)), last + 2);
    assert.equal(again.storage.logTrimPending, false, 'the leftovers and the new prefix fit in one batch');
    assert.equal(firstLogIndex(again.db), last + 2);
    again.db.close();
  });

  it('a crash after the copy or after the publish, before the record, restarts from the previous state', async () => {
    const store = open('crash');
    write(store, 1, 20);
    const unpublished = store.storage.beginCompaction({ index: 20, term: 1, conf: CONF });
    assert.ok(existsSync(unpublished.temporary), 'the copy is under a temporary name');
    store.db.close();
    let again = open('crash');
    assert.equal(again.storage.initialState.snapshotMeta.index, 0, 'the unpublished copy was never recorded');
    assert.equal(again.storage.initialState.entries.length, 20, 'the whole log is still there');
    assert.deepEqual(readdirSync(again.snapshotsDir), [], 'the temporary file was removed at start');

    await publishSnapshot(again.storage.beginCompaction({ index: 20, term: 1, conf: CONF }));
    again.db.close();
    again = open('crash');
    assert.equal(again.storage.initialState.snapshotMeta.index, 0, 'a published but unrecorded file is not the snapshot');
    assert.equal(again.storage.initialState.entries.length, 20);
    assert.deepEqual(readdirSync(again.snapshotsDir), [], 'the unrecorded file was removed at start');
    again.db.close();
  });

  it('keeps the previous snapshot file until a flushed commit made the new record durable', async () => {
    const store = open('supersede');
    write(store, 1, 10);
    const first: SnapshotMeta = { index: 10, term: 1, conf: CONF };
    store.storage.recordCompaction(first, await publishSnapshot(store.storage.beginCompaction(first)), 11);
    write(store, 11, 20);
    const second: SnapshotMeta = { index: 20, term: 1, conf: CONF };
    store.storage.recordCompaction(second, await publishSnapshot(store.storage.beginCompaction(second)), 21);
    assert.deepEqual(readdirSync(store.snapshotsDir).sort(), [snapshotFileName(first), snapshotFileName(second)].sort(), 'the record was not flushed yet');
    write(store, 21, 21);
    // The removal runs in the background after the flushed commit.
    for (let i = 0; i < 100 && readdirSync(store.snapshotsDir).length > 1; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(readdirSync(store.snapshotsDir), [snapshotFileName(second)]);
    store.db.close();
  });

  it('drops a copy superseded by a newer snapshot recorded meanwhile, leaving the log alone', async () => {
    const store = open('stale');
    write(store, 1, 20);
    const older: SnapshotMeta = { index: 10, term: 1, conf: CONF };
    const newer: SnapshotMeta = { index: 20, term: 1, conf: CONF };
    // The copy at 10 was overtaken: a newer snapshot (e.g. one installed from the leader) was recorded first.
    const newerFile = await publishSnapshot(store.storage.beginCompaction(newer));
    assert.ok(store.storage.recordCompaction(newer, newerFile, 21) !== null);
    const stale = store.storage.recordCompaction(older, { path: join(store.snapshotsDir, snapshotFileName(older)), sizeBytes: 0 }, 11);
    assert.equal(stale, null, 'an older snapshot than the recorded one is not recorded');
    assert.deepEqual(store.storage.snapshotMeta, newer);
    assert.ok(existsSync(newerFile.path), 'the current snapshot file is kept');
    store.db.close();
  });
});
