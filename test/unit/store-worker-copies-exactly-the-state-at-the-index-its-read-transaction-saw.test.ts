import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { NeuwerkError } from '../../src/errors.js';
import { encodeCommand } from '../../src/store/commands.js';
import { openStoreDatabase } from '../../src/store/database.js';
import { SQLITE_DEFAULT_WAL_AUTOCHECKPOINT_PAGES, StoreWorker, WAL_AUTOCHECKPOINT_PAGES_WITH_WORKER } from '../../src/store/store-worker.js';
import { StateMachine, type AppliedEntry } from '../../src/store/state-machine.js';

/** Keys the writes cycle over: every index overwrites one, so the state at each index is distinct. */
const KEYS = 64;
/** Rows in the store before the copy starts, so the copy takes long enough for applies to land during it. */
const INITIAL_ENTRIES = 20_000;
/** Entries applied per event-loop turn while the copy runs. */
const BATCH = 20;
/** Value bytes of the checkpoint test's writes, so each burst fills WAL pages (the bench writes 128). */
const PADDING = 'x'.repeat(200);
/** Bound on the entries applied while waiting for the copy. */
const MAX_CONCURRENT_ENTRIES = 200_000;

function entry(index: number, padding: string): AppliedEntry {
  // Distinct keys for the initial rows (a big table), then KEYS keys overwritten in turn.
  const key = index <= INITIAL_ENTRIES ? `init-${index}` : `k${index % KEYS}`;
  return { index, term: 1, data: encodeCommand({ v: 1, type: 'keyval.put', zone: 'z', key, value: `v${index}${padding}`, expires_at: null }) };
}

function applyRange(sm: StateMachine, from: number, to: number, padding = ''): void {
  const batch: AppliedEntry[] = [];
  for (let i = from; i <= to; i++) batch.push(entry(i, padding));
  sm.apply(batch);
}

describe('the store worker (a thread with its own connection on the store)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'neuwerk-snapshot-copier-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('copies exactly the state at the applied index its read transaction saw, while the loop keeps applying', async () => {
    const dbPath = join(dir, 'live', 'raft.db');
    const db = openStoreDatabase(dbPath);
    const sm = new StateMachine(db);
    for (let from = 1; from <= INITIAL_ENTRIES; from += 1_000) applyRange(sm, from, from + 999);
    const copier = new StoreWorker(db, dbPath, join(dir, 'live', 'snapshots'));
    try {
      const copying = copier.copy();
      let settled = false;
      void copying.then(
        () => (settled = true),
        () => (settled = true),
      );
      // Apply while the worker copies, one batch per turn, as the Raft host does.
      let applied = INITIAL_ENTRIES;
      while (!settled && applied < INITIAL_ENTRIES + MAX_CONCURRENT_ENTRIES) {
        applyRange(sm, applied + 1, applied + BATCH);
        applied += BATCH;
        await new Promise((resolve) => setImmediate(resolve));
      }
      const copy = await copying;
      assert.ok(applied > INITIAL_ENTRIES, 'writes were applied while the copy ran');
      assert.ok(copy.index >= INITIAL_ENTRIES && copy.index <= applied, `the copy is at ${copy.index}, between the start (${INITIAL_ENTRIES}) and the end (${applied})`);

      const out = new Database(copy.temporary, { readonly: true });
      try {
        const meta = out.prepare("SELECT value FROM sm_meta WHERE key = 'applied_index'").get() as { value: string };
        assert.equal(Number(meta.value), copy.index, 'the copied sm_meta carries the reported index');
        const rows = out.prepare("SELECT key, value, version FROM keyval WHERE zone = 'z'").all() as { key: string; value: string; version: number }[];
        // The state at copy.index: every initial key, and each cycled key with its last write at or below it.
        const expected = new Map<string, string>();
        for (let i = 1; i <= copy.index; i++) expected.set(i <= INITIAL_ENTRIES ? `init-${i}` : `k${i % KEYS}`, `v${i}`);
        assert.equal(rows.length, expected.size);
        for (const row of rows) assert.equal(row.value, expected.get(row.key), `key ${row.key} at index ${copy.index}`);
      } finally {
        out.close();
      }
      assert.equal(sm.appliedIndex, applied, 'the live store was not touched by the copy');
    } finally {
      await copier.close();
      db.close();
    }
  });

  it('rejects after close, and removes the files of copies it abandoned', async () => {
    const dbPath = join(dir, 'closed', 'raft.db');
    const db = openStoreDatabase(dbPath);
    const sm = new StateMachine(db);
    for (let from = 1; from <= INITIAL_ENTRIES; from += 1_000) applyRange(sm, from, from + 999);
    const snapshotsDir = join(dir, 'closed', 'snapshots');
    const copier = new StoreWorker(db, dbPath, snapshotsDir);
    try {
      const abandoned = copier.copy();
      const closing = copier.close();
      await assert.rejects(abandoned, (err: unknown) => err instanceof NeuwerkError && err.code === 'NW_ERR_SHUTTING_DOWN');
      await closing;
      await assert.rejects(copier.copy(), (err: unknown) => err instanceof NeuwerkError && err.code === 'NW_ERR_SHUTTING_DOWN');
      assert.deepEqual(existsSync(snapshotsDir) ? readdirSync(snapshotsDir) : [], [], 'no copy file is left behind');
    } finally {
      db.close();
    }
  });
  it('checkpoints the WAL on its thread while it runs, and gives checkpoints back to the connection when closed', async () => {
    const dbPath = join(dir, 'checkpoints', 'raft.db');
    const db = openStoreDatabase(dbPath);
    const sm = new StateMachine(db);
    const worker = new StoreWorker(db, dbPath, join(dir, 'checkpoints', 'snapshots'), 10);
    const bursts = 30;
    const perBurst = 1_000;
    try {
      db.pragma('wal_checkpoint(TRUNCATE)');
      worker.start();
      assert.equal(db.pragma('wal_autocheckpoint', { simple: true }), WAL_AUTOCHECKPOINT_PAGES_WITH_WORKER, 'the event loop checkpoints inside its commits only as a bound');
      let oneBurstBytes = 0;
      for (let burst = 0; burst < bursts; burst++) {
        applyRange(sm, burst * perBurst + 1, (burst + 1) * perBurst, PADDING);
        if (burst === 0) oneBurstBytes = statSync(`${dbPath}-wal`).size;
        // Several checkpoint intervals between bursts (bounded wait for the thread to get to it).
        await new Promise((resolve) => setTimeout(resolve, 60));
      }
      const walBytes = statSync(`${dbPath}-wal`).size;
      const autoCheckpointBytes = SQLITE_DEFAULT_WAL_AUTOCHECKPOINT_PAGES * (db.pragma('page_size', { simple: true }) as number);
      assert.ok(oneBurstBytes * bursts > 2 * autoCheckpointBytes, `the writes (${bursts} x ${oneBurstBytes} bytes) outgrow SQLite's own checkpoint threshold`);
      // Without the thread's checkpoints the WAL would grow past SQLite's default threshold (and hold every burst up to the bound).
      assert.ok(walBytes < autoCheckpointBytes, `the WAL (${walBytes} bytes) stays below the auto-checkpoint threshold (${autoCheckpointBytes} bytes): the thread checkpointed it`);
      assert.equal(sm.getKeyval('z', `init-${perBurst}`, 0)?.value, `v${perBurst}${PADDING}`);
    } finally {
      await worker.close();
    }
    assert.equal(db.pragma('wal_autocheckpoint', { simple: true }), SQLITE_DEFAULT_WAL_AUTOCHECKPOINT_PAGES, 'the connection checkpoints by itself again');
    db.close();
  });
});
