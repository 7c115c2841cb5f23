import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet } from 'dns-packet';
import { pino } from 'pino';
import { Dataplane } from '../../src/dataplane/dataplane.js';
import { rcodeOf, RCODE } from '../../src/dataplane/dns-messages.js';
import { DNS_UPSTREAM_SOCKETS_PER_UPSTREAM } from '../../src/dataplane/dns-upstream.js';
import { NodeMetrics } from '../../src/metrics/registry.js';
import { compilePolicy, parsePolicy, type CompiledPolicy } from '../../src/policy/index.js';
import { startStubDns, type StubDns } from '../bench/dataplane-fixtures.js';

/** Per-try upstream timeout in these tests (production: 2 s). */
const TRY_TIMEOUT_MS = 300;
/** How long a test waits to conclude that no answer comes. */
const SILENCE_MS = 250;

const POLICY = compilePolicy(
  parsePolicy({
    default_policy: 'deny',
    source_groups: [
      {
        id: 'audit-lab',
        priority: 1,
        mode: 'audit',
        sources: { ips: ['127.0.0.2'] },
        default_action: 'deny',
        rules: [{ id: 'allow-test', action: 'allow', match: { dns_hostname: { suffix: ['allowed.test'] } } }],
      },
      {
        id: 'lab',
        priority: 2,
        sources: { cidrs: ['127.0.0.0/8'] },
        rules: [
          { id: 'block-ads', priority: 0, action: 'deny', match: { dns_hostname: { suffix: ['ads.allowed.test'] } } },
          { id: 'allow-test', priority: 1, action: 'allow', match: { dns_hostname: { suffix: ['allowed.test'] } } },
        ],
      },
    ],
  }),
);

const RECORDS = {
  'www.allowed.test': { A: ['192.0.2.10'], AAAA: ['2001:db8::10'], ttl: 120 },
  'alias.allowed.test': { cname: 'www.allowed.test' },
  'ads.allowed.test': { A: ['192.0.2.99'] },
  'blocked.test': { A: ['192.0.2.66'] },
};

let nextId = 1000;

function query(name: string, type: 'A' | 'AAAA' = 'A', extra: Partial<Packet> = {}): { id: number; bytes: Buffer } {
  const id = nextId++;
  return { id, bytes: dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }], ...extra }) };
}

/** Sends one UDP datagram and resolves with the first answer, or null after `waitMs`. */
function askUdp(port: number, bytes: Buffer, options: { localAddress?: string; waitMs?: number } = {}): Promise<DecodedPacket | null> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      resolve(null);
    }, options.waitMs ?? 3_000);
    socket.on('message', (message) => {
      clearTimeout(timer);
      socket.close();
      resolve(dnsPacket.decode(message));
    });
    socket.on('error', reject);
    socket.bind(0, options.localAddress ?? '127.0.0.1', () => socket.send(bytes, port, '127.0.0.1'));
  });
}

function frame(bytes: Buffer): Buffer {
  const out = Buffer.alloc(2 + bytes.length);
  out.writeUInt16BE(bytes.length, 0);
  bytes.copy(out, 2);
  return out;
}

/** Writes `payload` on one TCP connection and collects `expected` framed answers. */
function askTcp(port: number, payload: Buffer, expected: number): Promise<DecodedPacket[]> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const answers: DecodedPacket[] = [];
    let buffered = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`only ${answers.length} of ${expected} TCP answers`));
    }, 3_000);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        answers.push(dnsPacket.decode(buffered.subarray(2, 2 + buffered.readUInt16BE(0))));
        buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
      }
      if (answers.length >= expected) {
        clearTimeout(timer);
        socket.end();
        resolve(answers);
      }
    });
    socket.on('error', reject);
    socket.write(payload);
  });
}

function addressesOf(answer: DecodedPacket | null): string[] {
  return (answer?.answers ?? []).filter((a): a is Answer & { data: string } => a.type === 'A' || a.type === 'AAAA').map((a) => a.data);
}

describe('DNS proxy against a stub upstream', { timeout: 30_000 }, () => {
  const holder: { active: CompiledPolicy | null } = { active: POLICY };
  const metrics = new NodeMetrics('dns-test');
  let primary: StubDns;
  let secondary: StubDns;
  let dataplane: Dataplane;
  let port: number;

  before(async () => {
    primary = await startStubDns(RECORDS);
    secondary = await startStubDns(RECORDS);
    dataplane = new Dataplane({
      enforcement: holder,
      logger: pino({ level: 'silent' }),
      metrics,
      dns: { bind: { host: '127.0.0.1', port: 0 }, upstreams: [primary.address, secondary.address] },
      proxy: null,
      ownAddresses: [],
      upstreamTryTimeoutMs: TRY_TIMEOUT_MS,
    });
    const addresses = await dataplane.start();
    assert.ok(addresses.dns);
    assert.equal(addresses.dns.udp.port, addresses.dns.tcp.port, 'port 0 finds one port for UDP and TCP');
    port = addresses.dns.udp.port;
  });

  after(async () => {
    await dataplane.stop();
    await primary.close();
    await secondary.close();
  });

  it('forwards an allowed query and returns the upstream answer under the client ID; the answer enters the allowlist', async () => {
    const q = query('WWW.allowed.test');
    const answer = await askUdp(port, q.bytes);
    assert.ok(answer);
    assert.equal(answer.id, q.id);
    assert.equal(rcodeOf(answer), RCODE.NOERROR);
    assert.deepEqual(addressesOf(answer), ['192.0.2.10']);
    await askUdp(port, query('www.allowed.test', 'AAAA').bytes);
    const alias = await askUdp(port, query('alias.allowed.test').bytes);
    assert.deepEqual(addressesOf(alias), ['192.0.2.10']);
    const cache = dataplane.dnsCacheView().entries.map((e) => ({ hostname: e.hostname, group: e.source_group, ips: e.ips }));
    assert.deepEqual(cache, [
      { hostname: 'alias.allowed.test', group: 'lab', ips: ['192.0.2.10'] },
      { hostname: 'www.allowed.test', group: 'lab', ips: ['192.0.2.10', '2001:db8::10'] },
    ]);
    assert.equal(dataplane.allowlist.has('lab', 'www.allowed.test', '192.0.2.10'), true);
  });

  it('answers NXDOMAIN for a denied name without asking upstream, echoing the question, and records a finding', async () => {
    const before = primary.received.udp + secondary.received.udp;
    const q = query('blocked.test', 'A', { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0, options: [] } as unknown as Answer] });
    const answer = await askUdp(port, q.bytes);
    assert.ok(answer);
    assert.equal(answer.id, q.id);
    assert.equal(rcodeOf(answer), RCODE.NXDOMAIN);
    assert.equal(answer.flag_rd, true);
    assert.equal(answer.flag_ra, true);
    assert.deepEqual(answer.questions, [{ type: 'A', name: 'blocked.test', class: 'IN' }]);
    assert.equal(answer.additionals?.[0]?.type, 'OPT', 'EDNS answered with EDNS');
    const ads = await askUdp(port, query('tracker.ads.allowed.test').bytes);
    assert.equal(ads && rcodeOf(ads), RCODE.NXDOMAIN, 'a deny rule ahead of the allow');
    assert.equal(primary.received.udp + secondary.received.udp, before, 'denied names never reach the upstream');
    const findings = dataplane.findingsView(new URLSearchParams('finding_type=dns&source_group=lab')).findings;
    const blocked = findings.find((f) => f.hostname === 'blocked.test');
    assert.equal(blocked?.finding, 'deny');
    assert.equal(blocked?.count, 1);
    assert.equal(findings.find((f) => f.hostname === 'tracker.ads.allowed.test')?.rule_id, 'block-ads');
  });

  it('forwards an audit-mode deny and records an audit finding', async () => {
    const answer = await askUdp(port, query('blocked.test').bytes, { localAddress: '127.0.0.2' });
    assert.deepEqual(addressesOf(answer), ['192.0.2.66']);
    const audit = dataplane.findingsView(new URLSearchParams('source_group=audit-lab')).findings;
    assert.equal(audit.length, 1);
    assert.equal(audit[0]?.finding, 'audit');
    assert.equal(audit[0]?.last_client_ip, '127.0.0.2');
  });

  it('answers pipelined TCP queries on one connection, survives a garbage frame, and forwards over TCP', async () => {
    const tcpBefore = primary.received.tcp;
    const a = query('www.allowed.test');
    const b = query('blocked.test');
    const c = query('www.allowed.test', 'AAAA');
    const garbage = frame(Buffer.from('definitely not a DNS message'));
    const answers = await askTcp(port, Buffer.concat([frame(a.bytes), frame(b.bytes), garbage, frame(c.bytes)]), 3);
    const byId = new Map(answers.map((x) => [x.id, x]));
    assert.deepEqual(addressesOf(byId.get(a.id) ?? null), ['192.0.2.10']);
    assert.equal(rcodeOf(byId.get(b.id) as DecodedPacket), RCODE.NXDOMAIN);
    assert.deepEqual(addressesOf(byId.get(c.id) ?? null), ['2001:db8::10']);
    assert.equal(primary.received.tcp - tcpBefore, 2, 'TCP queries go upstream over TCP');
  });

  it('drops malformed datagrams without answering, counts them, and keeps serving', async () => {
    const malformedBefore = dataplane.statsView().dns?.queries.malformed ?? 0;
    const response = dnsPacket.encode({ type: 'response', id: 9, questions: [{ type: 'A', name: 'www.allowed.test' }] });
    const truncated = query('www.allowed.test').bytes.subarray(0, 20);
    for (const bytes of [Buffer.from('GET / HTTP/1.1\r\n\r\n'), response, truncated, Buffer.alloc(3), Buffer.alloc(12, 0xff)]) {
      assert.equal(await askUdp(port, bytes, { waitMs: SILENCE_MS }), null, `no answer to ${bytes.toString('hex').slice(0, 24)}`);
    }
    assert.equal((dataplane.statsView().dns?.queries.malformed ?? 0) - malformedBefore, 5);
    assert.deepEqual(addressesOf(await askUdp(port, query('www.allowed.test').bytes)), ['192.0.2.10']);
  });

  it('fails over to the second upstream when the first times out, and answers SERVFAIL when all do', async () => {
    primary.mode = 'silent';
    try {
      const started = performance.now();
      const answer = await askUdp(port, query('www.allowed.test').bytes);
      const elapsed = performance.now() - started;
      assert.deepEqual(addressesOf(answer), ['192.0.2.10']);
      assert.ok(elapsed >= TRY_TIMEOUT_MS - 20, `answered after ${elapsed} ms, after the first try timed out`);
      secondary.mode = 'silent';
      const failed = await askUdp(port, query('www.allowed.test').bytes);
      assert.equal(failed && rcodeOf(failed), RCODE.SERVFAIL);
      assert.ok((dataplane.statsView().dns?.upstream.timeouts ?? 0) >= 3);
    } finally {
      primary.mode = 'answer';
      secondary.mode = 'answer';
    }
  });

  it('also fails over when an upstream answers SERVFAIL', async () => {
    primary.mode = 'servfail';
    try {
      assert.deepEqual(addressesOf(await askUdp(port, query('www.allowed.test').bytes)), ['192.0.2.10']);
    } finally {
      primary.mode = 'answer';
    }
  });

  it('drops replies with a wrong ID or for another question and waits for the genuine one', async () => {
    primary.mode = 'spoof-first';
    const droppedBefore = dataplane.statsView().dns?.upstream.replies_dropped ?? 0;
    try {
      assert.deepEqual(addressesOf(await askUdp(port, query('www.allowed.test').bytes)), ['192.0.2.10']);
      assert.equal((dataplane.statsView().dns?.upstream.replies_dropped ?? 0) - droppedBefore, 2);
    } finally {
      primary.mode = 'answer';
    }
  });

  it('drops a reply with a pending ID that arrives on another of the upstream sockets, and waits for the one sent to the asking socket', async () => {
    // Every socket of the primary has asked once (they are used in turn), so the stub knows their ports.
    for (let i = 0; i < DNS_UPSTREAM_SOCKETS_PER_UPSTREAM; i++) assert.deepEqual(addressesOf(await askUdp(port, query('www.allowed.test').bytes)), ['192.0.2.10']);
    primary.mode = 'other-ports-first';
    const droppedBefore = dataplane.statsView().dns?.upstream.replies_dropped ?? 0;
    try {
      assert.deepEqual(addressesOf(await askUdp(port, query('www.allowed.test').bytes)), ['192.0.2.10'], 'not the forged address sent to the other sockets');
      assert.equal((dataplane.statsView().dns?.upstream.replies_dropped ?? 0) - droppedBefore, DNS_UPSTREAM_SOCKETS_PER_UPSTREAM - 1);
    } finally {
      primary.mode = 'answer';
    }
  });

  it('answers SERVFAIL while no policy is active', async () => {
    holder.active = null;
    try {
      const answer = await askUdp(port, query('www.allowed.test').bytes);
      assert.equal(answer && rcodeOf(answer), RCODE.SERVFAIL);
    } finally {
      holder.active = POLICY;
    }
  });

  it('exports counters by result and a latency histogram; reports readiness', async () => {
    const text = await metrics.render();
    assert.match(text, /neuwerk_dns_queries_total\{result="denied",node_id="dns-test"\} [1-9]/);
    assert.match(text, /neuwerk_dns_queries_total\{result="malformed",node_id="dns-test"\} 6/, "5 datagrams and 1 TCP frame");
    assert.match(text, /neuwerk_dns_query_duration_seconds_count\{[^}]*result="allowed"[^}]*\} [1-9]/);
    // Every answered or dropped query is timed (no sampling): the histogram counts equal the counters.
    for (const result of ['allowed', 'denied', 'servfail', 'malformed']) {
      const counted = new RegExp(`neuwerk_dns_queries_total\\{result="${result}"[^}]*\\} (\\d+)`).exec(text)?.[1];
      const timed = new RegExp(`neuwerk_dns_query_duration_seconds_count\\{[^}]*result="${result}"[^}]*\\} (\\d+)`).exec(text)?.[1];
      assert.ok(counted !== undefined && Number(counted) > 0, `${result} queries were counted`);
      assert.equal(timed, counted, `${result}: timed as often as counted`);
    }
    assert.match(text, /neuwerk_audit_findings_total\{type="dns",finding="audit",node_id="dns-test"\} 1/);
    assert.deepEqual(dataplane.dnsReadiness(), { ok: true });
    const stats = dataplane.statsView();
    assert.equal(stats.dataplane.policy_active, true);
    assert.ok((stats.dns?.queries.allowed ?? 0) >= 5);
  });
});
