import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Entry, HardState, Ready } from '../../src/raft/index.js';
import { openStoreDatabase, type SqliteDatabase } from '../../src/store/database.js';
import { HARD_STATE_KEY, RaftStorage, SNAPSHOT_META_KEY } from '../../src/store/raft-storage.js';

const WAL_HEADER_BYTES = 32;
const WAL_FRAME_HEADER_BYTES = 24;

/**
 * Counts commit frames in a WAL file: the last frame of every committed transaction records the
 * database size after the commit (non-zero); other frames record 0. Only frames of the current
 * WAL generation (matching salts) count. Requires `wal_autocheckpoint = 0` so the WAL is not reset.
 */
function walCommits(dbPath: string): number {
  const wal = `${dbPath}-wal`;
  const size = statSync(wal).size;
  if (size < WAL_HEADER_BYTES) return 0;
  const fd = openSync(wal, 'r');
  try {
    const header = Buffer.alloc(WAL_HEADER_BYTES);
    readSync(fd, header, 0, WAL_HEADER_BYTES, 0);
    const pageSize = header.readUInt32BE(8);
    const salt1 = header.readUInt32BE(16);
    const salt2 = header.readUInt32BE(20);
    let commits = 0;
    const frame = Buffer.alloc(WAL_FRAME_HEADER_BYTES);
    for (let at = WAL_HEADER_BYTES; at + WAL_FRAME_HEADER_BYTES + pageSize <= size; at += WAL_FRAME_HEADER_BYTES + pageSize) {
      readSync(fd, frame, 0, WAL_FRAME_HEADER_BYTES, at);
      if (frame.readUInt32BE(8) !== salt1 || frame.readUInt32BE(12) !== salt2) break;
      if (frame.readUInt32BE(4) !== 0) commits += 1;
    }
    return commits;
  } finally {
    closeSync(fd);
  }
}

function entries(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push({ index: i, term, type: 'normal', data: `{"i":${i},"t":${term}}` });
  return out;
}

function ready(part: { hardState?: HardState; entries?: Entry[] }): Pick<Ready, 'hardState' | 'entries' | 'snapshot'> {
  return { entries: part.entries ?? [], ...(part.hardState ? { hardState: part.hardState } : {}) };
}

describe('raft storage on SQLite', () => {
  const dir = mkdtempSync(join(tmpdir(), 'neuwerk-raft-storage-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  function open(name: string, bootstrapVoters: string[] | null = ['n1']): { db: SqliteDatabase; path: string; storage: RaftStorage } {
    const path = join(dir, name, 'raft.db');
    const db = openStoreDatabase(path);
    const storage = RaftStorage.open({ db, dbPath: path, snapshotsDir: join(dir, name, 'snapshots'), nodeId: 'n1', bootstrapVoters, appliedIndex: 0 });
    return { db, path, storage };
  }

  it('a fresh seed persists its bootstrap configuration, so a restart does not need the flag', () => {
    const first = open('seed', ['n1', 'n2', 'n3']);
    assert.deepEqual(first.storage.initialState.snapshotMeta, { index: 0, term: 0, conf: { voters: ['n1', 'n2', 'n3'], learners: [] } });
    first.db.close();
    const again = open('seed', null);
    assert.deepEqual(again.storage.initialState.snapshotMeta.conf.voters, ['n1', 'n2', 'n3']);
    assert.deepEqual(again.storage.initialState.hardState, { term: 0, vote: null, commit: 0 });
    again.db.close();
  });

  it('a fresh joiner persists nothing until its first Ready, then both hard state and snapshot metadata', () => {
    const joiner = open('joiner', null);
    assert.deepEqual(joiner.storage.initialState.snapshotMeta.conf, { voters: [], learners: [] });
    const keys = () => (joiner.db.prepare('SELECT key FROM raft_meta ORDER BY key').all() as { key: string }[]).map((r) => r.key);
    assert.deepEqual(keys(), []);
    joiner.storage.persist(ready({ hardState: { term: 3, vote: 'n2', commit: 0 } }));
    assert.deepEqual(keys(), [HARD_STATE_KEY, SNAPSHOT_META_KEY]);
    joiner.db.close();
    const again = open('joiner', ['n1']);
    assert.deepEqual(again.storage.initialState.hardState, { term: 3, vote: 'n2', commit: 0 });
    assert.deepEqual(again.storage.initialState.snapshotMeta.conf, { voters: [], learners: [] }, 'the persisted state rules, not the flag');
    again.db.close();
  });

  it('restart keeps the vote, the term, the commit index and the log', () => {
    const { db, storage } = open('restart');
    storage.persist(ready({ hardState: { term: 2, vote: 'n1', commit: 0 }, entries: entries(1, 3, 2) }));
    storage.persist(ready({ hardState: { term: 2, vote: 'n1', commit: 3 }, entries: entries(4, 5, 2) }));
    db.close();
    const again = open('restart');
    const init = again.storage.initialState;
    assert.deepEqual(init.hardState, { term: 2, vote: 'n1', commit: 3 });
    assert.deepEqual(init.entries, entries(1, 5, 2));
    assert.equal(init.applied, 0);
    assert.equal(again.storage.lastIndex, 5);
    again.db.close();
  });

  it('persists everything of one Ready in exactly one committed transaction (group commit)', () => {
    const { db, path, storage } = open('group-commit');
    db.pragma('wal_autocheckpoint = 0');
    const before = walCommits(path);
    storage.persist(ready({ hardState: { term: 1, vote: 'n1', commit: 0 }, entries: entries(1, 500, 1) }));
    assert.equal(walCommits(path) - before, 1, '500 entries and the hard state: one commit');
    storage.persist(ready({ hardState: { term: 1, vote: 'n1', commit: 500 }, entries: entries(501, 501, 1) }));
    assert.equal(walCommits(path) - before, 2);
    // A conflicting suffix (truncate + append + hard state) is still one commit.
    storage.persist(ready({ hardState: { term: 2, vote: null, commit: 500 }, entries: entries(501, 510, 2) }));
    assert.equal(walCommits(path) - before, 3);
    db.close();
  });

  it('truncates a conflicting suffix from the first new entry on', () => {
    const { db, storage } = open('truncate');
    storage.persist(ready({ hardState: { term: 1, vote: 'n1', commit: 2 }, entries: entries(1, 6, 1) }));
    storage.persist(ready({ hardState: { term: 2, vote: 'n2', commit: 2 }, entries: entries(3, 4, 2) }));
    assert.equal(storage.lastIndex, 4);
    db.close();
    const again = open('truncate');
    assert.deepEqual(again.storage.initialState.entries, [...entries(1, 2, 1), ...entries(3, 4, 2)], 'entries 5 and 6 of term 1 are gone');
    again.db.close();
  });

  it('refuses to write entries that would leave a gap (an invariant, nothing written)', () => {
    const { db, storage } = open('gap-write');
    storage.persist(ready({ hardState: { term: 1, vote: 'n1', commit: 0 }, entries: entries(1, 2, 1) }));
    assert.throws(() => storage.persist(ready({ entries: entries(4, 5, 1) })), /invariant violated: persisting entries from 4 would leave a gap/);
    assert.equal((db.prepare('SELECT COUNT(*) AS n FROM raft_log').get() as { n: number }).n, 2);
    db.close();
  });
});
