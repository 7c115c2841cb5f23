/**
 * Raft thesis §10.2.1: "the leader can write to its disk in parallel with replicating to the
 * followers" — it sends AppendEntries for entries it has not yet persisted, and counts its own copy
 * toward a commit quorum only once it is durable. These scenarios hold the leader's persist back
 * (a slow disk, or a crash before the write) and check what may and may not commit meanwhile.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from '../sim/cluster.js';

/** Holds back `leader`'s persist, proposes `data` and processes one Ready (its early messages go out); returns the entry's index. */
function proposeWithPersistHeld(c: TestCluster, leader: string, data: string): number {
  c.holdPersist.add(leader);
  const r = c.raft(leader).propose(data);
  assert.ok(r.ok, `the proposal was refused: ${r.ok ? '' : r.reason}`);
  c.processReady(leader);
  return r.index;
}

test('with one of three voters down, a follower ack alone does not commit while the leader has not persisted', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'] });
  c.elect('n1');
  c.propose('n1', 'before');
  c.run(2);
  c.crash('n3');
  const index = proposeWithPersistHeld(c, 'n1', 'x');
  // The append went out before the leader's persist: n2 stores and acknowledges it.
  assert.ok(c.queue.some((m) => m.type === 'append' && m.to === 'n2' && m.entries.some((e) => e.index === index)));
  c.deliver();
  const st = c.raft('n1').status();
  assert.equal(st.progress?.['n2']?.match, index, 'n2 acknowledged the entry');
  assert.ok((st.progress?.['n1']?.match ?? 0) < index, 'the leader does not count its unpersisted copy');
  assert.ok(c.node('n1').storage.lastIndex() < index, 'the leader has not persisted it');
  assert.ok(st.commit < index, `one durable copy of three is no quorum (commit ${st.commit})`);
  assert.ok(!c.node('n1').applied.includes('x') && !c.node('n2').applied.includes('x'));

  c.releasePersist('n1');
  c.stabilize();
  assert.equal(c.raft('n1').status().commit, index, 'durable on the leader and n2: committed');
  assert.deepEqual(c.node('n1').applied, ['before', 'x']);
  assert.deepEqual(c.node('n2').applied, ['before', 'x']);
});

test('with every voter up, two follower acks commit before the leader has persisted its own copy', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'] });
  c.elect('n1');
  const index = proposeWithPersistHeld(c, 'n1', 'x');
  c.deliver();
  assert.equal(c.raft('n1').status().commit, index, 'two of three voters hold it durably: committed');
  assert.ok(c.node('n1').storage.lastIndex() < index, 'while the leader has not persisted it');
  // Nothing is applied before the leader's own copy is durable: the host persists, then applies.
  assert.ok(!c.node('n1').applied.includes('x'));
  c.releasePersist('n1');
  c.stabilize();
  for (const id of ['n1', 'n2', 'n3']) assert.deepEqual(c.node(id).applied, ['x'], `${id} applied`);
});

test('a sole voter commits on append but tells its learner nothing before the entry is durable', () => {
  const c = new TestCluster({ voters: ['n1'], learners: ['n2'] });
  c.elect('n1');
  c.propose('n1', 'before');
  c.run(2);
  const index = proposeWithPersistHeld(c, 'n1', 'x');
  assert.equal(c.raft('n1').status().commit, index, 'no other voter: committed on append');
  const held = c.node('n1').held;
  assert.ok(held !== null);
  assert.deepEqual(held.earlyMessages, [], 'the commit counts an unpersisted copy: nothing leaves early');
  assert.ok(held.messages.some((m) => m.type === 'append' && m.to === 'n2'));
  assert.equal(c.queue.length, 0);
  c.releasePersist('n1');
  c.stabilize();
  assert.deepEqual(c.node('n1').applied, ['before', 'x']);
  assert.deepEqual(c.node('n2').applied, ['before', 'x']);
});

test('a leader that crashes after replicating but before persisting loses only an uncommitted entry', () => {
  const ids = ['n1', 'n2', 'n3'];
  const c = new TestCluster({ voters: ids, jitter: { n3: 0 } });
  c.elect('n1');
  c.propose('n1', 'before');
  c.run(2);
  c.crash('n3');
  const index = proposeWithPersistHeld(c, 'n1', 'x');
  c.deliver();
  assert.ok(c.raft('n1').status().commit < index);
  assert.equal(c.node('n2').storage.lastIndex(), index, 'n2 holds the entry durably');
  c.crash('n1');
  assert.ok(c.node('n1').storage.lastIndex() < index, 'the crash lost the leader copy');
  c.restart('n1');
  c.restart('n3');
  // n3 and the restarted n1 both lack the entry: n3 can win with n1's vote and drop it, which is
  // safe because it never committed.
  c.elect('n3');
  c.propose('n3', 'after');
  c.run(5);
  for (const id of ids) {
    assert.deepEqual(c.node(id).applied, ['before', 'after'], `${id} applied`);
    assert.deepEqual(c.logTerms(id), c.logTerms('n3'), `${id} log`);
  }
});

test('a leader whose Ready changes its term or vote sends nothing before persisting it', () => {
  // A single voter elects itself inside one Ready (term and vote change) and at once replicates
  // to its learner: that append must wait for the new term to be durable, or a crash could let
  // the node lead the same term twice with different entries.
  const c = new TestCluster({ voters: ['n1'], learners: ['n2'] });
  c.holdPersist.add('n1');
  for (let i = 0; i < 40 && c.raft('n1').status().role !== 'leader'; i++) {
    c.raft('n1').tick();
    c.processReady('n1');
  }
  assert.equal(c.raft('n1').status().role, 'leader');
  const held = c.node('n1').held;
  assert.ok(held !== null && held.hardState !== undefined && held.hardState.vote === 'n1');
  assert.deepEqual(held.earlyMessages, []);
  assert.ok(held.messages.some((m) => m.type === 'append' && m.to === 'n2'), 'the append waits in messages');
  assert.equal(c.queue.length, 0);
  c.releasePersist('n1');
  c.stabilize();
  assert.equal(c.raft('n2').status().leader, 'n1');
});
