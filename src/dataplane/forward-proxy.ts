/**
 * The policy-aware HTTP/1.1 forward proxy (DESIGN §8): `CONNECT host:port` tunnels and
 * absolute-form plain-HTTP requests (`GET http://host/path`) on keep-alive connections.
 *
 * ## Deciding a flow
 * 1. The target: an IP literal, or a hostname (validated, lowercased).
 * 2. Candidate addresses. An IP literal is its own single candidate, decided without a hostname
 *    (so only rules without `dns_hostname` — or the defaults — can allow it). For a hostname:
 *    the dynamic allowlist's live answers for it under the source group that decides the client's
 *    DNS for that name; otherwise a fresh lookup through the DNS upstreams (`HostnameResolver`).
 *    A fresh lookup is made only when the client's DNS policy would resolve the name, or when
 *    the policy allows the name without regard to its address — the proxy must not become a DNS
 *    channel for names the DNS proxy refuses. A destination IP is thus allowed for a hostname
 *    only when the hostname resolves to it.
 * 3. Each candidate (at most PROXY_MAX_CANDIDATE_IPS) is decided with `decideConnection` (client
 *    IP, hostname, candidate IP, port, and for plain HTTP the method, Host and path). Loopback,
 *    link-local (metadata), unspecified, multicast and the appliance's own addresses additionally
 *    need an allowing rule with `dst_ips`/`dst_cidrs` (`DestinationGuard`), in any mode.
 * 4. The proxy dials exactly a candidate it checked (never re-resolves); if the dial fails it tries
 *    the next allowed candidate (CONNECT only, at most PROXY_DIAL_ATTEMPTS_MAX).
 *
 * ## TLS tunnels (CONNECT to a port in `tlsPorts`)
 * The proxy answers 403 before the tunnel opens when no admissible SNI could make the flow allowed
 * (admissible: none, or equal to the CONNECT host). Otherwise it answers 200, reads the client's
 * ClientHello (at most TLS_PEEK_MAX_BYTES within `tlsPeekTimeoutMs`), and refuses (closes) the
 * tunnel when the SNI differs from the CONNECT host (no domain fronting; an IP-literal CONNECT
 * admits no SNI), when the hello is malformed or incomplete, or when the decision with the SNI
 * denies; `tls.sni` rules are decided with it. A client that sends nothing within the peek time
 * is decided without SNI (some protocols on TLS ports let the server speak first).
 *
 * ## Copying
 * A tunnel's upstream side reads into a buffer it owns (`UpstreamRelay`: no allocation per read
 * while the client keeps up); the client side is copied with three listeners shared by every tunnel
 * (`Tunnel`: the module's `onTunnel…` functions find their tunnel on the socket). Both
 * directions pause reading while the other socket's writes queue, and pass a half-close on (to a
 * socket that has read its own end already and has nothing queued, as a close: the same FIN without
 * a separate shutdown; `passEnd`). A plain-HTTP request without a body ends its upstream request at once; bodies stream both ways
 * with backpressure; upstream connections are kept alive in a pool (`Agent`, most recent first).
 *
 * ## Answers
 * Denylisted (the client IP, or the CONNECT/URL hostname or a parent domain of it, is in the
 * replicated `denylist` zone; checked before the policy, even before one is active): `403` with a
 * reason beginning `denylisted`, and a finding. Denied: `403` with a one-line reason in the body and in `X-Neuwerk-Reason`, and a finding
 * (audit-mode denies pass and leave a finding). Beyond `maxActiveFlowsPerGroup` flows of one
 * source group: `429` (the group is over its quota; other groups are unaffected). No policy yet:
 * `503`. Lookup or dial failures: `502`; upstream silent beyond the idle timeout: `504`.
 * Malformed requests: `400`, oversized headers: `431`, headers not complete within
 * `headerTimeoutMs` (slowloris): `408` and close.
 *
 * ## Client address
 * The socket's peer, except on a connection from a `proxyProtocolFrom` peer (a load balancer):
 * there the PROXY protocol header names it (`ProxyProtocolGate`), and a connection without a valid
 * header is closed before HTTP sees it.
 */
import { Agent, createServer, request as httpRequest, STATUS_CODES, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { connect, isIPv4, isIPv6, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { formatHostPort, type HostPort } from '../config/address.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { NodeMetrics } from '../metrics/registry.js';
import { closeServer, listen } from '../net/listen.js';
import { decideConnection, decideDns, type CompiledPolicy, type Decision, type HttpRequestInfo } from '../policy/index.js';
import { isValidHostname, normalizeHostname } from '../policy/hostname.js';
import { canonicalIp, type DynamicAllowlist } from './allowlist.js';
import { DestinationGuard, ruleNamesDestination } from './destination-guard.js';
import type { DenylistIndex } from './denylist.js';
import type { PolicySource } from './dns-proxy.js';
import type { FindingsStore, FindingType } from './findings.js';
import { ProxyProtocolGate, type ProxyProtocolStats } from './proxy-protocol-gate.js';
import { IdleSweep, sweepIntervalFor, type IdleEntry } from './idle-sweep.js';
import { RecencyList, type RecencyLinks } from './recency-list.js';
import { passEnd, UpstreamRelay } from './upstream-relay.js';
import type { HostnameResolver, ResolveOutcome } from './resolver.js';
import { parseClientHello, TLS_PEEK_MAX_BYTES, type ClientHelloResult } from './tls-sni.js';

/**
 * A tunnel (either side) or an upstream request with no traffic for this long is closed (a tunnel
 * by the idle sweep: within two sweep intervals after this long, see `IdleSweep`).
 */
export const PROXY_IDLE_TIMEOUT_MS = 300_000;
/** A request's headers must be complete within this long (slowloris bound). */
export const PROXY_HEADER_TIMEOUT_MS = 10_000;
/** An idle keep-alive client connection is closed after this long. */
export const PROXY_KEEPALIVE_TIMEOUT_MS = 30_000;
/** Dialling one destination address may take this long. */
export const PROXY_CONNECT_TIMEOUT_MS = 10_000;
/** A TLS client must send its ClientHello within this long after the tunnel opens. */
export const PROXY_TLS_PEEK_TIMEOUT_MS = 5_000;
/** Flows (tunnels and in-flight plain-HTTP requests) admitted per source group at once. */
export const PROXY_MAX_ACTIVE_FLOWS_PER_GROUP = 4_096;
/** Client connections accepted at once; more are closed on accept. */
export const PROXY_MAX_CLIENT_CONNECTIONS = 16_384;
/** Largest request head (request line and headers) accepted; beyond it: 431. */
export const PROXY_MAX_HEADER_BYTES = 16_384;
/** Resolved addresses considered per flow. */
export const PROXY_MAX_CANDIDATE_IPS = 8;
/** Allowed addresses a CONNECT dials in turn before answering 502. */
export const PROXY_DIAL_ATTEMPTS_MAX = 3;
/** Longest reason text sent in a 403 body and header. */
export const PROXY_REASON_MAX_CHARS = 200;
/** Ports whose CONNECT tunnels are treated as TLS (ClientHello peeked, SNI checked) by default. */
export const PROXY_DEFAULT_TLS_PORTS: readonly number[] = [443, 465, 563, 636, 853, 989, 990, 992, 993, 994, 995, 5061, 6443, 8443];
/** How often a stopping proxy looks whether its last flows have ended. */
const STOP_POLL_MS = 50;
/** Longest wait for a response body to drain after a denial before the client connection is closed. */
const PROXY_REFUSAL_LINGER_MS = 1_000;

/** Results of `neuwerk_proxy_decisions_total`. */
export type ProxyResult = 'allowed' | 'audit' | 'denied' | 'limited' | 'error';
/** Kinds of `neuwerk_proxy_decisions_total`. */
export type ProxyKind = 'connect' | 'http';

export const PROXY_RESULTS: readonly ProxyResult[] = ['allowed', 'audit', 'denied', 'limited', 'error'];
export const PROXY_KINDS: readonly ProxyKind[] = ['connect', 'http'];
/** The group key for flows no source group decided. */
const NO_GROUP = '(none)';

/** Options of a `ForwardProxy`. */
export interface ForwardProxyOptions {
  readonly bind: HostPort;
  /** Where `bind` came from, as a listen error names it (default `--proxy-bind`). */
  readonly bindSetting?: string;
  readonly enforcement: PolicySource;
  readonly resolver: HostnameResolver;
  readonly allowlist: DynamicAllowlist;
  readonly findings: FindingsStore;
  /** The dynamic denylist, checked ahead of the policy (absent: none). */
  readonly denylist?: DenylistIndex;
  readonly logger: Logger;
  readonly metrics?: NodeMetrics;
  /** The node's listen hosts (API, metrics, cluster, DNS); the proxy adds its own bind host. */
  readonly ownAddresses?: readonly string[];
  readonly tlsPorts?: readonly number[];
  readonly idleTimeoutMs?: number;
  readonly headerTimeoutMs?: number;
  readonly keepAliveTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  readonly tlsPeekTimeoutMs?: number;
  readonly maxActiveFlowsPerGroup?: number;
  readonly maxClientConnections?: number;
  /** CIDRs of balancers whose connections must begin with a PROXY protocol header (absent or empty: none). */
  readonly proxyProtocolFrom?: readonly string[];
}

/** The `proxy` section of `GET /api/v1/stats`. */
export interface ForwardProxyStats {
  readonly listening: string | null;
  readonly active_flows: number;
  readonly active_flows_by_group: Record<string, number>;
  readonly client_connections: number;
  readonly upstream_connections: number;
  readonly decisions: Record<ProxyKind, Record<ProxyResult, number>>;
  readonly tunnel_bytes: { readonly client_to_upstream: number; readonly upstream_to_client: number };
  /** Null when `proxyProtocolFrom` is empty. */
  readonly proxy_protocol: ProxyProtocolStats | null;
}

/** The destination of a CONNECT or request. */
interface Target {
  /** Lowercased hostname, or null for an IP literal. */
  readonly hostname: string | null;
  /** Canonical IP for an IP literal. */
  readonly literalIp: string | null;
  readonly port: number;
}

/** One address checked for a flow under one SNI hypothesis. */
interface Verdict {
  readonly ip: string;
  readonly decision: Decision;
  readonly allowed: boolean;
  /** The decision's reason, or the guard's when the guard refused. */
  readonly reason: string;
}

type Plan =
  | {
      readonly kind: 'allow';
      readonly candidates: readonly string[];
      /** Per candidate, the verdict that allowed it (under the first hypothesis that did). */
      readonly verdicts: readonly Verdict[];
      readonly admitGroup: string | null;
    }
  | { readonly kind: 'deny'; readonly verdict: Verdict | null; readonly decision: Decision; readonly reason: string }
  | { readonly kind: 'error'; readonly status: number; readonly reason: string };

interface Flow {
  readonly group: string;
  released: boolean;
}

/** A tunnel's state: its upstream is being dialled, or both sockets are spliced. */
const DIALLING = 0;
const OPEN = 1;

/** The tunnel a socket of the proxy's belongs to, on the socket (the listeners are shared, not closures per tunnel). */
const kTunnel = Symbol('neuwerk.tunnel');
type TunnelSocket = Socket & { [kTunnel]?: Tunnel };

/** A client connection's place in `ClientConnections`. */
interface ClientConnection extends RecencyLinks<ClientConnection> {
  readonly socket: Socket;
}
const kClientConnection = Symbol('neuwerk.client-connection');
type ListedSocket = Socket & { [kClientConnection]?: ClientConnection };

/**
 * The open client connections, for closing them on stop and for the stats: an intrusive list, not
 * a `Set<Socket>`. With the set, closed sockets (and their streams' state) stayed alive through the
 * young-generation collections until the next full one. Measured at c=16 CONNECT: the set alone
 * accounted for half of the bytes promoted per collection (2.0 -> 1.0 MB) and about 4 % of the CPU
 * per tunnel. Why, as far as we can tell: a set that gains and loses an entry per connection is
 * re-laid out every so many deletions, and a discarded layout that had reached the old generation
 * still points at the sockets it held.
 */
class ClientConnections {
  private readonly list = new RecencyList<ClientConnection>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(socket: Socket): void {
    const entry: ClientConnection = { socket, older: null, newer: null };
    (socket as ListedSocket)[kClientConnection] = entry;
    this.list.pushNewest(entry);
    this.count++;
  }

  /** Removes a socket; no effect on one that is not listed (or no longer). */
  remove(socket: Socket): void {
    const listed = socket as ListedSocket;
    const entry = listed[kClientConnection];
    if (entry === undefined) return;
    listed[kClientConnection] = undefined;
    this.list.remove(entry);
    this.count--;
  }

  /** The listed sockets, as an array (destroying one removes it from the list only later, on its 'close'). */
  sockets(): Socket[] {
    const sockets: Socket[] = [];
    for (let entry = this.list.oldest; entry !== null; entry = entry.newer) sockets.push(entry.socket);
    return sockets;
  }
}

function tunnelOf(socket: Socket): Tunnel {
  return (socket as TunnelSocket)[kTunnel] as Tunnel;
}

/**
 * One CONNECT tunnel from the dial of its upstream (one per dial attempt) to the close of both
 * sockets: the upstream's reader (`UpstreamRelay`), an entry of the proxy's dial or idle sweep, and
 * the state the shared socket listeners below work on.
 */
class Tunnel extends UpstreamRelay implements IdleEntry<Tunnel> {
  older: Tunnel | null = null;
  newer: Tunnel | null = null;
  tick = -1;
  state = DIALLING;
  /** In the proxy's dialling list (its links are then used there, and later by the idle sweep). */
  inDialling = true;
  /** Sockets closed so far; the tunnel has ended at 2. */
  closed = 0;
  startUp = 0;
  startDown = 0;
  upstream!: Socket;
  /** Settles the dial (set while dialling). */
  settle: ((tunnel: Tunnel | null) => void) | null = null;
  connectTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly proxy: ForwardProxy,
    readonly client: Socket,
    readonly ip: string,
    readonly flow: Flow,
  ) {
    super();
  }

  protected override noteRead(): void {
    this.proxy.idle.touch(this);
  }
}

function ignore(): void {}

function onDialConnect(this: Socket): void {
  const tunnel = tunnelOf(this);
  if (tunnel.connectTimer !== null) clearTimeout(tunnel.connectTimer);
  tunnel.connectTimer = null;
  tunnel.proxy.settleDial(tunnel, tunnel);
}

function onUpstreamClose(this: Socket, hadError: boolean): void {
  const tunnel = tunnelOf(this);
  if (tunnel.state === DIALLING) {
    if (tunnel.connectTimer !== null) clearTimeout(tunnel.connectTimer);
    tunnel.connectTimer = null;
    tunnel.proxy.dialEnded(tunnel);
    tunnel.proxy.settleDial(tunnel, null);
    return;
  }
  tunnel.proxy.sideClosed(tunnel, tunnel.client, hadError);
}

/** The client side of a tunnel copied into the upstream (`splice` with shared listeners). */
function onTunnelClientData(this: Socket, chunk: Buffer): void {
  const tunnel = tunnelOf(this);
  tunnel.proxy.idle.touch(tunnel);
  if (!tunnel.upstream.write(chunk)) this.pause();
}

/** The client took what was queued for it: read the upstream again. */
function onTunnelClientDrain(this: Socket): void {
  tunnelOf(this).upstream.resume();
}

/** The upstream took what was queued for it: read the client again. */
function onTunnelUpstreamDrain(this: Socket): void {
  tunnelOf(this).client.resume();
}

function onTunnelClientEnd(this: Socket): void {
  passEnd(tunnelOf(this).upstream);
}

function onTunnelUpstreamEnd(this: Socket): void {
  passEnd(tunnelOf(this).client);
}

const HOP_BY_HOP = new Set(['connection', 'proxy-connection', 'keep-alive', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** One printable-ASCII line, safe for a header value. */
export function sanitizeReason(reason: string): string {
  const line = reason.replace(/[^\x20-\x7e]/g, '?');
  return line.length > PROXY_REASON_MAX_CHARS ? `${line.slice(0, PROXY_REASON_MAX_CHARS - 3)}...` : line;
}

function parsePort(text: string): number | null {
  if (!/^\d{1,5}$/.test(text)) return null;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : null;
}

function targetFromHost(host: string, port: number): Target | null {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  // An IPv6 address has a colon and an IPv4 one has none: one family test instead of `isIP`'s two.
  if (bare.includes(':') ? isIPv6(bare) : isIPv4(bare)) {
    const ip = canonicalIp(bare);
    return ip === null ? null : { hostname: null, literalIp: ip, port };
  }
  if (host !== bare || !isValidHostname(host)) return null;
  const hostname = normalizeHostname(host);
  const lastLabel = hostname.slice(hostname.lastIndexOf('.') + 1);
  if (/^[0-9]+$/.test(lastLabel) || /^0x/i.test(hostname)) return null; // numeric forms are addresses, not names
  return { hostname, literalIp: null, port };
}

/** Parses a CONNECT authority `host:port` or `[v6]:port`; null when it is not one. */
export function parseConnectAuthority(authority: string): Target | null {
  const colon = authority.lastIndexOf(':');
  if (colon <= 0) return null;
  const port = parsePort(authority.slice(colon + 1));
  if (port === null) return null;
  const host = authority.slice(0, colon);
  if (host.includes(':') && !(host.startsWith('[') && host.endsWith(']'))) return null;
  return targetFromHost(host, port);
}

function stripHopByHop(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const listed = new Set<string>();
  const connection = headers.connection;
  for (const value of Array.isArray(connection) ? connection : connection === undefined ? [] : [connection]) {
    for (const token of value.split(',')) listed.add(token.trim().toLowerCase());
  }
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || listed.has(name)) continue;
    out[name] = value;
  }
  return out;
}

function withVia(existing: OutgoingHttpHeaders[string]): string {
  const previous = Array.isArray(existing) ? existing.join(', ') : existing === undefined ? '' : String(existing);
  return previous === '' ? '1.1 neuwerk' : `${previous}, 1.1 neuwerk`;
}

function rawResponse(status: number, reason: string | null, extraHeaders = ''): string {
  const body = reason === null ? '' : `${reason}\n`;
  const reasonHeader = reason === null ? '' : `X-Neuwerk-Reason: ${reason}\r\n`;
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n${reasonHeader}${extraHeaders}Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

/** The answer that opens a tunnel, encoded once. */
const CONNECTION_ESTABLISHED = Buffer.from('HTTP/1.1 200 Connection Established\r\n\r\n', 'latin1');

/** The forward proxy; see the module comment for the contract. */
export class ForwardProxy {
  private server: Server | null = null;
  private address: HostPort | null = null;
  private readonly guard: DestinationGuard;
  private readonly tlsPorts: ReadonlySet<number>;
  private readonly idleMs: number;
  private readonly connectTimeoutMs: number;
  private readonly peekTimeoutMs: number;
  private readonly maxFlowsPerGroup: number;
  private readonly agent: Agent;
  private readonly proxyProtocol: ProxyProtocolGate | null;
  private readonly clientSockets = new ClientConnections();
  /** Tunnels whose upstream is being dialled (or connected and not opened yet). */
  private readonly dialling = new RecencyList<Tunnel>();
  private diallingCount = 0;
  /** Open tunnels, least recently active first; closes those idle for `idleMs`. */
  readonly idle: IdleSweep<Tunnel>;
  private readonly activeByGroup = new Map<string, number>();
  private activeFlows = 0;
  private readonly counts: Record<ProxyKind, Record<ProxyResult, number>>;
  private readonly countSinks: Record<ProxyKind, Record<ProxyResult, () => void>>;
  /** `neuwerk_proxy_tunnel_bytes_total` by direction, looked up once (absent without metrics). */
  private readonly tunnelBytesUp: { inc(value: number): void } | undefined;
  private readonly tunnelBytesDown: { inc(value: number): void } | undefined;
  private bytesUp = 0;
  private bytesDown = 0;
  private stopped = false;

  constructor(private readonly options: ForwardProxyOptions) {
    this.guard = new DestinationGuard([...(options.ownAddresses ?? []), options.bind.host]);
    this.tlsPorts = new Set(options.tlsPorts ?? PROXY_DEFAULT_TLS_PORTS);
    this.idleMs = options.idleTimeoutMs ?? PROXY_IDLE_TIMEOUT_MS;
    this.idle = new IdleSweep<Tunnel>(this.idleMs, sweepIntervalFor(this.idleMs), (tunnel) => {
      tunnel.client.destroy();
      tunnel.upstream.destroy();
    });
    this.connectTimeoutMs = options.connectTimeoutMs ?? PROXY_CONNECT_TIMEOUT_MS;
    this.peekTimeoutMs = options.tlsPeekTimeoutMs ?? PROXY_TLS_PEEK_TIMEOUT_MS;
    this.maxFlowsPerGroup = options.maxActiveFlowsPerGroup ?? PROXY_MAX_ACTIVE_FLOWS_PER_GROUP;
    this.agent = new Agent({ keepAlive: true, timeout: this.idleMs, scheduling: 'lifo' });
    const trustedFrom = options.proxyProtocolFrom ?? [];
    this.proxyProtocol =
      trustedFrom.length === 0
        ? null
        : new ProxyProtocolGate({ trustedFrom, headerTimeoutMs: options.headerTimeoutMs ?? PROXY_HEADER_TIMEOUT_MS, logger: options.logger, ...(options.metrics ? { metrics: options.metrics } : {}) });
    const counts = {} as Record<ProxyKind, Record<ProxyResult, number>>;
    const sinks = {} as Record<ProxyKind, Record<ProxyResult, () => void>>;
    for (const kind of PROXY_KINDS) {
      counts[kind] = { allowed: 0, audit: 0, denied: 0, limited: 0, error: 0 };
      sinks[kind] = {} as Record<ProxyResult, () => void>;
      for (const result of PROXY_RESULTS) {
        const child = options.metrics?.proxyDecisions.labels(kind, result);
        child?.inc(0); // a sample from the start, so a rate() alert sees 0, not "no data"
        sinks[kind][result] = child === undefined ? () => undefined : () => child.inc();
      }
    }
    this.counts = counts;
    this.countSinks = sinks;
    this.tunnelBytesUp = options.metrics?.proxyTunnelBytes.labels('client_to_upstream');
    this.tunnelBytesDown = options.metrics?.proxyTunnelBytes.labels('upstream_to_client');
    this.tunnelBytesUp?.inc(0);
    this.tunnelBytesDown?.inc(0);
  }

  /**
   * Starts listening; resolves with the bound address (port 0 picks one).
   * @throws NeuwerkError NW_ERR_ADDRESS_IN_USE / NW_ERR_LISTEN_FAILED naming `bindSetting`.
   */
  async start(): Promise<HostPort> {
    const headerTimeoutMs = this.options.headerTimeoutMs ?? PROXY_HEADER_TIMEOUT_MS;
    const server = createServer({
      maxHeaderSize: PROXY_MAX_HEADER_BYTES,
      headersTimeout: headerTimeoutMs,
      requestTimeout: 0,
      requireHostHeader: false,
      keepAliveTimeout: this.options.keepAliveTimeoutMs ?? PROXY_KEEPALIVE_TIMEOUT_MS,
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(headerTimeoutMs / 4))),
    });
    server.maxConnections = this.options.maxClientConnections ?? PROXY_MAX_CLIENT_CONNECTIONS;
    this.proxyProtocol?.install(server);
    const clientSockets = this.clientSockets;
    // The one close listener of a client socket, also for the client side of a tunnel (no second listener per tunnel).
    function onClientClose(this: Socket, hadError: boolean): void {
      clientSockets.remove(this);
      const tunnel = (this as TunnelSocket)[kTunnel];
      if (tunnel !== undefined) tunnel.proxy.sideClosed(tunnel, tunnel.upstream, hadError);
    }
    server.on('connection', (socket: Socket) => {
      clientSockets.add(socket);
      socket.on('close', onClientClose); // one function for every connection, not a closure each
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      this.onRequest(req, res).catch((err: unknown) => this.onBug(err, () => res.destroy()));
    });
    server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.onConnect(req, socket as Socket, head).catch((err: unknown) => this.onBug(err, () => socket.destroy()));
    });
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.onClientError(err, socket as Socket));
    this.server = server;
    this.address = await listen(server, this.options.bind, this.options.bindSetting ?? '--proxy-bind');
    this.idle.start();
    return this.address;
  }

  /**
   * Stops accepting at once and closes idle keep-alive connections; tunnels and requests in flight
   * get up to `graceMs` to finish, then every client connection and tunnel is closed. Idempotent.
   */
  async stop(graceMs = 0): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const closed = this.server === null ? Promise.resolve() : closeServer(this.server, graceMs);
    if (graceMs > 0 && this.activeFlows > 0) {
      const waiting = this.activeFlows;
      this.options.logger.info({ active_flows: waiting, grace_ms: graceMs }, 'forward proxy stopping: waiting for open tunnels and requests');
      const deadline = Date.now() + graceMs;
      while (this.activeFlows > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, STOP_POLL_MS));
      if (this.activeFlows > 0) this.options.logger.warn({ active_flows: this.activeFlows, grace_ms: graceMs }, 'forward proxy stopping: closing flows still open after the grace period');
    }
    this.idle.stop();
    for (let tunnel = this.dialling.oldest; tunnel !== null; tunnel = tunnel.newer) tunnel.upstream.destroy();
    for (const tunnel of this.idle.entries()) tunnel.upstream.destroy();
    for (const socket of this.clientSockets.sockets()) socket.destroy();
    this.agent.destroy();
    await closed;
  }

  /** Readiness `proxy_ready`: listening and not stopped. */
  readiness(): { ok: boolean; detail?: string } {
    if (this.stopped) return { ok: false, detail: 'the forward proxy is stopped' };
    if (this.address === null) return { ok: false, detail: 'the forward proxy is not listening yet' };
    return { ok: true };
  }

  /** The `proxy` section of `GET /api/v1/stats`. */
  stats(): ForwardProxyStats {
    const byGroup: Record<string, number> = {};
    for (const [group, count] of this.activeByGroup) byGroup[group] = count;
    const decisions = {} as Record<ProxyKind, Record<ProxyResult, number>>;
    for (const kind of PROXY_KINDS) decisions[kind] = { ...this.counts[kind] };
    return {
      listening: this.address === null ? null : formatHostPort(this.address),
      active_flows: this.activeFlows,
      active_flows_by_group: byGroup,
      client_connections: this.clientSockets.size,
      upstream_connections: this.upstreamConnections(),
      decisions,
      tunnel_bytes: { client_to_upstream: this.bytesUp, upstream_to_client: this.bytesDown },
      proxy_protocol: this.proxyProtocol?.stats() ?? null,
    };
  }

  /** Open sockets (client side, and upstream: tunnels plus pooled keep-alive connections); for leak tests. */
  openSockets(): { client: number; tunnels: number; pooled: number } {
    const tunnels = this.tunnelSockets();
    return { client: this.clientSockets.size, tunnels, pooled: this.upstreamConnections() - tunnels };
  }

  /** Upstream sockets of tunnels: being dialled, or open (until both sides of the tunnel closed). */
  private tunnelSockets(): number {
    return this.diallingCount + this.idle.size;
  }

  private upstreamConnections(): number {
    let pooled = 0;
    for (const list of Object.values(this.agent.sockets)) pooled += list?.length ?? 0;
    for (const list of Object.values(this.agent.freeSockets)) pooled += list?.length ?? 0;
    return this.tunnelSockets() + pooled;
  }

  /** The client's address: named by the PROXY header on a connection from a trusted balancer, else the socket's peer. */
  private clientIp(socket: Socket): string {
    return this.proxyProtocol === null ? (socket.remoteAddress ?? '') : this.proxyProtocol.clientIp(socket);
  }

  onBug(err: unknown, cleanup: () => void): void {
    this.options.logger.error({ err: describeError(err) }, 'forward proxy failed to handle a request');
    cleanup();
  }

  private count(kind: ProxyKind, result: ProxyResult): void {
    this.counts[kind][result]++;
    this.countSinks[kind][result]();
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    this.refuseSocket(socket, status, null);
  }

  /** Writes a complete response on a raw socket and closes it (after a short linger at most). */
  private refuseSocket(socket: Socket, status: number, reason: string | null, extraHeaders = ''): void {
    if (socket.destroyed) return;
    socket.end(rawResponse(status, reason === null ? null : sanitizeReason(reason), extraHeaders));
    const linger = setTimeout(() => socket.destroy(), PROXY_REFUSAL_LINGER_MS);
    linger.unref();
    socket.once('close', () => clearTimeout(linger));
  }

  private respond(res: ServerResponse, status: number, reason: string, close: boolean): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const line = sanitizeReason(reason);
    const body = `${line}\n`;
    res.writeHead(status, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'x-neuwerk-reason': line,
      ...(close ? { connection: 'close' } : {}),
    });
    res.end(body);
  }

  private recordFinding(type: FindingType, clientIp: string, target: Target, ip: string | null, decision: Decision, finding: 'deny' | 'audit', reason: string): void {
    this.options.findings.record({
      type,
      sourceGroup: decision.sourceGroup,
      hostname: target.hostname,
      destination: ip,
      port: target.port,
      finding,
      ruleId: decision.ruleId,
      reason,
      clientIp,
    });
  }

  private recordDenylisted(type: FindingType, clientIp: string, target: Target, reason: string): void {
    this.options.findings.record({ type, sourceGroup: null, hostname: target.hostname, destination: target.literalIp, port: target.port, finding: 'deny', ruleId: null, reason, clientIp });
  }

  private admit(group: string | null): Flow | null {
    const key = group ?? NO_GROUP;
    const active = this.activeByGroup.get(key) ?? 0;
    if (active >= this.maxFlowsPerGroup) return null;
    this.activeByGroup.set(key, active + 1);
    this.activeFlows++;
    this.options.metrics?.proxyActiveFlows.inc();
    return { group: key, released: false };
  }

  private release(flow: Flow): void {
    if (flow.released) return;
    flow.released = true;
    const left = (this.activeByGroup.get(flow.group) ?? 1) - 1;
    if (left <= 0) this.activeByGroup.delete(flow.group);
    else this.activeByGroup.set(flow.group, left);
    this.activeFlows--;
    this.options.metrics?.proxyActiveFlows.dec();
  }

  /** Decides one address under one SNI hypothesis, guard included. */
  private check(policy: CompiledPolicy, clientIp: string, target: Target, ip: string, sni: string | undefined, http: HttpRequestInfo | undefined): Verdict {
    // One object shape for every flow (absent fields undefined), not a spread per optional field.
    const decision = decideConnection(policy, { srcIp: clientIp, hostname: target.hostname ?? undefined, dstIp: ip, dstPort: target.port, proto: 'tcp', sni, http });
    if (decision.enforced === 'deny') return { ip, decision, allowed: false, reason: decision.reason };
    const special = this.guard.specialReason(ip);
    if (special !== null && !(decision.action === 'allow' && ruleNamesDestination(policy, decision))) {
      // Say which rule let the flow through, so the operator sees why a rule naming the address further down did not decide.
      const decidedBy = decision.action === 'allow' ? (decision.ruleId !== null ? `rule ${decision.ruleId} allows it without naming it` : 'the default allows it') : null;
      return { ip, decision, allowed: false, reason: `destination ${ip} is ${special}; only an allowing rule naming it in dst_ips or dst_cidrs permits it${decidedBy === null ? '' : ` (${decidedBy})`}` };
    }
    return { ip, decision, allowed: decision.enforced === 'allow', reason: decision.reason };
  }

  /**
   * Steps 1–3 of the module comment: the candidate addresses allowed under at least one of the
   * SNI `hypotheses`, in order, or why there are none.
   */
  private plan(policy: CompiledPolicy, clientIp: string, target: Target, hypotheses: readonly (string | undefined)[], http: HttpRequestInfo | undefined): Plan | Promise<Plan> {
    if (target.literalIp !== null) return this.decideCandidates(policy, clientIp, target, [target.literalIp], hypotheses, http);
    const hostname = target.hostname as string;
    const dns = decideDns(policy, { srcIp: clientIp, qname: hostname });
    const listed = dns.sourceGroup === null ? [] : this.options.allowlist.ipsFor(dns.sourceGroup, hostname);
    if (listed.length > 0) return this.decideCandidates(policy, clientIp, target, listed, hypotheses, http);
    if (dns.enforced !== 'allow') {
      // Resolve only if the name is allowed regardless of its address (no address matches no IP selector).
      const addressless = hypotheses.map((sni) =>
        decideConnection(policy, { srcIp: clientIp, hostname, dstIp: '', dstPort: target.port, proto: 'tcp', ...(sni !== undefined ? { sni } : {}), ...(http !== undefined ? { http } : {}) }),
      );
      if (!addressless.some((d) => d.enforced === 'allow')) {
        const decision = addressless[0] as Decision;
        return { kind: 'deny', verdict: null, decision, reason: `${decision.reason} (and the client's DNS policy does not resolve ${hostname})` };
      }
    }
    // A cached answer is decided at once, without a promise and a turn of the microtask queue.
    const cached = this.options.resolver.cached?.(hostname) ?? null;
    if (cached !== null) return this.afterLookup(policy, clientIp, target, hostname, { ok: true, addresses: cached }, hypotheses, http);
    return this.options.resolver.resolve(hostname).then((resolved) => this.afterLookup(policy, clientIp, target, hostname, resolved, hypotheses, http));
  }

  private afterLookup(policy: CompiledPolicy, clientIp: string, target: Target, hostname: string, resolved: ResolveOutcome, hypotheses: readonly (string | undefined)[], http: HttpRequestInfo | undefined): Plan {
    if (!resolved.ok) return { kind: 'error', status: 502, reason: `cannot resolve ${hostname}: ${resolved.reason}` };
    if (resolved.addresses.length === 0) return { kind: 'error', status: 502, reason: `${hostname} has no address` };
    return this.decideCandidates(policy, clientIp, target, resolved.addresses, hypotheses, http);
  }

  /** Step 3 of the module comment for the candidate `addresses`. */
  private decideCandidates(policy: CompiledPolicy, clientIp: string, target: Target, addresses: readonly string[], hypotheses: readonly (string | undefined)[], http: HttpRequestInfo | undefined): Plan {
    const candidates: string[] = [];
    const verdicts: Verdict[] = [];
    let firstDenied: Verdict | null = null;
    let admitGroup: string | null = null;
    for (const ip of addresses.slice(0, PROXY_MAX_CANDIDATE_IPS)) {
      let allowed: Verdict | null = null;
      for (const sni of hypotheses) {
        const verdict = this.check(policy, clientIp, target, ip, sni, http);
        if (verdict.allowed) {
          allowed = verdict;
          break;
        }
        firstDenied ??= verdict;
      }
      if (allowed !== null) {
        if (candidates.length === 0) admitGroup = allowed.decision.sourceGroup;
        candidates.push(ip);
        verdicts.push(allowed);
      }
    }
    if (candidates.length > 0) return { kind: 'allow', candidates, verdicts, admitGroup };
    const verdict = firstDenied as Verdict;
    return { kind: 'deny', verdict, decision: verdict.decision, reason: verdict.reason };
  }

  /** Dials `ip`; `settle` gets the tunnel once connected, or null when the dial failed or timed out. */
  private dial(client: Socket, ip: string, port: number, flow: Flow, settle: (tunnel: Tunnel | null) => void): void {
    const tunnel = new Tunnel(this, client, ip, flow);
    tunnel.settle = settle;
    const socket = connect({ host: ip, port, allowHalfOpen: true, noDelay: true, onread: tunnel.onread }) as TunnelSocket;
    socket[kTunnel] = tunnel;
    tunnel.upstream = socket;
    this.dialling.pushNewest(tunnel);
    this.diallingCount++;
    tunnel.connectTimer = setTimeout(() => socket.destroy(), this.connectTimeoutMs);
    socket.on('error', ignore); // the 'close' that follows an error ends the dial or the tunnel
    socket.on('close', onUpstreamClose);
    socket.on('connect', onDialConnect);
  }

  /** Ends a dial: calls its `settle` once (a throw there closes the tunnel's sockets, as in `onConnect`). */
  settleDial(tunnel: Tunnel, result: Tunnel | null): void {
    const settle = tunnel.settle;
    if (settle === null) return;
    tunnel.settle = null;
    try {
      settle(result);
    } catch (err) {
      this.release(tunnel.flow);
      this.onBug(err, () => {
        tunnel.client.destroy();
        tunnel.upstream.destroy();
      });
    }
  }

  /** The tunnel leaves the dialling list (connected and opened, or its socket closed). No effect when it is not in it. */
  dialEnded(tunnel: Tunnel): void {
    if (!tunnel.inDialling) return;
    tunnel.inDialling = false;
    this.dialling.remove(tunnel);
    this.diallingCount--;
  }

  /** Closes a connected tunnel that will not be opened (the client left, or the TLS decision refused it). */
  private abandon(tunnel: Tunnel): void {
    tunnel.upstream.destroy(); // its 'close' ends the dial
  }

  /**
   * Dials the allowed candidates in turn (at most PROXY_DIAL_ATTEMPTS_MAX) until one connects;
   * `done` gets its tunnel, or null when none did.
   */
  private dialAny(client: Socket, candidates: readonly string[], port: number, flow: Flow, isAllowed: ((ip: string) => boolean) | null, done: (tunnel: Tunnel | null) => void): void {
    let index = 0;
    let attempts = 0;
    const next = (tunnel: Tunnel | null): void => {
      if (tunnel !== null) {
        done(tunnel);
        return;
      }
      while (index < candidates.length) {
        const ip = candidates[index++] as string;
        if (isAllowed !== null && !isAllowed(ip)) continue;
        if (attempts++ >= PROXY_DIAL_ATTEMPTS_MAX) break;
        this.dial(client, ip, port, flow, next);
        return;
      }
      done(null);
    };
    next(null);
  }

  /** Splices the client and the upstream of a connected tunnel until both sides closed (an error, a reset, or the idle sweep close both). */
  private open(tunnel: Tunnel, firstBytes: Buffer): void {
    const { client, upstream } = tunnel;
    this.dialEnded(tunnel);
    if (client.destroyed || upstream.destroyed) {
      // One side is already gone: nothing to splice. The upstream's close (DIALLING) ends the dial.
      client.destroy();
      upstream.destroy();
      this.release(tunnel.flow);
      return;
    }
    tunnel.state = OPEN;
    tunnel.startUp = upstream.bytesWritten;
    tunnel.startDown = upstream.bytesRead;
    (client as TunnelSocket)[kTunnel] = tunnel;
    this.idle.add(tunnel);
    if (firstBytes.length > 0) upstream.write(firstBytes);
    client.on('data', onTunnelClientData);
    upstream.on('drain', onTunnelUpstreamDrain);
    client.on('end', onTunnelClientEnd);
    client.on('drain', onTunnelClientDrain);
    upstream.on('end', onTunnelUpstreamEnd);
    client.resume();
    if (tunnel.attach(client)) upstream.resume();
  }

  /** One side of an open tunnel closed: `other` is the other side's socket. Called by the close listeners. */
  sideClosed(tunnel: Tunnel, other: Socket, hadError: boolean): void {
    // An error or reset ends the other side at once; a clean close lets it flush and finish.
    if (hadError) other.destroy();
    else if (!other.destroyed) other.end();
    if (++tunnel.closed === 2) {
      this.idle.remove(tunnel);
      const up = tunnel.upstream.bytesWritten - tunnel.startUp;
      const down = tunnel.upstream.bytesRead - tunnel.startDown;
      this.bytesUp += up;
      this.bytesDown += down;
      this.tunnelBytesUp?.inc(up);
      this.tunnelBytesDown?.inc(down);
      this.release(tunnel.flow);
    }
  }

  /**
   * Reads the ClientHello from a just-opened tunnel. Resolves with what the bytes are and the bytes
   * read (to forward), leaving `socket` paused with nothing lost.
   */
  private peekClientHello(socket: Socket, head: Buffer): Promise<{ result: ClientHelloResult | { kind: 'timeout' | 'closed' | 'too-large' }; bytes: Buffer }> {
    return new Promise((resolve) => {
      let bytes = head;
      let done = false;
      const finish = (result: ClientHelloResult | { kind: 'timeout' | 'closed' | 'too-large' }): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.pause();
        socket.off('data', onData);
        socket.off('end', onEnd);
        socket.off('close', onEnd);
        resolve({ result, bytes });
      };
      const evaluate = (): boolean => {
        const result = parseClientHello(bytes);
        if (result.kind !== 'incomplete') {
          finish(result);
          return true;
        }
        if (bytes.length >= TLS_PEEK_MAX_BYTES) {
          finish({ kind: 'too-large' });
          return true;
        }
        return false;
      };
      const onData = (chunk: Buffer): void => {
        bytes = bytes.length === 0 ? chunk : Buffer.concat([bytes, chunk]);
        evaluate();
      };
      const onEnd = (): void => finish({ kind: 'closed' });
      const timer = setTimeout(() => finish({ kind: 'timeout' }), this.peekTimeoutMs);
      if (bytes.length > 0 && evaluate()) return;
      socket.on('data', onData);
      socket.once('end', onEnd);
      socket.once('close', onEnd);
      socket.resume();
    });
  }

  private async onConnect(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    const clientIp = this.clientIp(socket);
    socket.on('error', ignore);
    const target = parseConnectAuthority(req.url ?? '');
    if (target === null) {
      this.count('connect', 'error');
      return this.refuseSocket(socket, 400, 'CONNECT needs host:port with a valid hostname or IP address and a port 1-65535');
    }
    const denied = this.options.denylist?.check(clientIp, target.hostname) ?? null;
    if (denied !== null) {
      this.count('connect', 'denied');
      this.recordDenylisted('connect', clientIp, target, denied.reason);
      return this.refuseSocket(socket, 403, denied.reason);
    }
    const policy = this.options.enforcement.active;
    if (policy === null) {
      this.count('connect', 'error');
      return this.refuseSocket(socket, 503, 'no policy is active on this node yet');
    }
    const tls = this.tlsPorts.has(target.port);
    const hypotheses: (string | undefined)[] = tls && target.hostname !== null ? [undefined, target.hostname] : [undefined];
    const planned = this.plan(policy, clientIp, target, hypotheses, undefined);
    const plan = planned instanceof Promise ? await planned : planned;
    if (socket.destroyed) return;
    if (plan.kind === 'error') {
      this.count('connect', 'error');
      return this.refuseSocket(socket, plan.status, plan.reason);
    }
    if (plan.kind === 'deny') {
      this.count('connect', 'denied');
      this.recordFinding('connect', clientIp, target, plan.verdict?.ip ?? null, plan.decision, 'deny', plan.reason);
      return this.refuseSocket(socket, 403, plan.reason);
    }
    const flow = this.admit(plan.admitGroup);
    if (flow === null) {
      this.count('connect', 'limited');
      return this.refuseSocket(socket, 429, `source group ${plan.admitGroup ?? NO_GROUP} has ${this.maxFlowsPerGroup} active flows (the limit)`);
    }
    try {
      if (!tls) this.connectPlain(clientIp, target, plan.candidates, plan.verdicts, socket, head, flow);
      else await this.connectTls(policy, clientIp, target, plan.candidates, socket, head, flow);
    } catch (err) {
      this.release(flow);
      throw err;
    }
  }

  /** A tunnel without TLS: `plan` decided every candidate without SNI already, so its verdicts stand. */
  private connectPlain(clientIp: string, target: Target, candidates: readonly string[], verdicts: readonly Verdict[], socket: Socket, head: Buffer, flow: Flow): void {
    this.dialAny(socket, candidates, target.port, flow, null, (dialed) => {
      if (dialed === null || socket.destroyed) {
        if (dialed !== null) this.abandon(dialed);
        this.release(flow);
        this.count('connect', 'error');
        this.refuseSocket(socket, 502, `cannot connect to ${formatHostPort({ host: target.hostname ?? target.literalIp ?? '', port: target.port })}`);
        return;
      }
      const verdict = verdicts[candidates.indexOf(dialed.ip)] as Verdict;
      this.noteAllowed('connect', clientIp, target, verdict);
      socket.write(CONNECTION_ESTABLISHED);
      this.open(dialed, head);
    });
  }

  private async connectTls(policy: CompiledPolicy, clientIp: string, target: Target, candidates: readonly string[], socket: Socket, head: Buffer, flow: Flow): Promise<void> {
    socket.write(CONNECTION_ESTABLISHED);
    const { result, bytes } = await this.peekClientHello(socket, head);
    let sni: string | undefined;
    let refusal: string | null = null;
    switch (result.kind) {
      case 'client-hello':
        if (result.sni !== null) {
          if (target.hostname === null) refusal = `TLS SNI ${result.sni} on a CONNECT to the IP literal ${target.literalIp}: refused (no domain fronting)`;
          else if (normalizeHostname(result.sni) !== target.hostname) refusal = `TLS SNI ${result.sni} differs from the CONNECT host ${target.hostname}: refused (no domain fronting)`;
          else sni = target.hostname;
        }
        break;
      case 'not-tls':
      case 'timeout':
        if (result.kind === 'timeout' && bytes.length > 0) refusal = `incomplete TLS ClientHello within ${this.peekTimeoutMs} ms`;
        break;
      case 'malformed':
        refusal = `malformed TLS ClientHello (${result.reason})`;
        break;
      case 'too-large':
        refusal = `TLS ClientHello larger than ${TLS_PEEK_MAX_BYTES} bytes`;
        break;
      case 'closed':
        this.release(flow);
        this.count('connect', 'error');
        socket.destroy();
        return;
      case 'incomplete':
        refusal = 'incomplete TLS ClientHello';
        break;
    }
    const verdicts = candidates.map((ip) => this.check(policy, clientIp, target, ip, sni, undefined));
    const firstVerdict = verdicts[0] as Verdict;
    const allowed = verdicts.filter((v) => v.allowed);
    if (refusal !== null || allowed.length === 0) {
      const reason = refusal ?? firstVerdict.reason;
      this.release(flow);
      this.count('connect', 'denied');
      this.recordFinding('connect', clientIp, target, firstVerdict.ip, firstVerdict.decision, 'deny', reason);
      this.options.logger.debug({ client: clientIp, host: target.hostname, port: target.port, reason }, 'TLS tunnel refused after the ClientHello');
      socket.destroy();
      return;
    }
    const allowedIps = new Set(allowed.map((v) => v.ip));
    this.dialAny(socket, candidates, target.port, flow, (ip) => allowedIps.has(ip), (dialed) => {
      if (dialed === null || socket.destroyed) {
        if (dialed !== null) this.abandon(dialed);
        this.release(flow);
        this.count('connect', 'error');
        socket.destroy();
        return;
      }
      this.noteAllowed('connect', clientIp, target, allowed.find((v) => v.ip === dialed.ip) as Verdict);
      this.open(dialed, bytes);
    });
  }

  private noteAllowed(kind: ProxyKind, clientIp: string, target: Target, verdict: Verdict): void {
    if (verdict.decision.finding === 'audit') {
      this.count(kind, 'audit');
      this.recordFinding(kind, clientIp, target, verdict.ip, verdict.decision, 'audit', verdict.reason);
    } else {
      this.count(kind, 'allowed');
    }
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const clientIp = this.clientIp(req.socket);
    const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;
    const rawUrl = req.url ?? '';
    if (!/^http:\/\//i.test(rawUrl)) {
      this.count('http', 'error');
      const hint = /^https:\/\//i.test(rawUrl) ? 'use CONNECT for https:// URLs' : 'this is a forward proxy: send absolute-form requests (GET http://host/path) or CONNECT';
      return this.respond(res, 400, hint, true);
    }
    let url: URL;
    try {
      url = new URL(rawUrl);
    } catch {
      this.count('http', 'error');
      return this.respond(res, 400, 'the request URL is not a valid absolute http:// URL', true);
    }
    const port = url.port === '' ? 80 : Number(url.port);
    const target = port >= 1 && port <= 65535 ? targetFromHost(url.hostname, port) : null;
    if (target === null) {
      this.count('http', 'error');
      return this.respond(res, 400, 'the request URL has no valid hostname or IP address and port 1-65535', true);
    }
    const denied = this.options.denylist?.check(clientIp, target.hostname) ?? null;
    if (denied !== null) {
      this.count('http', 'denied');
      this.recordDenylisted('http', clientIp, target, denied.reason);
      return this.respond(res, 403, denied.reason, hasBody);
    }
    const policy = this.options.enforcement.active;
    if (policy === null) {
      this.count('http', 'error');
      return this.respond(res, 503, 'no policy is active on this node yet', hasBody);
    }
    const path = `${url.pathname}${url.search}`;
    const http: HttpRequestInfo = { method: req.method ?? 'GET', host: url.host, path };
    const planned = this.plan(policy, clientIp, target, [undefined], http);
    const plan = planned instanceof Promise ? await planned : planned;
    if (plan.kind === 'error') {
      this.count('http', 'error');
      return this.respond(res, plan.status, plan.reason, hasBody);
    }
    if (plan.kind === 'deny') {
      this.count('http', 'denied');
      this.recordFinding('http', clientIp, target, plan.verdict?.ip ?? null, plan.decision, 'deny', plan.reason);
      return this.respond(res, 403, plan.reason, hasBody);
    }
    const flow = this.admit(plan.admitGroup);
    if (flow === null) {
      this.count('http', 'limited');
      return this.respond(res, 429, `source group ${plan.admitGroup ?? NO_GROUP} has ${this.maxFlowsPerGroup} active flows (the limit)`, hasBody);
    }
    const ip = plan.candidates[0] as string;
    this.noteAllowed('http', clientIp, target, plan.verdicts[0] as Verdict); // decided by `plan` with these very inputs
    this.forward(req, res, ip, target.port, url, path, flow);
  }

  private forward(req: IncomingMessage, res: ServerResponse, ip: string, port: number, url: URL, path: string, flow: Flow): void {
    const headers = stripHopByHop(req.headers);
    headers.host = url.host;
    headers.via = withVia(headers.via);
    const upstream = httpRequest({ host: ip, port, method: req.method, path, headers, agent: this.agent, setHost: false, timeout: this.idleMs });
    let finished = false;
    const done = (): void => {
      if (finished) return;
      finished = true;
      this.release(flow);
    };
    upstream.on('response', (upstreamRes: IncomingMessage) => {
      const responseHeaders = stripHopByHop(upstreamRes.headers);
      responseHeaders.via = withVia(responseHeaders.via);
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.statusMessage, responseHeaders);
      // upstreamRes.pipe(res) without pipe's bookkeeping; `res` closing destroys `upstream` (below).
      upstreamRes.on('data', (chunk: Buffer) => {
        if (!res.write(chunk)) upstreamRes.pause();
      });
      res.on('drain', () => upstreamRes.resume());
      upstreamRes.on('end', () => {
        res.end();
        done();
      });
      upstreamRes.on('error', () => {
        res.destroy();
        done();
      });
    });
    upstream.on('timeout', () => upstream.destroy(Object.assign(new Error('upstream idle timeout'), { code: 'ETIMEDOUT' })));
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (!res.headersSent) this.respond(res, err.code === 'ETIMEDOUT' ? 504 : 502, `upstream ${url.host} failed (${err.code ?? err.message})`, true);
      else res.destroy();
      done();
    });
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
      done();
    });
    // A request without a body (no Transfer-Encoding, no or zero Content-Length) is complete
    // with its head: end the upstream request at once rather than piping an empty stream.
    const length = req.headers['content-length'];
    if (req.headers['transfer-encoding'] === undefined && (length === undefined || length === '0')) upstream.end();
    else req.pipe(upstream);
  }
}
