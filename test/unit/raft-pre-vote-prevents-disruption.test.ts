/**
 * Pre-vote (Ongaro 2014, §9.6): "a candidate would first ask other servers whether its log was
 * up-to-date enough to get their vote. Only if the candidate believed it could get votes from a
 * majority of the cluster would it increment its term and start a normal election" — so a server
 * rejoining after a partition does not depose a working leader.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from '../sim/cluster.js';

function isolateAndRejoin(preVote: boolean): { c: TestCluster; termBefore: number } {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], preVote, checkQuorum: false });
  c.elect('n1');
  const termBefore = c.raft('n1').status().term;
  c.isolate('n3');
  // The majority keeps working while n3 is away, so n3's log falls behind.
  c.propose('n1', 'during-partition');
  c.run(100);
  c.heal();
  c.run(40);
  return { c, termBefore };
}

test('§9.6: with pre-vote, a partitioned node does not inflate its term nor disrupt the leader on rejoin', () => {
  const { c, termBefore } = isolateAndRejoin(true);
  assert.equal(c.raft('n3').status().term, termBefore, 'pre-vote rounds never change the term');
  assert.deepEqual(c.leaders(), ['n1']);
  assert.equal(c.raft('n1').status().term, termBefore);
  assert.equal(c.raft('n3').status().leader, 'n1');
});

test('§9.6 (control): without pre-vote, the rejoining node bumps the term and deposes the leader', () => {
  const { c, termBefore } = isolateAndRejoin(false);
  assert.ok(c.raft('n1').status().term > termBefore, 'the leader saw a higher term');
});

test('§9.6 with check-quorum: even an up-to-date rejoining node cannot disrupt (leader lease)', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], preVote: true, checkQuorum: true });
  c.elect('n1');
  const term = c.raft('n1').status().term;
  c.isolate('n3');
  c.run(100);
  c.heal();
  c.run(40);
  assert.deepEqual(c.leaders(), ['n1']);
  assert.equal(c.raft('n1').status().term, term);
  assert.equal(c.raft('n3').status().term, term);
});

test('pre-vote: a pre-candidate with a stale log gets no pre-votes and stays in its term', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], jitter: { n1: 0, n2: 9, n3: 0 } });
  c.elect('n1');
  c.isolate('n3');
  for (let i = 0; i < 3; i++) c.propose('n1', `v${i}`);
  c.heal();
  // n1 is cut off from everyone; n2 has the entries, n3 does not. n3 campaigns first.
  c.isolate('n1');
  const term = c.raft('n3').status().term;
  c.run(11, ['n3']);
  assert.notEqual(c.raft('n3').status().role, 'leader');
  assert.equal(c.raft('n3').status().term, term);
});
