import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { NeuwerkError } from '../../src/errors.js';
import { applyConfChange, decodeConfChange, type Configuration } from '../../src/raft/index.js';
import { openStoreDatabase, type SqliteDatabase } from '../../src/store/database.js';
import { HARD_STATE_KEY, RaftStorage, SNAPSHOT_META_KEY } from '../../src/store/raft-storage.js';
import { forceNewCluster } from '../../src/store/recover.js';

const NOW = '2026-11-24T12:00:00.000Z';

/** A member's store: voters a, b, c and learner d in the snapshot metadata, 4 entries of term 5, commit 3. */
function memberStore(dir: string, name: string): { db: SqliteDatabase; file: string } {
  const file = join(dir, name);
  const db = openStoreDatabase(file);
  db.prepare('INSERT INTO raft_meta (key, value) VALUES (?, ?)').run(SNAPSHOT_META_KEY, JSON.stringify({ index: 0, term: 0, conf: { voters: ['a', 'b', 'c'], learners: ['d'] } }));
  db.prepare('INSERT INTO raft_meta (key, value) VALUES (?, ?)').run(HARD_STATE_KEY, JSON.stringify({ term: 5, vote: 'a', commit: 3 }));
  for (let i = 1; i <= 4; i++) db.prepare("INSERT INTO raft_log (idx, term, type, data) VALUES (?, 5, 'normal', '')").run(i);
  return { db, file };
}

/** What the appended entries (all of the new term 6) do: the configuration they leave, the nodes they tombstone. */
function appended(rows: readonly { term: number; type: string; data: string }[], start: Configuration): { conf: Configuration; tombstoned: string[] } {
  let conf = start;
  const tombstoned: string[] = [];
  for (const row of rows) {
    assert.equal(row.term, 6);
    if (row.type === 'conf-change') conf = applyConfChange(conf, decodeConfChange(row.data) as NonNullable<ReturnType<typeof decodeConfChange>>) ?? assert.fail(`invalid change ${row.data}`);
    else tombstoned.push((JSON.parse(row.data) as { node_id: string }).node_id);
  }
  return { conf, tombstoned };
}

describe('forceNewCluster', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nw-recover-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a learner is promoted, every other member removed and tombstoned, the whole log kept and committed in a new term', () => {
    const { db, file } = memberStore(dir, 'd.db');
    const before = db.prepare('SELECT COUNT(*) AS n FROM raft_log').get();
    const planned = forceNewCluster(db, file, 'd', NOW, { dryRun: true });
    assert.deepEqual(db.prepare('SELECT COUNT(*) AS n FROM raft_log').get(), before, 'a dry run writes nothing');
    const outcome = forceNewCluster(db, file, 'd', NOW);
    assert.deepEqual(outcome, { removed: ['a', 'b', 'c'], droppedEntries: 0, previousCommitIndex: 3, keptThroughIndex: 4, keptThroughTerm: 5, term: 6, lastIndex: 11, dryRun: false });
    assert.deepEqual(planned, { ...outcome, dryRun: true }, 'the dry run foresaw exactly this');
    const rows = db.prepare('SELECT idx, term, type, data FROM raft_log ORDER BY idx').all() as { idx: number; term: number; type: string; data: string }[];
    assert.deepEqual(rows.slice(0, 4).map((r) => r.term), [5, 5, 5, 5], 'the log, its uncommitted tail included, is kept');
    assert.deepEqual(appended(rows.slice(4), { voters: ['a', 'b', 'c'], learners: ['d'] }), { conf: { voters: ['d'], learners: [] }, tombstoned: ['a', 'b', 'c'] });
    assert.deepEqual(JSON.parse((db.prepare('SELECT value FROM raft_meta WHERE key = ?').get(HARD_STATE_KEY) as { value: string }).value), { term: 6, vote: 'd', commit: 11 });
    // The store passes every consistency check of a start.
    const storage = RaftStorage.open({ db, dbPath: file, snapshotsDir: join(dir, 'snaps-d'), nodeId: 'd', bootstrapVoters: null, appliedIndex: 0 });
    assert.equal(storage.lastIndex, 11);
    db.close();
  });

  it('refuses a node that is not a member, and one that is already the only voter', () => {
    const { db, file } = memberStore(dir, 'x.db');
    assert.throws(() => forceNewCluster(db, file, 'x', NOW), (err: unknown) => err instanceof NeuwerkError && err.code === 'NW_ERR_CONFLICT' && /not a member/.test(err.message));
    forceNewCluster(db, file, 'a', NOW);
    assert.throws(() => forceNewCluster(db, file, 'a', NOW), /already the only voter/);
    db.close();
  });

  it("drops an uncommitted removal of itself and what follows (a removal it proposed as leader but never replicated), and refuses a committed one", () => {
    const { db, file } = memberStore(dir, 'self-removed.db');
    db.prepare("INSERT INTO raft_log (idx, term, type, data) VALUES (5, 5, 'conf-change', ?)").run(JSON.stringify({ type: 'remove', nodeId: 'a' }));
    db.prepare("INSERT INTO raft_log (idx, term, type, data) VALUES (6, 5, 'normal', '')").run();
    const outcome = forceNewCluster(db, file, 'a', NOW);
    assert.deepEqual([outcome.droppedEntries, outcome.keptThroughIndex, outcome.removed], [2, 4, ['b', 'c', 'd']]);
    const rows = db.prepare('SELECT idx, term, type, data FROM raft_log WHERE idx > 4 ORDER BY idx').all() as { term: number; type: string; data: string }[];
    assert.deepEqual(appended(rows, { voters: ['a', 'b', 'c'], learners: ['d'] }), { conf: { voters: ['a'], learners: [] }, tombstoned: ['b', 'c', 'd'] });
    db.close();
    const committed = memberStore(dir, 'self-removed-committed.db');
    committed.db.prepare("INSERT INTO raft_log (idx, term, type, data) VALUES (5, 5, 'conf-change', ?)").run(JSON.stringify({ type: 'remove', nodeId: 'a' }));
    committed.db.prepare('UPDATE raft_meta SET value = ? WHERE key = ?').run(JSON.stringify({ term: 5, vote: 'a', commit: 5 }), HARD_STATE_KEY);
    assert.throws(() => forceNewCluster(committed.db, committed.file, 'a', NOW), /was removed from its cluster at index 5 \(committed\)/);
    committed.db.close();
  });

  it('tombstones every other node the store knows of: one removed only by an uncommitted entry, and one known only as a member row', () => {
    const { db, file } = memberStore(dir, 'all-known.db');
    db.prepare("INSERT INTO raft_log (idx, term, type, data) VALUES (5, 5, 'conf-change', ?)").run(JSON.stringify({ type: 'remove', nodeId: 'b' }));
    db.prepare("INSERT INTO members (node_id, cluster_addr, http_addr, role, joined_at, raft_index) VALUES ('e', NULL, '127.0.0.1:1', 'voter', ?, 1)").run(NOW);
    const outcome = forceNewCluster(db, file, 'a', NOW);
    assert.deepEqual(outcome.removed, ['b', 'c', 'd', 'e']);
    const rows = db.prepare('SELECT idx, term, type, data FROM raft_log WHERE idx > 5 ORDER BY idx').all() as { term: number; type: string; data: string }[];
    assert.deepEqual(appended(rows, { voters: ['a', 'c'], learners: ['d'] }), { conf: { voters: ['a'], learners: [] }, tombstoned: ['b', 'c', 'd', 'e'] });
    db.close();
  });
});
