import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Entry, SnapshotMeta } from '../../src/raft/index.js';
import { encodeCommand } from '../../src/store/commands.js';
import { openStoreDatabase, type SqliteDatabase } from '../../src/store/database.js';
import { LOG_TRIM_BATCH_ENTRIES, RaftStorage } from '../../src/store/raft-storage.js';
import { StoreWorker } from '../../src/store/store-worker.js';
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

  it('a copy taken on the worker thread goes through the same steps, and a crash after any of them restarts from the previous state', async () => {
    const store = open('worker-crash');
    write(store, 1, 20);
    const copier = new StoreWorker(store.db, join(dir, 'worker-crash', 'raft.db'), store.snapshotsDir);
    try {
      // Crash right after the copy: the file has a temporary name and was never recorded.
      const copy = await copier.copy();
      assert.equal(copy.index, 20, 'the copy holds the state at the applied index');
      assert.ok(existsSync(copy.temporary) && copy.temporary.endsWith('.tmp'), 'the copy is under a temporary name');
      assert.throws(() => store.storage.adoptCompactionCopy({ index: 19, term: 1, conf: CONF }, copy), /holds the state at 20, not at 19/, 'a copy is only ever named by the index it holds');
      store.db.close();
    } finally {
      await copier.close();
    }
    let again = open('worker-crash');
    assert.equal(again.storage.initialState.snapshotMeta.index, 0, 'the copy was never recorded');
    assert.equal(again.storage.initialState.entries.length, 20, 'the whole log is still there');
    assert.deepEqual(readdirSync(again.snapshotsDir), [], 'the orphan copy was removed at start');

    // Crash after the publish, before the record.
    const copier2 = new StoreWorker(again.db, join(dir, 'worker-crash', 'raft.db'), again.snapshotsDir);
    const meta: SnapshotMeta = { index: 20, term: 1, conf: CONF };
    try {
      const file = await publishSnapshot(again.storage.adoptCompactionCopy(meta, await copier2.copy()));
      assert.deepEqual(readdirSync(again.snapshotsDir), [snapshotFileName(meta)], 'published under the name of its position');
      again.db.close();
      again = open('worker-crash');
      assert.equal(again.storage.initialState.snapshotMeta.index, 0, 'a published but unrecorded file is not the snapshot');
      assert.deepEqual(readdirSync(again.snapshotsDir), [], 'the unrecorded file was removed at start');
      assert.equal(existsSync(file.path), false);

      // And recorded: the restart comes back from it.
      write(again, 21, 25);
      const copier3 = new StoreWorker(again.db, join(dir, 'worker-crash', 'raft.db'), again.snapshotsDir);
      try {
        const at25: SnapshotMeta = { index: 25, term: 1, conf: CONF };
        const recorded = again.storage.recordCompaction(at25, await publishSnapshot(again.storage.adoptCompactionCopy(at25, await copier3.copy())), 26);
        assert.ok(recorded !== null);
        write(again, 26, 26);
      } finally {
        await copier3.close();
      }
      again.db.close();
      again = open('worker-crash');
      assert.equal(again.storage.initialState.snapshotMeta.index, 25);
      assert.equal(again.sm.getKeyval('z', 'k25', 0)?.value, 'v25');
      assert.equal(again.sm.getKeyval('z', 'k26', 0)?.value, 'v26');
      again.db.close();
    } finally {
      await copier2.close();
    }
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
