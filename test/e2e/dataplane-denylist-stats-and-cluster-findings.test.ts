import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateSelfSignedTls } from '../../src/api/tls.js';
import { startStubDns, type StubDns } from '../bench/dataplane-fixtures.js';
import { TestCluster, type ClusterMember } from './cluster-harness.js';
import { askUdp, rcode as rcodeOf } from './dns-client.js';
import { NodeProcess, runCli } from './harness.js';
import { assertMatchesPublishedSchema } from './openapi-check.js';

const NOERROR = 0;
const NXDOMAIN = 3;

async function rcode(address: string, name: string): Promise<number | null> {
  return rcodeOf(await askUdp(address, name));
}

/** Polls until the node answers `name` with `expected` (or 5 s pass); returns the last rcode. */
async function eventually(address: string, name: string, expected: number): Promise<number | null> {
  const deadline = Date.now() + 5000;
  let last: number | null = null;
  while (Date.now() < deadline) {
    last = await rcode(address, name);
    if (last === expected) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return last;
}

interface FindingJson {
  hostname: string | null;
  count: number;
  reason: string;
}
interface ClusterFindings {
  findings: FindingJson[];
  partial: boolean;
  node_errors: { node_id: string; error: string }[];
  nodes_queried: number;
  nodes_responded: number;
}

describe('dynamic denylist, stats and cluster-wide findings on a three-node cluster', () => {
  let cluster: TestCluster;
  let upstream: StubDns;
  let follower: ClusterMember;
  before(async () => {
    upstream = await startStubDns({
      'api.example.test': { A: ['192.0.2.10'], ttl: 60 },
      'sub.api.example.test': { A: ['192.0.2.11'], ttl: 60 },
      'free.example.test': { A: ['192.0.2.12'], ttl: 60 },
    });
    cluster = await TestCluster.create(3, ['--dns-bind', '127.0.0.1:0', '--dns-upstream', `127.0.0.1:${upstream.address.port}`, '--default-policy', 'deny']);
    const status = await cluster.status();
    follower = cluster.members.find((m) => m.node.nodeId !== status?.leader_id) as ClusterMember;
    const policy = {
      default_policy: 'deny',
      source_groups: [{ id: 'lab', sources: { cidrs: ['127.0.0.0/8'] }, rules: [{ id: 'examples', action: 'allow', match: { dns_hostname: { regex: '^(.*\\.)?example\\.test$' } } }] }],
    };
    const put = await cluster.api(follower, 'PUT', '/api/v1/policy', policy);
    assert.equal(put.status, 200, JSON.stringify(put.json));
    for (const member of cluster.members) assert.equal(await eventually(member.node.dnsAddress, 'api.example.test', NOERROR), NOERROR, `${member.node.nodeId} allows by policy`);
  });
  after(async () => {
    await cluster?.stop();
    await upstream?.close();
  });

  it('a denylisted hostname PUT through a follower is refused by every node (name and below), and a delete lifts it', async () => {
    const put = await cluster.api(follower, 'PUT', '/api/v1/keyval/denylist/api.example.test', { value: 'incident 42' });
    assert.equal(put.status, 200, JSON.stringify(put.json));
    for (const member of cluster.members) {
      assert.equal(await eventually(member.node.dnsAddress, 'api.example.test', NXDOMAIN), NXDOMAIN, `${member.node.nodeId} denies the denylisted name`);
      assert.equal(await rcode(member.node.dnsAddress, 'sub.api.example.test'), NXDOMAIN, 'a name below it too');
      assert.equal(await rcode(member.node.dnsAddress, 'free.example.test'), NOERROR, 'other names still follow the policy');
      const local = await cluster.api(member, 'GET', '/api/v1/audit/findings/local?finding_type=dns');
      const findings = (local.json as { findings: FindingJson[] }).findings;
      assert.ok(findings.some((f) => f.hostname === 'api.example.test' && f.reason.startsWith('denylisted')), JSON.stringify(findings));
    }
    const removed = await cluster.api(cluster.members[0] as ClusterMember, 'DELETE', '/api/v1/keyval/denylist/api.example.test');
    assert.equal(removed.status, 204);
    for (const member of cluster.members) assert.equal(await eventually(member.node.dnsAddress, 'api.example.test', NOERROR), NOERROR, `${member.node.nodeId} lifted the deny`);
  });

  it('a denylisted client IP is refused everything by every node, until the key expires or is deleted', async () => {
    const put = await cluster.api(follower, 'PUT', '/api/v1/keyval/denylist/127.0.0.1', { value: 'compromised host' });
    assert.equal(put.status, 200, JSON.stringify(put.json));
    for (const member of cluster.members) assert.equal(await eventually(member.node.dnsAddress, 'free.example.test', NXDOMAIN), NXDOMAIN, `${member.node.nodeId} denies the client`);
    assert.equal((await cluster.api(follower, 'DELETE', '/api/v1/keyval/denylist/127.0.0.1')).status, 204);
    for (const member of cluster.members) assert.equal(await eventually(member.node.dnsAddress, 'free.example.test', NOERROR), NOERROR);
  });

  it('GET /api/v1/stats describes the node: dataplane, dns, proxy, cluster with per-member match index and lag', async () => {
    // A follower knows the other followers' progress from the leader's view, which it borrows
    // every second (null until the first one arrives): ask until it has one, for at most 10 s.
    let answer = await cluster.api(follower, 'GET', '/api/v1/stats');
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
      const members = (answer.json as { cluster?: { members?: { match_index: unknown }[] } }).cluster?.members ?? [];
      if (answer.status === 200 && members.length > 0 && members.every((m) => typeof m.match_index === 'number')) break;
      await new Promise((r) => setTimeout(r, 200));
      answer = await cluster.api(follower, 'GET', '/api/v1/stats');
    }
    assert.equal(answer.status, 200, JSON.stringify(answer.json));
    assert.equal(answer.headers['x-neuwerk-served-by'] ?? follower.node.nodeId, follower.node.nodeId, 'served locally');
    await assertMatchesPublishedSchema(follower.node, '/api/v1/stats', answer.json);
    const stats = answer.json as {
      dataplane: { policy_active: boolean; denylist: { hostnames: number; client_ips: number; denies: { client: number; hostname: number } } };
      dns: { queries: Record<string, number> } | null;
      proxy: unknown;
      cluster: { cluster_enabled: boolean; node_id: string; members: { node_id: string; match_index: number | null; lag: number | null }[] };
    };
    assert.equal(stats.dataplane.policy_active, true);
    assert.ok(stats.dataplane.denylist.denies.hostname >= 2 && stats.dataplane.denylist.denies.client >= 1, JSON.stringify(stats.dataplane.denylist));
    assert.ok((stats.dns?.queries.denied ?? 0) > 0);
    assert.equal(stats.proxy, null, 'no --proxy-bind');
    assert.equal(stats.cluster.cluster_enabled, true);
    assert.equal(stats.cluster.node_id, follower.node.nodeId);
    assert.deepEqual(stats.cluster.members.map((m) => m.node_id).sort(), cluster.members.map((m) => m.node.nodeId).sort());
    for (const m of stats.cluster.members) {
      assert.ok('match_index' in m && 'lag' in m, JSON.stringify(m));
      assert.equal(typeof m.match_index, 'number', JSON.stringify(m));
    }
  });

  it('a member serving the management API with its own certificate (not from the cluster CA) still answers the cluster-wide findings', async () => {
    const [a, b, c] = cluster.members as [ClusterMember, ClusterMember, ClusterMember];
    // Restart b with a certificate from a CA of its own, as an operator's PKI would issue.
    const ownTls = join(cluster.dir.path, 'own-http-tls');
    mkdirSync(ownTls, { recursive: true, mode: 0o700 });
    const own = generateSelfSignedTls('operator-issued', ['127.0.0.1']);
    writeFileSync(join(ownTls, 'server.crt'), own.certPem);
    writeFileSync(join(ownTls, 'server.key'), own.keyPem, { mode: 0o600 });
    writeFileSync(join(ownTls, 'ca.crt'), own.caPem);
    await b.node.stop('SIGTERM');
    b.node = await NodeProcess.start(b.dataDir, [...b.args, '--http-tls-dir', ownTls]);
    await cluster.waitFor((s) => s.healthy_voters === 3, 'b back and healthy');
    assert.equal(b.node.caCert(), own.caPem, 'b serves the operator-issued certificate');
    const name = 'own-cert.denied.test';
    assert.equal(await rcode(b.node.dnsAddress, name), NXDOMAIN);
    assert.equal(await rcode(a.node.dnsAddress, name), NXDOMAIN);
    for (const asker of [a, c]) {
      const all = await cluster.api(asker, 'GET', '/api/v1/audit/findings?finding_type=dns&limit=100');
      assert.equal(all.status, 200, JSON.stringify(all.json));
      const view = all.json as ClusterFindings;
      assert.equal(view.partial, false, JSON.stringify(view.node_errors));
      assert.deepEqual([view.nodes_queried, view.nodes_responded], [3, 3]);
      assert.equal(view.findings.find((f) => f.hostname === name)?.count, 2, `asked through ${asker.node.nodeId}: b's deny and a's, merged`);
    }
    // b's own status (its policy version) through another member, as `neuwerk status` asks for it.
    const relayed = await cluster.api(c, 'GET', `/api/v1/cluster/members/${b.node.nodeId}/status`);
    assert.equal(relayed.status, 200, JSON.stringify(relayed.json));
    assert.equal(relayed.headers['x-neuwerk-served-by'], b.node.nodeId);
    const bStatus = relayed.json as { node_id: string; policy_version: number };
    assert.equal(bStatus.node_id, b.node.nodeId);
    assert.equal(bStatus.policy_version, ((await cluster.api(b, 'GET', '/api/v1/cluster/status?local=true')).json as { policy_version: number }).policy_version);
    assert.ok(bStatus.policy_version > 0);
    assert.equal((await cluster.api(c, 'GET', '/api/v1/cluster/members/no-such-node/status')).status, 404);
    assert.equal((await cluster.api(c, 'GET', `/api/v1/cluster/members/${b.node.nodeId}/status`, undefined, null)).status, 401);
    const cli = await runCli(['status', '--http-addr', `127.0.0.1:${c.httpPort}`, '--ca', join(c.dataDir, 'http-tls', 'ca.crt'), '--json'], { env: { NEUWERK_TOKEN: await cluster.token() } });
    assert.equal(cli.code, 0, cli.stderr);
    const versions = (JSON.parse(cli.stdout) as { policy_versions: Record<string, number | null> }).policy_versions;
    assert.equal(versions[b.node.nodeId], bStatus.policy_version, `neuwerk status shows b's policy version: ${JSON.stringify(versions)}`);
  });

  it('cluster-wide findings merge denies from two nodes; with one node killed the answer is partial and names it', async () => {
    const [a, b, c] = cluster.members as [ClusterMember, ClusterMember, ClusterMember];
    const name = 'agg.denied.test'; // not in the policy: denied by default
    assert.equal(await rcode(a.node.dnsAddress, name), NXDOMAIN);
    assert.equal(await rcode(b.node.dnsAddress, name), NXDOMAIN);
    assert.equal(await rcode(b.node.dnsAddress, name), NXDOMAIN);
    const all = await cluster.api(c, 'GET', '/api/v1/audit/findings?finding_type=dns&limit=100');
    assert.equal(all.status, 200, JSON.stringify(all.json));
    const view = all.json as ClusterFindings;
    assert.equal(view.partial, false, JSON.stringify(view.node_errors));
    assert.deepEqual([view.nodes_queried, view.nodes_responded], [3, 3]);
    assert.equal(view.findings.find((f) => f.hostname === name)?.count, 3, 'one deny on one node and two on another, merged');
    const bad = await cluster.api(c, 'GET', '/api/v1/audit/findings?limit=0');
    assert.equal(bad.status, 400, 'filters are validated before the fan-out');
    const unauthenticated = await cluster.api(c, 'GET', '/api/v1/audit/findings', undefined, null);
    assert.equal(unauthenticated.status, 401);

    await b.node.stop('SIGKILL');
    const started = Date.now();
    const partial = await cluster.api(a, 'GET', '/api/v1/audit/findings?finding_type=dns&limit=100');
    assert.ok(Date.now() - started < 10_000, 'a dead member costs at most its timeout');
    assert.equal(partial.status, 200, JSON.stringify(partial.json));
    const pview = partial.json as ClusterFindings;
    assert.equal(pview.partial, true);
    assert.deepEqual(pview.node_errors.map((e) => e.node_id), [b.node.nodeId]);
    assert.deepEqual([pview.nodes_queried, pview.nodes_responded], [3, 2]);
    assert.equal(pview.findings.find((f) => f.hostname === name)?.count, 1, 'only the live node counted it');
  });
});
