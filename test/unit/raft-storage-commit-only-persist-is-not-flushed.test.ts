/**
 * A Ready whose only durable change is a higher commit index is written without an fsync of its
 * own (Raft keeps commitIndex in volatile state, Figure 2; no message promises it is durable).
 * Entries, a new term or a new vote are always flushed, and the store is back at
 * `synchronous=FULL` afterwards, so the next durable write is flushed as before.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Entry } from '../../src/raft/index.js';
import { openStoreDatabase, type SqliteDatabase } from '../../src/store/database.js';
import { RaftStorage } from '../../src/store/raft-storage.js';

/** `PRAGMA synchronous` value of FULL. */
const SYNCHRONOUS_FULL = 2;
/** `PRAGMA synchronous` value of NORMAL. */
const SYNCHRONOUS_NORMAL = 1;

function entries(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push({ index: i, term, type: 'normal', data: `{"i":${i}}` });
  return out;
}

describe('raft storage: commit-only persists', () => {
  const dir = mkdtempSync(join(tmpdir(), 'neuwerk-raft-commit-only-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  function open(name: string): { db: SqliteDatabase; storage: RaftStorage } {
    const path = join(dir, name, 'raft.db');
    const db = openStoreDatabase(path);
    const storage = RaftStorage.open({ db, dbPath: path, snapshotsDir: join(dir, name, 'snapshots'), nodeId: 'n1', bootstrapVoters: ['n1', 'n2', 'n3'], appliedIndex: 0 });
    return { db, storage };
  }

  it('flushes entries, terms and votes, but not a Ready that only raises the commit index', () => {
    const { db, storage } = open('flags');
    const synchronous = (): unknown => db.pragma('synchronous', { simple: true });
    assert.equal(storage.persist({ entries: entries(1, 3, 1), hardState: { term: 1, vote: 'n1', commit: 0 } }).flushed, true);
    assert.equal(storage.persist({ entries: [], hardState: { term: 1, vote: 'n1', commit: 2 } }).flushed, false, 'commit only');
    assert.equal(synchronous(), SYNCHRONOUS_FULL);
    assert.equal(storage.persist({ entries: entries(4, 4, 1), hardState: { term: 1, vote: 'n1', commit: 3 } }).flushed, true, 'entries with the commit');
    assert.equal(storage.persist({ entries: [], hardState: { term: 2, vote: null, commit: 3 } }).flushed, true, 'a new term');
    assert.equal(storage.persist({ entries: [], hardState: { term: 2, vote: 'n2', commit: 3 } }).flushed, true, 'a new vote');
    assert.equal(storage.persist({ entries: [], hardState: { term: 2, vote: 'n2', commit: 4 } }).flushed, false, 'commit only');
    assert.equal(synchronous(), SYNCHRONOUS_FULL);
    db.close();
    const again = open('flags');
    assert.deepEqual(again.storage.initialState.hardState, { term: 2, vote: 'n2', commit: 4 }, 'a clean close keeps the commit index');
    again.db.close();
  });

  it('writes without fsync inside `withoutFsync` from its first call on, and with fsync after it', () => {
    const { db, storage } = open('without-fsync');
    const synchronous = (): unknown => db.pragma('synchronous', { simple: true });
    for (let call = 1; call <= 3; call++) {
      assert.equal(storage.withoutFsync(synchronous), SYNCHRONOUS_NORMAL, `call ${call}: NORMAL inside`);
      assert.equal(synchronous(), SYNCHRONOUS_FULL, `call ${call}: FULL after`);
    }
    db.close();
  });

  it('runs `alongside` in the persist transaction: both are written, or neither when it throws', () => {
    const { db, storage } = open('alongside');
    db.exec('CREATE TABLE applied (idx INTEGER)');
    const insert = db.prepare('INSERT INTO applied (idx) VALUES (?)');
    const applied = (): unknown => db.prepare('SELECT group_concat(idx) AS list FROM applied').get();
    const commitOf = (): number => (JSON.parse((db.prepare("SELECT value FROM raft_meta WHERE key = 'hard_state'").get() as { value: string }).value) as { commit: number }).commit;
    storage.persist({ entries: entries(1, 3, 1), hardState: { term: 1, vote: 'n1', commit: 0 } });
    let inTransaction = false;
    const outcome = storage.persist({ entries: [], hardState: { term: 1, vote: 'n1', commit: 2 } }, () => {
      inTransaction = db.inTransaction;
      insert.run(1);
      insert.run(2);
    });
    assert.equal(inTransaction, true);
    assert.equal(outcome.flushed, false, 'still a commit-only persist');
    assert.equal(db.pragma('synchronous', { simple: true }), SYNCHRONOUS_FULL);
    assert.equal(commitOf(), 2);
    assert.deepEqual(applied(), { list: '1,2' });
    assert.throws(
      () =>
        storage.persist({ entries: [], hardState: { term: 1, vote: 'n1', commit: 3 } }, () => {
          insert.run(3);
          throw new Error('apply failed');
        }),
      /apply failed/,
    );
    assert.equal(commitOf(), 2, 'the commit index of a failed transaction is not written');
    assert.deepEqual(applied(), { list: '1,2' }, 'nor is what ran alongside');
    assert.equal(db.pragma('synchronous', { simple: true }), SYNCHRONOUS_FULL);
    db.close();
  });

  it('a fresh joiner flushes its first persist even when it carries only a commit index', () => {
    const path = join(dir, 'joiner', 'raft.db');
    const db = openStoreDatabase(path);
    const storage = RaftStorage.open({ db, dbPath: path, snapshotsDir: join(dir, 'joiner', 'snapshots'), nodeId: 'n4', bootstrapVoters: null, appliedIndex: 0 });
    assert.equal(storage.persist({ entries: [], hardState: { term: 0, vote: null, commit: 0 } }).flushed, true);
    db.close();
  });
});
