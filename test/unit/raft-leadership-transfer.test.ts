/**
 * Leadership transfer (Ongaro 2014, §3.10): "the prior leader stops accepting new client requests
 * ... fully updates the target server's log to match its own ... sends it a TimeoutNow request",
 * and "if the transfer does not complete within about an election timeout, the prior leader
 * aborts the transfer and resumes accepting client requests".
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from '../sim/cluster.js';

test('§3.10: transfer to an up-to-date follower: it wins at once despite the leader lease', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'] });
  c.elect('n1');
  c.propose('n1', 'x');
  const term = c.raft('n1').status().term;
  assert.deepEqual(c.raft('n1').transferLeadership('n2'), { ok: true });
  c.stabilize();
  assert.deepEqual(c.leaders(), ['n2']);
  assert.equal(c.raft('n2').status().term, term + 1);
  assert.ok(c.sent.some((m) => m.type === 'timeout-now' && m.to === 'n2'));
  assert.ok(c.sent.some((m) => m.type === 'vote' && m.transfer));
});

test('§3.10: the leader catches a lagging target up before TimeoutNow, refusing proposals meanwhile', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'] });
  c.elect('n1');
  c.isolate('n3');
  for (let i = 0; i < 5; i++) c.propose('n1', `v${i}`);
  c.heal();
  c.cutOneWay('n1', 'n3');
  c.raft('n1').transferLeadership('n3');
  assert.deepEqual(c.raft('n1').propose('during'), { ok: false, reason: 'transferring', leaderHint: 'n1' });
  assert.equal(c.raft('n1').proposeConfChange({ type: 'remove', nodeId: 'n2' }).ok, false);
  assert.ok(!c.sent.some((m) => m.type === 'timeout-now'));
  c.heal();
  c.run(2);
  const timeoutNow = c.sent.findIndex((m) => m.type === 'timeout-now' && m.to === 'n3');
  assert.ok(timeoutNow >= 0);
  assert.deepEqual(c.leaders(), ['n3']);
  assert.deepEqual(c.node('n3').applied, ['v0', 'v1', 'v2', 'v3', 'v4']);
});

test('§3.10: a transfer that cannot complete aborts after an election timeout', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], electionTimeoutTicks: 10 });
  c.elect('n1');
  c.isolate('n3');
  c.raft('n1').transferLeadership('n3');
  assert.equal(c.raft('n1').status().leadTransferee, 'n3');
  c.run(10, ['n1', 'n2']);
  assert.equal(c.raft('n1').status().leadTransferee, null);
  assert.equal(c.raft('n1').status().role, 'leader');
  assert.equal(c.raft('n1').propose('resumed').ok, true);
});

test('transfer refusals', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], learners: ['n4'] });
  c.elect('n1');
  assert.deepEqual(c.raft('n2').transferLeadership('n3'), { ok: false, reason: 'not-leader' });
  assert.deepEqual(c.raft('n1').transferLeadership('n1'), { ok: false, reason: 'transferee-is-self' });
  assert.deepEqual(c.raft('n1').transferLeadership('n4'), { ok: false, reason: 'not-a-voter' });
});
