/**
 * Single-server membership changes (Ongaro 2014, §4.1-4.2): "The new configuration takes effect on
 * each server as soon as it is added to that server's log"; "a leader ... will not begin a new
 * configuration change until the previous one has committed"; a leader removed from the
 * configuration "steps down once the Cnew entry is committed" (§4.2.2). New servers join as
 * learners (non-voting, §4.2.1) and are promoted once caught up.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from '../sim/cluster.js';

test('§4.1-4.2: add a learner, promote it, remove the leader; the cluster keeps committing', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], joiners: ['n4'] });
  c.elect('n1');
  c.propose('n1', 'a');

  const add = c.raft('n1').proposeConfChange({ type: 'add-learner', nodeId: 'n4' });
  assert.equal(add.ok, true);
  // Effective on append, before commit.
  assert.deepEqual(c.raft('n1').status().conf, { voters: ['n1', 'n2', 'n3'], learners: ['n4'] });
  c.run(3);
  assert.deepEqual(c.node('n4').applied, ['a'], 'the joiner caught up from an empty log');
  assert.deepEqual(c.raft('n4').status().conf, { voters: ['n1', 'n2', 'n3'], learners: ['n4'] });

  assert.equal(c.raft('n1').proposeConfChange({ type: 'promote', nodeId: 'n4' }).ok, true);
  c.run(3);
  for (const id of ['n1', 'n2', 'n3', 'n4']) assert.deepEqual(c.raft(id).status().conf.voters, ['n1', 'n2', 'n3', 'n4'], id);
  // The joiner learned the bootstrap configuration durably (index-0 snapshot): a restart keeps it.
  assert.deepEqual(c.node('n4').storage.snapshot.meta.conf, { voters: ['n1', 'n2', 'n3'], learners: [] });
  c.crash('n4');
  c.restart('n4');
  assert.deepEqual(c.raft('n4').status().conf.voters, ['n1', 'n2', 'n3', 'n4']);

  const remove = c.raft('n1').proposeConfChange({ type: 'remove', nodeId: 'n1' });
  assert.equal(remove.ok, true);
  c.stabilize();
  assert.equal(c.raft('n1').status().role, 'follower', 'the removed leader stepped down after the removal committed');
  c.run(40, ['n2', 'n3', 'n4']);
  const leaders = c.leaders();
  assert.equal(leaders.length, 1);
  assert.notEqual(leaders[0], 'n1');
  assert.equal(c.raft(leaders[0]!).propose('b').ok, true);
  c.run(3, ['n2', 'n3', 'n4']);
  for (const id of ['n2', 'n3', 'n4']) assert.deepEqual(c.node(id).applied, ['a', 'b'], id);
  // The removed node never campaigns.
  c.run(100, ['n1']);
  assert.equal(c.raft('n1').status().role, 'follower');
});

test('§4.1: only one uncommitted configuration change at a time', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], joiners: ['n4', 'n5'] });
  c.elect('n1');
  c.isolate('n2');
  c.isolate('n3');
  assert.equal(c.raft('n1').proposeConfChange({ type: 'add-learner', nodeId: 'n4' }).ok, true);
  const second = c.raft('n1').proposeConfChange({ type: 'add-learner', nodeId: 'n5' });
  assert.deepEqual(second, { ok: false, reason: 'conf-change-pending', leaderHint: 'n1' });
  c.heal();
  c.run(3);
  assert.equal(c.raft('n1').proposeConfChange({ type: 'add-learner', nodeId: 'n5' }).ok, true);
});

test('a new leader accepts no conf change before committing an entry of its own term', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'] });
  c.addFilter((m) => m.type === 'append-resp');
  c.elect('n1');
  assert.deepEqual(c.raft('n1').proposeConfChange({ type: 'add-learner', nodeId: 'n9' }), {
    ok: false,
    reason: 'conf-change-pending',
    leaderHint: 'n1',
  });
});

test('invalid conf changes are refused', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], learners: ['n4'] });
  c.elect('n1');
  c.run(2);
  const invalid = { ok: false, reason: 'invalid', leaderHint: 'n1' };
  assert.deepEqual(c.raft('n1').proposeConfChange({ type: 'promote', nodeId: 'n2' }), invalid);
  assert.deepEqual(c.raft('n1').proposeConfChange({ type: 'remove', nodeId: 'n9' }), invalid);
  assert.deepEqual(c.raft('n1').proposeConfChange({ type: 'add-learner', nodeId: 'n2' }), invalid);
  assert.deepEqual(c.raft('n1').proposeConfChange({ type: 'add-learner', nodeId: 'n4' }), invalid);
  assert.deepEqual(c.raft('n2').proposeConfChange({ type: 'add-learner', nodeId: 'n7' }), {
    ok: false,
    reason: 'not-leader',
    leaderHint: 'n1',
  });
});

test('§4.1: a conf entry truncated from a follower log reverts its configuration', () => {
  const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
  const c = new TestCluster({ voters: ids, checkQuorum: false });
  c.elect('n1');
  c.run(2);
  // Only n3 receives the add-learner entry; then n2 is elected by n4 and n5 without it.
  c.partition(['n1', 'n3'], ['n2', 'n4', 'n5']);
  assert.equal(c.raft('n1').proposeConfChange({ type: 'add-learner', nodeId: 'n9' }).ok, true);
  c.stabilize();
  assert.deepEqual(c.raft('n3').status().conf.learners, ['n9']);
  c.elect('n2');
  c.isolate('n1');
  c.cutLink('n2', 'n3');
  c.heal();
  c.isolate('n1');
  c.run(3, ['n2', 'n3', 'n4', 'n5']);
  assert.deepEqual(c.raft('n3').status().conf.learners, [], 'the uncommitted configuration was truncated away');
  assert.deepEqual(c.logTerms('n3'), c.logTerms('n2'));
});

test('a joiner that later leads hands the next joiner the real bootstrap configuration (sim seed 607)', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], joiners: ['n4', 'n5'] });
  c.elect('n1');
  c.raft('n1').proposeConfChange({ type: 'add-learner', nodeId: 'n4' });
  c.run(3);
  c.raft('n1').proposeConfChange({ type: 'promote', nodeId: 'n4' });
  c.run(3);
  // n4 restarts (its storage now holds the bootstrap configuration), then takes over.
  c.crash('n4');
  c.restart('n4');
  c.run(2);
  assert.deepEqual(c.raft('n1').transferLeadership('n4'), { ok: true });
  c.run(3);
  assert.deepEqual(c.leaders(), ['n4']);
  c.raft('n4').proposeConfChange({ type: 'add-learner', nodeId: 'n5' });
  c.run(5);
  assert.deepEqual(c.raft('n5').status().conf, { voters: ['n1', 'n2', 'n3', 'n4'], learners: ['n5'] });
  const boot = c.sent.find((m) => m.type === 'snapshot' && m.to === 'n5');
  assert.ok(boot !== undefined && boot.type === 'snapshot');
  assert.deepEqual(boot.meta.conf, { voters: ['n1', 'n2', 'n3'], learners: [] });
});
