import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Answer, DecodedPacket } from 'dns-packet';
import { startStubDns, type StubDns } from '../bench/dataplane-fixtures.js';
import { TestCluster, type ClusterMember } from './cluster-harness.js';
import { askUdp, rcode } from './dns-client.js';

const NXDOMAIN = 3;



describe('the policy is enforced locally on every node', () => {
  let cluster: TestCluster;
  let upstream: StubDns;
  before(async () => {
    upstream = await startStubDns({ 'api.example.test': { A: ['192.0.2.10'], ttl: 60 }, 'other.example.test': { A: ['192.0.2.20'] } });
    cluster = await TestCluster.create(3, ['--dns-bind', '127.0.0.1:0', '--dns-upstream', `127.0.0.1:${upstream.address.port}`, '--default-policy', 'deny']);
  });
  after(async () => {
    await cluster.stop();
    await upstream.close();
  });

  it('a policy PUT through a follower is enforced by the DNS proxy of all three nodes', async () => {
    for (const member of cluster.members) {
      assert.match(member.node.dnsAddress, /^127\.0\.0\.1:\d+$/);
      assert.equal(rcode(await askUdp(member.node.dnsAddress, 'api.example.test')), NXDOMAIN, 'denied under the default deny policy');
    }
    const status = await cluster.status();
    const follower = cluster.members.find((m) => m.node.nodeId !== status?.leader_id) as ClusterMember;
    const policy = {
      default_policy: 'deny',
      source_groups: [{ id: 'lab', sources: { cidrs: ['127.0.0.0/8'] }, rules: [{ id: 'api', action: 'allow', match: { dns_hostname: { exact: ['api.example.test'] } } }] }],
    };
    const put = await cluster.api(follower, 'PUT', '/api/v1/policy', policy);
    assert.equal(put.status, 200, JSON.stringify(put.json));
    const version = (put.json as { version: number }).version;
    for (const member of cluster.members) {
      const deadline = Date.now() + 5000;
      let allowed: DecodedPacket | null = null;
      while (Date.now() < deadline) {
        allowed = await askUdp(member.node.dnsAddress, 'api.example.test');
        if (rcode(allowed) === 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(rcode(allowed), 0, `node ${member.node.nodeId} enforces policy version ${version}`);
      assert.deepEqual((allowed?.answers ?? []).filter((a): a is Answer & { data: string } => a.type === 'A').map((a) => a.data), ['192.0.2.10']);
      assert.equal(rcode(await askUdp(member.node.dnsAddress, 'other.example.test')), NXDOMAIN);
      const ready = (await member.node.api('GET', '/ready')).json as { checks: { name: string; ok: boolean }[] };
      assert.ok(ready.checks.some((c) => c.name === 'dns_ready' && c.ok));
      assert.ok(ready.checks.some((c) => c.name === 'policy_replication' && c.ok));
      const cache = await cluster.api(member, 'GET', '/api/v1/dns-cache');
      assert.equal(cache.status, 200);
      assert.ok(JSON.stringify(cache.json).includes('api.example.test'));
      const findings = await cluster.api(member, 'GET', '/api/v1/audit/findings/local?finding_type=dns');
      assert.equal(findings.status, 200, JSON.stringify(findings.json));
      assert.ok(JSON.stringify(findings.json).includes('other.example.test'), 'the deny was recorded as a finding on this node');
    }
  });
});
