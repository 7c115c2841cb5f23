import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TestCluster, type ClusterMember } from './cluster-harness.js';

/** The seed's files may not grow past this (a stand-in for a full disk; see `NodeProcess.start`). */
const FILE_SIZE_LIMIT_BYTES = 3 * 1024 * 1024;
const VALUE = 'v'.repeat(60 * 1024);

describe('cluster: a member whose store cannot be written steps out, and the others go on', () => {
  let cluster: TestCluster;
  let seed: ClusterMember;
  let survivors: ClusterMember[];
  const acknowledged: string[] = [];

  before(async () => {
    cluster = await TestCluster.create(3, [], { seedFileSizeLimitBytes: FILE_SIZE_LIMIT_BYTES });
    seed = cluster.members[0] as ClusterMember;
    survivors = cluster.members.slice(1);
  });
  after(async () => {
    await cluster?.stop();
  });

  it('writes fill the seed\'s store until it stops replicating; it stays up and not ready, saying why', async () => {
    const storeCheck = async (): Promise<{ ok: boolean; detail: string | null } | undefined> =>
      ((await seed.node.api('GET', '/ready')).json as { checks: { name: string; ok: boolean; detail: string | null }[] }).checks.find((c) => c.name === 'store');
    // Every member persists every entry, so the seed fails whatever its role. Writes go through a
    // survivor; one may fail while the seed was the leader and another is being elected.
    for (let i = 0; i < 400 && (await storeCheck())?.ok !== false; i++) {
      const answer = await cluster.api(survivors[i % 2] as ClusterMember, 'PUT', `/api/v1/keyval/bulk/k${i}`, { value: VALUE });
      if (answer.status === 200) acknowledged.push(`k${i}`);
    }
    const check = await storeCheck();
    assert.equal(check?.ok, false, 'the seed reached the limit');
    assert.match(check?.detail ?? '', /cannot be written: .*; this node stopped replicating and refuses writes until it is restarted with space to write$/);
    assert.equal(seed.node.child.exitCode, null, 'the seed process is still up');
    assert.equal((await seed.node.api('GET', '/health')).status, 200);
    // It claims no role it cannot play, and a request that needs the leader is told why at once.
    const own = (await cluster.api(seed, 'GET', '/api/v1/cluster/status?local=true')).json as { role: string; leader_id: string | null };
    assert.deepEqual([own.role, own.leader_id], ['follower', null]);
    const routed = await cluster.api(seed, 'GET', '/api/v1/cluster/members');
    assert.equal(routed.status, 503);
    assert.equal((routed.json as { code: string }).code, 'NW_ERR_STORE_UNAVAILABLE');
  });

  it('the survivors have (or elect) a leader other than the seed, accept writes and hold every acknowledged one', async () => {
    await cluster.waitFor((s) => s.leader_id !== null && s.leader_id !== seed.node.nodeId, 'a leader other than the seed', 15_000);
    const deadline = Date.now() + 10_000;
    let written = false;
    while (!written && Date.now() < deadline) written = (await cluster.api(survivors[0] as ClusterMember, 'PUT', '/api/v1/keyval/bulk/after', { value: 'x' })).status === 200;
    assert.ok(written, 'writes succeed through a survivor');
    assert.ok(acknowledged.length > 0);
    for (const key of acknowledged) {
      const answer = await cluster.api(survivors[1] as ClusterMember, 'GET', `/api/v1/keyval/bulk/${key}`);
      assert.equal(answer.status, 200, `${key}: ${JSON.stringify(answer.json)}`);
      assert.equal((answer.json as { value: string }).value.length, VALUE.length);
    }
  });
});
