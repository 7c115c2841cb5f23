import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HttpResponseReader, openProxyConnection, proxyHeaderV1, proxyHeaderV2, startEchoServer, startHttpOrigin, startStubDns, type RawHttpResponse, type StubDns, type TestServer } from '../bench/dataplane-fixtures.js';
import { NodeProcess, runCli, tempDir } from './harness.js';
import { assertMatchesPublishedSchema } from './openapi-check.js';

function port(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

/** Sends `header` (if any) and `request` on one connection, as a balancer would relay it; null when the proxy closed without an answer. */
async function relay(proxyPort: number, header: Buffer | null, request: string): Promise<RawHttpResponse | null> {
  const socket = await openProxyConnection(proxyPort);
  try {
    const reader = new HttpResponseReader(socket);
    socket.write(Buffer.concat([header ?? Buffer.alloc(0), Buffer.from(request)]));
    try {
      return await reader.next(5_000, false);
    } catch (err) {
      if (/connection ended before a complete response \(0 bytes buffered\)/.test((err as Error).message)) return null;
      throw err;
    }
  } finally {
    socket.destroy();
  }
}

const get = (url: string): string => `GET ${url} HTTP/1.1\r\nHost: ${new URL(url).host}\r\nConnection: close\r\n\r\n`;

interface FindingJson {
  type: string;
  source_group: string | null;
  destination: string | null;
  port: number;
  finding: string;
  reason: string;
  last_client_ip: string;
}

describe('PROXY protocol: the balancer-named client address decides, and only trusted peers may name one', () => {
  const dir = tempDir();
  let upstream: StubDns;
  let origin: TestServer;
  let echo: TestServer;
  /** Trusts 127.0.0.1/32 to send PROXY headers. */
  let behindLb: NodeProcess;
  /** No --proxy-protocol-from. */
  let direct: NodeProcess;
  let lbHeaders: Record<string, string>;
  let directHeaders: Record<string, string>;

  before(async () => {
    origin = await startHttpOrigin();
    echo = await startEchoServer();
    upstream = await startStubDns({});
    const common = ['--dns-bind', '127.0.0.1:0', '--dns-upstream', `127.0.0.1:${upstream.address.port}`, '--proxy-bind', '127.0.0.1:0', '--default-policy', 'deny', '--log-level', 'debug'];
    [behindLb, direct] = await Promise.all([
      NodeProcess.start(join(dir.path, 'lb'), [...common, '--proxy-protocol-from', '127.0.0.1/32']),
      NodeProcess.start(join(dir.path, 'direct'), common),
    ]);
    const policy = {
      default_policy: 'deny',
      source_groups: [
        { id: 'branch', sources: { cidrs: ['10.9.0.0/16'] }, default_action: 'deny', rules: [{ id: 'origin', action: 'allow', match: { dst_cidrs: ['127.0.0.1/32'], dst_ports: [origin.port, echo.port] } }] },
        { id: 'lab', sources: { cidrs: ['127.0.0.0/8'] }, default_action: 'deny', rules: [] },
      ],
    };
    lbHeaders = { authorization: `Bearer ${(await runCli(['auth', 'bootstrap', '--data-dir', behindLb.dataDir])).stdout.trim()}` };
    directHeaders = { authorization: `Bearer ${(await runCli(['auth', 'bootstrap', '--data-dir', direct.dataDir])).stdout.trim()}` };
    for (const [node, headers] of [[behindLb, lbHeaders], [direct, directHeaders]] as const) {
      const put = await node.api('PUT', '/api/v1/policy', policy, headers);
      assert.equal(put.status, 200, JSON.stringify(put.json));
    }
  });
  after(async () => {
    await Promise.all([behindLb?.stop('SIGKILL'), direct?.stop('SIGKILL')]);
    await Promise.all([upstream?.close(), origin?.close(), echo?.close()]);
    dir.cleanup();
  });

  it('a v1 header from the trusted peer makes 10.9.8.7 the client: its group allows what the peer address (lab) would not', async () => {
    const proxyPort = port(behindLb.proxyAddress);
    const url = `http://127.0.0.1:${origin.port}/hello`;
    const allowed = await relay(proxyPort, proxyHeaderV1('10.9.8.7', '127.0.0.1', 40_001, proxyPort), get(url));
    assert.equal(allowed?.status, 200, JSON.stringify(allowed));
    assert.match(allowed?.body ?? '', /^origin GET \/hello/);
    const otherClient = await relay(proxyPort, proxyHeaderV1('10.10.1.1', '127.0.0.1', 40_002, proxyPort), get(url));
    assert.equal(otherClient?.status, 403, 'a client outside the branch range falls to the default deny');
    // Through the node without the option the same request is decided as 127.0.0.1 (lab): denied.
    const asPeer = await relay(port(direct.proxyAddress), null, get(url));
    assert.equal(asPeer?.status, 403);
  });

  it('a v2 header (TCP, with a TLV) opens a CONNECT tunnel for the named client', async () => {
    const proxyPort = port(behindLb.proxyAddress);
    const socket = await openProxyConnection(proxyPort);
    const reader = new HttpResponseReader(socket);
    const header = proxyHeaderV2({ sourceIp: '10.9.1.2', destIp: '127.0.0.1', sourcePort: 40_003, destPort: proxyPort }, [{ type: 0x02, value: Buffer.from('127.0.0.1') }]);
    socket.write(Buffer.concat([header, Buffer.from(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: 127.0.0.1:${echo.port}\r\n\r\n`)]));
    assert.equal((await reader.next(5_000, false)).status, 200);
    socket.write('through the tunnel');
    assert.equal((await reader.collect(18)).toString(), 'through the tunnel');
    socket.destroy();
  });

  it('findings name the group and the client the header named', async () => {
    const proxyPort = port(behindLb.proxyAddress);
    const denied = await relay(proxyPort, proxyHeaderV1('10.9.8.7', '127.0.0.1', 40_004, proxyPort), `CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n`);
    assert.equal(denied?.status, 403);
    const answer = await behindLb.api('GET', '/api/v1/audit/findings/local?finding_type=connect', undefined, lbHeaders);
    assert.equal(answer.status, 200, JSON.stringify(answer.json));
    const findings = (answer.json as { findings: FindingJson[] }).findings;
    const finding = findings.find((f) => f.port === 9);
    assert.ok(finding, JSON.stringify(findings));
    assert.equal(finding.source_group, 'branch');
    assert.equal(finding.last_client_ip, '10.9.8.7');
    assert.equal(finding.finding, 'deny');
    const http = (await behindLb.api('GET', '/api/v1/audit/findings/local?finding_type=http', undefined, lbHeaders)).json as { findings: FindingJson[] };
    assert.ok(http.findings.some((f) => f.source_group === null && f.last_client_ip === '10.10.1.1'), JSON.stringify(http.findings));
    assert.ok(!http.findings.some((f) => f.last_client_ip === '127.0.0.1'), 'no finding on the balancer address');
  });

  it('a denylisted client address named by the header is refused; its neighbour is not', async () => {
    const proxyPort = port(behindLb.proxyAddress);
    const url = `http://127.0.0.1:${origin.port}/deny`;
    assert.equal((await behindLb.api('PUT', '/api/v1/keyval/denylist/10.9.8.7', { value: 'e2e', ttl_secs: 600 }, lbHeaders)).status, 200);
    const refused = await relay(proxyPort, proxyHeaderV1('10.9.8.7', '127.0.0.1', 40_005, proxyPort), get(url));
    assert.equal(refused?.status, 403);
    assert.match(refused?.headers['x-neuwerk-reason'] ?? '', /^denylisted: client 10\.9\.8\.7/);
    const neighbour = await relay(proxyPort, proxyHeaderV1('10.9.8.8', '127.0.0.1', 40_006, proxyPort), get(url));
    assert.equal(neighbour?.status, 200);
    assert.equal((await behindLb.api('DELETE', '/api/v1/keyval/denylist/10.9.8.7', undefined, lbHeaders)).status, 204);
  });

  it('a connection from the trusted peer without a header is closed without an answer (counted, logged at debug)', async () => {
    const proxyPort = port(behindLb.proxyAddress);
    assert.equal(await relay(proxyPort, null, get(`http://127.0.0.1:${origin.port}/no-header`)), null);
    assert.equal(await relay(proxyPort, Buffer.from('PROXY TCP4 10.9.8.7 127.0.0.1 1 99999\r\n'), get(`http://127.0.0.1:${origin.port}/bad-port`)), null);
    await behindLb.waitForLog((line) => line.msg === 'forward proxy: connection from a PROXY protocol peer refused' && /not a PROXY protocol header/.test(String(line.reason)), 3_000);
    const stats = await behindLb.api('GET', '/api/v1/stats', undefined, lbHeaders);
    assert.equal(stats.status, 200);
    await assertMatchesPublishedSchema(behindLb, '/api/v1/stats', stats.json);
    const section = (stats.json as { proxy: { proxy_protocol: { trusted_from: string[]; proxied: number; local: number; refused: number } } }).proxy.proxy_protocol;
    assert.deepEqual(section.trusted_from, ['127.0.0.1/32']);
    assert.equal(section.refused, 2);
    assert.equal(section.proxied, 6, 'the six relayed connections of the tests above');
    assert.equal(section.local, 0);
    const metrics = await fetch(`http://${behindLb.metricsAddress}/metrics`).then((r) => r.text());
    assert.match(metrics, /neuwerk_proxy_protocol_connections_total\{result="refused",node_id="[^"]+"\} 2\n/);
    assert.match(metrics, new RegExp(`neuwerk_proxy_protocol_connections_total\\{result="proxied",node_id="[^"]+"\\} ${section.proxied}\\n`));
  });

  it('a node without --proxy-protocol-from treats a PROXY line as a bad request (400): no spoofing', async () => {
    const proxyPort = port(direct.proxyAddress);
    const spoofed = await relay(proxyPort, proxyHeaderV1('10.9.8.7', '127.0.0.1', 40_007, proxyPort), get(`http://127.0.0.1:${origin.port}/spoof`));
    assert.equal(spoofed?.status, 400);
    const v2 = await relay(proxyPort, proxyHeaderV2({ sourceIp: '10.9.8.7', destIp: '127.0.0.1', sourcePort: 1, destPort: proxyPort }), get(`http://127.0.0.1:${origin.port}/spoof`));
    assert.equal(v2?.status, 400);
    const stats = await direct.api('GET', '/api/v1/stats', undefined, directHeaders);
    await assertMatchesPublishedSchema(direct, '/api/v1/stats', stats.json);
    assert.equal((stats.json as { proxy: { proxy_protocol: unknown } }).proxy.proxy_protocol, null);
    const findings = (await direct.api('GET', '/api/v1/audit/findings/local', undefined, directHeaders)).json as { findings: FindingJson[] };
    assert.ok(!findings.findings.some((f) => f.last_client_ip.startsWith('10.9.')), 'nothing was decided as the spoofed address');
  });

  it('a bad --proxy-protocol-from exits 2 naming the flag and the value', async () => {
    const result = await runCli(['start', '--data-dir', join(dir.path, 'bad'), '--proxy-bind', '127.0.0.1:0', '--proxy-protocol-from', '127.0.0.1/8']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--proxy-protocol-from: "127\.0\.0\.1\/8" has host bits set \(did you mean 127\.0\.0\.0\/8\?\)/);
  });
});
