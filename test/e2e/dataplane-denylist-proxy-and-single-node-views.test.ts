import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { proxyConnect, proxyGet, startHttpOrigin, startStubDns, type StubDns, type TestServer } from '../bench/dataplane-fixtures.js';
import { NodeProcess, tempDir } from './harness.js';

function port(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

describe('denylist on the forward proxy, and the single-node stats and findings views', () => {
  const dir = tempDir();
  let node: NodeProcess;
  let headers: Record<string, string>;
  let upstream: StubDns;
  let origin: TestServer;
  before(async () => {
    origin = await startHttpOrigin();
    upstream = await startStubDns({ 'free.example.test': { A: ['127.0.0.1'], ttl: 60 }, 'blocked.example.test': { A: ['127.0.0.1'], ttl: 60 } });
    node = await NodeProcess.start(join(dir.path, 'data'), [
      '--dns-bind', '127.0.0.1:0', '--dns-upstream', `127.0.0.1:${upstream.address.port}`, '--proxy-bind', '127.0.0.1:0', '--default-policy', 'deny',
    ]);
    headers = { authorization: `Bearer ${await node.adminToken()}` };
  });
  after(async () => {
    await node?.stop('SIGKILL');
    await upstream?.close();
    await origin?.close();
    dir.cleanup();
  });

  it('every labelled dataplane counter has a sample (0) before any traffic, so a rate() alert sees 0 and not "no data"', async () => {
    const response = await request(`http://${node.metricsAddress}/metrics`);
    const text = await response.body.text();
    const sample = (line: string): void => assert.match(text, new RegExp(`^${line.replace(/[{}]/g, '\\$&')} 0$`, 'm'), line);
    for (const result of ['allowed', 'audit', 'denied', 'servfail', 'malformed', 'unsupported']) sample(`neuwerk_dns_queries_total{result="${result}",node_id="${node.nodeId}"}`);
    for (const kind of ['connect', 'http']) for (const result of ['allowed', 'audit', 'denied', 'limited', 'error']) sample(`neuwerk_proxy_decisions_total{kind="${kind}",result="${result}",node_id="${node.nodeId}"}`);
    for (const direction of ['client_to_upstream', 'upstream_to_client']) sample(`neuwerk_proxy_tunnel_bytes_total{direction="${direction}",node_id="${node.nodeId}"}`);
    for (const type of ['dns', 'connect', 'http']) for (const finding of ['deny', 'audit']) sample(`neuwerk_audit_findings_total{type="${type}",finding="${finding}",node_id="${node.nodeId}"}`);
  });

  it('a denylisted hostname (and names below it) or client gets 403 "denylisted" and a finding; a delete lifts it', async () => {
    const proxyPort = port(node.proxyAddress);
    assert.equal((await node.api('PUT', '/api/v1/keyval/denylist/blocked.example.test', { value: 'test' }, headers)).status, 200);
    const tunnel = await proxyConnect(proxyPort, 'blocked.example.test:443');
    tunnel.socket.destroy();
    assert.equal(tunnel.response.status, 403);
    assert.match(tunnel.response.headers['x-neuwerk-reason'] ?? '', /^denylisted/);
    const below = await proxyGet(proxyPort, `http://www.blocked.example.test:${origin.port}/x`);
    assert.equal(below.status, 403);
    assert.match(below.headers['x-neuwerk-reason'] ?? '', /^denylisted: www\.blocked\.example\.test is below blocked\.example\.test/);
    const free = await proxyGet(proxyPort, `http://free.example.test:${origin.port}/x`);
    assert.equal(free.status, 403, 'the default-deny policy still refuses');
    assert.doesNotMatch(free.headers['x-neuwerk-reason'] ?? '', /denylisted/, 'but not as denylisted');

    assert.equal((await node.api('PUT', '/api/v1/keyval/denylist/127.0.0.1', { value: 'client', ttl_secs: 600 }, headers)).status, 200);
    const client = await proxyGet(proxyPort, `http://free.example.test:${origin.port}/x`);
    assert.equal(client.status, 403);
    assert.match(client.headers['x-neuwerk-reason'] ?? '', /^denylisted: client 127\.0\.0\.1/);

    for (const key of ['127.0.0.1', 'blocked.example.test']) assert.equal((await node.api('DELETE', `/api/v1/keyval/denylist/${key}`, undefined, headers)).status, 204);
    const lifted = await proxyGet(proxyPort, `http://blocked.example.test:${origin.port}/x`);
    assert.doesNotMatch(lifted.headers['x-neuwerk-reason'] ?? '', /denylisted/);
    // Each denylist change is audited like a policy change, with the node that logged it.
    const audited = node.logLines().filter((l) => l.audit === true && typeof l.action === 'string' && l.action.startsWith('denylist.'));
    assert.deepEqual(audited.map((l) => `${String(l.action)} ${String(l.key)}`), ['denylist.put blocked.example.test', 'denylist.put 127.0.0.1', 'denylist.delete 127.0.0.1', 'denylist.delete blocked.example.test']);
    assert.ok(audited.every((l) => l.node_id === node.nodeId && l.actor === 'bootstrap-admin'), JSON.stringify(audited));
    assert.ok(node.logLines().filter((l) => l.level !== undefined).every((l) => l.node_id === node.nodeId), 'every log line names its node');

    const findings = await node.api('GET', '/api/v1/audit/findings?limit=50', undefined, headers);
    assert.equal(findings.status, 200, JSON.stringify(findings.json));
    const view = findings.json as { findings: { type: string; hostname: string | null; reason: string }[]; partial: boolean; node_errors: unknown[]; nodes_queried: number; nodes_responded: number };
    assert.deepEqual([view.partial, view.node_errors, view.nodes_queried, view.nodes_responded], [false, [], 1, 1]);
    assert.ok(view.findings.some((f) => f.type === 'connect' && f.hostname === 'blocked.example.test' && f.reason.startsWith('denylisted')));
    assert.ok(view.findings.some((f) => f.type === 'http' && f.hostname === 'www.blocked.example.test' && f.reason.startsWith('denylisted')));
  });

  it('GET /api/v1/stats on a single node has a one-member cluster section', async () => {
    const answer = await node.api('GET', '/api/v1/stats', undefined, headers);
    assert.equal(answer.status, 200, JSON.stringify(answer.json));
    const stats = answer.json as {
      dataplane: { denylist: { denies: { client: number; hostname: number } } };
      dns: object | null;
      proxy: { decisions: { http: { denied: number } } } | null;
      cluster: { cluster_enabled: boolean; node_id: string; role: string; members: { node_id: string; role: string; match_index: number; lag: number }[] };
    };
    assert.ok(stats.dns !== null && stats.proxy !== null);
    assert.ok((stats.proxy?.decisions.http.denied ?? 0) >= 2);
    assert.ok(stats.dataplane.denylist.denies.hostname >= 2 && stats.dataplane.denylist.denies.client >= 1);
    assert.equal(stats.cluster.cluster_enabled, false);
    assert.equal(stats.cluster.members.length, 1);
    const [self] = stats.cluster.members;
    assert.equal(self?.node_id, node.nodeId);
    assert.equal(self?.role, 'leader');
    assert.equal(typeof self?.match_index, 'number');
    assert.equal(self?.lag, 0);
    assert.equal((await node.api('GET', '/api/v1/stats')).status, 401, 'needs a token');
  });
});
