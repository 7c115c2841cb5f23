import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { ProxyProtocolGate } from '../../src/dataplane/proxy-protocol-gate.js';
import { NodeMetrics } from '../../src/metrics/registry.js';
import { HttpResponseReader, openProxyConnection, proxyHeaderV1, proxyHeaderV2 } from '../bench/dataplane-fixtures.js';

/** Header timeout of the servers under test (production: 10 s). */
const HEADER_TIMEOUT_MS = 300;

/** An HTTP server behind a gate; it answers `client=<gate.clientIp> <method> <url> body=<body>`. */
async function gatedServer(trustedFrom: readonly string[], metrics?: NodeMetrics): Promise<{ server: Server; gate: ProxyProtocolGate; port: number }> {
  const gate = new ProxyProtocolGate({ trustedFrom, headerTimeoutMs: HEADER_TIMEOUT_MS, logger: pino({ level: process.env.GATE_LOG ?? 'silent' }), ...(metrics ? { metrics } : {}) });
  const server = createServer({ headersTimeout: HEADER_TIMEOUT_MS, requestTimeout: 0, connectionsCheckingInterval: 50 }, (req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const text = `client=${gate.clientIp(req.socket)} ${req.method} ${req.url} body=${body}`;
      res.writeHead(200, { 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  server.on('connect', (_req, socket: Socket) => socket.end(`HTTP/1.1 200 OK\r\nContent-Length: ${`client=${gate.clientIp(socket)}`.length}\r\n\r\nclient=${gate.clientIp(socket)}`));
  gate.install(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, gate, port: (server.address() as AddressInfo).port };
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Writes `parts` with short pauses in between (so they arrive as separate reads). */
async function writeParts(socket: Socket, parts: readonly (string | Buffer)[]): Promise<void> {
  for (const part of parts) {
    socket.write(part);
    await new Promise((resolve) => setTimeout(resolve, 15));
  }
}

const get = (path: string, close = false): string => `GET ${path} HTTP/1.1\r\nHost: x\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;

describe('the PROXY protocol gate', () => {
  const metrics = new NodeMetrics('gate-test');
  let trusted: { server: Server; gate: ProxyProtocolGate; port: number };
  let untrusted: { server: Server; gate: ProxyProtocolGate; port: number };
  before(async () => {
    trusted = await gatedServer(['127.0.0.0/30', 'fd00::/8'], metrics);
    untrusted = await gatedServer(['127.0.0.2/32']);
  });
  after(async () => {
    await closeServer(trusted.server);
    await closeServer(untrusted.server);
  });

  it('a v1 header names the client of every request on the connection; bytes after it in the same read are kept', async () => {
    const socket = await openProxyConnection(trusted.port);
    const reader = new HttpResponseReader(socket);
    socket.write(Buffer.concat([proxyHeaderV1('10.9.8.7', '127.0.0.1', 40_000, trusted.port), Buffer.from(`POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello${get('/second', true)}`)]));
    assert.equal((await reader.next()).body, 'client=10.9.8.7 POST /p body=hello');
    assert.equal((await reader.next()).body, 'client=10.9.8.7 GET /second body=');
    socket.destroy();
  });

  it('a v2 header with TLVs, arriving in pieces and apart from the request, names the client (IPv6 too); CONNECT sees it', async () => {
    const header = proxyHeaderV2({ sourceIp: '2001:db8::7', destIp: 'fd00::1', sourcePort: 1, destPort: 3128 }, [{ type: 0x01, value: Buffer.from('http/1.1') }]);
    const socket = await openProxyConnection(trusted.port);
    const reader = new HttpResponseReader(socket);
    await writeParts(socket, [header.subarray(0, 1), header.subarray(1, 13), header.subarray(13, 17), header.subarray(17, 40), header.subarray(40), 'GET /a HT', 'TP/1.1\r\nHost: x\r\n\r\n']);
    assert.equal((await reader.next()).body, 'client=2001:db8::7 GET /a body=');
    socket.destroy();
    const tunnel = await openProxyConnection(trusted.port);
    const tunnelReader = new HttpResponseReader(tunnel);
    tunnel.write(Buffer.concat([proxyHeaderV2({ sourceIp: '10.9.8.7', destIp: '127.0.0.1', sourcePort: 1, destPort: 2 }), Buffer.from('CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n')]));
    assert.equal((await tunnelReader.next()).body, 'client=10.9.8.7');
    tunnel.destroy();
  });

  it('LOCAL and UNKNOWN headers leave the peer address', async () => {
    for (const header of [proxyHeaderV2('local'), Buffer.from('PROXY UNKNOWN\r\n')]) {
      const socket = await openProxyConnection(trusted.port);
      const reader = new HttpResponseReader(socket);
      socket.write(Buffer.concat([header, Buffer.from(get('/local', true))]));
      assert.equal((await reader.next()).body, 'client=127.0.0.1 GET /local body=');
      socket.destroy();
    }
  });

  it('a trusted peer without a valid header is closed without an answer: plain HTTP, a malformed line, or a header that never completes', async () => {
    const before = trusted.gate.stats().refused;
    for (const bytes of [get('/no-header'), 'PROXY TCP4 10.9.8.7 127.0.0.1 1\r\nGET / HTTP/1.1\r\n\r\n', 'PROXY TCP4 10.9.8.7 127.0.0.1 1']) {
      const socket = await openProxyConnection(trusted.port);
      const reader = new HttpResponseReader(socket);
      const started = Date.now();
      socket.write(bytes);
      assert.ok(await reader.closed(3_000), `closed: ${JSON.stringify(bytes)}`);
      assert.equal(reader.takeRest().length, 0, 'nothing was answered');
      if (!bytes.endsWith('\n')) assert.ok(Date.now() - started >= HEADER_TIMEOUT_MS - 20, 'an incomplete header waits for the header timeout');
      socket.destroy();
    }
    assert.equal(trusted.gate.stats().refused, before + 3);
  });

  it('after the header, the HTTP header timeout still holds (slowloris gets 408)', async () => {
    const socket = await openProxyConnection(trusted.port);
    const reader = new HttpResponseReader(socket);
    socket.write(Buffer.concat([proxyHeaderV1('10.9.8.7', '127.0.0.1', 1, 2), Buffer.from('GET /slow HTTP/1.1\r\nHost: x\r\n')]));
    assert.equal((await reader.next(3_000, false)).status, 408);
    socket.destroy();
  });

  it('a connection from any other peer is never parsed: a PROXY line is just a bad request, and its address is the peer', async () => {
    const spoof = await openProxyConnection(untrusted.port);
    const spoofReader = new HttpResponseReader(spoof);
    spoof.write(Buffer.concat([proxyHeaderV1('10.9.8.7', '127.0.0.1', 1, 2), Buffer.from(get('/spoof', true))]));
    assert.equal((await spoofReader.next(3_000, false)).status, 400);
    spoof.destroy();
    const plain = await openProxyConnection(untrusted.port);
    const plainReader = new HttpResponseReader(plain);
    plain.write(get('/plain', true));
    assert.equal((await plainReader.next()).body, 'client=127.0.0.1 GET /plain body=');
    plain.destroy();
    // The same server requires the header from the peer it trusts.
    const fromTrusted = await openProxyConnection(untrusted.port, '127.0.0.2');
    const trustedReader = new HttpResponseReader(fromTrusted);
    fromTrusted.write(Buffer.concat([proxyHeaderV1('10.1.1.1', '127.0.0.1', 1, 2), Buffer.from(get('/via-lb', true))]));
    assert.equal((await trustedReader.next()).body, 'client=10.1.1.1 GET /via-lb body=');
    fromTrusted.destroy();
    assert.deepEqual(untrusted.gate.stats(), { trusted_from: ['127.0.0.2/32'], proxied: 1, local: 0, refused: 0 });
  });

  it('trust is by CIDR (an IPv4-mapped peer counts as IPv4); a connect-and-close probe is not counted', async () => {
    const gate = trusted.gate;
    assert.equal(gate.isTrusted('127.0.0.3'), true);
    assert.equal(gate.isTrusted('::ffff:127.0.0.1'), true);
    assert.equal(gate.isTrusted('127.0.0.4'), false);
    assert.equal(gate.isTrusted('fdff::1'), true);
    assert.equal(gate.isTrusted('fe80::1'), false);
    assert.equal(gate.isTrusted(undefined), false);
    const before = gate.stats();
    const probe = await openProxyConnection(trusted.port);
    probe.end();
    await new HttpResponseReader(probe).closed(2_000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(gate.stats(), before);
  });

  it('counts results in the stats and in neuwerk_proxy_protocol_connections_total', async () => {
    const stats = trusted.gate.stats();
    assert.deepEqual(stats.trusted_from, ['127.0.0.0/30', 'fd00::/8']);
    assert.ok(stats.proxied >= 4 && stats.local === 2 && stats.refused === 3, JSON.stringify(stats));
    const text = await metrics.render();
    for (const result of ['proxied', 'local', 'refused'] as const) {
      assert.match(text, new RegExp(`neuwerk_proxy_protocol_connections_total\\{result="${result}",node_id="gate-test"\\} ${stats[result]}\\n`));
    }
  });
});
