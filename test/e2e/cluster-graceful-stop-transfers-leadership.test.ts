import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TestCluster, type ClusterMember } from './cluster-harness.js';

/** The upper end of the randomized election timeout with the default timing (10 ticks of 50 ms, doubled). */
const ELECTION_TIMEOUT_MAX_MS = 1_000;

describe('graceful stop of the leader', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await TestCluster.create(3);
  });
  after(async () => {
    await cluster.stop();
  });

  it('SIGTERM on the leader hands over leadership first: writes continue with at most one election timeout of disruption', async () => {
    const status = await cluster.status();
    assert.ok(status !== null);
    const leader = cluster.leader(status);
    const writerTarget = cluster.members.find((m) => m !== leader) as ClusterMember;
    const successes: number[] = [];
    let running = true;
    const writer = async (): Promise<void> => {
      let n = 0;
      while (running) {
        try {
          const put = await cluster.api(writerTarget, 'PUT', `/api/v1/keyval/graceful/k${(n += 1)}`, { value: 'v' });
          if (put.status === 200) successes.push(Date.now());
        } catch {
          // counted as a gap
        }
      }
    };
    const writing = writer();
    await new Promise((r) => setTimeout(r, 1000));
    const stopped = await leader.node.stop('SIGTERM');
    await new Promise((r) => setTimeout(r, 1500));
    running = false;
    await writing;
    assert.equal(stopped.code, 0, leader.node.stderr);
    assert.ok(stopped.elapsedMs < 10_000);
    assert.ok(leader.node.logLines().some((l) => l.msg === 'transferring leadership before stopping'), 'the leader transferred leadership');
    let longestGapMs = 0;
    for (let i = 1; i < successes.length; i += 1) longestGapMs = Math.max(longestGapMs, (successes[i] as number) - (successes[i - 1] as number));
    assert.ok(successes.length > 20, `writes kept succeeding (${successes.length})`);
    assert.ok(longestGapMs <= ELECTION_TIMEOUT_MAX_MS, `longest gap between successful writes was ${longestGapMs} ms`);
    const after = await cluster.status();
    assert.ok(after !== null && after.leader_id !== null && after.leader_id !== leader.node.nodeId);
    await cluster.restart(leader);
  });
});
