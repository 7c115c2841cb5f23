/**
 * The PROXY protocol on the forward proxy's listener (`proxy.proxy_protocol_from`,
 * `--proxy-protocol-from`). Behind a TCP balancer every client seems to come from the balancer;
 * with `send-proxy`/`send-proxy-v2` the balancer starts each connection with a PROXY header naming
 * the real client, and that address is what the policy, the denylist, the findings and the
 * per-group admission see.
 *
 * Trust is by peer address only: a connection whose peer is in one of the configured ranges MUST
 * begin with a header (v1 or v2; see `proxy-protocol.ts`) complete within the header timeout, else
 * it is closed (counted `refused`, logged at debug). A connection from any other peer goes to HTTP
 * untouched and is never parsed for a header, so a client cannot claim another address. A valid
 * header without an address (v2 LOCAL, v1 UNKNOWN) leaves the connection with its peer address.
 *
 * How: the gate takes Node's own HTTP connection handler (`connectionListener`, which `http.Server`
 * registers in its constructor) off the server and calls it itself once the header is read, with
 * the bytes after the header put back (`unshift`) in front of the stream. The HTTP server keeps
 * listening itself, so `maxConnections`, its header timeout and its close handling are unchanged.
 * (Handing sockets to a second, non-listening `http.Server` with `emit('connection')` would lose
 * the header timeout: Node starts that check only when the server emits 'listening'.)
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../log/logger.js';
import type { NodeMetrics } from '../metrics/registry.js';
import { maskWords, parseDocumentCidr, parseInputIp, type IpPrefix } from '../policy/ip.js';
import { parseProxyHeader, PROXY_HEADER_MAX_BYTES } from './proxy-protocol.js';

/** Results of `neuwerk_proxy_protocol_connections_total`. */
export type ProxyProtocolResult = 'proxied' | 'local' | 'refused';
const RESULTS: readonly ProxyProtocolResult[] = ['proxied', 'local', 'refused'];

/** Options of a `ProxyProtocolGate`. */
export interface ProxyProtocolGateOptions {
  /** Canonical CIDRs of the balancers (validated by the config); at least one. */
  readonly trustedFrom: readonly string[];
  /** A trusted peer's header must be complete within this long. */
  readonly headerTimeoutMs: number;
  readonly logger: Logger;
  readonly metrics?: NodeMetrics;
}

/** The `proxy.proxy_protocol` section of `GET /api/v1/stats`. */
export interface ProxyProtocolStats {
  readonly trusted_from: readonly string[];
  /** Connections whose header named the client. */
  readonly proxied: number;
  /** Connections whose header named no address (LOCAL, UNKNOWN): decided with the balancer's address. */
  readonly local: number;
  /** Trusted-peer connections closed for a missing, malformed or late header. */
  readonly refused: number;
}

function contains(prefix: IpPrefix, words: readonly number[]): boolean {
  const masked = maskWords(words, prefix.prefixLength);
  for (let i = 0; i < masked.length; i++) if (masked[i] !== prefix.words[i]) return false;
  return true;
}

/** See the module comment. */
export class ProxyProtocolGate {
  private readonly trusted: readonly IpPrefix[];
  /** Client address of each connection whose header named one; absent: the socket's peer. */
  private readonly clientIps = new WeakMap<Socket, string>();
  private readonly counts: Record<ProxyProtocolResult, number> = { proxied: 0, local: 0, refused: 0 };
  private readonly sinks: Record<ProxyProtocolResult, () => void>;

  constructor(private readonly options: ProxyProtocolGateOptions) {
    this.trusted = options.trustedFrom.map((text) => {
      const parsed = parseDocumentCidr(text);
      if (!parsed.ok) throw new Error(`assertion failed: proxy_protocol_from entry ${JSON.stringify(text)} ${parsed.reason} (the config validates it)`);
      return parsed.value;
    });
    const sinks = {} as Record<ProxyProtocolResult, () => void>;
    for (const result of RESULTS) {
      const child = options.metrics?.proxyProtocolConnections.labels(result);
      sinks[result] = child === undefined ? () => undefined : () => child.inc();
    }
    this.sinks = sinks;
  }

  /** Puts the gate between `server`'s listener and its HTTP handling; call once, before it listens. */
  install(server: Server): void {
    const http = server.listeners('connection').find((listener) => listener.name === 'connectionListener') as ((socket: Socket) => void) | undefined;
    if (http === undefined) throw new Error("assertion failed: http.Server has no 'connectionListener' to put the PROXY protocol gate in front of");
    server.removeListener('connection', http);
    server.prependListener('connection', (socket: Socket) => this.accept(socket, () => http.call(server, socket)));
    this.options.logger.info({ proxy_protocol_from: this.options.trustedFrom }, 'forward proxy: connections from these peers must begin with a PROXY protocol header');
  }

  /** The client address of `socket`: the header's source for a proxied connection, else its peer. */
  clientIp(socket: Socket): string {
    return this.clientIps.get(socket) ?? socket.remoteAddress ?? '';
  }

  /** Whether connections from `address` (a socket's peer) must carry a header. */
  isTrusted(address: string | undefined): boolean {
    const parsed = address === undefined ? null : parseInputIp(address);
    if (parsed === null) return false;
    return this.trusted.some((prefix) => prefix.v6 === parsed.v6 && contains(prefix, parsed.words));
  }

  stats(): ProxyProtocolStats {
    return { trusted_from: [...this.options.trustedFrom], ...this.counts };
  }

  private count(result: ProxyProtocolResult): void {
    this.counts[result]++;
    this.sinks[result]();
  }

  private accept(socket: Socket, handOver: () => void): void {
    const peer = socket.remoteAddress;
    if (!this.isTrusted(peer)) {
      handOver();
      return;
    }
    let buffered: Buffer = Buffer.alloc(0);
    let done = false;
    const stop = (): void => {
      done = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onGone);
      socket.off('end', onGone);
      socket.off('close', onGone);
    };
    const refuse = (reason: string): void => {
      stop();
      this.count('refused');
      this.options.logger.debug({ peer, reason }, 'forward proxy: connection from a PROXY protocol peer refused');
      socket.destroy();
    };
    const onData = (chunk: Buffer): void => {
      if (done) return;
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const result = parseProxyHeader(buffered);
      switch (result.kind) {
        case 'incomplete':
          // The parser answers 'incomplete' only below PROXY_HEADER_MAX_BYTES; more means it broke its contract.
          if (buffered.length >= PROXY_HEADER_MAX_BYTES) refuse(`no complete PROXY header within ${PROXY_HEADER_MAX_BYTES} bytes`);
          return;
        case 'invalid':
          refuse(result.reason);
          return;
        case 'proxied':
        case 'local': {
          stop();
          socket.pause();
          if (result.kind === 'proxied') this.clientIps.set(socket, result.sourceIp);
          this.count(result.kind);
          const rest = buffered.subarray(result.headerBytes);
          if (rest.length > 0) socket.unshift(rest);
          handOver();
          // The HTTP handler reads its first bytes from the stream's buffer (the unshifted rest) before new ones.
          socket.resume();
          return;
        }
      }
    };
    const onGone = (): void => {
      if (done) return;
      // A peer that connects and closes without a byte (a TCP probe) is not a refusal.
      if (buffered.length === 0) {
        stop();
        socket.destroy();
        return;
      }
      refuse('the connection ended inside the PROXY header');
    };
    const timer = setTimeout(() => refuse(`no complete PROXY header within ${this.options.headerTimeoutMs} ms`), this.options.headerTimeoutMs);
    socket.on('data', onData);
    socket.on('error', onGone);
    socket.on('end', onGone);
    socket.on('close', onGone);
  }
}
