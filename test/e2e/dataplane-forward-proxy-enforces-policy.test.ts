import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { networkInterfaces } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import dnsPacket from 'dns-packet';
import { pino } from 'pino';
import { Dataplane } from '../../src/dataplane/dataplane.js';
import type { ForwardProxy } from '../../src/dataplane/forward-proxy.js';
import { sweepIntervalFor } from '../../src/dataplane/idle-sweep.js';
import { NodeMetrics } from '../../src/metrics/registry.js';
import { compilePolicy, parsePolicy, type CompiledPolicy, type PolicyRule } from '../../src/policy/index.js';
import {
  HttpResponseReader,
  openProxyConnection,
  proxyConnect,
  startEchoServer,
  startHttpOrigin,
  startStubDns,
  startTlsOrigin,
  type StubDns,
  type TestServer,
} from '../bench/dataplane-fixtures.js';

/** Header timeout of the proxy under test (production: 10 s). */
const HEADER_TIMEOUT_MS = 400;
/** Idle timeout of the small proxy used for the limit/idle tests. */
const IDLE_TIMEOUT_MS = 400;

/** A non-loopback IPv4 address of this machine (an "ordinary" destination for the guard), if any. */
function externalIpv4(): string | null {
  for (const list of Object.values(networkInterfaces())) for (const info of list ?? []) if (info.family === 'IPv4' && !info.internal) return info.address;
  return null;
}

async function eventually(check: () => boolean, what: string | (() => string), timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function policyWith(rules: PolicyRule[], auditRules: PolicyRule[] = []): CompiledPolicy {
  return compilePolicy(
    parsePolicy({
      default_policy: 'deny',
      source_groups: [
        { id: 'auditors', priority: 1, mode: 'audit', sources: { ips: ['127.0.0.2'] }, default_action: 'deny', rules: auditRules },
        { id: 'lab', priority: 2, sources: { cidrs: ['127.0.0.0/8'] }, rules },
      ],
    }),
  );
}

describe('forward proxy against local origins', { timeout: 60_000 }, () => {
  const holder: { active: CompiledPolicy | null } = { active: null };
  const metrics = new NodeMetrics('proxy-test');
  let dns: StubDns;
  let http: TestServer;
  let echo: TestServer;
  let tlsOrigin: TestServer & { caPem: string };
  let dataplane: Dataplane;
  let proxy: ForwardProxy;
  let proxyPort: number;
  let dnsPort: number;
  let baseRules: PolicyRule[];

  before(async () => {
    dns = await startStubDns({
      'origin.test': { A: ['127.0.0.1'] },
      'other.test': { A: ['127.0.0.1'] },
      'cached.test': { A: ['127.0.0.1'] },
      'moved.test': { A: ['127.0.0.2'] },
      'wide.test': { A: ['127.0.0.1'] },
      'meta.test': { A: ['169.254.169.254'] },
      'secure.test': { A: ['127.0.0.1'] },
    });
    http = await startHttpOrigin();
    echo = await startEchoServer();
    tlsOrigin = await startTlsOrigin(['secure.test']);
    const loopback = ['127.0.0.1/32'];
    baseRules = [
      { id: 'origin-echo', action: 'allow', match: { dns_hostname: { exact: ['origin.test', 'cached.test', 'missing.test'] }, dst_cidrs: loopback, dst_ports: [echo.port] } },
      { id: 'moved-echo', action: 'allow', match: { dns_hostname: { exact: ['moved.test'] }, dst_cidrs: loopback, dst_ports: [echo.port] } },
      { id: 'wide-echo', action: 'allow', match: { dns_hostname: { exact: ['wide.test'] }, dst_ports: [echo.port] } },
      { id: 'meta', action: 'allow', match: { dns_hostname: { exact: ['meta.test'] }, dst_ports: [80] } },
      { id: 'any-80', action: 'allow', match: { dst_ports: [80] } },
      { id: 'origin-http', action: 'allow', match: { dns_hostname: { exact: ['origin.test'] }, dst_cidrs: loopback, dst_ports: [http.port], http: { methods: ['GET'], path: { prefix: ['/ok'] } } } },
      { id: 'secure', action: 'allow', match: { dns_hostname: { exact: ['secure.test'] }, dst_cidrs: loopback, dst_ports: [tlsOrigin.port], tls: { sni: { exact: ['secure.test'] } } } },
    ] as PolicyRule[];
    holder.active = policyWith(baseRules);
    dataplane = new Dataplane({
      enforcement: holder,
      logger: pino({ level: 'silent' }),
      metrics,
      dns: { bind: { host: '127.0.0.1', port: 0 }, upstreams: [dns.address] },
      proxy: { bind: { host: '127.0.0.1', port: 0 } },
      ownAddresses: [],
      upstreamTryTimeoutMs: 500,
      proxyTuning: { tlsPorts: [tlsOrigin.port], headerTimeoutMs: HEADER_TIMEOUT_MS, tlsPeekTimeoutMs: 1_000 },
    });
    const addresses = await dataplane.start();
    assert.ok(addresses.proxy && addresses.dns);
    proxyPort = addresses.proxy.port;
    dnsPort = addresses.dns.udp.port;
    proxy = dataplane.forwardProxy as ForwardProxy;
  });

  after(async () => {
    await dataplane.stop();
    await Promise.all([dns.close(), http.close(), echo.close(), tlsOrigin.close()]);
  });

  it('tunnels an allowed CONNECT to a hostname whose answer the rule covers', async () => {
    const { response, socket, reader } = await proxyConnect(proxyPort, `origin.test:${echo.port}`);
    assert.equal(response.status, 200);
    socket.write('ping through the tunnel');
    assert.equal((await reader.collect(23)).toString(), 'ping through the tunnel');
    socket.destroy();
    const missing = await proxyConnect(proxyPort, `missing.test:${echo.port}`);
    assert.equal(missing.response.status, 502, 'an allowed name that does not resolve');
    assert.match(missing.response.headers['x-neuwerk-reason'] ?? '', /missing\.test has no address/);
  });

  it('refuses with 403, a reason line and X-Neuwerk-Reason: another name, an IP the rule does not cover, an IP literal', async () => {
    for (const [authority, pattern] of [
      [`other.test:${echo.port}`, /denied by default_policy/],
      [`moved.test:${echo.port}`, /denied by default_policy/],
      [`127.0.0.1:${echo.port}`, /denied by default_policy/],
      [`origin.test:${echo.port + 1 === http.port ? echo.port + 2 : echo.port + 1}`, /denied/],
    ] as const) {
      const { response, reader } = await proxyConnect(proxyPort, authority);
      assert.equal(response.status, 403, authority);
      assert.match(response.headers['x-neuwerk-reason'] ?? '', pattern, authority);
      assert.equal(response.body.trim(), response.headers['x-neuwerk-reason']);
      assert.equal(await reader.closed(), true, 'a refusal closes the connection');
    }
    const findings = dataplane.findingsView(new URLSearchParams('finding_type=connect')).findings; // default_policy denies belong to no group
    assert.ok(findings.some((f) => f.hostname === 'moved.test' && f.destination === '127.0.0.2' && f.port === echo.port && f.finding === 'deny'));
    assert.ok(findings.some((f) => f.hostname === null && f.destination === '127.0.0.1'));
  });

  it('an IP-literal CONNECT is allowed only by an explicit dst_cidrs rule', async () => {
    holder.active = policyWith([...baseRules, { id: 'literal-echo', action: 'allow', match: { dst_cidrs: ['127.0.0.1/32'], dst_ports: [echo.port] } } as PolicyRule]);
    try {
      const { response, socket, reader } = await proxyConnect(proxyPort, `127.0.0.1:${echo.port}`);
      assert.equal(response.status, 200);
      socket.write('literal');
      assert.equal((await reader.collect(7)).toString(), 'literal');
      socket.destroy();
    } finally {
      holder.active = policyWith(baseRules);
    }
  });

  it('never dials loopback or metadata addresses unless a rule names them by address', async () => {
    for (const [authority, pattern] of [
      [`wide.test:${echo.port}`, /loopback address; only an allowing rule naming it in dst_ips or dst_cidrs permits it \(rule wide-echo allows it without naming it\)/],
      ['meta.test:80', /link-local address \(cloud metadata/],
      ['169.254.169.254:80', /link-local/],
      ['[::1]:80', /loopback/],
      ['0.0.0.0:80', /unspecified/],
      [`127.0.0.1:${proxyPort}`, /denied by default_policy|loopback/],
    ] as const) {
      const { response } = await proxyConnect(proxyPort, authority);
      assert.equal(response.status, 403, authority);
      assert.match(response.headers['x-neuwerk-reason'] ?? '', pattern, authority);
    }
    const meta = dataplane.findingsView(new URLSearchParams('source_group=lab')).findings.find((f) => f.destination === '169.254.169.254' && f.hostname === 'meta.test');
    assert.equal(meta?.rule_id, 'meta', 'the finding names the rule that would have allowed it');
  });

  it('uses the DNS proxy answers of the client group (allowlist) instead of a fresh lookup', async () => {
    const socket = createSocket('udp4');
    const answer = await new Promise<Buffer>((resolve) => {
      socket.on('message', (message) => resolve(message));
      socket.bind(0, '127.0.0.1', () => socket.send(dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'cached.test' }] }), dnsPort, '127.0.0.1'));
    });
    socket.close();
    assert.equal((dnsPacket.decode(answer).answers?.[0] as { data?: unknown } | undefined)?.data, '127.0.0.1');
    const upstreamQueries = dns.received.udp;
    const { response, socket: tunnel } = await proxyConnect(proxyPort, `cached.test:${echo.port}`);
    assert.equal(response.status, 200);
    tunnel.destroy();
    assert.equal(dns.received.udp, upstreamQueries, 'no lookup: the allowlist had the answer');
  });

  it('TLS: matching SNI tunnels end to end; a different SNI or none (with a tls.sni rule) is refused', async () => {
    const { response, reader, socket } = await proxyConnect(proxyPort, `secure.test:${tlsOrigin.port}`);
    assert.equal(response.status, 200);
    reader.detach();
    const greeting = await new Promise<string>((resolve, reject) => {
      const tls = tlsConnect({ socket, servername: 'secure.test', ca: tlsOrigin.caPem });
      tls.once('data', (chunk: Buffer) => {
        resolve(chunk.toString());
        tls.destroy();
      });
      tls.once('error', reject);
    });
    assert.equal(greeting, 'tls-hello secure.test\n');

    const refusedBefore = proxy.stats().decisions.connect.denied;
    const expectedReasons = [/TLS SNI evil\.test differs from the CONNECT host secure\.test: refused \(no domain fronting\)/, /denied by default_policy/];
    for (const servername of ['evil.test', undefined]) {
      const attempt = await proxyConnect(proxyPort, `secure.test:${tlsOrigin.port}`);
      assert.equal(attempt.response.status, 200, 'the tunnel opens; the ClientHello decides');
      attempt.reader.detach();
      const outcome = await new Promise<string>((resolve) => {
        const tls = tlsConnect({ socket: attempt.socket, host: '127.0.0.1', ...(servername !== undefined ? { servername } : {}), ca: tlsOrigin.caPem, checkServerIdentity: () => undefined });
        tls.once('secureConnect', () => resolve('handshake completed'));
        tls.once('error', () => resolve('refused'));
        tls.once('close', () => resolve('refused'));
      });
      assert.equal(outcome, 'refused', `SNI ${servername ?? '(none)'}`);
      const finding = dataplane.findingsView(new URLSearchParams('finding_type=connect')).findings.find((f) => f.hostname === 'secure.test');
      assert.match(finding?.reason ?? '', expectedReasons.shift() as RegExp);
    }
    assert.equal(proxy.stats().decisions.connect.denied - refusedBefore, 2);
  });

  it('plain HTTP: allowed and denied requests share one keep-alive connection; Host is the URL authority', async () => {
    const socket = await openProxyConnection(proxyPort);
    const reader = new HttpResponseReader(socket);
    const url = (path: string): string => `http://origin.test:${http.port}${path}`;
    socket.write(`GET ${url('/ok/1?x=1')} HTTP/1.1\r\nHost: spoofed.example\r\nProxy-Connection: keep-alive\r\n\r\n`);
    const ok = await reader.next();
    assert.equal(ok.status, 200);
    assert.equal(ok.body, `origin GET /ok/1?x=1 host=origin.test:${http.port}`);
    assert.match(ok.headers.via ?? '', /1\.1 neuwerk/);
    socket.write(`GET ${url('/admin')} HTTP/1.1\r\nHost: origin.test\r\n\r\n`);
    const denied = await reader.next();
    assert.equal(denied.status, 403);
    assert.match(denied.headers['x-neuwerk-reason'] ?? '', /denied by default_policy/);
    socket.write(`DELETE ${url('/ok/2')} HTTP/1.1\r\nHost: origin.test\r\n\r\n`);
    assert.equal((await reader.next()).status, 403, 'the rule allows GET only');
    socket.write(`GET ${url('/ok/3')} HTTP/1.1\r\nHost: origin.test\r\n\r\n`);
    assert.equal((await reader.next()).body, `origin GET /ok/3 host=origin.test:${http.port}`);
    socket.write(`GET http://other.test:${http.port}/ok HTTP/1.1\r\nHost: other.test\r\n\r\n`);
    assert.equal((await reader.next()).status, 403);
    socket.write(`GET /ok HTTP/1.1\r\nHost: origin.test\r\n\r\n`);
    assert.equal((await reader.next()).status, 400, 'origin-form is not a proxy request');
    socket.destroy();
    const httpFindings = dataplane.findingsView(new URLSearchParams('finding_type=http')).findings;
    assert.ok(httpFindings.some((f) => f.hostname === 'origin.test' && f.port === http.port && f.finding === 'deny'));
    assert.equal(proxy.stats().decisions.http.allowed, 2);
  });

  it('audit mode lets a would-be deny through to an ordinary address, but never past the SSRF guard', { skip: externalIpv4() === null ? 'no non-loopback IPv4 address' : false }, async () => {
    const external = externalIpv4() as string;
    const outside = await startEchoServer(0, external);
    try {
      const through = await proxyConnect(proxyPort, `${external}:${outside.port}`, '127.0.0.2');
      assert.equal(through.response.status, 200);
      through.socket.write('audited');
      assert.equal((await through.reader.collect(7)).toString(), 'audited');
      through.socket.destroy();
      const guarded = await proxyConnect(proxyPort, `127.0.0.1:${echo.port}`, '127.0.0.2');
      assert.equal(guarded.response.status, 403);
      const audit = dataplane.findingsView(new URLSearchParams('source_group=auditors')).findings;
      assert.ok(audit.some((f) => f.destination === external && f.finding === 'audit'));
      assert.ok(audit.some((f) => f.destination === '127.0.0.1' && f.finding === 'deny'));
    } finally {
      await outside.close();
    }
  });

  it('half-closed tunnels deliver everything both ways; resets tear both sides down', async () => {
    const { response, socket, reader } = await proxyConnect(proxyPort, `origin.test:${echo.port}`);
    assert.equal(response.status, 200);
    const payload = randomBytes(256 * 1024);
    socket.end(payload);
    const echoed = await reader.collect(payload.length, 5_000);
    assert.equal(Buffer.compare(echoed, payload), 0, 'all bytes came back after the client half-closed');
    assert.equal(await reader.closed(), true, 'the echo server finished, so the tunnel closed');

    const reset = await proxyConnect(proxyPort, `origin.test:${echo.port}`);
    assert.equal(reset.response.status, 200);
    reset.socket.write('x');
    await reset.reader.collect(1);
    reset.socket.resetAndDestroy();
    await eventually(() => proxy.openSockets().tunnels === 0, 'the upstream side of a reset tunnel to close');
    assert.ok(proxy.stats().tunnel_bytes.client_to_upstream >= payload.length);
  });

  it('survives garbage: random bytes -> 400, oversized headers -> 431, slowloris closed after the header timeout', async () => {
    const garbage = await openProxyConnection(proxyPort);
    const garbageReader = new HttpResponseReader(garbage);
    garbage.write(randomBytes(4096));
    assert.equal((await garbageReader.next()).status, 400);
    assert.equal(await garbageReader.closed(), true);

    const big = await openProxyConnection(proxyPort);
    const bigReader = new HttpResponseReader(big);
    big.write(`GET http://origin.test:${http.port}/ok HTTP/1.1\r\nHost: origin.test\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    assert.equal((await bigReader.next()).status, 431);

    const slow = await openProxyConnection(proxyPort);
    const slowReader = new HttpResponseReader(slow);
    const started = Date.now();
    slow.write(`GET http://origin.test:${http.port}/ok HTTP/1.1\r\nHost: orig`);
    const ticker = setInterval(() => slow.writable && slow.write('i'), 100);
    try {
      assert.equal(await slowReader.closed(HEADER_TIMEOUT_MS + 3_000), true, 'slowloris connection closed');
    } finally {
      clearInterval(ticker);
    }
    assert.ok(Date.now() - started >= HEADER_TIMEOUT_MS - 50);

    for (const line of ['CONNECT nonsense HTTP/1.1', 'CONNECT exa_mple..test:443 HTTP/1.1', 'CONNECT example.test:99999 HTTP/1.1']) {
      const bad = await openProxyConnection(proxyPort);
      const badReader = new HttpResponseReader(bad);
      bad.write(`${line}\r\nHost: x\r\n\r\n`);
      assert.equal((await badReader.next()).status, 400, line);
    }
    const { response, socket } = await proxyConnect(proxyPort, `origin.test:${echo.port}`);
    assert.equal(response.status, 200, 'still serving');
    socket.destroy();
  });

  it('leaves no sockets open once clients are gone; counts decisions in the node metrics', async () => {
    await eventually(() => proxy.openSockets().client === 0 && proxy.openSockets().tunnels === 0, () => `every client and tunnel socket to close (${JSON.stringify(proxy.openSockets())})`);
    assert.equal(proxy.stats().active_flows, 0);
    const text = await metrics.render();
    assert.match(text, /neuwerk_proxy_decisions_total\{[^}]*kind="connect"[^}]*result="denied"[^}]*\} [1-9]/);
    assert.match(text, /neuwerk_proxy_active_flows\{[^}]*\} 0/);
    assert.match(text, /neuwerk_proxy_tunnel_bytes_total\{[^}]*direction="upstream_to_client"[^}]*\} [1-9]/);
    assert.deepEqual(dataplane.proxyReadiness(), { ok: true });
  });
});

/** A forward proxy that allows only the echo server's port on 127.0.0.1, with the given tuning. */
async function startEchoProxy(echoPort: number, proxyTuning: NonNullable<ConstructorParameters<typeof Dataplane>[0]['proxyTuning']>): Promise<{ dataplane: Dataplane; proxyPort: number }> {
  const policy = compilePolicy(
    parsePolicy({
      default_policy: 'deny',
      source_groups: [{ id: 'lab', sources: { cidrs: ['127.0.0.0/8'] }, rules: [{ id: 'echo', action: 'allow', match: { dst_cidrs: ['127.0.0.1/32'], dst_ports: [echoPort] } }] }],
    }),
  );
  const dataplane = new Dataplane({
    enforcement: { active: policy },
    logger: pino({ level: 'silent' }),
    dns: null,
    proxy: { bind: { host: '127.0.0.1', port: 0 } },
    ownAddresses: [],
    resolver: { resolve: () => Promise.resolve({ ok: false, reason: 'no resolver in this test' }) },
    proxyTuning,
  });
  return { dataplane, proxyPort: (await dataplane.start()).proxy?.port as number };
}

describe('forward proxy flow limits and idle timeout', { timeout: 20_000 }, () => {
  let echo: TestServer;
  let dataplane: Dataplane;
  let proxyPort: number;

  before(async () => {
    echo = await startEchoServer();
    ({ dataplane, proxyPort } = await startEchoProxy(echo.port, { maxActiveFlowsPerGroup: 1, idleTimeoutMs: IDLE_TIMEOUT_MS }));
  });

  after(async () => {
    await dataplane.stop();
    await echo.close();
  });

  it('answers 429 beyond the per-group flow limit, closes idle tunnels, then admits again', async () => {
    const first = await proxyConnect(proxyPort, `127.0.0.1:${echo.port}`);
    assert.equal(first.response.status, 200);
    const second = await proxyConnect(proxyPort, `127.0.0.1:${echo.port}`);
    assert.equal(second.response.status, 429);
    assert.match(second.response.headers['x-neuwerk-reason'] ?? '', /source group lab has 1 active flows/);
    const started = Date.now();
    assert.equal(await first.reader.closed(IDLE_TIMEOUT_MS + 2_000), true, 'the idle tunnel was closed by the proxy');
    assert.ok(Date.now() - started >= IDLE_TIMEOUT_MS - 50);
    await eventually(() => dataplane.forwardProxy?.stats().active_flows === 0, 'the flow to be released');
    const third = await proxyConnect(proxyPort, `127.0.0.1:${echo.port}`);
    assert.equal(third.response.status, 200);
    third.socket.destroy();
    const stats = dataplane.statsView().proxy;
    assert.equal(stats?.decisions.connect.limited, 1);
  });

  it('does not look up a name the client may not resolve and no rule allows without an address', async () => {
    const { response } = await proxyConnect(proxyPort, `somewhere.test:${echo.port}`);
    assert.equal(response.status, 403);
    assert.match(response.headers['x-neuwerk-reason'] ?? '', /does not resolve somewhere\.test/);
  });
});

describe('forward proxy idle sweep', { timeout: 20_000 }, () => {
  let echo: TestServer;
  let dataplane: Dataplane;
  let proxyPort: number;

  before(async () => {
    echo = await startEchoServer();
    ({ dataplane, proxyPort } = await startEchoProxy(echo.port, { idleTimeoutMs: IDLE_TIMEOUT_MS }));
  });

  after(async () => {
    await dataplane.stop();
    await echo.close();
  });

  it('closes an idle tunnel within the idle timeout plus two sweep intervals and keeps an active one open', async () => {
    const interval = sweepIntervalFor(IDLE_TIMEOUT_MS);
    const active = await proxyConnect(proxyPort, `127.0.0.1:${echo.port}`);
    const idle = await proxyConnect(proxyPort, `127.0.0.1:${echo.port}`);
    assert.equal(active.response.status, 200);
    assert.equal(idle.response.status, 200);
    const opened = Date.now();
    // The active tunnel echoes a few bytes every quarter of the idle timeout, for three idle timeouts.
    let echoed = 0;
    const pinger = (async () => {
      while (Date.now() - opened < 3 * IDLE_TIMEOUT_MS) {
        active.socket.write('ping');
        echoed += (await active.reader.collect(4, IDLE_TIMEOUT_MS)).length;
        await new Promise((resolve) => setTimeout(resolve, IDLE_TIMEOUT_MS / 4));
      }
    })();
    assert.equal(await idle.reader.closed(IDLE_TIMEOUT_MS + 2_000), true, 'the idle tunnel was closed by the proxy');
    const idleFor = Date.now() - opened;
    assert.ok(idleFor >= IDLE_TIMEOUT_MS - 5, `closed after ${idleFor} ms, before the idle timeout`);
    // Two sweep intervals, and slack for a loaded event loop.
    assert.ok(idleFor <= IDLE_TIMEOUT_MS + 2 * interval + 250, `closed after ${idleFor} ms, later than the idle timeout + 2 sweep intervals (${interval} ms)`);
    await pinger;
    assert.ok(echoed >= 4 * 10, `the active tunnel echoed every ping (${echoed} bytes)`);
    assert.equal(active.socket.destroyed, false, 'the active tunnel is still open');
    assert.equal(await active.reader.closed(0), false);
    assert.equal(dataplane.forwardProxy?.stats().active_flows, 1);
    // Once it falls silent it is closed too.
    assert.equal(await active.reader.closed(IDLE_TIMEOUT_MS + 2_000), true, 'the tunnel was closed once idle');
    await eventually(() => dataplane.forwardProxy?.stats().active_flows === 0, 'both flows to be released');
    await eventually(() => dataplane.forwardProxy?.openSockets().tunnels === 0, 'the upstream sockets to close');
  });
});
