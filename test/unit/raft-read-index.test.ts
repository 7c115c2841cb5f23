/**
 * ReadIndex (Ongaro 2014, §6.4): the leader records its commit index as the read index (after
 * committing an entry of its term), confirms it is still leader with a round of heartbeats acked
 * by a majority, and the read is served once the state machine has applied up to the read index.
 * Followers forward the request to the leader (§6.4.1). A deposed leader must not answer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from '../sim/cluster.js';

test('§6.4: the leader answers after a heartbeat quorum, with its commit index', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'] });
  c.elect('n1');
  c.propose('n1', 'x');
  const commit = c.raft('n1').status().commit;
  c.isolate('n2');
  c.isolate('n3');
  assert.deepEqual(c.raft('n1').readIndex('r1'), { ok: true });
  c.stabilize();
  assert.deepEqual(c.node('n1').readStates, [], 'no answer before a majority confirms leadership');
  c.heal();
  c.cutLink('n1', 'n3');
  c.run(1, ['n1']);
  assert.deepEqual(c.node('n1').readStates, [{ ctx: 'r1', index: commit }]);
});

test('§6.4: a single-voter leader answers immediately', () => {
  const c = new TestCluster({ voters: ['solo'] });
  c.run(25, ['solo']);
  c.raft('solo').propose('x');
  c.processReady('solo');
  c.raft('solo').readIndex('r');
  c.processReady('solo');
  assert.deepEqual(c.node('solo').readStates, [{ ctx: 'r', index: c.raft('solo').status().commit }]);
});

test('§6.4.1: a follower forwards the request and relays the answer as its own ReadState', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], learners: ['n4'] });
  c.elect('n1');
  c.propose('n1', 'x');
  assert.deepEqual(c.raft('n2').readIndex('f1'), { ok: true });
  assert.deepEqual(c.raft('n4').readIndex('l1'), { ok: true });
  c.stabilize();
  const commit = c.raft('n1').status().commit;
  assert.deepEqual(c.node('n2').readStates, [{ ctx: 'f1', index: commit }]);
  assert.deepEqual(c.node('n4').readStates, [{ ctx: 'l1', index: commit }]);
  assert.deepEqual(c.node('n1').readStates, []);
  // Safe to read once applied >= index.
  assert.ok(c.node('n2').appliedIndex >= commit);
});

test('§6.4: a node that knows no leader refuses', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'] });
  assert.deepEqual(c.raft('n2').readIndex('x'), { ok: false, reason: 'not-leader-unknown' });
});

test('§6.4: a stale leader cut off from the majority never answers', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3', 'n4', 'n5'], checkQuorum: false });
  c.elect('n1');
  c.propose('n1', 'old');
  c.partition(['n1', 'n2'], ['n3', 'n4', 'n5']);
  c.elect('n3');
  c.propose('n3', 'new');
  c.raft('n1').readIndex('stale');
  c.raft('n2').readIndex('stale-forwarded');
  c.run(30, ['n1', 'n2']);
  assert.deepEqual(c.node('n1').readStates, []);
  assert.deepEqual(c.node('n2').readStates, []);
  assert.equal(c.raft('n1').status().role, 'leader', 'it still believes it leads');
  // After healing the old leader learns the new term and its pending read is dropped, not answered.
  c.heal();
  c.run(5);
  assert.deepEqual(c.node('n1').readStates, []);
});

test('§6.4 step 1: a new leader defers reads until it has committed an entry of its term', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], checkQuorum: false });
  c.elect('n1');
  c.propose('n1', 'x');
  c.isolate('n1');
  c.addFilter((m) => m.type === 'append-resp');
  c.elect('n2');
  c.raft('n2').readIndex('early');
  c.run(3, ['n2', 'n3']);
  assert.deepEqual(c.node('n2').readStates, [], 'no own-term commit yet');
  c.heal();
  c.isolate('n1');
  c.run(3, ['n2', 'n3']);
  const st = c.raft('n2').status();
  assert.equal(st.role, 'leader');
  assert.equal(c.raft('n2').termAt(st.commit), st.term);
  assert.deepEqual(c.node('n2').readStates, [{ ctx: 'early', index: st.commit }]);
});
