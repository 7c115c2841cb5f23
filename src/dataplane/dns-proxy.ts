/**
 * The policy-aware DNS proxy (DESIGN §8), on UDP and TCP at the same address.
 *
 * Per query: parse with dns-packet (`classifyQuery`); a message that is not a decodable,
 * canonical query is dropped and counted (`malformed`, never answered); opcodes other than QUERY
 * get NOTIMP and a question count other than one FORMERR (`unsupported`). Then decide by client IP
 * and qname — first the dynamic denylist (`DenylistIndex`: a denylisted client or qname gets
 * NXDOMAIN with EDE "Blocked" `denylisted: ...` and a `dns` finding, result `denied`, even before a
 * policy is active), then `decideDns`:
 * - no policy active yet -> SERVFAIL (result `servfail`): a transient state, so stub resolvers
 *   retry or try their next server rather than caching a refusal (readiness `policy_ready` is
 *   false meanwhile);
 * - enforced deny -> NXDOMAIN echoing the question, RD echoed, RA set, plus an Extended DNS Error
 *   "Blocked" with the reason when the client speaks EDNS, and a `dns` finding (`denied`);
 * - audit-mode deny -> forwarded like an allow, plus a finding (`audit`);
 * - allow -> forwarded (`DnsUpstreamClient`: upstreams in order, per-try timeout, fresh random
 *   IDs, validated replies); no valid reply -> SERVFAIL (`servfail`); else the reply goes back
 *   byte for byte except its ID (the client's), and its A/AAAA answers for the qname (CNAME chain
 *   followed) enter the dynamic allowlist under the deciding source group (`allowed`).
 *
 * UDP queries are forwarded over UDP (a truncated reply reaches the client, which retries over
 * TCP), TCP queries over TCP. TCP connections use 2-byte length framing, may pipeline (answers
 * are written as they complete, in any order, RFC 7766 §6.2.1.1), are closed after
 * DNS_TCP_IDLE_TIMEOUT_MS without traffic, and stop being read while
 * DNS_TCP_MAX_INFLIGHT_PER_CONNECTION queries are unanswered.
 */
import { createSocket, type Socket as UdpSocket, type SocketOptions } from 'node:dgram';
import { lookup as dnsLookup } from 'node:dns';
import { createServer, isIP, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { formatHostPort, type HostPort } from '../config/address.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { NodeMetrics } from '../metrics/registry.js';
import { bindError, closeServer } from '../net/listen.js';
import { decideDns, type CompiledPolicy, type Decision } from '../policy/index.js';
import { normalizeHostname } from '../policy/hostname.js';
import type { DynamicAllowlist } from './allowlist.js';
import { buildAnswerFromQuery, buildResponse, classifyQuery, EDE, RCODE, replyAddresses, type ParsedQuery } from './dns-messages.js';
import type { DnsUpstreamClient, DnsUpstreamStats, ExchangeOutcome } from './dns-upstream.js';
import { DNS_UDP_RECEIVE_BUFFER_BYTES } from './dns-upstream.js';
import type { DenylistIndex } from './denylist.js';
import type { FindingsStore } from './findings.js';

/** A TCP connection with no traffic for this long is closed. */
export const DNS_TCP_IDLE_TIMEOUT_MS = 10_000;
/** Concurrent TCP client connections accepted; more are refused by the listener. */
export const DNS_TCP_MAX_CONNECTIONS = 1_024;
/** Unanswered queries per TCP connection before the proxy stops reading from it. */
export const DNS_TCP_MAX_INFLIGHT_PER_CONNECTION = 64;
/** Attempts to find a port free on both UDP and TCP when binding port 0. */
export const DNS_BIND_ATTEMPTS_MAX = 8;

/** The final result of a query, the label of `neuwerk_dns_queries_total`. */
export type DnsResult = 'allowed' | 'audit' | 'denied' | 'servfail' | 'malformed' | 'unsupported';

export const DNS_RESULTS: readonly DnsResult[] = ['allowed', 'audit', 'denied', 'servfail', 'malformed', 'unsupported'];

/** Where the proxy reads the active policy (`PolicyEnforcement` satisfies it). */
export interface PolicySource {
  readonly active: CompiledPolicy | null;
}

/** Options of a `DnsProxy`. */
export interface DnsProxyOptions {
  /** UDP and TCP listen address; port 0 picks one port free on both. */
  readonly bind: HostPort;
  /** Where `bind` came from, as a listen error names it (default `--dns-bind`). */
  readonly bindSetting?: string;
  /** Started by the caller and shared with the forward proxy's resolver; not closed by `stop`. */
  readonly upstream: DnsUpstreamClient;
  readonly enforcement: PolicySource;
  readonly allowlist: DynamicAllowlist;
  readonly findings: FindingsStore;
  /** The dynamic denylist, checked ahead of the policy (absent: none). */
  readonly denylist?: DenylistIndex;
  readonly logger: Logger;
  readonly metrics?: NodeMetrics;
  readonly tcpIdleTimeoutMs?: number;
  readonly tcpMaxConnections?: number;
  readonly tcpMaxInflightPerConnection?: number;
}

/** The bound addresses (equal ports unless port 0 could not find one port free on both). */
export interface DnsProxyAddresses {
  readonly udp: HostPort;
  readonly tcp: HostPort;
}

/** The `dns` section of `GET /api/v1/stats`. */
export interface DnsProxyStats {
  readonly listening: { readonly udp: string; readonly tcp: string } | null;
  readonly queries: Record<DnsResult, number>;
  readonly tcp_connections: number;
  readonly upstreams: string[];
  readonly upstream: DnsUpstreamStats;
}

/** What `DnsProxy.decide` made of a query: the proxy's own answer, or forward it. */
type QueryStep = { readonly kind: 'own'; readonly result: DnsResult; readonly response: Buffer } | { readonly kind: 'forward'; readonly decision: Decision };

interface ResultSinks {
  readonly inc: () => void;
  readonly observe: (seconds: number) => void;
}

/**
 * Where answers go: `deliver` is called once per query with the answer (null: none) and the
 * client's address and port. One per UDP socket, so a UDP query costs no closure of its own unless
 * it is forwarded (TCP queries and `answer` use a sink per query).
 */
interface AnswerSink {
  deliver(response: Buffer | null, clientIp: string, clientPort: number): void;
}

/** The address `literalAddressLookup` last found to be an IP literal (replies mostly go to a few clients). */
let lastLiteralAddress = '';

/**
 * dgram's address lookup: replies always go to the address a query came from, an IP literal, so
 * the default `dns.lookup` (one deferred callback per datagram) is skipped for IP literals; a
 * hostname (a bind host such as `localhost`) still goes through `dns.lookup`.
 */
function literalAddressLookup(address: string, family: number, callback: (err: Error | null, address: string, family: number) => void): void {
  if (address === lastLiteralAddress) {
    callback(null, address, family);
  } else if (isIP(address) !== 0) {
    lastLiteralAddress = address;
    callback(null, address, family);
  } else {
    dnsLookup(address, family, (err, resolved, resolvedFamily) => callback(err, resolved, resolvedFamily));
  }
}

function bindUdp(socket: UdpSocket, address: HostPort): Promise<number> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address: address.host, port: address.port, exclusive: true }, () => {
      socket.off('error', reject);
      resolve(socket.address().port);
    });
  });
}

function listenTcp(server: Server, address: HostPort): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: address.host, port: address.port, exclusive: true }, () => {
      server.off('error', reject);
      const bound = server.address();
      resolve(bound !== null && typeof bound === 'object' ? bound.port : address.port);
    });
  });
}

/** The DNS proxy; see the module comment for the per-query contract. */
export class DnsProxy {
  private udp: UdpSocket | null = null;
  private tcp: Server | null = null;
  private addresses: DnsProxyAddresses | null = null;
  private readonly connections = new Set<Socket>();
  private readonly counts: Record<DnsResult, number> = { allowed: 0, audit: 0, denied: 0, servfail: 0, malformed: 0, unsupported: 0 };
  private readonly sinks: Record<DnsResult, ResultSinks>;
  /** Whether query latencies are observed (a metrics registry was given); else no clock is read per query. */
  private readonly timed: boolean;
  private readonly idleMs: number;
  private readonly maxInflight: number;
  private stopped = false;

  constructor(private readonly options: DnsProxyOptions) {
    this.idleMs = options.tcpIdleTimeoutMs ?? DNS_TCP_IDLE_TIMEOUT_MS;
    this.maxInflight = options.tcpMaxInflightPerConnection ?? DNS_TCP_MAX_INFLIGHT_PER_CONNECTION;
    const sinks = {} as Record<DnsResult, ResultSinks>;
    for (const result of DNS_RESULTS) {
      const counter = options.metrics?.dnsQueries.labels(result);
      // Every result has a sample from the start (0), so a rate() alert sees 0, not "no data".
      counter?.inc(0);
      const histogram = options.metrics?.dnsQueryLatency.labels(result);
      sinks[result] = {
        inc: counter === undefined ? () => undefined : () => counter.inc(),
        observe: histogram === undefined ? () => undefined : (seconds) => histogram.observe(seconds),
      };
    }
    this.sinks = sinks;
    this.timed = options.metrics !== undefined;
  }

  /**
   * Binds UDP and TCP. With port 0, retries until one port is free on both (up to
   * DNS_BIND_ATTEMPTS_MAX), else accepts different ports. Resolves with the bound addresses.
   * @throws NeuwerkError NW_ERR_ADDRESS_IN_USE / NW_ERR_LISTEN_FAILED naming `bindSetting`.
   */
  async start(): Promise<DnsProxyAddresses> {
    const { bind } = this.options;
    const family = isIP(bind.host) === 6 ? 'udp6' : 'udp4';
    for (let attempt = 1; ; attempt++) {
      const udp = createSocket({ type: family, recvBufferSize: DNS_UDP_RECEIVE_BUFFER_BYTES, lookup: literalAddressLookup as unknown as SocketOptions['lookup'] });
      let udpPort: number;
      try {
        udpPort = await bindUdp(udp, bind);
      } catch (err) {
        udp.close();
        throw bindError(err as NodeJS.ErrnoException, bind, this.options.bindSetting ?? '--dns-bind', ' (UDP)');
      }
      const tcp = createServer({ allowHalfOpen: true }, (socket) => this.onTcpConnection(socket));
      tcp.maxConnections = this.options.tcpMaxConnections ?? DNS_TCP_MAX_CONNECTIONS;
      try {
        const tcpPort = await listenTcp(tcp, { host: bind.host, port: bind.port === 0 && attempt < DNS_BIND_ATTEMPTS_MAX ? udpPort : bind.port });
        this.udp = udp;
        this.tcp = tcp;
        this.addresses = { udp: { host: bind.host, port: udpPort }, tcp: { host: bind.host, port: tcpPort } };
        break;
      } catch (err) {
        udp.close();
        if (bind.port !== 0 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw bindError(err as NodeJS.ErrnoException, bind, this.options.bindSetting ?? '--dns-bind', ' (TCP)');
      }
    }
    const udp = this.udp;
    const udpSink: AnswerSink = {
      deliver: (response, clientIp, clientPort) => {
        if (response !== null && !this.stopped) udp.send(response, clientPort, clientIp);
      },
    };
    // A datagram's buffer is the proxy's own: its answer may be written over it (`reuseMessage`).
    udp.on('message', (message, remote) => this.handle(message, remote.address, remote.port, 'udp', udpSink, true));
    udp.on('error', (err) => this.options.logger.warn({ err: describeError(err) }, 'DNS proxy UDP socket error'));
    this.tcp?.on('error', (err) => this.options.logger.warn({ err: describeError(err) }, 'DNS proxy TCP listener error'));
    return this.addresses;
  }

  /** Closes both listeners and every TCP connection. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const socket of this.connections) socket.destroy();
    const udp = this.udp;
    if (udp !== null) await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (this.tcp !== null) await closeServer(this.tcp, 0);
  }

  /** Readiness `dns_ready`: both listeners are bound and the proxy is not stopped. */
  readiness(): { ok: boolean; detail?: string } {
    if (this.stopped) return { ok: false, detail: 'the DNS proxy is stopped' };
    if (this.addresses === null) return { ok: false, detail: 'the DNS proxy is not listening yet' };
    return { ok: true };
  }

  /** The `dns` section of `GET /api/v1/stats`. */
  stats(): DnsProxyStats {
    return {
      listening: this.addresses === null ? null : { udp: formatHostPort(this.addresses.udp), tcp: formatHostPort(this.addresses.tcp) },
      queries: { ...this.counts },
      tcp_connections: this.connections.size,
      upstreams: this.options.upstream.upstreams.map((u) => u.label),
      upstream: this.options.upstream.stats(),
    };
  }

  /**
   * Answers one query from `clientIp`; resolves with the answer to send, or null to drop the
   * message. Never rejects. Exposed for tests and the in-process benchmark.
   */
  answer(raw: Buffer, clientIp: string, transport: 'udp' | 'tcp'): Promise<Buffer | null> {
    return new Promise((resolve) => this.handle(raw, clientIp, 0, transport, { deliver: resolve }));
  }

  /**
   * The per-query path behind `answer`, with a sink instead of a promise: `sink.deliver` is called
   * exactly once — synchronously for the proxy's own answers, later for forwarded ones — with
   * the answer or null. Never throws: a bug is logged and the message dropped.
   */
  private handle(raw: Buffer, clientIp: string, clientPort: number, transport: 'udp' | 'tcp', sink: AnswerSink, reuseMessage = false): void {
    const started = this.timed ? performance.now() : 0;
    let result: DnsResult = 'servfail';
    let response: Buffer | null = null;
    try {
      const classified = classifyQuery(raw);
      if (classified.kind === 'malformed') {
        result = 'malformed';
      } else if (classified.kind === 'unsupported') {
        try {
          response = buildResponse(classified.packet, classified.rcode);
          result = 'unsupported';
        } catch {
          result = 'malformed'; // its questions cannot even be echoed: drop it like garbage
        }
      } else {
        const query = classified.query;
        const step = this.decide(raw, query, clientIp, reuseMessage);
        if (step.kind === 'forward') {
          const { decision } = step;
          this.options.upstream.exchangeWith(raw, transport, (outcome) => this.onUpstream(raw, query, decision, outcome, started, clientIp, clientPort, sink));
          return;
        }
        result = step.result;
        response = step.response;
      }
    } catch (err) {
      // A bug, not a client's fault: keep serving, answer nothing for this message.
      this.options.logger.error({ err: describeError(err) }, 'DNS proxy failed to handle a query');
      result = 'servfail';
      response = null;
    }
    this.complete(result, started, response, clientIp, clientPort, sink);
  }

  /**
   * The proxy's own answer to a query (denylisted, no policy, denied), or the decision to forward
   * it with; records the finding of a deny or audit-mode deny. Own answers are the
   * client's header and question patched (`buildAnswerFromQuery`), never an encoded packet.
   */
  private decide(raw: Buffer, query: ParsedQuery, clientIp: string, reuseMessage: boolean): QueryStep {
    const { question } = query;
    const denied = this.options.denylist?.check(clientIp, question.name) ?? null;
    if (denied !== null) {
      this.options.findings.record({
        type: 'dns',
        sourceGroup: null,
        hostname: normalizeHostname(question.name),
        destination: null,
        port: null,
        finding: 'deny',
        ruleId: null,
        reason: denied.reason,
        clientIp,
      });
      return { kind: 'own', result: 'denied', response: buildAnswerFromQuery(raw, query, RCODE.NXDOMAIN, { code: EDE.BLOCKED, text: denied.reason }, reuseMessage) };
    }
    const policy = this.options.enforcement.active;
    if (policy === null) {
      return { kind: 'own', result: 'servfail', response: buildAnswerFromQuery(raw, query, RCODE.SERVFAIL, { code: EDE.NOT_READY, text: 'no policy is active on this node yet' }, reuseMessage) };
    }
    const decision = decideDns(policy, { srcIp: clientIp, qname: question.name });
    if (decision.finding !== null) {
      this.options.findings.record({
        type: 'dns',
        sourceGroup: decision.sourceGroup,
        hostname: normalizeHostname(question.name),
        destination: null,
        port: null,
        finding: decision.finding,
        ruleId: decision.ruleId,
        reason: decision.reason,
        clientIp,
      });
    }
    if (decision.enforced === 'deny') {
      return { kind: 'own', result: 'denied', response: buildAnswerFromQuery(raw, query, RCODE.NXDOMAIN, { code: EDE.BLOCKED, text: decision.reason }, reuseMessage) };
    }
    return { kind: 'forward', decision };
  }

  private onUpstream(
    raw: Buffer,
    query: ParsedQuery,
    decision: Decision,
    outcome: ExchangeOutcome,
    started: number,
    clientIp: string,
    clientPort: number,
    sink: AnswerSink,
  ): void {
    let result: DnsResult = 'servfail';
    let response: Buffer | null = null;
    try {
      const { question } = query;
      if (!outcome.ok) {
        this.options.logger.debug({ qname: question.name, reason: outcome.reason }, 'DNS upstreams failed; answering SERVFAIL');
        response = buildAnswerFromQuery(raw, query, RCODE.SERVFAIL, { code: EDE.NO_REACHABLE_AUTHORITY, text: 'no upstream answered' });
      } else {
        if (decision.sourceGroup !== null && outcome.rcode === RCODE.NOERROR) {
          const addresses = replyAddresses(outcome.reply, question.name);
          if (addresses.length > 0) this.options.allowlist.insert(decision.sourceGroup, question.name, addresses);
        }
        outcome.reply[0] = raw[0] as number; // the client's ID back in place of ours
        outcome.reply[1] = raw[1] as number;
        result = decision.finding === 'audit' ? 'audit' : 'allowed';
        response = outcome.reply;
      }
    } catch (err) {
      this.options.logger.error({ err: describeError(err) }, 'DNS proxy failed to handle a query');
      result = 'servfail';
      response = null;
    }
    this.complete(result, started, response, clientIp, clientPort, sink);
  }

  /** Counts the query's result, observes its latency (with metrics), and hands the answer over. */
  private complete(result: DnsResult, started: number, response: Buffer | null, clientIp: string, clientPort: number, sink: AnswerSink): void {
    this.counts[result]++;
    const sinks = this.sinks[result];
    sinks.inc();
    if (this.timed) sinks.observe((performance.now() - started) / 1000);
    sink.deliver(response, clientIp, clientPort);
  }

  private onTcpConnection(socket: Socket): void {
    if (this.stopped) {
      socket.destroy();
      return;
    }
    this.connections.add(socket);
    const clientIp = socket.remoteAddress ?? '';
    let buffered: Buffer = Buffer.alloc(0);
    let inflight = 0;
    let ended = false;
    let paused = false;
    socket.setNoDelay(true);
    socket.setTimeout(this.idleMs, () => socket.destroy());
    socket.on('error', () => undefined); // 'close' follows; nothing to report per client
    socket.on('close', () => this.connections.delete(socket));
    socket.on('end', () => {
      ended = true;
      if (inflight === 0) socket.end();
    });
    // Frames are answered while fewer than maxInflight are open; the rest stay buffered and the
    // socket is paused, so one connection cannot queue unbounded work.
    const drain = (): void => {
      while (inflight < this.maxInflight && buffered.length >= 2) {
        const length = buffered.readUInt16BE(0);
        if (buffered.length < 2 + length) break;
        const message = buffered.subarray(2, 2 + length);
        buffered = buffered.subarray(2 + length);
        inflight++;
        void this.answer(message, clientIp, 'tcp').then(settle); // settled later, never inside this loop
      }
      const full = inflight >= this.maxInflight;
      if (full && !paused) socket.pause();
      if (!full && paused && !socket.destroyed) socket.resume();
      paused = full;
    };
    const settle = (response: Buffer | null): void => {
      inflight--;
      if (response !== null && !socket.destroyed && socket.writable) {
        const frame = Buffer.allocUnsafe(2 + response.length);
        frame.writeUInt16BE(response.length, 0);
        response.copy(frame, 2);
        socket.write(frame);
      }
      if (!socket.destroyed) drain();
      if (ended && inflight === 0 && buffered.length < 2 && !socket.destroyed) socket.end();
    };
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      drain();
    });
  }
}
