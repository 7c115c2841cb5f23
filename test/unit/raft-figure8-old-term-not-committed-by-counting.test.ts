/**
 * Raft paper, Figure 8 and §5.4.2: "a leader cannot immediately conclude that an entry from a
 * previous term is committed once it is stored on a majority of servers ... Raft never commits log
 * entries from previous terms by counting replicas. Only log entries from the leader's current
 * term are committed by counting replicas; once an entry from the current term has been committed
 * in this way, then all prior entries are committed indirectly."
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from '../sim/cluster.js';
import type { Message } from '../../src/raft/index.js';

const IDS = ['s1', 's2', 's3', 's4', 's5'];

/** Figure 8 (b): S1 wrote index 2 in term 2 (also on S2); S5 wrote index 2 in term 3. */
function figure8(c: TestCluster): void {
  c.setLog('s1', [1, 2], { term: 3, commit: 1 });
  c.setLog('s2', [1, 2], { term: 3, commit: 1 });
  c.setLog('s3', [1], { term: 3, commit: 1 });
  c.setLog('s4', [1], { term: 3, commit: 1 });
  c.setLog('s5', [1, 3], { term: 3, commit: 1 });
}

test('Figure 8 (c)-(d): an old-term entry on a majority is not committed, and may be overwritten', () => {
  const c = new TestCluster({ voters: IDS, checkQuorum: false, maxBytesPerAppend: 1 });
  figure8(c);
  // (c) S1 is elected for term 4; only the term-2 entry reaches S2 and S3 (the term-4 no-op does not).
  c.addFilter((m: Message) => {
    if (m.type !== 'append' || m.from !== 's1' || !m.entries.some((e) => e.index >= 3)) return false;
    c.queue.push({ ...m, entries: m.entries.filter((e) => e.index < 3) });
    return true;
  });
  c.cutLink('s1', 's4');
  c.cutLink('s1', 's5');
  c.elect('s1');
  assert.equal(c.raft('s1').status().term, 4);
  c.stabilize();
  for (const id of ['s1', 's2', 's3']) assert.equal(c.raft(id).termAt(2), 2, `${id} holds index 2 from term 2`);
  assert.equal(c.raft('s1').status().progress?.['s3']?.match, 2);
  assert.equal(c.raft('s1').status().commit, 1, 'stored on a majority, but from an older term: not committed');
  assert.ok(c.node('s1').readies.every((rd) => rd.hardState === undefined || rd.hardState.commit < 2));

  // (d) S1 crashes; S5 (last term 3) wins term 5 with votes from S2, S3, S4 and overwrites index 2.
  c.crash('s1');
  c.heal();
  c.campaign('s5'); // its pre-vote for term 4 is refused by S2/S3 (already in term 4): it adopts term 4
  c.elect('s5');
  c.run(3, ['s2', 's3', 's4', 's5']);
  for (const id of ['s2', 's3', 's4', 's5']) assert.equal(c.raft(id).termAt(2), 3, `${id} index 2 is now S5's term-3 entry`);
  for (const id of ['s2', 's3', 's4', 's5']) assert.ok(c.raft(id).status().commit >= 3);
});

test('Figure 8 (e): once an entry of the current term is on a majority, the older entry commits with it', () => {
  const c = new TestCluster({ voters: IDS, checkQuorum: false });
  figure8(c);
  c.cutLink('s1', 's4');
  c.cutLink('s1', 's5');
  c.elect('s1');
  c.stabilize();
  const commits = c.node('s1').readies.flatMap((rd) => (rd.hardState === undefined ? [] : [rd.hardState.commit]));
  assert.deepEqual([...new Set(commits)], [1, 3], 'commit jumps from 1 to 3: index 2 commits only indirectly');
  // Now S5 can never win: a majority holds a term-4 entry.
  c.crash('s1');
  c.heal();
  c.run(60, ['s2', 's3', 's4', 's5']);
  const leader = c.leaders()[0];
  assert.ok(leader !== undefined && leader !== 's5', `leader is ${leader}`);
  for (const id of ['s2', 's3', 's4', 's5']) assert.equal(c.raft(id).termAt(2), 2);
});
