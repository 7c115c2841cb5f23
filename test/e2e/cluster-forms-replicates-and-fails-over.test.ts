import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestCluster, assertJoinStages, type ClusterMember } from './cluster-harness.js';
import { runCli } from './harness.js';

describe('a three-node cluster', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await TestCluster.create(3);
  });
  after(async () => {
    await cluster.stop();
  });

  it('forms from one seed and two joins: one leader, two healthy followers, tolerates one failure', async () => {
    const status = await cluster.status();
    assert.ok(status !== null);
    assert.equal(status.voters, 3);
    assert.equal(status.healthy_voters, 3);
    assert.equal(status.tolerates, 1);
    assert.deepEqual(status.peers.map((p) => p.role).sort(), ['follower', 'follower', 'leader']);
    assert.ok(status.peers.every((p) => p.status === 'healthy'));
    for (const member of cluster.members) {
      const ready = await member.node.api('GET', '/ready');
      const checks = (ready.json as { checks: { name: string; ok: boolean }[] }).checks;
      assert.equal(ready.status, 200, JSON.stringify(checks));
      assert.ok(checks.some((c) => c.name === 'cluster' && c.ok));
      assert.ok(checks.some((c) => c.name === 'policy_replication' && c.ok));
    }
    for (const member of cluster.members.slice(1)) await assertJoinStages(member);
  });

  it('a write through a follower is proxied to the leader and readable on every node', async () => {
    const status = await cluster.status();
    const follower = cluster.members.find((m) => m.node.nodeId !== status?.leader_id) as ClusterMember;
    const put = await cluster.api(follower, 'PUT', '/api/v1/keyval/shared/via-follower', { value: 'hello' });
    assert.equal(put.status, 200);
    assert.equal(put.headers['x-neuwerk-served-by'], status?.leader_id, 'the leader served it');
    for (const member of cluster.members) {
      const linearizable = await cluster.api(member, 'GET', '/api/v1/keyval/shared/via-follower');
      assert.equal(linearizable.status, 200);
      assert.equal((linearizable.json as { value: string }).value, 'hello');
    }
    // A stale read is served locally; it converges quickly.
    const deadline = Date.now() + 5000;
    for (const member of cluster.members) {
      let value: string | null = null;
      while (value !== 'hello' && Date.now() < deadline) {
        const stale = await cluster.api(member, 'GET', '/api/v1/keyval/shared/via-follower?stale=true');
        value = stale.status === 200 ? (stale.json as { value: string }).value : null;
        assert.equal(stale.headers['x-neuwerk-served-by'], member.node.nodeId);
      }
      assert.equal(value, 'hello');
    }
  });

  it('kill -9 of the leader under steady writes: a new leader takes over and every acknowledged write survives', async () => {
    const before = await cluster.status();
    assert.ok(before !== null && before.leader_id !== null);
    const oldLeader = cluster.leader(before);
    const acknowledged = new Map<string, string>();
    let running = true;
    let sequence = 0;
    const writer = async (worker: number): Promise<void> => {
      while (running) {
        const targets = cluster.alive();
        const target = targets[(sequence + worker) % targets.length] as ClusterMember;
        const key = `w${worker}-${(sequence += 1)}`;
        try {
          const put = await cluster.api(target, 'PUT', `/api/v1/keyval/load/${key}`, { value: key });
          if (put.status === 200) acknowledged.set(key, key);
        } catch {
          // connection refused from the killed node: not acknowledged
        }
      }
    };
    const writers = [0, 1, 2].map((w) => writer(w));
    await new Promise((r) => setTimeout(r, 1000));
    const ackedBeforeKill = acknowledged.size;
    await oldLeader.node.stop('SIGKILL');
    await cluster.waitFor((s) => s.leader_id !== null && s.leader_id !== before.leader_id, 'a new leader', 15_000);
    const afterElection = acknowledged.size;
    await new Promise((r) => setTimeout(r, 1500));
    running = false;
    await Promise.all(writers);
    assert.ok(ackedBeforeKill > 0, 'writes were acknowledged before the kill');
    assert.ok(acknowledged.size > afterElection, 'writes resumed after the new leader was elected');
    // The new leader never heard from the dead one: its match and lag are unknown, not the whole log.
    const dead = (await cluster.status())?.peers.find((p) => p.node_id === oldLeader.node.nodeId) as unknown as { status: string; match_index: number | null; lag: number | null };
    assert.deepEqual([dead.status, dead.match_index, dead.lag], ['unreachable', null, null]);

    await cluster.restart(oldLeader);
    await cluster.waitFor((s) => s.peers.filter((p) => p.status === 'healthy').length === 3, 'the old leader back and healthy');
    for (const member of cluster.members) {
      const deadline = Date.now() + 10_000;
      for (const key of acknowledged.keys()) {
        let found = false;
        while (!found && Date.now() < deadline) {
          const get = await cluster.api(member, 'GET', `/api/v1/keyval/load/${key}?stale=true`);
          found = get.status === 200 && (get.json as { value: string }).value === key;
          if (!found) await new Promise((r) => setTimeout(r, 100));
        }
        assert.ok(found, `acknowledged write ${key} is present on ${member.node.nodeId}`);
      }
    }
  });

  it('quorum loss: with two of three stopped, writes answer 503 within the bound; after restart they succeed', async () => {
    const status = await cluster.status();
    assert.ok(status !== null);
    const survivor = cluster.leader(status);
    const others = cluster.members.filter((m) => m !== survivor);
    for (const member of others) await member.node.stop('SIGKILL');
    const started = Date.now();
    const put = await cluster.api(survivor, 'PUT', '/api/v1/keyval/quorum/k', { value: 'v' });
    const elapsed = Date.now() - started;
    assert.equal(put.status, 503, JSON.stringify(put.json));
    assert.ok(elapsed < 7_000, `answered in ${elapsed} ms`);
    const ready = await survivor.node.api('GET', '/ready');
    assert.equal(ready.status, 503, 'the survivor is not ready without a quorum');
    // Once the survivor knows no leader, a request for the leader answers 503 within 2 s (DESIGN §6).
    const noLeaderBy = Date.now() + 10_000;
    while (((await cluster.api(survivor, 'GET', '/api/v1/cluster/status?local=true')).json as { leader_id: string | null }).leader_id !== null) {
      assert.ok(Date.now() < noLeaderBy, 'the survivor stepped down');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const readStarted = Date.now();
    const read = await cluster.api(survivor, 'GET', '/api/v1/keyval/quorum/k');
    const readElapsed = Date.now() - readStarted;
    assert.equal(read.status, 503, JSON.stringify(read.json));
    assert.equal((read.json as { error: string }).error, 'no cluster leader');
    assert.equal(read.headers['retry-after'], '1', 'a client is told to retry (an election takes about a second)');
    assert.ok(readElapsed < 2_000, `answered in ${readElapsed} ms`);
    const cliTarget = ['--http-addr', `127.0.0.1:${survivor.httpPort}`, '--ca', join(survivor.dataDir, 'http-tls', 'ca.crt')];
    const noLeader = await runCli(['status', ...cliTarget], { env: { NEUWERK_TOKEN: await cluster.token() } });
    assert.equal(noLeader.code, 1);
    assert.match(noLeader.stderr, /no cluster leader[\s\S]*neuwerk status --local/);
    const local = await runCli(['status', '--local', ...cliTarget, '--json'], { env: { NEUWERK_TOKEN: await cluster.token() } });
    assert.equal(local.code, 0, local.stderr);
    const localView = JSON.parse(local.stdout) as { leader_id: string | null; policy_versions: Record<string, number | null> };
    assert.equal(localView.leader_id, null);
    assert.ok((localView.policy_versions[survivor.node.nodeId] ?? 0) > 0, `its own policy version: ${JSON.stringify(localView.policy_versions)}`);
    for (const member of others) await cluster.restart(member);
    await cluster.waitFor((s) => s.leader_id !== null && s.healthy_voters === 3, 'quorum restored');
    let ok = false;
    const deadline = Date.now() + 10_000;
    while (!ok && Date.now() < deadline) {
      const retry = await cluster.api(survivor, 'PUT', '/api/v1/keyval/quorum/k', { value: 'v' });
      ok = retry.status === 200;
    }
    assert.ok(ok, 'writes succeed again');
  });
});
