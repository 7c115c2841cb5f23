/**
 * Raft §5.3: "If an existing entry conflicts with a new one (same index but different terms),
 * delete the existing entry and all that follow it." The host is told to truncate through Ready:
 * its `entries` start below the last persisted index.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from '../sim/cluster.js';

test('§5.3: a follower with a divergent uncommitted tail has it truncated and replaced', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], checkQuorum: false });
  c.setLog('n1', [1, 3], { term: 3, commit: 1 });
  c.setLog('n2', [1, 3], { term: 3, commit: 1 });
  c.setLog('n3', [1, 2, 2, 2], { term: 2, commit: 1 });
  c.elect('n1');
  c.run(2);
  assert.deepEqual(c.logTerms('n3'), [1, 3, 4]);
  // The host received entries starting at index 2 while it had persisted up to 4.
  const rewrite = c.node('n3').readies.find((rd) => rd.entries.length > 0);
  assert.equal(rewrite?.entries[0]?.index, 2);
  assert.deepEqual(c.node('n3').storage.entries.map((e) => [e.index, e.term]), [[1, 1], [2, 3], [3, 4]]);
  assert.equal(c.raft('n3').status().commit, 3);
});

test('§5.3: a follower that already holds the entries keeps its log (duplicate appends are idempotent)', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'] });
  c.elect('n1');
  c.propose('n1', 'a');
  const append = c.sent.filter((m) => m.type === 'append' && m.to === 'n2' && m.entries.length > 0).at(-1);
  assert.ok(append !== undefined);
  const before = c.logTerms('n2');
  c.raft('n2').step(append);
  c.processReady('n2');
  assert.deepEqual(c.logTerms('n2'), before);
  assert.deepEqual(c.node('n2').applied, ['a']);
});

test('§5.3: a follower commits no further than the entries it verified against the leader', () => {
  // "If leaderCommit > commitIndex, set commitIndex = min(leaderCommit, index of last new entry)":
  // n3's stale tail beyond the append must not be committed even though the leader's commit covers it.
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], checkQuorum: false });
  c.setLog('n3', [1, 1, 2, 2, 2], { term: 2, commit: 1 });
  c.raft('n3').step({
    type: 'append',
    from: 'n1',
    to: 'n3',
    term: 3,
    index: 1,
    logTerm: 1,
    entries: [{ index: 2, term: 1, type: 'normal', data: '2@1' }],
    commit: 5,
  });
  const st = c.raft('n3').status();
  assert.equal(st.commit, 2, 'commit = min(leaderCommit 5, last new index 2)');
  assert.equal(st.lastIndex, 5, 'matching entries do not truncate the tail');
});
