/**
 * Fast log back-off (Raft §5.3: "the follower can include the term of the conflicting entry and
 * the first index it stores for that term ... one AppendEntries RPC will be required for each term
 * with conflicting entries, rather than one RPC per entry"; etcd's findConflictByTerm).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from '../sim/cluster.js';
import type { AppendResponseMessage } from '../../src/raft/index.js';

function rejections(c: TestCluster, from: string): AppendResponseMessage[] {
  return c.sent.filter((m): m is AppendResponseMessage => m.type === 'append-resp' && m.from === from && m.reject);
}

test('§5.3: a follower with a long divergent tail is repaired in a few round trips, not one per entry', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], checkQuorum: false });
  const common = [1, 1];
  c.setLog('n1', [...common, ...Array<number>(100).fill(3)], { term: 3 });
  c.setLog('n2', [...common, ...Array<number>(100).fill(3)], { term: 3 });
  c.setLog('n3', [...common, ...Array<number>(150).fill(2)], { term: 2 });
  c.elect('n1');
  c.run(2);
  assert.deepEqual(c.logTerms('n3'), c.logTerms('n1'));
  const rej = rejections(c, 'n3');
  assert.ok(rej.length <= 2, `${rej.length} rejections`);
  // The hint names the last index whose term is <= the leader's prevLogTerm.
  assert.ok(rej.every((m) => m.logTerm <= 3 && m.rejectHint <= m.index));
});

test('§5.3: a follower missing many entries is caught up with one probe', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'] });
  c.elect('n1');
  c.isolate('n3');
  for (let i = 0; i < 50; i++) c.raft('n1').propose(`v${i}`);
  c.stabilize();
  c.heal();
  const before = c.sent.length;
  c.run(2);
  const rej = c.sent.slice(before).filter((m) => m.type === 'append-resp' && m.from === 'n3' && m.reject);
  assert.ok(rej.length <= 1, `${rej.length} rejections`);
  assert.equal(c.node('n3').applied.length, 50);
});

test('§5.3: the leader skips back a whole term at once using the conflict term', () => {
  // n3 has terms 2,2,2,...; the leader has 1,1,3,3,... : one rejection points at index 2 (term 1 <= 3? no:
  // the follower's hint is the last index with term <= the leader's prevLogTerm).
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], checkQuorum: false });
  c.setLog('n1', [1, 1, 4, 4, 4, 4, 4, 4, 4, 4], { term: 4 });
  c.setLog('n2', [1, 1, 4, 4, 4, 4, 4, 4, 4, 4], { term: 4 });
  c.setLog('n3', [1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3], { term: 3 });
  c.elect('n1');
  c.run(2);
  assert.deepEqual(c.logTerms('n3'), c.logTerms('n1'));
  assert.ok(rejections(c, 'n3').length <= 2);
});
