/**
 * The client side of DNS forwarding, shared by the DNS proxy and the forward proxy's resolver:
 * sends a query to the configured upstreams in order, one try each with a per-try timeout, and
 * returns the first valid reply.
 *
 * Every try uses a fresh random message ID (mapped back by the caller, who keeps the client's ID)
 * and, over UDP, one of several sockets connected to that upstream from OS-chosen ports; a reply is
 * accepted only from the upstream's address and port, with that ID, the same question and every
 * record framed within the message (`checkReply`). Anything else is dropped and counted while the
 * try keeps waiting, so a spoofed or late reply can neither answer nor cancel a query.
 *
 * Failover: a try that times out, fails to send, or answers SERVFAIL/REFUSED moves on to the next
 * upstream; when every upstream failed, the last SERVFAIL/REFUSED reply (if any) is returned,
 * otherwise a failure (the proxy answers SERVFAIL). A send error is seen at once on a socket that
 * has not answered yet or whose last try timed out; a socket that answers sends without a
 * completion callback, so a send error there ends its try at the timeout (see `UdpChannel.checked`).
 *
 * Per-try timeouts share one timer: every UDP try gets the same timeout, so tries expire in the
 * order they were sent, and a FIFO list of pending tries (removed from in O(1) when answered)
 * with one timer armed for its head replaces a timer per query.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { connect, isIP, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { formatHostPort, type HostPort } from '../config/address.js';
import { NeuwerkError } from '../errors.js';
import type { NodeMetrics } from '../metrics/registry.js';
import { canonicalIp } from './allowlist.js';
import { checkReply, DNS_HEADER_BYTES, DNS_MESSAGE_MAX_BYTES, questionEnd, RandomIds, RCODE } from './dns-messages.js';
import { RecencyList, type RecencyLinks } from './recency-list.js';

/** How long one upstream gets to answer one try before the next upstream is asked. */
export const DNS_UPSTREAM_TRY_TIMEOUT_MS = 2_000;
/**
 * Connected UDP sockets per upstream (each on its own OS-chosen port): the kernel accepts only
 * datagrams from that upstream, sends need no per-packet address handling, and the port adds to
 * what a spoofed reply must guess.
 */
export const DNS_UPSTREAM_SOCKETS_PER_UPSTREAM = 4;
/** Upper bound on upstream tries in flight at once; beyond it a query fails at once (SERVFAIL). */
export const DNS_UPSTREAM_MAX_PENDING = 16_384;
/** Receive buffer requested for every UDP socket (the kernel may cap it at net.core.rmem_max). */
export const DNS_UDP_RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;
/** Attempts to draw an ID not already pending before the try is refused. */
const ID_DRAW_ATTEMPTS_MAX = 32;

/** An upstream as configured and as dialled (its host resolved once, at start). */
export interface UpstreamTarget {
  /** As configured, e.g. `127.0.0.1:5300`; the metrics label. */
  readonly label: string;
  /** Canonical IP text. */
  readonly ip: string;
  readonly port: number;
}

/** A valid reply from one upstream. */
export interface UpstreamReply {
  /** The raw reply; its first two bytes are the upstream ID (the caller rewrites them). */
  readonly reply: Buffer;
  /** The reply's response code (header bits; `replyAddresses` reads its answers). */
  readonly rcode: number;
  /** The reply's TC bit. */
  readonly truncated: boolean;
  readonly upstream: string;
}

/** Outcome of `exchange`. */
export type ExchangeOutcome = ({ readonly ok: true } & UpstreamReply) | { readonly ok: false; readonly reason: string };

/** Outcome of one try: a valid reply is already the exchange's outcome (passed on as it is), a failure says why. */
type TryOutcome = ExchangeOutcome;

/** Number of 16-bit message IDs: the size of the client's table of pending tries. */
const MESSAGE_IDS = 65_536;

/** A UDP try waiting for its reply; also a node of the client's deadline list. */
interface PendingTry extends RecencyLinks<PendingTry> {
  readonly target: UpstreamTarget;
  readonly channel: UdpChannel;
  readonly id: number;
  /** `performance.now()` at which the try times out. */
  readonly deadlineMs: number;
  readonly exchange: Exchange;
  done: boolean;
}

/** One `exchange` walking the upstreams in order. */
interface Exchange {
  readonly query: Buffer;
  /** Offset just past the query's question (`questionEnd`), which a reply must repeat. */
  readonly questionEnd: number;
  readonly transport: 'udp' | 'tcp';
  readonly callback: (outcome: ExchangeOutcome) => void;
  /** Index of the upstream being tried. */
  index: number;
  /** The last SERVFAIL/REFUSED reply, returned when no upstream gives a better one. */
  fallback: ({ readonly ok: true } & UpstreamReply) | null;
  lastReason: string;
}

interface UdpChannel {
  readonly socket: UdpSocket;
  /**
   * Whether sends on this socket ask for their completion: from the start until its first valid
   * reply, and again after one of its tries timed out or the socket reported an error. A send error
   * then fails the try over at once. A socket that answers sends without a completion callback,
   * which Node would run through `process.nextTick` even for a send that completed at once (about
   * 0.5 µs per forwarded query); a send error there shows as the try's timeout, after which the
   * socket is checked again.
   */
  checked: boolean;
}

/** Options of a `DnsUpstreamClient`. */
export interface DnsUpstreamOptions {
  /** Tried in this order; hostnames are resolved once by `start` with the system resolver. */
  readonly upstreams: readonly HostPort[];
  readonly tryTimeoutMs?: number;
  readonly maxPending?: number;
  readonly socketsPerUpstream?: number;
  readonly metrics?: NodeMetrics;
}

/** Counters of a `DnsUpstreamClient` since start. */
export interface DnsUpstreamStats {
  readonly in_flight: number;
  readonly timeouts: number;
  readonly replies_dropped: number;
  readonly send_errors: number;
}

async function resolveTarget(address: HostPort): Promise<UpstreamTarget> {
  const label = formatHostPort(address);
  if (isIP(address.host) !== 0) return { label, ip: canonicalIp(address.host) ?? address.host, port: address.port };
  try {
    const found = await lookup(address.host);
    return { label, ip: canonicalIp(found.address) ?? found.address, port: address.port };
  } catch (err) {
    throw new NeuwerkError('NW_ERR_CONFIG_INVALID', `DNS upstream ${label}: cannot resolve ${address.host} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, {
      actions: ['Give the upstream as an IP address, e.g. --dns-upstream 192.0.2.53:53.'],
    });
  }
}

/** Forwards DNS queries to the upstreams; see the module comment for the contract. */
export class DnsUpstreamClient {
  private targets: UpstreamTarget[] = [];
  /** Per upstream (same order as `targets`): its connected sockets and the next one to use. */
  private channels: { readonly list: UdpChannel[]; next: number }[] = [];
  private readonly tcpSockets = new Set<Socket>();
  private readonly ids = new RandomIds();
  private readonly tryTimeoutMs: number;
  private readonly maxPending: number;
  private readonly socketsPerUpstream: number;
  private readonly metrics: NodeMetrics | undefined;
  private pendingCount = 0;
  /**
   * Pending UDP tries by message ID, over every socket (MESSAGE_IDS slots, undefined when free; an
   * ID is pending on at most one socket at a time). An array rather than a Map, which took a set and a
   * delete of a random key per forwarded query (V8 keeps deleted entries as holes until it rebuilds
   * the table); 512 KiB whatever the number of upstreams and sockets.
   */
  private readonly pendingById = new Array<PendingTry | undefined>(MESSAGE_IDS).fill(undefined);
  /** Pending UDP tries, oldest (soonest deadline) first: every try has the same timeout, so appending keeps deadline order. */
  private readonly deadlines = new RecencyList<PendingTry>();
  private deadlineTimer: NodeJS.Timeout | null = null;
  /** True while `expireTries` runs (it arms the timer itself when done). */
  private expiring = false;
  private timeoutCount = 0;
  private droppedCount = 0;
  private sendErrorCount = 0;
  private closed = false;

  constructor(private readonly options: DnsUpstreamOptions) {
    this.tryTimeoutMs = options.tryTimeoutMs ?? DNS_UPSTREAM_TRY_TIMEOUT_MS;
    this.maxPending = options.maxPending ?? DNS_UPSTREAM_MAX_PENDING;
    this.socketsPerUpstream = options.socketsPerUpstream ?? DNS_UPSTREAM_SOCKETS_PER_UPSTREAM;
    this.metrics = options.metrics;
  }

  /** Resolves the upstream addresses and binds the UDP sockets. Call once before `exchange`. */
  async start(): Promise<void> {
    if (this.options.upstreams.length === 0) throw new NeuwerkError('NW_ERR_CONFIG_INVALID', 'the DNS forwarder needs at least one upstream');
    this.targets = await Promise.all(this.options.upstreams.map(resolveTarget));
    for (const target of this.targets) {
      const list: UdpChannel[] = [];
      this.channels.push({ list, next: 0 });
      for (let i = 0; i < this.socketsPerUpstream; i++) list.push(await this.openChannel(target));
    }
  }

  /** The upstreams in the order they are tried. */
  get upstreams(): readonly UpstreamTarget[] {
    return this.targets;
  }

  /**
   * Sends `query` (a complete DNS message with one uncompressed question; its ID is replaced per
   * try, the buffer is not modified) to the upstreams in order over `transport`; resolves with the
   * first valid reply or a failure. Never rejects.
   */
  exchange(query: Buffer, transport: 'udp' | 'tcp'): Promise<ExchangeOutcome> {
    return new Promise((resolve) => this.exchangeWith(query, transport, resolve));
  }

  /**
   * `exchange` with a callback instead of a promise, for the DNS proxy's per-query path: `callback`
   * is called exactly once, possibly synchronously (closed client, too many tries in flight).
   */
  exchangeWith(query: Buffer, transport: 'udp' | 'tcp', callback: (outcome: ExchangeOutcome) => void): void {
    const end = questionEnd(query);
    if (end < 0) {
      callback({ ok: false, reason: 'the query does not hold exactly one uncompressed question' });
      return;
    }
    this.nextTry({ query, questionEnd: end, transport, callback, index: 0, fallback: null, lastReason: 'no upstream configured' });
  }

  private nextTry(exchange: Exchange): void {
    const target = this.targets[exchange.index];
    if (target === undefined) {
      if (exchange.fallback !== null) exchange.callback(exchange.fallback);
      else exchange.callback({ ok: false, reason: exchange.lastReason });
      return;
    }
    if (this.closed) {
      exchange.callback({ ok: false, reason: 'the DNS forwarder is closed' });
      return;
    }
    if (exchange.transport === 'udp') this.tryUdp(exchange.index, target, exchange);
    else void this.tryTcp(target, exchange.query, exchange.questionEnd).then((outcome) => this.onTryOutcome(exchange, target, outcome));
  }

  /** One try of `exchange` ended: fail over, keep a SERVFAIL/REFUSED as the fallback, or finish. */
  private onTryOutcome(exchange: Exchange, target: UpstreamTarget, outcome: TryOutcome): void {
    exchange.index++;
    if (!outcome.ok) {
      exchange.lastReason = `${target.label}: ${outcome.reason}`;
      this.nextTry(exchange);
      return;
    }
    const { rcode } = outcome;
    if (rcode === RCODE.SERVFAIL || rcode === RCODE.REFUSED) {
      exchange.fallback = outcome;
      exchange.lastReason = `${target.label}: answered rcode ${rcode}`;
      this.nextTry(exchange);
      return;
    }
    exchange.callback(outcome);
  }

  /** Tries in flight now. */
  get inFlight(): number {
    return this.pendingCount;
  }

  /** Counters since start. */
  stats(): DnsUpstreamStats {
    return { in_flight: this.pendingCount, timeouts: this.timeoutCount, replies_dropped: this.droppedCount, send_errors: this.sendErrorCount };
  }

  /** Closes every socket; pending tries fail at once. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const socket of this.tcpSockets) socket.destroy();
    const closing: Promise<void>[] = [];
    // Every pending UDP try is on the deadline list; failing one over finds the client closed.
    for (let head = this.deadlines.oldest; head !== null; head = this.deadlines.oldest) this.finishTry(head, { ok: false, reason: 'the DNS forwarder is closed' });
    for (const { list } of this.channels) {
      for (const channel of list) closing.push(new Promise((resolve) => channel.socket.close(() => resolve())));
    }
    if (this.deadlineTimer !== null) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    await Promise.all(closing);
  }

  private openChannel(target: UpstreamTarget): Promise<UdpChannel> {
    return new Promise((resolve, reject) => {
      const socket = createSocket({ type: target.ip.includes(':') ? 'udp6' : 'udp4', recvBufferSize: DNS_UDP_RECEIVE_BUFFER_BYTES });
      const channel: UdpChannel = { socket, checked: true };
      socket.on('message', (message, remote) => this.onUdpReply(channel, message, remote.address, remote.port));
      socket.once('error', reject);
      socket.connect(target.port, target.ip, () => {
        socket.off('error', reject);
        // Later errors (e.g. ICMP port unreachable reported on a connected socket) must not crash
        // the process; the tries concerned time out and fail over, and later sends are checked.
        socket.on('error', () => {
          channel.checked = true;
        });
        resolve(channel);
      });
    });
  }

  private onUdpReply(channel: UdpChannel, message: Buffer, address: string, port: number): void {
    if (message.length < DNS_HEADER_BYTES) return this.dropReply();
    const id = ((message[0] as number) << 8) | (message[1] as number);
    const pending = this.pendingById[id];
    if (pending === undefined || pending.channel !== channel) return this.dropReply();
    // The target's address is canonical, so an equal text is the same address (no parse per reply).
    if (pending.target.port !== port || (address !== pending.target.ip && pending.target.ip !== (canonicalIp(address) ?? address))) return this.dropReply();
    const check = checkReply(message, id, pending.exchange.query, pending.exchange.questionEnd);
    if (!check.ok) return this.dropReply();
    channel.checked = false;
    this.finishTry(pending, { ok: true, reply: message, rcode: check.rcode, truncated: check.truncated, upstream: pending.target.label });
  }

  private dropReply(): void {
    this.droppedCount++;
    this.metrics?.dnsUpstreamRepliesDropped.inc();
  }

  private noteTimeout(target: UpstreamTarget): void {
    this.timeoutCount++;
    this.metrics?.dnsUpstreamTimeouts.inc({ upstream: target.label });
  }

  private withId(query: Buffer, id: number): Buffer {
    const out = Buffer.allocUnsafe(query.length);
    query.copy(out);
    out[0] = id >>> 8;
    out[1] = id & 0xff;
    return out;
  }

  private tryUdp(targetIndex: number, target: UpstreamTarget, exchange: Exchange): void {
    if (this.pendingCount >= this.maxPending) return this.onTryOutcome(exchange, target, { ok: false, reason: 'too many queries in flight' });
    const channels = this.channels[targetIndex];
    if (channels === undefined || channels.list.length === 0) return this.onTryOutcome(exchange, target, { ok: false, reason: 'no socket for the upstream' });
    const channel = channels.list[channels.next] as UdpChannel;
    channels.next = (channels.next + 1) % channels.list.length;
    let id = -1;
    for (let attempt = 0; attempt < ID_DRAW_ATTEMPTS_MAX; attempt++) {
      const candidate = this.ids.next();
      if (this.pendingById[candidate] === undefined) {
        id = candidate;
        break;
      }
    }
    if (id < 0) return this.onTryOutcome(exchange, target, { ok: false, reason: 'no free message ID' });
    const { query } = exchange;
    const pending: PendingTry = { target, channel, id, deadlineMs: performance.now() + this.tryTimeoutMs, exchange, done: false, older: null, newer: null };
    this.pendingById[id] = pending;
    this.pendingCount++;
    this.deadlines.pushNewest(pending);
    if (this.deadlineTimer === null && !this.expiring) this.armDeadlineTimer(this.tryTimeoutMs);
    const datagram = this.withId(query, id);
    if (!channel.checked) {
      channel.socket.send(datagram);
      return;
    }
    channel.socket.send(datagram, (err) => {
      if (err) {
        this.sendErrorCount++;
        this.finishTry(pending, { ok: false, reason: `send failed (${(err as NodeJS.ErrnoException).code ?? err.message})` });
      }
    });
  }

  /** Completes a UDP try once: unlinks it from the pending table and the deadline list, then calls back. */
  private finishTry(pending: PendingTry, outcome: TryOutcome): void {
    if (pending.done) return;
    pending.done = true;
    this.pendingById[pending.id] = undefined;
    this.pendingCount--;
    this.deadlines.remove(pending);
    this.onTryOutcome(pending.exchange, pending.target, outcome);
  }

  /**
   * The one deadline timer: not holding the process open (the sockets do while the client is
   * open), armed only while tries are pending.
   */
  private armDeadlineTimer(delayMs: number): void {
    const timer = setTimeout(() => this.expireTries(), Math.max(1, Math.ceil(delayMs)));
    timer.unref();
    this.deadlineTimer = timer;
  }

  /** Times out every try whose deadline passed (oldest first), then re-arms for the next one. */
  private expireTries(): void {
    this.deadlineTimer = null;
    const now = performance.now();
    // Failing over from an expired try sends the next one at once; the timer is armed after the
    // loop, for whichever try is then the oldest.
    this.expiring = true;
    try {
      for (let head = this.deadlines.oldest; head !== null && head.deadlineMs <= now; head = this.deadlines.oldest) {
        this.noteTimeout(head.target);
        head.channel.checked = true;
        this.finishTry(head, { ok: false, reason: `no answer within ${this.tryTimeoutMs} ms` });
      }
    } finally {
      this.expiring = false;
    }
    const soonest = this.deadlines.oldest;
    if (soonest !== null && !this.closed) this.armDeadlineTimer(soonest.deadlineMs - now);
  }

  private tryTcp(target: UpstreamTarget, query: Buffer, end: number): Promise<TryOutcome> {
    if (this.pendingCount >= this.maxPending) return Promise.resolve({ ok: false, reason: 'too many queries in flight' });
    const id = this.ids.next();
    return new Promise((resolve) => {
      this.pendingCount++;
      const socket = connect({ host: target.ip, port: target.port });
      this.tcpSockets.add(socket);
      let buffered: Buffer = Buffer.alloc(0);
      let done = false;
      const finish = (outcome: TryOutcome): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.pendingCount--;
        this.tcpSockets.delete(socket);
        socket.destroy();
        resolve(outcome);
      };
      const timer = setTimeout(() => {
        this.noteTimeout(target);
        finish({ ok: false, reason: `no answer within ${this.tryTimeoutMs} ms` });
      }, this.tryTimeoutMs);
      socket.on('connect', () => {
        const frame = Buffer.allocUnsafe(2 + query.length);
        frame.writeUInt16BE(query.length, 0);
        query.copy(frame, 2);
        frame.writeUInt16BE(id, 2);
        socket.write(frame);
      });
      socket.on('data', (chunk: Buffer) => {
        buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
        while (buffered.length >= 2) {
          const length = buffered.readUInt16BE(0);
          if (buffered.length < 2 + length) break;
          const message = Buffer.from(buffered.subarray(2, 2 + length));
          buffered = buffered.subarray(2 + length);
          const check = checkReply(message, id, query, end);
          if (check.ok) return finish({ ok: true, reply: message, rcode: check.rcode, truncated: check.truncated, upstream: target.label });
          this.dropReply();
        }
        if (buffered.length > 2 + DNS_MESSAGE_MAX_BYTES) finish({ ok: false, reason: 'oversized TCP frame' });
      });
      socket.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, reason: `TCP ${err.code ?? err.message}` }));
      socket.on('close', () => finish({ ok: false, reason: 'TCP connection closed before the answer' }));
    });
  }
}
