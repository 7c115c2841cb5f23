/**
 * Raft paper, Figure 7: "When the leader at the top comes to power, it is possible that any of
 * scenarios (a–f) could occur in follower logs ... a follower may be missing entries (a–b), may
 * have extra uncommitted entries (c–d), or both (e–f)." §5.3: "the leader handles inconsistencies
 * by forcing the followers' logs to duplicate its own."
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster, logData } from '../sim/cluster.js';

const LEADER = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
const FOLLOWERS: Record<string, number[]> = {
  a: [1, 1, 1, 4, 4, 5, 5, 6, 6],
  b: [1, 1, 1, 4],
  c: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
  d: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
  e: [1, 1, 1, 4, 4, 4, 4],
  f: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
};

for (const [name, followerLog] of Object.entries(FOLLOWERS)) {
  test(`Figure 7 (${name}): the term-8 leader makes the follower's log identical to its own`, () => {
    // n1 is the leader-to-be, n3 holds the same log and gives it the second vote, n2 is the case.
    const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], checkQuorum: false });
    c.setLog('n1', LEADER, { term: 7 });
    c.setLog('n3', LEADER, { term: 7 });
    c.setLog('n2', followerLog, { term: Math.max(...followerLog) });
    c.elect('n1');
    assert.equal(c.raft('n1').status().term, 8);
    c.run(3);
    const expected = [...LEADER, 8];
    assert.deepEqual(c.logTerms('n2'), expected);
    assert.deepEqual(c.logTerms('n1'), expected);
    for (let i = 1; i <= LEADER.length; i++) assert.equal(c.raft('n2').entryAt(i)?.data, logData(i, LEADER[i - 1]!));
    // The durable logs agree too, and everything up to the term-8 no-op is committed.
    assert.deepEqual(c.node('n2').storage.entries.map((e) => e.term), expected);
    assert.equal(c.raft('n2').status().commit, 11);
  });
}
