/**
 * Check-quorum (Ongaro 2014, §6.2): "a leader steps down if an election timeout elapses without a
 * successful round of heartbeats to a majority of its cluster"; and the matching leader lease on
 * followers (§9.6): a server that heard from a current leader within the minimum election timeout
 * does not grant (pre-)votes — unless the campaign comes from a leadership transfer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from '../sim/cluster.js';

test('§6.2: an isolated leader steps down within an election timeout', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], electionTimeoutTicks: 10 });
  c.elect('n1');
  c.isolate('n1');
  c.tick(10, ['n1']);
  // One full window may pass with the stale "recently active" marks; the next must step down.
  c.tick(10, ['n1']);
  const st = c.raft('n1').status();
  assert.equal(st.role, 'follower');
  assert.equal(st.leader, null);
});

test('§6.2: a leader that keeps hearing from a majority stays leader', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3', 'n4', 'n5'] });
  c.elect('n1');
  c.isolate('n4');
  c.isolate('n5');
  for (let i = 0; i < 50; i++) {
    c.tick(1, ['n1']);
    c.stabilize();
  }
  assert.equal(c.raft('n1').status().role, 'leader');
});

test('§9.6 lease: a follower that recently heard from the leader ignores a higher-term vote request', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], preVote: false });
  c.elect('n1');
  const term = c.raft('n2').status().term;
  c.raft('n2').step({ type: 'vote', from: 'n3', to: 'n2', term: term + 5, lastLogIndex: 99, lastLogTerm: term + 4, transfer: false });
  assert.equal(c.raft('n2').status().term, term, 'term unchanged');
  assert.equal(c.raft('n2').hasReady(), false, 'no reply at all');
  // The same request marked as a leadership transfer is honoured.
  c.raft('n2').step({ type: 'vote', from: 'n3', to: 'n2', term: term + 5, lastLogIndex: 99, lastLogTerm: term + 4, transfer: true });
  assert.equal(c.raft('n2').status().term, term + 5);
  assert.equal(c.raft('n2').status().vote, 'n3');
});

test('a stale leader learns the newer term from the reply to its append and steps down', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], jitter: { n2: 0, n3: 5 } });
  c.elect('n1');
  c.isolate('n1');
  c.run(30, ['n2', 'n3']);
  assert.deepEqual(c.leaders().sort(), ['n1', 'n2']);
  c.heal();
  c.raft('n1').propose('stale');
  c.stabilize();
  assert.equal(c.raft('n1').status().role, 'follower');
  c.run(2);
  assert.deepEqual(c.leaders(), ['n2']);
  assert.equal(c.raft('n1').status().leader, 'n2');
});

test('without pre-vote and check-quorum too, a stale-term append is answered with the newer term (a node that never campaigns where the leader hears it is not left behind)', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], preVote: false, checkQuorum: false });
  c.elect('n1');
  c.isolate('n3');
  c.tick(30, ['n3']);
  const higher = c.raft('n3').status().term;
  assert.ok(higher > c.raft('n1').status().term, 'n3 campaigned alone to a higher term');
  c.heal();
  // No ticks: n3 does not campaign again; only its answer to the leader's append can tell n1.
  c.raft('n1').propose('x');
  c.stabilize();
  assert.equal(c.raft('n1').status().role, 'follower');
  assert.equal(c.raft('n1').status().term, higher);
});
