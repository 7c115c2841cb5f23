/**
 * Learners (Ongaro 2014, §4.2.1 "non-voting members"; etcd learners): they receive the log but are
 * not counted toward commitment or elections and never campaign.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from '../sim/cluster.js';

test('a learner receives and applies the log', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], learners: ['n4'] });
  c.elect('n1');
  c.propose('n1', 'x');
  c.run(2);
  assert.deepEqual(c.node('n4').applied, ['x']);
  assert.equal(c.raft('n1').status().progress?.['n4']?.isLearner, true);
});

test('a learner never campaigns, however long it hears nothing', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], learners: ['n4'] });
  c.elect('n1');
  c.isolate('n4');
  c.run(200, ['n4']);
  assert.equal(c.raft('n4').status().role, 'follower');
  assert.ok(!c.sent.some((m) => m.from === 'n4' && (m.type === 'vote' || m.type === 'pre-vote')));
});

test('learners do not count toward the commit quorum', () => {
  // 3 voters + 2 learners: the leader plus both learners are 3 of 5 nodes, but only 1 of 3 voters.
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], learners: ['n4', 'n5'] });
  c.elect('n1');
  c.run(2);
  const commit = c.raft('n1').status().commit;
  c.isolate('n2');
  c.isolate('n3');
  c.cutLink('n2', 'n3');
  c.raft('n1').propose('needs-voters');
  c.run(5, ['n1', 'n4', 'n5']);
  assert.equal(c.raft('n4').status().lastIndex, commit + 1, 'the learner has the entry');
  assert.equal(c.raft('n1').status().commit, commit, 'but it is not committed');
  c.heal();
  c.run(3);
  assert.ok(c.raft('n1').status().commit > commit);
});

test('learners are never asked for votes and their votes never count', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], learners: ['n4', 'n5'], preVote: false, checkQuorum: false });
  c.partition(['n1', 'n4', 'n5'], ['n2'], ['n3']);
  c.run(5 * 10, ['n1', 'n4', 'n5']);
  assert.notEqual(c.raft('n1').status().role, 'leader');
  assert.ok(!c.sent.some((m) => m.type === 'vote' && (m.to === 'n4' || m.to === 'n5')));
  // Even an unsolicited grant from a learner does not elect the candidate.
  const term = c.raft('n1').status().term;
  if (c.raft('n1').status().role === 'candidate') {
    c.raft('n1').step({ type: 'vote-resp', from: 'n4', to: 'n1', term, reject: false });
    c.raft('n1').step({ type: 'vote-resp', from: 'n5', to: 'n1', term, reject: false });
    assert.equal(c.raft('n1').status().role, 'candidate');
  }
});
