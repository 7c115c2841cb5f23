/**
 * Servers the dataplane tests and the standalone dataplane benchmark start in-process on
 * 127.0.0.1 (port 0): a tiny authoritative DNS responder on UDP and TCP with scriptable
 * misbehaviour, an HTTP origin, a TCP echo server and a TLS server. Every server closes with
 * `close()`, which also destroys its open connections.
 */
import { createSocket } from 'node:dgram';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect as connectTcp, createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Question } from 'dns-packet';
import { pino } from 'pino';
import { generateSelfSignedTls } from '../../src/api/tls.js';
import type { HostPort } from '../../src/config/address.js';
import { Dataplane } from '../../src/dataplane/dataplane.js';
import type { ForwardProxy } from '../../src/dataplane/forward-proxy.js';
import { compilePolicy, parsePolicy } from '../../src/policy/index.js';

/** Records of one name in the stub DNS zone. */
export interface StubDnsRecord {
  readonly A?: readonly string[];
  readonly AAAA?: readonly string[];
  /** Answer with a CNAME to this name first (its own records follow). */
  readonly cname?: string;
  readonly ttl?: number;
}

/**
 * How the stub answers: `answer` normally; `silent` never; `servfail` with SERVFAIL; `spoof-first`
 * sends a reply with a wrong ID and one for a different question before the right one;
 * `other-ports-first` (UDP) sends a reply with the right ID and question but a forged address to
 * every other port the same address has asked from before (a pending ID arriving on a socket that
 * did not send it), then the right reply to the port that asked OTHER_PORTS_DELAY_MS later.
 */
export type StubDnsMode = 'answer' | 'silent' | 'servfail' | 'spoof-first' | 'other-ports-first';

/** A running stub DNS server. */
export interface StubDns {
  readonly address: HostPort;
  mode: StubDnsMode;
  /** Queries received (UDP and TCP). */
  readonly received: { udp: number; tcp: number };
  close(): Promise<void>;
}

function answersFor(records: Readonly<Record<string, StubDnsRecord>>, question: Question): Answer[] | null {
  const name = question.name.toLowerCase().replace(/\.$/, '');
  const record = records[name];
  if (record === undefined) return null;
  const ttl = record.ttl ?? 300;
  const answers: Answer[] = [];
  let owner = name;
  let current: StubDnsRecord | undefined = record;
  if (record.cname !== undefined) {
    answers.push({ type: 'CNAME', name: owner, ttl, class: 'IN', data: record.cname });
    owner = record.cname;
    current = records[record.cname];
  }
  if (current === undefined) return answers;
  if (question.type === 'A') for (const ip of current.A ?? []) answers.push({ type: 'A', name: owner, ttl: current.ttl ?? ttl, class: 'IN', data: ip });
  if (question.type === 'AAAA') for (const ip of current.AAAA ?? []) answers.push({ type: 'AAAA', name: owner, ttl: current.ttl ?? ttl, class: 'IN', data: ip });
  return answers;
}

function reply(query: DecodedPacket, rcode: number, answers: Answer[], overrides: { id?: number; question?: Question } = {}): Buffer {
  return dnsPacket.encode({
    type: 'response',
    id: overrides.id ?? query.id ?? 0,
    flags: dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_AVAILABLE | ((query.flags ?? 0) & dnsPacket.RECURSION_DESIRED) | rcode,
    questions: overrides.question !== undefined ? [overrides.question] : (query.questions ?? []),
    answers,
  });
}

/** The replies the stub sends for one query (empty: silence). */
function repliesFor(stub: StubDns, records: Readonly<Record<string, StubDnsRecord>>, message: Buffer): Buffer[] {
  let query: DecodedPacket;
  try {
    query = dnsPacket.decode(message);
  } catch {
    return [];
  }
  const question = query.questions?.[0];
  if (question === undefined) return [];
  switch (stub.mode) {
    case 'silent':
      return [];
    case 'servfail':
      return [reply(query, 2, [])];
    case 'answer':
    case 'other-ports-first':
    case 'spoof-first': {
      const answers = answersFor(records, question);
      const genuine = answers === null ? reply(query, 3, []) : reply(query, 0, answers);
      if (stub.mode !== 'spoof-first') return [genuine];
      const spoofed = [{ type: 'A', name: question.name, ttl: 300, class: 'IN', data: '203.0.113.66' } as Answer];
      return [
        reply(query, 0, spoofed, { id: ((query.id ?? 0) + 1) & 0xffff }),
        reply(query, 0, spoofed, { question: { ...question, name: `spoofed.${question.name}` } }),
        genuine,
      ];
    }
  }
}

/** How long `other-ports-first` holds back the right reply after the forged ones. */
const OTHER_PORTS_DELAY_MS = 50;

/** A reply to `message` with its ID and question and the forged address 203.0.113.66; null when it does not decode. */
function forgedReply(message: Buffer): Buffer | null {
  let query: DecodedPacket;
  try {
    query = dnsPacket.decode(message);
  } catch {
    return null;
  }
  const question = query.questions?.[0];
  if (question === undefined) return null;
  return reply(query, 0, [{ type: 'A', name: question.name, ttl: 300, class: 'IN', data: '203.0.113.66' } as Answer]);
}

/** Tries of `startStubDns` to find a port free for both UDP and TCP. */
const STUB_DNS_BIND_ATTEMPTS = 20;

/**
 * Starts the stub DNS server for `records` (names lowercase, no trailing dot) on UDP and TCP. The
 * UDP port is picked by the system; when some TCP socket already holds that port number (busy
 * machines do), both are given up and another port is tried.
 */
export async function startStubDns(records: Readonly<Record<string, StubDnsRecord>>): Promise<StubDns> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await bindStubDns(records);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= STUB_DNS_BIND_ATTEMPTS) throw err;
    }
  }
}

async function bindStubDns(records: Readonly<Record<string, StubDnsRecord>>): Promise<StubDns> {
  const udp = createSocket('udp4');
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', () => resolve()));
  const port = udp.address().port;
  const tcpSockets = new Set<Socket>();
  const stub: StubDns = {
    address: { host: '127.0.0.1', port },
    mode: 'answer',
    received: { udp: 0, tcp: 0 },
    close: async () => {
      for (const socket of tcpSockets) socket.destroy();
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
  /** Ports each client address has sent UDP queries from (for `other-ports-first`). */
  const portsByAddress = new Map<string, Set<number>>();
  udp.on('message', (message, remote) => {
    stub.received.udp++;
    let ports = portsByAddress.get(remote.address);
    if (ports === undefined) {
      ports = new Set();
      portsByAddress.set(remote.address, ports);
    }
    ports.add(remote.port);
    if (stub.mode === 'other-ports-first') {
      const forged = forgedReply(message);
      if (forged !== null) for (const other of ports) if (other !== remote.port) udp.send(forged, other, remote.address);
      const genuine = repliesFor(stub, records, message);
      setTimeout(() => {
        for (const out of genuine) udp.send(out, remote.port, remote.address);
      }, OTHER_PORTS_DELAY_MS);
      return;
    }
    for (const out of repliesFor(stub, records, message)) udp.send(out, remote.port, remote.address);
  });
  const tcp = createTcpServer((socket) => {
    tcpSockets.add(socket);
    socket.on('close', () => tcpSockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const message = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
        buffered = buffered.subarray(2 + message.length);
        stub.received.tcp++;
        for (const out of repliesFor(stub, records, message)) {
          const frame = Buffer.alloc(2 + out.length);
          frame.writeUInt16BE(out.length, 0);
          out.copy(frame, 2);
          socket.write(frame);
        }
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', (err) => {
      udp.close();
      reject(err);
    });
    tcp.listen(port, '127.0.0.1', () => resolve());
  });
  return stub;
}

/** A running TCP-based test server. */
export interface TestServer {
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: () => number;
  close(): Promise<void>;
}

function track(server: Server): { sockets: Set<Socket>; accepted: () => number } {
  const sockets = new Set<Socket>();
  let accepted = 0;
  server.on('connection', (socket: Socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  return { sockets, accepted: () => accepted };
}

async function listenLocal(server: Server, tracked: { sockets: Set<Socket>; accepted: () => number }, port = 0, host = '127.0.0.1'): Promise<TestServer> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    accepted: tracked.accepted,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of tracked.sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** An HTTP origin answering `origin <method> <url> host=<Host>`; `/bytes/N` answers N bytes. */
export async function startHttpOrigin(port = 0): Promise<TestServer> {
  const server = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    const bytes = /^\/bytes\/(\d{1,9})$/.exec(req.url ?? '');
    if (bytes !== null) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': Number(bytes[1]) });
      res.end(Buffer.alloc(Number(bytes[1]), 0x61));
      return;
    }
    const body = `origin ${req.method} ${req.url} host=${req.headers.host ?? ''}`;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  server.keepAliveTimeout = 5_000;
  return listenLocal(server, track(server), port);
}

/** A TCP server that echoes every byte back (and half-closes after the client does). */
export async function startEchoServer(port = 0, host = '127.0.0.1'): Promise<TestServer> {
  const server = createTcpServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  return listenLocal(server, track(server), port, host);
}

/** A TLS server for `names` (self-signed): after the handshake it writes `tls-hello <servername>\n` and echoes. */
export async function startTlsOrigin(names: readonly string[]): Promise<TestServer & { readonly caPem: string }> {
  const material = generateSelfSignedTls(names[0] ?? 'localhost', names);
  const server = createTlsServer({ cert: material.certPem, key: material.keyPem }, (socket) => {
    socket.on('error', () => undefined);
    socket.write(`tls-hello ${socket.servername === false ? '' : (socket.servername ?? '')}\n`);
    socket.pipe(socket);
  });
  const tracked = { sockets: new Set<Socket>(), accepted: () => 0 };
  let accepted = 0;
  server.on('connection', (socket: Socket) => {
    accepted++;
    tracked.sockets.add(socket);
    socket.on('close', () => tracked.sockets.delete(socket));
  });
  tracked.accepted = () => accepted;
  const running = await listenLocal(server, tracked);
  return { ...running, caPem: material.caPem };
}

/** One HTTP/1.1 response read off a raw socket. */
export interface RawHttpResponse {
  readonly status: number;
  /** Header names lowercased. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/**
 * Reads consecutive HTTP/1.1 responses (Content-Length bodies, or until close) from a raw socket,
 * for keep-alive tests that must see exactly what the proxy wrote on one connection.
 */
export class HttpResponseReader {
  private buffered = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | null = null;

  private readonly onData = (chunk: Buffer): void => {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    this.wake?.();
  };

  constructor(readonly socket: Socket) {
    socket.on('data', this.onData);
    const end = (): void => {
      this.ended = true;
      this.wake?.();
    };
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', end);
  }

  /** Resolves when more bytes arrive, the connection ends, or `ms` pass. */
  private dataOrEnd(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
    });
  }

  /** Stops reading (before handing the socket to e.g. a TLS client); returns the bytes not yet consumed. */
  detach(): Buffer {
    this.socket.off('data', this.onData);
    return this.takeRest();
  }

  /** Waits until at least `minBytes` are buffered (or the connection ended), then takes them all. */
  async collect(minBytes: number, timeoutMs = 3_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buffered.length < minBytes && !this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      await this.dataOrEnd(left);
    }
    return this.takeRest();
  }

  /** Bytes received past the last response read (e.g. the first tunnel bytes). */
  takeRest(): Buffer {
    const rest = this.buffered;
    this.buffered = Buffer.alloc(0);
    return rest;
  }

  /** The next response; rejects after `timeoutMs` or when the connection ends first. */
  async next(timeoutMs = 3_000, expectBody = true): Promise<RawHttpResponse> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const headEnd = this.buffered.indexOf('\r\n\r\n');
      if (headEnd >= 0) {
        const lines = this.buffered.subarray(0, headEnd).toString('latin1').split('\r\n');
        const status = Number((lines[0] ?? '').split(' ')[1]);
        const headers: Record<string, string> = {};
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(':');
          if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
        }
        const length = headers['content-length'] !== undefined ? Number(headers['content-length']) : expectBody ? null : 0;
        const available = this.buffered.length - headEnd - 4;
        if (length !== null && available >= length) {
          const body = this.buffered.subarray(headEnd + 4, headEnd + 4 + length).toString();
          this.buffered = this.buffered.subarray(headEnd + 4 + length);
          return { status, headers, body };
        }
        if (length === null && this.ended) {
          const body = this.buffered.subarray(headEnd + 4).toString();
          this.buffered = Buffer.alloc(0);
          return { status, headers, body };
        }
      }
      if (this.ended) throw new Error(`connection ended before a complete response (${this.buffered.length} bytes buffered)`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('no complete response in time');
      await this.dataOrEnd(left);
    }
  }

  /** Resolves true once the connection has ended (within `timeoutMs`), else false. */
  async closed(timeoutMs = 3_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await this.dataOrEnd(left);
    }
    return true;
  }
}

/** Opens a connection to the proxy (optionally from `localAddress`). */
export function openProxyConnection(proxyPort: number, localAddress?: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connectTcp({ host: '127.0.0.1', port: proxyPort, ...(localAddress !== undefined ? { localAddress } : {}) });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** One absolute-form `GET url` through the proxy (optionally from `localAddress`) on its own connection. */
export async function proxyGet(proxyPort: number, url: string, localAddress?: string): Promise<RawHttpResponse> {
  const socket = await openProxyConnection(proxyPort, localAddress);
  try {
    const reader = new HttpResponseReader(socket);
    socket.write(`GET ${url} HTTP/1.1\r\nHost: ${new URL(url).host}\r\nConnection: close\r\n\r\n`);
    return await reader.next(5_000, false);
  } finally {
    socket.destroy();
  }
}

/** Sends `CONNECT authority` and reads the proxy's answer; on 200 the socket is the tunnel. */
export async function proxyConnect(proxyPort: number, authority: string, localAddress?: string): Promise<{ response: RawHttpResponse; socket: Socket; reader: HttpResponseReader }> {
  const socket = await openProxyConnection(proxyPort, localAddress);
  const reader = new HttpResponseReader(socket);
  socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  const response = await reader.next(5_000, false);
  return { response, socket, reader };
}

/** A PROXY protocol v1 line for TCP (`PROXY TCP4|TCP6 src dst sport dport\r\n`), as HAProxy's `send-proxy` writes it. */
export function proxyHeaderV1(sourceIp: string, destIp: string, sourcePort: number, destPort: number): Buffer {
  return Buffer.from(`PROXY ${sourceIp.includes(':') ? 'TCP6' : 'TCP4'} ${sourceIp} ${destIp} ${sourcePort} ${destPort}\r\n`, 'latin1');
}

/** The 16 bytes of an IPv6 address in text form (`::` and an IPv4 tail allowed); written independently of src/policy/ip.ts. */
function ipv6Bytes(text: string): Buffer {
  let t = text;
  let tail: number[] = [];
  const lastColon = t.lastIndexOf(':');
  if (t.slice(lastColon + 1).includes('.')) {
    const [a, b, c, d] = t.slice(lastColon + 1).split('.').map(Number) as [number, number, number, number];
    tail = [(a << 8) | b, (c << 8) | d];
    t = `${t.slice(0, lastColon + 1)}0:0`; // two placeholder groups, replaced below
  }
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  let groups: number[];
  if (t.includes('::')) {
    const [head, rest] = t.split('::').map(parse) as [number[], number[]];
    groups = [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest];
  } else {
    groups = parse(t);
  }
  if (tail.length > 0) groups = [...groups.slice(0, 6), ...tail];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

/**
 * A PROXY protocol v2 header (as HAProxy's `send-proxy-v2` writes it): `command` PROXY over
 * TCP/IPv4 or TCP/IPv6 with optional TLVs appended, or LOCAL with no addresses.
 */
export function proxyHeaderV2(
  header: { sourceIp: string; destIp: string; sourcePort: number; destPort: number } | 'local',
  tlvs: readonly { type: number; value: Uint8Array }[] = [],
): Buffer {
  const signature = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  const tlvBytes = tlvs.map((t) => Buffer.concat([Buffer.from([t.type, t.value.length >> 8, t.value.length & 0xff]), Buffer.from(t.value)]));
  if (header === 'local') {
    const body = Buffer.concat(tlvBytes);
    return Buffer.concat([signature, Buffer.from([0x20, 0x00, body.length >> 8, body.length & 0xff]), body]);
  }
  const v6 = header.sourceIp.includes(':');
  const address = (text: string): Buffer => (v6 ? ipv6Bytes(text) : Buffer.from(text.split('.').map(Number)));
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(header.sourcePort, 0);
  ports.writeUInt16BE(header.destPort, 2);
  const body = Buffer.concat([address(header.sourceIp), address(header.destIp), ports, ...tlvBytes]);
  return Buffer.concat([signature, Buffer.from([0x21, v6 ? 0x21 : 0x11, body.length >> 8, body.length & 0xff]), body]);
}

/** A forward proxy alone (no DNS proxy) on 127.0.0.1, allowing one hostname to loopback ports. */
export interface ProxyOnlyDataplane {
  readonly dataplane: Dataplane;
  readonly proxy: ForwardProxy;
  readonly proxyPort: number;
}

/**
 * Starts a `Dataplane` with only the forward proxy, whose policy lets clients on 127.0.0.0/8 reach
 * `hostname` (resolved through `resolverUpstreams`) on 127.0.0.1 at `ports`, and denies the rest.
 */
export async function startProxyOnlyDataplane(hostname: string, ports: readonly number[], resolverUpstreams: readonly HostPort[]): Promise<ProxyOnlyDataplane> {
  const policy = compilePolicy(
    parsePolicy({
      default_policy: 'deny',
      source_groups: [
        { id: 'lab', sources: { cidrs: ['127.0.0.0/8'] }, rules: [{ id: 'allowed-host', action: 'allow', match: { dns_hostname: { exact: [hostname] }, dst_cidrs: ['127.0.0.1/32'], dst_ports: [...ports] } }] },
      ],
    }),
  );
  const dataplane = new Dataplane({
    enforcement: { active: policy },
    logger: pino({ level: 'silent' }),
    dns: null,
    proxy: { bind: { host: '127.0.0.1', port: 0 } },
    resolverUpstreams: [...resolverUpstreams],
    ownAddresses: [],
  });
  const addresses = await dataplane.start();
  if (addresses.proxy === null) throw new Error('the forward proxy did not start');
  return { dataplane, proxy: dataplane.forwardProxy as ForwardProxy, proxyPort: addresses.proxy.port };
}
