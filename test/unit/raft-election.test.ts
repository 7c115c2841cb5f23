/**
 * Leader election (Raft §5.2): "Each server will vote for at most one candidate in a given term",
 * "a candidate wins an election if it receives votes from a majority of the servers", and
 * "Raft uses randomized election timeouts to ensure that split votes are rare and that they are
 * resolved quickly".
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from '../sim/cluster.js';

test('§5.2: a candidate with a majority of votes becomes the single leader of its term', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3', 'n4', 'n5'] });
  c.elect('n1');
  assert.deepEqual(c.leaders(), ['n1']);
  for (const id of ['n2', 'n3', 'n4', 'n5']) {
    const st = c.raft(id).status();
    assert.equal(st.role, 'follower');
    assert.equal(st.leader, 'n1');
    assert.equal(st.term, 1);
  }
  // The leader's first entry in its term is a no-op (§8), committed everywhere.
  c.tick(2);
  for (const id of ['n1', 'n2', 'n3', 'n4', 'n5']) assert.equal(c.raft(id).status().commit, 1);
});

test('§5.2: a split vote elects nobody, and randomized timeouts resolve it in a later term', () => {
  // Pre-vote off so both candidates reach the vote phase in the same term.
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3', 'n4'], preVote: false, checkQuorum: false, jitter: { n1: 0, n2: 0 } });
  // Each candidate's request reaches only "its" half: n3 votes n1, n4 votes n2.
  c.cutOneWay('n1', 'n4');
  c.cutOneWay('n2', 'n3');
  for (let i = 0; i < 10; i++) c.tick(1, ['n1', 'n2']);
  assert.equal(c.raft('n1').status().role, 'candidate');
  assert.equal(c.raft('n2').status().role, 'candidate');
  c.stabilize();
  assert.deepEqual(c.leaders(), [], 'a 2-2 split elects nobody');
  assert.equal(c.raft('n1').status().term, 1);
  assert.equal(c.raft('n2').status().term, 1);
  c.heal();
  // Different jitter: n1 times out first next time and wins term 2.
  c.node('n2').randomValue = 9;
  for (let i = 0; i < 40 && c.leaders().length === 0; i++) c.run(1);
  assert.equal(c.leaders().length, 1);
  assert.ok(c.raft(c.leaders()[0]!).status().term >= 2);
});

test('§5.2: a server votes for at most one candidate per term', () => {
  const c = new TestCluster({ preVote: false, checkQuorum: false });
  c.elect('n1');
  const term = c.raft('n1').status().term;
  c.raft('n2').step({ type: 'vote', from: 'n3', to: 'n2', term, lastLogIndex: 100, lastLogTerm: term, transfer: false });
  const rd = c.raft('n2').ready();
  c.raft('n2').advance();
  assert.deepEqual(
    rd.messages.map((m) => [m.type, m.to, 'reject' in m ? m.reject : null]),
    [['vote-resp', 'n3', true]],
  );
});

test('§5.4.1: a voter denies its vote to a candidate whose log is less up-to-date', () => {
  const c = new TestCluster({ preVote: false, checkQuorum: false });
  c.setLog('n1', [1, 1], { term: 1 });
  c.setLog('n2', [1, 2], { term: 2 });
  c.setLog('n3', [1], { term: 1 });
  c.campaign('n1');
  // n2 (last term 2) rejects n1 (last term 1); n3 grants: n1 still wins 2 of 3.
  const resp = c.sent.filter((m) => m.type === 'vote-resp' && m.to === 'n1');
  assert.deepEqual(resp.map((m) => [m.from, (m as { reject: boolean }).reject]).sort(), [['n2', true], ['n3', false]]);
});

test('restart: a node that persisted its vote never votes for another candidate in that term', () => {
  const c = new TestCluster({ preVote: false, checkQuorum: false });
  c.campaign('n1');
  const term = c.raft('n1').status().term;
  assert.equal(c.node('n2').storage.hardState.vote, 'n1');
  c.crash('n2');
  c.restart('n2');
  assert.equal(c.raft('n2').status().vote, 'n1');
  c.raft('n2').step({ type: 'vote', from: 'n3', to: 'n2', term, lastLogIndex: 50, lastLogTerm: term, transfer: false });
  const rd = c.raft('n2').ready();
  c.raft('n2').advance();
  const resp = rd.messages.find((m) => m.type === 'vote-resp');
  assert.ok(resp !== undefined && resp.type === 'vote-resp' && resp.reject, 'the restarted node must reject a second candidate');
  // The original candidate may ask again (idempotent grant).
  c.raft('n2').step({ type: 'vote', from: 'n1', to: 'n2', term, lastLogIndex: 1, lastLogTerm: term, transfer: false });
  const rd2 = c.raft('n2').ready();
  c.raft('n2').advance();
  const again = rd2.messages.find((m) => m.type === 'vote-resp');
  assert.ok(again !== undefined && again.type === 'vote-resp' && !again.reject);
});

test('a vote grant is in the same Ready as the hard state recording it (persist before send)', () => {
  const c = new TestCluster({ preVote: false, checkQuorum: false });
  c.campaign('n1');
  const grant = c.node('n2').readies.find((rd) => rd.messages.some((m) => m.type === 'vote-resp'));
  assert.ok(grant !== undefined);
  assert.deepEqual(grant.hardState, { term: 1, vote: 'n1', commit: 0 });
});

test('a fresh single-voter cluster elects itself and commits alone', () => {
  const c = new TestCluster({ voters: ['solo'] });
  c.tick(25, ['solo']);
  assert.deepEqual(c.leaders(), ['solo']);
  const r = c.raft('solo').propose('x');
  assert.equal(r.ok, true);
  c.processReady('solo');
  assert.deepEqual(c.node('solo').applied, ['x']);
});
