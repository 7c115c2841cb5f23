import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { NeuwerkError } from '../../src/errors.js';
import { encodeCommand } from '../../src/store/commands.js';
import { openStoreDatabase, type SqliteDatabase } from '../../src/store/database.js';
import { HARD_STATE_KEY, RaftStorage, SNAPSHOT_META_KEY } from '../../src/store/raft-storage.js';
import { StateMachine } from '../../src/store/state-machine.js';

describe('raft storage refuses a store it cannot trust, naming the file, and never resets it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'neuwerk-raft-corrupt-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let counter = 0;

  /** A store with a valid seed, three entries of term 1, commit 2. */
  function seeded(): { db: SqliteDatabase; path: string; snapshotsDir: string } {
    counter += 1;
    const path = join(dir, `s${counter}`, 'raft.db');
    const snapshotsDir = join(dir, `s${counter}`, 'snapshots');
    const db = openStoreDatabase(path);
    const storage = RaftStorage.open({ db, dbPath: path, snapshotsDir, nodeId: 'n1', bootstrapVoters: ['n1'], appliedIndex: 0 });
    storage.persist({
      hardState: { term: 1, vote: 'n1', commit: 2 },
      entries: [1, 2, 3].map((index) => ({ index, term: 1, type: 'normal' as const, data: '' })),
    });
    return { db, path, snapshotsDir };
  }

  function reopen(store: { db: SqliteDatabase; path: string; snapshotsDir: string }, appliedIndex = 0, bootstrapVoters: string[] | null = ['n1']): RaftStorage {
    return RaftStorage.open({ db: store.db, dbPath: store.path, snapshotsDir: store.snapshotsDir, nodeId: 'n1', bootstrapVoters, appliedIndex });
  }

  function assertCorrupt(fn: () => unknown, file: string, reason: RegExp): void {
    assert.throws(fn, (err: unknown) => {
      assert.ok(err instanceof NeuwerkError, `expected a NeuwerkError, got ${String(err)}`);
      assert.equal(err.code, 'NW_ERR_STORE_CORRUPT');
      assert.ok(err.message.includes(file), `the message names ${file}: ${err.message}`);
      assert.match(err.message, reason);
      assert.ok(err.actions.some((a) => /backup/.test(a)), 'advises restoring from a backup');
      assert.ok(err.actions.some((a) => /join it again/.test(a)), 'advises removing and rejoining the node');
      return true;
    });
  }

  it('bad JSON in raft_meta', () => {
    const store = seeded();
    store.db.prepare('UPDATE raft_meta SET value = ? WHERE key = ?').run('{"term": 1, "vote":', HARD_STATE_KEY);
    assertCorrupt(() => reopen(store), store.path, /raft_meta\.hard_state is not valid JSON/);
    assert.equal((store.db.prepare('SELECT value FROM raft_meta WHERE key = ?').get(HARD_STATE_KEY) as { value: string }).value, '{"term": 1, "vote":', 'left as found');
  });

  it('a snapshot metadata of the wrong shape', () => {
    const store = seeded();
    store.db.prepare('UPDATE raft_meta SET value = ? WHERE key = ?').run('{"index": -1, "term": 0}', SNAPSHOT_META_KEY);
    assertCorrupt(() => reopen(store), store.path, /snapshot_meta is not snapshot metadata/);
  });

  it('a gap in raft_log', () => {
    const store = seeded();
    store.db.prepare('DELETE FROM raft_log WHERE idx = 2').run();
    assertCorrupt(() => reopen(store), store.path, /raft_log has a gap: expected index 2 after 1, found 3/);
  });

  it('a log that does not start right after the snapshot', () => {
    const store = seeded();
    store.db.prepare('DELETE FROM raft_log WHERE idx = 1').run();
    assertCorrupt(() => reopen(store), store.path, /expected index 1 after 0, found 2/);
  });

  it('a commit index beyond the log (a lost tail)', () => {
    const store = seeded();
    store.db.prepare('DELETE FROM raft_log WHERE idx >= 2').run();
    assertCorrupt(() => reopen(store), store.path, /commit index 2 is beyond the last log index 1/);
  });

  it('entry terms beyond the persisted term', () => {
    const store = seeded();
    store.db.prepare('UPDATE raft_log SET term = 5 WHERE idx = 3').run();
    assertCorrupt(() => reopen(store), store.path, /entry 3 has term 5, beyond the persisted term 1/);
  });

  it('a state machine ahead of the log', () => {
    const store = seeded();
    assertCorrupt(() => reopen(store, 7), store.path, /applied index 7\) is ahead of the last log index 3/);
  });

  it('a hard state without snapshot metadata', () => {
    const store = seeded();
    store.db.prepare('DELETE FROM raft_meta WHERE key = ?').run(SNAPSHOT_META_KEY);
    assertCorrupt(() => reopen(store), store.path, /has a hard state but no snapshot_meta/);
  });

  it('a missing snapshot file', () => {
    const store = seeded();
    store.db.prepare('UPDATE raft_meta SET value = ? WHERE key = ?').run(JSON.stringify({ index: 2, term: 1, conf: { voters: ['n1'], learners: [] } }), SNAPSHOT_META_KEY);
    assertCorrupt(() => reopen(store, 2), store.path, /snapshot file .*snap-1-2\.db recorded in raft_meta is missing/);
  });

  it('log entries without any raft_meta, unless it is the single-voter stop-gap log of this very node', () => {
    counter += 1;
    const path = join(dir, `s${counter}`, 'raft.db');
    const snapshotsDir = join(dir, `s${counter}`, 'snapshots');
    const db = openStoreDatabase(path);
    const machine = new StateMachine(db);
    const put = encodeCommand({ v: 1, type: 'keyval.put', zone: 'z', key: 'k', value: 'v', expires_at: null });
    const insert = db.prepare("INSERT INTO raft_log (idx, term, type, data) VALUES (?, 1, 'normal', ?)");
    db.transaction(() => {
      insert.run(1, put);
      insert.run(2, put);
      machine.apply([{ index: 1, term: 1, data: put }, { index: 2, term: 1, data: put }]);
    })();
    const store = { db, path, snapshotsDir };
    assertCorrupt(() => reopen(store, 2, null), path, /raft_log holds 2 entries but raft_meta has no hard state/);
    assertCorrupt(() => reopen(store, 2, ['n1', 'n2']), path, /raft_log holds 2 entries/);
    const adopted = reopen(store, 2, ['n1']);
    assert.deepEqual(adopted.initialState.hardState, { term: 1, vote: 'n1', commit: 2 });
    assert.deepEqual(adopted.initialState.snapshotMeta.conf, { voters: ['n1'], learners: [] });
    assert.equal(adopted.initialState.entries.length, 2);
  });
});
