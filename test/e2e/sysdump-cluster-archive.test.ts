import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestCluster, type ClusterMember } from './cluster-harness.js';
import { runCli } from './harness.js';
import { assertNoSecrets, jwtSecret, pemSecret, tokenSecret, unpackArchive, type Secret } from './archive-helpers.js';

/** A cluster sysdump run: the per-node timeout (20 s) plus assembly. */
const CLUSTER_SYSDUMP_RUN_TIMEOUT_MS = 50_000;

interface ClusterManifest {
  partial: boolean;
  nodes_queried: string[];
  nodes_responded: string[];
  node_errors: { node_id: string; error: string }[];
  generated_at: string;
}

interface ClusterSummary {
  leader: string | null;
  term: number | null;
  members: { node_id: string; applied_index: number | null; lag: number | null; ready: boolean | null; error: string | null }[];
}


describe('neuwerk sysdump cluster: every member under nodes/<id>/, a summary, partial when a member is down, no secrets', () => {
  let cluster: TestCluster;
  let token = '';
  let follower: ClusterMember;

  const runSysdump = async (via: ClusterMember, output: string): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    runCli(['sysdump', 'cluster', '--http-addr', `127.0.0.1:${via.httpPort}`, '--data-dir', via.dataDir, '--token', token, '--output', output], { timeoutMs: CLUSTER_SYSDUMP_RUN_TIMEOUT_MS });

  before(async () => {
    cluster = await TestCluster.create(3);
    token = await cluster.token();
    const status = await cluster.status();
    assert.ok(status !== null);
    follower = cluster.members.find((m) => m.node.nodeId !== status.leader_id) as ClusterMember;
  });
  after(async () => {
    await cluster.stop();
  });

  it('the HTTPS node endpoint refuses non-members (no token, and even an admin token): 403', async () => {
    const member = cluster.members[0] as ClusterMember;
    for (const bearer of [null, token]) {
      const answer = await cluster.api(member, 'POST', '/api/v1/support/sysdump/node', {}, bearer);
      assert.equal(answer.status, 403);
      assert.match((answer.json as { error: string }).error, /served to cluster members over the cluster port/);
    }
  });

  it('a cluster sysdump asked of a follower holds all three nodes, the summary, mode 0600, and none of the planted secrets', async () => {
    const output = join(cluster.dir.path, 'out', 'cluster.tar.gz');
    const result = await runSysdump(follower, output);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), output);
    assert.match(result.stderr, /sysdump cluster: wrote \d+ bytes/);
    assert.equal(statSync(output).mode & 0o777, 0o600);
    const files = await unpackArchive(output, join(cluster.dir.path, 'full'));
    const manifest = JSON.parse((files.get('manifest.json') as Buffer).toString()) as ClusterManifest;
    const ids = cluster.members.map((m) => m.node.nodeId).sort();
    assert.equal(manifest.partial, false, JSON.stringify(manifest.node_errors));
    assert.deepEqual(manifest.nodes_queried, ids);
    assert.deepEqual([...manifest.nodes_responded].sort(), ids);
    assert.deepEqual(manifest.node_errors, []);
    for (const id of ids) {
      for (const path of ['manifest.json', 'summary/state.json', 'summary/cluster.json', 'summary/readiness.json', 'summary/metrics.txt']) {
        assert.ok(files.has(`nodes/${id}/${path}`), `nodes/${id}/${path}`);
      }
      assert.equal((JSON.parse((files.get(`nodes/${id}/manifest.json`) as Buffer).toString()) as { node_id: string }).node_id, id);
    }
    const summary = JSON.parse((files.get('cluster/summary.json') as Buffer).toString()) as ClusterSummary;
    assert.deepEqual(summary.members.map((m) => m.node_id), ids);
    assert.ok(summary.leader !== null && ids.includes(summary.leader));
    assert.ok((summary.term ?? 0) >= 1);
    for (const member of summary.members) {
      assert.equal(typeof member.applied_index, 'number', `applied index of ${member.node_id}`);
      assert.equal(typeof member.lag, 'number', `lag of ${member.node_id}`);
      assert.equal(member.ready, true, `readiness of ${member.node_id}`);
    }

    const tokenFile = JSON.parse(readFileSync(cluster.tokenFile, 'utf8')) as { tokens: { token: string }[] };
    const bootstrapToken = (tokenFile.tokens[0] as { token: string }).token;
    const secrets: Secret[] = [tokenSecret('bootstrap token', bootstrapToken), jwtSecret('admin JWT', token)];
    for (const member of cluster.members) {
      secrets.push(pemSecret(`${member.node.nodeId} cluster/tls/node.key`, readFileSync(join(member.dataDir, 'cluster', 'tls', 'node.key'), 'utf8')));
      secrets.push(pemSecret(`${member.node.nodeId} http-tls/server.key`, readFileSync(join(member.dataDir, 'http-tls', 'server.key'), 'utf8')));
    }
    assertNoSecrets(files, secrets);
  });

  it('with one member killed: partial, node_errors names it, the other two are still delivered', async () => {
    const status = await cluster.status();
    assert.ok(status !== null);
    const victim = cluster.members.find((m) => m.node.nodeId !== status.leader_id && m !== follower) as ClusterMember;
    await victim.node.stop('SIGKILL');
    const output = join(cluster.dir.path, 'partial.tar.gz');
    const result = await runSysdump(follower, output);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /partial/);
    assert.equal(statSync(output).mode & 0o777, 0o600);
    const files = await unpackArchive(output, join(cluster.dir.path, 'partial'));
    const manifest = JSON.parse((files.get('manifest.json') as Buffer).toString()) as ClusterManifest;
    assert.equal(manifest.partial, true);
    assert.equal(manifest.nodes_queried.length, 3);
    assert.deepEqual(manifest.node_errors.map((e) => e.node_id), [victim.node.nodeId]);
    assert.ok((manifest.node_errors[0] as { error: string }).error.length > 0);
    for (const member of cluster.members) {
      const present = files.has(`nodes/${member.node.nodeId}/manifest.json`);
      assert.equal(present, member !== victim, `nodes/${member.node.nodeId}/ present: ${present}`);
    }
    const summary = JSON.parse((files.get('cluster/summary.json') as Buffer).toString()) as ClusterSummary;
    assert.ok(summary.members.find((m) => m.node_id === victim.node.nodeId)?.error);
  });
});
