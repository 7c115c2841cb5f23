import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TestCluster, type ClusterMember } from './cluster-harness.js';
import { runCli } from './harness.js';

const KEYS = 30;

describe('cluster recover --force-new-cluster: a member whose peers are lost for good becomes a cluster of one', () => {
  let cluster: TestCluster;
  let survivor: ClusterMember;
  let lost: ClusterMember[];

  before(async () => {
    cluster = await TestCluster.create(3);
    const status = await cluster.status();
    assert.ok(status !== null);
    // Recover from a follower: its commit index may trail the leader's, and nothing may be lost for it.
    survivor = cluster.members.find((m) => m.node.nodeId !== status.leader_id) as ClusterMember;
    lost = cluster.members.filter((m) => m !== survivor);
    for (let i = 0; i < KEYS; i++) assert.equal((await cluster.api(survivor, 'PUT', `/api/v1/keyval/kept/k${i}`, { value: `v${i}` })).status, 200);
  });
  after(async () => {
    await cluster?.stop();
  });

  it('refuses without --force-new-cluster (usage) and while the node runs, naming its process', async () => {
    const unconfirmed = await runCli(['cluster', 'recover', '--data-dir', survivor.dataDir]);
    assert.equal(unconfirmed.code, 2, unconfirmed.stderr);
    assert.match(unconfirmed.stderr, /confirm with --force-new-cluster/);
    const running = await runCli(['cluster', 'recover', '--force-new-cluster', '--data-dir', survivor.dataDir]);
    assert.equal(running.code, 1, running.stderr);
    assert.match(running.stderr, new RegExp(`is open in process ${survivor.node.pid}: the node must be stopped first`));
    // A dry run only reads, so it works on a running node (comparing survivors).
    const dry = await runCli(['cluster', 'recover', '--dry-run', '--data-dir', survivor.dataDir]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`^node ${survivor.node.nodeId}: last log entry term \\d+ index \\d+, commit index \\d+; recovery would remove .*\\. Nothing was changed\\.$`, 'm'));
  });

  it('after the other two are lost, the survivor recovered from its own store leads alone with every acknowledged write', async () => {
    for (const member of lost) await member.node.stop('SIGKILL');
    await survivor.node.stop('SIGKILL');
    const dry = await runCli(['cluster', 'recover', '--dry-run', '--data-dir', survivor.dataDir, '--json']);
    assert.equal(dry.code, 0, dry.stderr);
    const planned = JSON.parse(dry.stdout) as { keptThroughIndex: number; dryRun: boolean };
    assert.equal(planned.dryRun, true);
    const recovered = await runCli(['cluster', 'recover', '--force-new-cluster', '--data-dir', survivor.dataDir, '--json']);
    assert.equal(recovered.code, 0, recovered.stderr);
    const report = JSON.parse(recovered.stdout) as { nodeId: string; removed: string[]; keptThroughIndex: number; previousCommitIndex: number };
    assert.equal(report.nodeId, survivor.node.nodeId);
    assert.deepEqual([...report.removed].sort(), lost.map((m) => m.node.nodeId).sort());
    assert.ok(report.keptThroughIndex >= report.previousCommitIndex);
    assert.equal(report.keptThroughIndex, planned.keptThroughIndex, 'the dry run named what was kept');

    await cluster.restart(survivor);
    await cluster.waitFor((s) => s.leader_id === survivor.node.nodeId && s.voters === 1, 'the survivor leads alone');
    const status = await cluster.status();
    assert.deepEqual([status?.voters, status?.healthy_voters, status?.peers.map((p) => p.node_id)], [1, 1, [survivor.node.nodeId]]);
    for (let i = 0; i < KEYS; i++) {
      const answer = await cluster.api(survivor, 'GET', `/api/v1/keyval/kept/k${i}`);
      assert.equal(answer.status, 200, `k${i}: ${JSON.stringify(answer.json)}`);
      assert.equal((answer.json as { value: string }).value, `v${i}`);
    }
    assert.equal((await cluster.api(survivor, 'PUT', '/api/v1/keyval/kept/after', { value: 'x' })).status, 200);
  });

  it('a new member joins the recovered cluster, and a lost member that comes back with its old identity is refused', async () => {
    const joined = await cluster.add(survivor);
    await cluster.waitFor((s) => s.voters === 2 && s.healthy_voters === 2, 'two healthy voters');
    assert.equal((await cluster.api(joined, 'GET', '/api/v1/keyval/kept/k0')).status, 200);
    const returning = lost[0] as ClusterMember;
    await cluster.restart(returning);
    await returning.node.waitForLog((line) => typeof line.msg === 'string' && /removed/.test(line.msg), 15_000);
    const ready = await returning.node.api('GET', '/ready');
    assert.equal(ready.status, 503);
    assert.match(JSON.stringify(ready.json), /removed/);
    assert.equal((await cluster.status())?.voters, 2, 'it did not get back in');
  });
});
