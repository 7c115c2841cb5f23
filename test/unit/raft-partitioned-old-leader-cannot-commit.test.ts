/**
 * Raft §5.4 and §8: a leader cut off in a minority partition keeps accepting proposals but can
 * never commit them; the majority elects a new leader whose entries win, and the old leader's
 * uncommitted entries are discarded when the partition heals.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from '../sim/cluster.js';

test('a leader in a minority partition cannot commit; its entries are replaced after healing', () => {
  const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
  // Check-quorum off: the old leader keeps believing it leads, which is the hard case.
  const c = new TestCluster({ voters: ids, checkQuorum: false, jitter: { n3: 0 } });
  c.elect('n1');
  c.propose('n1', 'before');
  c.run(2);
  c.partition(['n1', 'n2'], ['n3', 'n4', 'n5']);
  const commitBefore = c.raft('n1').status().commit;
  const lost = c.raft('n1').propose('lost');
  assert.equal(lost.ok, true);
  c.run(30, ['n1', 'n2']);
  assert.equal(c.raft('n1').status().role, 'leader');
  assert.equal(c.raft('n1').status().commit, commitBefore, 'the minority leader cannot commit');

  c.elect('n3');
  c.propose('n3', 'kept');
  c.run(2, ['n3', 'n4', 'n5']);
  assert.ok(c.node('n3').applied.includes('kept'));

  c.heal();
  c.run(5);
  assert.deepEqual(c.leaders(), ['n3']);
  for (const id of ids) {
    assert.deepEqual(c.node(id).applied, ['before', 'kept'], `${id} applied`);
    assert.deepEqual(c.logTerms(id), c.logTerms('n3'), `${id} log`);
  }
});
