import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { proxyGet, startHttpOrigin, startStubDns, type StubDns, type TestServer } from '../bench/dataplane-fixtures.js';
import { freePort } from './cluster-harness.js';
import { haproxyBinary, HaproxyProcess } from './haproxy-harness.js';
import { NodeProcess, runCli, tempDir } from './harness.js';

describe('neuwerk lb haproxy --send-proxy through a real HAProxy', () => {
  const dir = tempDir('neuwerk-send-proxy-');
  let node: NodeProcess;
  let origin: TestServer;
  let upstream: StubDns;
  let haproxy: HaproxyProcess | null = null;
  let frontendPort: number;
  let adminSocket: string;
  let headers: Record<string, string>;

  before(async () => {
    origin = await startHttpOrigin();
    upstream = await startStubDns({});
    node = await NodeProcess.start(join(dir.path, 'data'), [
      '--dns-bind', '127.0.0.1:0', '--dns-upstream', `127.0.0.1:${upstream.address.port}`, '--proxy-bind', '127.0.0.1:0', '--proxy-protocol-from', '127.0.0.1/32', '--default-policy', 'deny',
    ]);
    const token = await node.adminToken();
    headers = { authorization: `Bearer ${token}` };
    const policy = {
      default_policy: 'deny',
      source_groups: [
        { id: 'lb-clients', sources: { ips: ['127.0.0.2'] }, rules: [{ id: 'origin', action: 'allow', match: { dst_cidrs: ['127.0.0.1/32'], dst_ports: [origin.port] } }] },
        { id: 'lab', sources: { cidrs: ['127.0.0.0/8'] }, default_action: 'deny', rules: [] },
      ],
    };
    assert.equal((await node.api('PUT', '/api/v1/policy', policy, headers)).status, 200);
    frontendPort = await freePort();
    adminSocket = join(dir.path, 'admin.sock');
    const config = join(dir.path, 'haproxy.cfg');
    const rendered = await runCli(['lb', 'haproxy', '--http-addr', node.httpAddress, '--insecure', '--token', token, '--send-proxy', '--output', config,
      '--proxy-bind', `127.0.0.1:${frontendPort}`, '--api-bind', `127.0.0.1:${await freePort()}`, '--stats-socket', adminSocket]);
    assert.equal(rendered.code, 0, rendered.stderr);
    const checked = spawnSync(haproxyBinary(), ['-c', '-f', config], { encoding: 'utf8' });
    assert.equal(checked.status, 0, `haproxy -c:\n${checked.stdout}\n${checked.stderr}`);
    haproxy = await HaproxyProcess.start(config, adminSocket, dir.path);
  });
  after(async () => {
    await haproxy?.stop();
    await node?.stop('SIGKILL');
    await Promise.all([origin?.close(), upstream?.close()]);
    dir.cleanup();
  });

  it("the health check of the forward-proxy server passes: it reaches the management API's /ready over HTTPS without a PROXY header", async () => {
    const deadline = Date.now() + 15_000;
    let row: Record<string, string> | undefined;
    while (Date.now() < deadline) {
      try {
        row = (await (haproxy as HaproxyProcess).stats()).find((r) => r.pxname === 'neuwerk_proxy_nodes' && r.svname === node.nodeId);
        if (row?.check_status === 'L7OK' && row.status === 'UP') break;
      } catch {
        // the admin socket is not there yet
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.equal(row?.check_status, 'L7OK', `${JSON.stringify(row)}\n${haproxy?.log ?? ''}`);
    assert.equal(row?.status, 'UP');
  });

  it("the node decides by the client's address, not HAProxy's: 127.0.0.2 is allowed, 127.0.0.3 denied, and the finding names 127.0.0.3", async () => {
    const url = `http://127.0.0.1:${origin.port}/through-haproxy`;
    const allowed = await proxyGet(frontendPort, url, '127.0.0.2');
    assert.equal(allowed.status, 200, `${JSON.stringify(allowed)}\n${haproxy?.log ?? ''}`);
    assert.match(allowed.body, /^origin GET \/through-haproxy/);
    const denied = await proxyGet(frontendPort, url, '127.0.0.3');
    assert.equal(denied.status, 403);
    const findings = (await node.api('GET', '/api/v1/audit/findings/local?finding_type=http', undefined, headers)).json as { findings: { source_group: string | null; last_client_ip: string }[] };
    assert.ok(findings.findings.some((f) => f.source_group === 'lab' && f.last_client_ip === '127.0.0.3'), JSON.stringify(findings));
    const stats = (await node.api('GET', '/api/v1/stats', undefined, headers)).json as { proxy: { proxy_protocol: { proxied: number; refused: number } } };
    assert.ok(stats.proxy.proxy_protocol.proxied >= 2, JSON.stringify(stats.proxy.proxy_protocol));
    assert.equal(stats.proxy.proxy_protocol.refused, 0);
  });
});
