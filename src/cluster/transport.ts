import { EventEmitter } from 'node:events';
import { connect, createServer, type Server, type TLSSocket } from 'node:tls';
import { ERROR_CATALOGUE, NeuwerkError, describeError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { LogThrottle } from '../log/throttle.js';
import { certificateNodeId } from './ca.js';

/** Largest frame accepted on the cluster port; a bigger length prefix closes the connection. */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;
/** Outgoing frames queued per peer while disconnected; beyond it Raft messages are dropped. */
export const MAX_QUEUED_FRAMES = 4096;
/**
 * Unsent bytes a connected peer's socket may hold before Raft messages to it are dropped instead
 * of buffered (RPC frames never are). A peer that reads slower than we write (a restarted member
 * chewing through its catch-up) otherwise gets an ever longer backlog of appends it must parse,
 * much of it stale by the time it arrives. Raft resends what is dropped. Eight 1 MiB appends.
 */
export const MAX_UNSENT_BYTES_PER_PEER = 8 * 1024 * 1024;
/**
 * Raft messages queued while a peer was unreachable are sent once it is connected only if they
 * are younger than this. The queue bridges a reconnect, not an outage: after a restart the peer
 * would otherwise first chew through appends and heartbeats from minutes ago (up to
 * `MAX_QUEUED_FRAMES` of them, and replicated entries that Raft sends again anyway), and catch-up
 * decisions (e.g. that it needs a snapshot) would be hidden behind them.
 */
export const MAX_QUEUED_RAFT_AGE_MS = 1_000;
/**
 * Why a Raft message was not sent: the connected peer's unsent bytes were too many (`backlog`),
 * the queue while reconnecting was full (`reconnect-queue`), or it waited in that queue longer
 * than `MAX_QUEUED_RAFT_AGE_MS` (`stale`). The metric label `reason`, with `malformed` for
 * received ones the host drops.
 */
export const DROP_REASONS = ['backlog', 'reconnect-queue', 'stale'] as const;
export type DropReason = (typeof DROP_REASONS)[number];
/** Reconnect backoff bounds: each failed attempt doubles the wait, plus up to as much again in jitter. */
export const RECONNECT_BACKOFF_MS = { min: 50, max: 2_000 } as const;
export const CONNECT_TIMEOUT_MS = 3_000;
export const RPC_TIMEOUT_DEFAULT_MS = 5_000;

/** TLS identity of this node: key, certificate and the cluster CA it trusts. */
export interface ClusterTls {
  readonly keyPem: string;
  readonly certPem: string;
  readonly caPem: string;
}

type Frame =
  | { kind: 'raft'; body: unknown }
  | { kind: 'rpc'; id: number; method: string; body: unknown }
  | { kind: 'rpc-ok'; id: number; body: unknown }
  | { kind: 'rpc-error'; id: number; code: string; message: string }
  /** The last frame on a connection a member refuses: the connecting node was removed from the cluster. */
  | { kind: 'refused'; reason: 'removed' };

/** A refused removed member is logged at most this often per peer (it reconnects with backoff). */
const REFUSED_LOG_INTERVAL_MS = 60_000;
/** A refused connection is closed after this long if the peer does not close it after the `refused` frame. */
const REFUSED_CLOSE_MS = 1_000;

/**
 * Binary payloads (snapshot chunks) travel inside JSON as `{"$b64": "..."}`. The holder's own
 * property is what is checked: JSON.stringify calls a Buffer's `toJSON` BEFORE the replacer, so
 * `value` of a Buffer (a snapshot read from its file is one) is already `{type:'Buffer',data:[...]}`.
 */
function replacer(this: unknown, key: string, value: unknown): unknown {
  const raw = (this as Record<string, unknown>)[key];
  return raw instanceof Uint8Array ? { $b64: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64') } : value;
}

/** The key of a binary payload as it appears in an encoded frame. */
const BINARY_MARKER = '"$b64"';

function reviver(_key: string, value: unknown): unknown {
  if (value !== null && typeof value === 'object' && typeof (value as { $b64?: unknown }).$b64 === 'string' && Object.keys(value).length === 1) {
    return new Uint8Array(Buffer.from((value as { $b64: string }).$b64, 'base64'));
  }
  return value;
}

/** Below this depth a frame is searched for binary; deeper ones take the replacer regardless. */
const BINARY_SEARCH_DEPTH_MAX = 32;

/**
 * Whether a value holds a Uint8Array (Buffers included). A walk costs less than a replacer call
 * per value during JSON.stringify, and most frames (appends, their answers, RPCs) carry none.
 */
function holdsBinary(value: unknown, depth: number): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (value instanceof Uint8Array || depth >= BINARY_SEARCH_DEPTH_MAX) return true;
  if (Array.isArray(value)) {
    for (const item of value) if (holdsBinary(item, depth + 1)) return true;
    return false;
  }
  for (const key in value) if (holdsBinary((value as Record<string, unknown>)[key], depth + 1)) return true;
  return false;
}

function frameJson(frame: Frame): string {
  return holdsBinary(frame, 0) ? JSON.stringify(frame, replacer) : JSON.stringify(frame);
}

/**
 * Encodes frames back to back (each a 4-byte big-endian length, then JSON) into ONE buffer: one
 * allocation, and one socket write (one TLS record, one syscall) for all of them.
 */
export function encodeFrames(frames: readonly Frame[]): Buffer {
  const texts = frames.map(frameJson);
  const lengths = texts.map((text) => Buffer.byteLength(text, 'utf8'));
  let total = 0;
  for (const length of lengths) {
    if (length > MAX_FRAME_BYTES) throw new NeuwerkError('NW_ERR_RPC', `frame of ${length} bytes exceeds ${MAX_FRAME_BYTES}`);
    total += 4 + length;
  }
  const out = Buffer.allocUnsafe(total);
  let offset = 0;
  for (let i = 0; i < texts.length; i++) {
    const length = lengths[i]!;
    out.writeUInt32BE(length, offset);
    out.write(texts[i]!, offset + 4, length, 'utf8');
    offset += 4 + length;
  }
  return out;
}

/** Encodes one frame: 4-byte big-endian length, then JSON. */
export function encodeFrame(frame: Frame): Buffer {
  return encodeFrames([frame]);
}

/**
 * Splits a byte stream into frames; throws on an oversized or malformed frame. Chunks are kept as
 * they arrive and joined only once a whole frame is there, so a frame that comes in many chunks
 * (a 1 MiB append in 16-64 KiB reads) is copied once, not once per chunk.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  /** Bytes held in `chunks`. */
  private held = 0;

  push(chunk: Buffer): Frame[] {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.held += chunk.length;
    }
    const frames: Frame[] = [];
    while (this.held >= 4) {
      let head = this.chunks[0] as Buffer;
      if (head.length < 4) head = this.join();
      const length = head.readUInt32BE(0);
      if (length > MAX_FRAME_BYTES) throw new NeuwerkError('NW_ERR_RPC', `peer sent a frame of ${length} bytes (limit ${MAX_FRAME_BYTES})`);
      if (this.held < 4 + length) break;
      if (head.length < 4 + length) head = this.join();
      const text = head.toString('utf8', 4, 4 + length);
      if (head.length === 4 + length) this.chunks.shift();
      else this.chunks[0] = head.subarray(4 + length);
      this.held -= 4 + length;
      // The reviver costs a call per value (3-5x the parse of an append); only frames that carry
      // binary have the marker key, which JSON.stringify always writes as the literal `"$b64"`.
      const frame = (text.includes(BINARY_MARKER) ? JSON.parse(text, reviver) : JSON.parse(text)) as Frame;
      if (frame === null || typeof frame !== 'object' || typeof frame.kind !== 'string') throw new NeuwerkError('NW_ERR_RPC', 'malformed frame');
      frames.push(frame);
    }
    return frames;
  }

  /** Joins the held chunks into one (the first) and returns it. */
  private join(): Buffer {
    const joined = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.held);
    this.chunks = [joined];
    return joined;
  }
}

/** Handles an RPC from an authenticated peer; throw a NeuwerkError to answer with an error. */
export type RpcHandler = (from: string, body: unknown) => Promise<unknown>;

interface Pending {
  resolve: (body: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Writes to one socket. Frames written `later` within one turn of the event loop are corked and
 * leave as one write when `process.nextTick` runs — one TLS record and one syscall (Node merges a
 * corked batch into one record) instead of one per frame, e.g. the answers to all the RPCs that one
 * processing pass settled. `now` writes at once, together with whatever was corked before it.
 */
export class SocketWriter {
  private corked = false;

  constructor(private readonly socket: TLSSocket) {}

  now(data: Buffer): void {
    this.socket.write(data);
    this.flush();
  }

  later(data: Buffer): void {
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.flush);
    }
    this.socket.write(data);
  }

  private readonly flush = (): void => {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  };
}

/** One outgoing, persistent, reconnecting connection to a peer. */
class PeerLink {
  private socket: TLSSocket | null = null;
  private writer: SocketWriter | null = null;
  private connecting = false;
  /**
   * Frames waiting for the connection; `rpcId` marks an RPC request whose caller waits for it (a
   * failed connection attempt fails the call and removes it), and a frame without one is a Raft
   * message (droppable); `atMs` is when it was queued.
   */
  private queue: { frame: Buffer; rpcId: number | null; atMs: number }[] = [];
  private backoffMs: number;
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  constructor(
    readonly peerId: string,
    private readonly transport: ClusterTransport,
  ) {
    this.backoffMs = transport.reconnectBackoffMs.min;
  }

  /**
   * Sends Raft frames at once, in order, as one write while connected (the caller relies on them
   * leaving now: early replication messages must not wait behind its fsync). While disconnected
   * they are queued one by one and may be dropped (Raft retries).
   */
  sendRaft(frames: readonly Frame[]): void {
    if (this.closed) return;
    if (this.writer !== null && this.socket !== null) {
      if (this.socket.writableLength >= MAX_UNSENT_BYTES_PER_PEER) {
        for (let i = 0; i < frames.length; i++) this.transport.dropped(this.peerId, 'backlog');
        return;
      }
      this.writer.now(encodeFrames(frames));
      return;
    }
    for (const frame of frames) this.enqueue(encodeFrame(frame), null);
  }

  /** Sends an RPC request (never dropped): corked into this turn's write, or queued until connected. */
  private sendRequest(frame: Buffer, rpcId: number): void {
    if (this.closed) return;
    if (this.writer !== null && this.socket !== null) this.writer.later(frame);
    else this.enqueue(frame, rpcId);
  }

  /** Queues a frame until the connection is up; `rpcId` null marks a Raft message, dropped first. */
  private enqueue(frame: Buffer, rpcId: number | null): void {
    if (this.queue.length >= MAX_QUEUED_FRAMES) this.dropStaleQueued();
    if (this.queue.length >= MAX_QUEUED_FRAMES) {
      if (rpcId === null) {
        this.transport.dropped(this.peerId, 'reconnect-queue');
        return;
      }
      // The oldest frame makes room; an RPC request among them fails now instead of at its timeout.
      const dropped = this.queue.shift();
      if (dropped !== undefined && dropped.rpcId !== null) this.failCall(dropped.rpcId, `cluster RPC to ${this.peerId} dropped: ${MAX_QUEUED_FRAMES} frames queued while reconnecting`);
    }
    this.queue.push({ frame, rpcId, atMs: performance.now() });
    this.ensureConnected();
  }

  /** Drops the queued Raft messages older than `MAX_QUEUED_RAFT_AGE_MS` (they would not be sent). */
  private dropStaleQueued(): void {
    const staleBefore = performance.now() - MAX_QUEUED_RAFT_AGE_MS;
    const kept = this.queue.filter((queued) => queued.rpcId !== null || queued.atMs >= staleBefore);
    for (let i = kept.length; i < this.queue.length; i++) this.transport.dropped(this.peerId, 'stale');
    this.queue = kept;
  }

  private failCall(id: number, message: string): void {
    const pending = this.pending.get(id);
    if (pending === undefined) return;
    clearTimeout(pending.timer);
    this.pending.delete(id);
    pending.reject(new NeuwerkError('NW_ERR_RPC', message));
  }

  call(method: string, body: unknown, timeoutMs: number): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new NeuwerkError('NW_ERR_TIMEOUT', `cluster RPC ${method} to ${this.peerId} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.sendRequest(encodeFrame({ kind: 'rpc', id, method, body }), id);
    });
  }

  ensureConnected(): void {
    if (this.closed || this.socket !== null || this.connecting || this.retryTimer !== null) return;
    const address = this.transport.addressOf(this.peerId);
    if (address === null) return;
    this.connecting = true;
    const tls = this.transport.tls;
    const socket = connect({
      host: address.host,
      port: address.port,
      key: tls.keyPem,
      cert: tls.certPem,
      ca: tls.caPem,
      rejectUnauthorized: true,
      // Peers are identified by the node id in their certificate, not by host name.
      checkServerIdentity: (_host, cert) => {
        const cn = cert.subject?.CN;
        return cn === this.peerId ? undefined : new Error(`peer certificate names ${String(cn)}, expected ${this.peerId}`);
      },
      timeout: CONNECT_TIMEOUT_MS,
    });
    socket.setNoDelay(true);
    const decoder = new FrameDecoder();
    socket.once('secureConnect', () => {
      this.connecting = false;
      this.socket = socket;
      this.writer = new SocketWriter(socket);
      this.backoffMs = this.transport.reconnectBackoffMs.min;
      // Once per established connection (failed attempts while the peer is down stay at debug).
      this.transport.logger.info({ peer: this.peerId, address: `${address.host}:${address.port}` }, 'cluster connection to peer established');
      socket.setTimeout(0);
      this.dropStaleQueued();
      const queued = this.queue;
      this.queue = [];
      for (const { frame } of queued) this.writer.later(frame);
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const frame of decoder.push(chunk)) this.onFrame(frame);
      } catch (err) {
        this.transport.logger.warn({ peer: this.peerId, err: describeError(err) }, 'bad frame from peer; reconnecting');
        socket.destroy();
      }
    });
    socket.on('timeout', () => socket.destroy(new Error('connect timeout')));
    socket.on('error', (err) => this.transport.logger.debug({ peer: this.peerId, err: describeError(err) }, 'cluster connection error'));
    socket.on('close', () => {
      if (this.socket === socket && !this.closed) this.transport.logger.info({ peer: this.peerId }, 'cluster connection to peer lost; reconnecting');
      this.socket = null;
      this.writer = null;
      this.connecting = false;
      for (const [id, pending] of this.pending) {
        clearTimeout(pending.timer);
        pending.reject(new NeuwerkError('NW_ERR_RPC', `connection to ${this.peerId} closed`));
        this.pending.delete(id);
      }
      // Requests still queued have just failed for their callers: never send them later (the peer
      // would carry out, say, a forwarded write that its caller was told had failed).
      if (this.queue.some((queued) => queued.rpcId !== null)) this.queue = this.queue.filter((queued) => queued.rpcId === null);
      if (this.closed) return;
      const delay = this.backoffMs + Math.floor(Math.random() * this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, this.transport.reconnectBackoffMs.max);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        if (this.queue.length > 0 || this.pending.size > 0) this.ensureConnected();
      }, delay);
      this.retryTimer.unref();
    });
  }

  /**
   * The peer has just connected to us, so it is up: a reconnect waiting out its backoff (grown
   * while the peer was down, up to 4 s with jitter) starts now. Without this, after a full restart
   * the node that waited alone answered the others' votes only when its timer fired.
   */
  peerIsUp(): void {
    if (this.closed || this.retryTimer === null) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.backoffMs = this.transport.reconnectBackoffMs.min;
    if (this.queue.length > 0 || this.pending.size > 0) this.ensureConnected();
  }

  private onFrame(frame: Frame): void {
    if (frame.kind === 'refused') {
      this.transport.emit('refused', this.peerId, frame.reason);
      return;
    }
    if (frame.kind !== 'rpc-ok' && frame.kind !== 'rpc-error') return;
    const pending = this.pending.get(frame.id);
    if (pending === undefined) return;
    this.pending.delete(frame.id);
    clearTimeout(pending.timer);
    if (frame.kind === 'rpc-ok') pending.resolve(frame.body);
    else pending.reject(new NeuwerkError(frame.code in ERROR_CATALOGUE ? (frame.code as ErrorCode) : 'NW_ERR_RPC', frame.message));
  }

  close(): void {
    this.closed = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.socket?.destroy();
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(new NeuwerkError('NW_ERR_SHUTTING_DOWN', 'cluster transport closed'));
    }
    this.pending.clear();
  }
}

export interface ClusterTransportOptions {
  readonly nodeId: string;
  readonly tls: ClusterTls;
  readonly logger: Logger;
  /** Current cluster address of a peer, or null when unknown. */
  readonly resolveAddress: (nodeId: string) => { host: string; port: number } | null;
  /** Peers whose connections are refused even with a valid certificate (removed members). */
  readonly isRefused?: (nodeId: string) => boolean;
  /** A Raft message to `peerId` was not sent (see `DropReason`). */
  readonly onDropped?: (peerId: string, reason: DropReason) => void;
  /** Reconnect backoff bounds (tests); `RECONNECT_BACKOFF_MS` by default. */
  readonly reconnectBackoffMs?: { readonly min: number; readonly max: number };
}

/**
 * Mutual-TLS transport between cluster members: a listener that requires client certificates from
 * the cluster CA and identifies peers by certificate CN (node id), and one persistent outgoing
 * connection per peer with reconnect and backoff. Carries Raft messages (fire and forget) and RPCs.
 */
export class ClusterTransport extends EventEmitter {
  readonly tls: ClusterTls;
  readonly logger: Logger;
  readonly reconnectBackoffMs: { readonly min: number; readonly max: number };
  private readonly links = new Map<string, PeerLink>();
  private readonly handlers = new Map<string, RpcHandler>();
  private server: Server | null = null;
  private readonly inbound = new Set<TLSSocket>();
  /** Refused removed members are logged once a minute each. */
  private readonly refusedLog = new LogThrottle(REFUSED_LOG_INTERVAL_MS);

  constructor(private readonly options: ClusterTransportOptions) {
    super();
    this.tls = options.tls;
    this.logger = options.logger;
    this.reconnectBackoffMs = options.reconnectBackoffMs ?? RECONNECT_BACKOFF_MS;
  }

  addressOf(nodeId: string): { host: string; port: number } | null {
    return this.options.resolveAddress(nodeId);
  }

  /** A Raft message to `peerId` was not sent (see `DropReason`). */
  dropped(peerId: string, reason: DropReason): void {
    this.options.onDropped?.(peerId, reason);
  }

  /** Registers the handler for an RPC method. */
  handle(method: string, handler: RpcHandler): void {
    this.handlers.set(method, handler);
  }

  /** Starts the listener; resolves once bound. */
  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    const server = createServer({
      key: this.tls.keyPem,
      cert: this.tls.certPem,
      ca: this.tls.caPem,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
    });
    server.on('secureConnection', (socket) => this.accept(socket));
    server.on('tlsClientError', (err, socket) => {
      this.logger.debug({ remote: socket.remoteAddress, err: describeError(err) }, 'refused cluster connection without a valid client certificate');
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port, exclusive: true }, () => {
        server.off('error', reject);
        const address = server.address();
        resolve({ host, port: typeof address === 'object' && address !== null ? address.port : port });
      });
    });
  }

  get listener(): Server | null {
    return this.server;
  }

  private accept(socket: TLSSocket): void {
    const certificate = socket.getPeerX509Certificate();
    let peerId: string;
    try {
      if (certificate === undefined) throw new Error('no client certificate');
      peerId = certificateNodeId(certificate.toString());
    } catch (err) {
      this.logger.warn({ remote: socket.remoteAddress, err: describeError(err) }, 'refused cluster connection');
      socket.destroy();
      return;
    }
    if (this.options.isRefused?.(peerId)) {
      this.refuseRemoved(peerId, socket);
      return;
    }
    this.inbound.add(socket);
    this.links.get(peerId)?.peerIsUp();
    socket.setNoDelay(true);
    const writer = new SocketWriter(socket);
    const decoder = new FrameDecoder();
    socket.on('data', (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        this.logger.warn({ peer: peerId, err: describeError(err) }, 'bad frame; closing connection');
        socket.destroy();
        return;
      }
      for (const frame of frames) this.onInbound(peerId, socket, writer, frame);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => this.inbound.delete(socket));
  }

  /**
   * A removed member is told so before its connection closes (a `refused` frame), so that a node
   * removed while it was down learns it on its next attempt instead of retrying forever; it
   * believes it only from a voter of its own configuration (ClusterRuntime).
   */
  private refuseRemoved(peerId: string, socket: TLSSocket): void {
    const suppressed = this.refusedLog.admit(peerId, Date.now());
    if (suppressed !== null) this.logger.warn({ peer: peerId, suppressed }, 'refused cluster connection from a removed member (told it so; logged once a minute)');
    socket.on('error', () => undefined);
    socket.end(encodeFrame({ kind: 'refused', reason: 'removed' }));
    setTimeout(() => socket.destroy(), REFUSED_CLOSE_MS).unref();
  }

  private onInbound(peerId: string, socket: TLSSocket, writer: SocketWriter, frame: Frame): void {
    if (frame.kind === 'raft') {
      this.emit('raft', peerId, frame.body);
      return;
    }
    if (frame.kind !== 'rpc') return;
    const handler = this.handlers.get(frame.method);
    const reply = (answer: Frame): void => {
      if (socket.destroyed) return;
      let encoded: Buffer;
      try {
        encoded = encodeFrame(answer);
      } catch (err) {
        // An answer too large for one frame: the caller gets an error instead of a silence until its timeout.
        encoded = encodeFrame({ kind: 'rpc-error', id: frame.id, code: 'NW_ERR_RPC', message: `answer to cluster RPC ${frame.method} not sent: ${describeError(err)}` });
      }
      writer.later(encoded);
    };
    if (handler === undefined) {
      reply({ kind: 'rpc-error', id: frame.id, code: 'NW_ERR_RPC', message: `unknown cluster RPC ${frame.method}` });
      return;
    }
    handler(peerId, frame.body).then(
      (body) => reply({ kind: 'rpc-ok', id: frame.id, body }),
      (err: unknown) => {
        const error = err instanceof NeuwerkError ? err : new NeuwerkError('NW_ERR_INTERNAL', describeError(err));
        reply({ kind: 'rpc-error', id: frame.id, code: error.code, message: error.message });
      },
    );
  }

  private link(peerId: string): PeerLink {
    let link = this.links.get(peerId);
    if (link === undefined) {
      link = new PeerLink(peerId, this);
      this.links.set(peerId, link);
    }
    return link;
  }

  /** Sends a Raft message; may be dropped under pressure (Raft retries). */
  sendRaft(to: string, message: unknown): void {
    if (to === this.options.nodeId) return;
    this.link(to).sendRaft([{ kind: 'raft', body: message }]);
  }

  /**
   * Sends Raft messages now, in order per peer; the messages for one peer leave as ONE write (one
   * TLS record, one syscall) instead of one each. May be dropped under pressure (Raft retries).
   */
  sendRaftBatch(messages: readonly { readonly to: string }[]): void {
    if (messages.length === 1) {
      this.sendRaft(messages[0]!.to, messages[0]);
      return;
    }
    const byPeer = new Map<string, Frame[]>();
    for (const message of messages) {
      if (message.to === this.options.nodeId) continue;
      const frames = byPeer.get(message.to);
      if (frames === undefined) byPeer.set(message.to, [{ kind: 'raft', body: message }]);
      else frames.push({ kind: 'raft', body: message });
    }
    for (const [to, frames] of byPeer) this.link(to).sendRaft(frames);
  }

  /** Calls an RPC on a peer with a bounded wait. */
  call<T>(to: string, method: string, body: unknown, timeoutMs = RPC_TIMEOUT_DEFAULT_MS): Promise<T> {
    return this.link(to).call(method, body, timeoutMs) as Promise<T>;
  }

  /** Drops the connection to a peer (e.g. after it was removed). */
  forget(peerId: string): void {
    this.links.get(peerId)?.close();
    this.links.delete(peerId);
  }

  async close(): Promise<void> {
    for (const link of this.links.values()) link.close();
    this.links.clear();
    for (const socket of this.inbound) socket.destroy();
    const server = this.server;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** Bound of a one-shot RPC from the CLI to a member's cluster port. */
export const ONE_SHOT_RPC_TIMEOUT_MS = 10_000;

/**
 * One RPC over a fresh mutual-TLS connection, for operator tools that hold a node's identity
 * (`neuwerk auth ... --data-dir` on the node): the server is any member whose certificate chains
 * to the cluster CA.
 */
export function callClusterRpcOnce<T>(options: { host: string; port: number; tls: ClusterTls; method: string; body: unknown; timeoutMs?: number }): Promise<T> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: options.host,
      port: options.port,
      key: options.tls.keyPem,
      cert: options.tls.certPem,
      ca: options.tls.caPem,
      rejectUnauthorized: true,
      checkServerIdentity: () => undefined,
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new NeuwerkError('NW_ERR_TIMEOUT', `cluster RPC ${options.method} to ${options.host}:${options.port} timed out`));
    }, options.timeoutMs ?? ONE_SHOT_RPC_TIMEOUT_MS);
    const decoder = new FrameDecoder();
    const settle = (action: () => void): void => {
      clearTimeout(timer);
      socket.destroy();
      action();
    };
    socket.once('secureConnect', () => socket.write(encodeFrame({ kind: 'rpc', id: 1, method: options.method, body: options.body })));
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const frame of decoder.push(chunk)) {
          if (frame.kind === 'rpc-ok' && frame.id === 1) settle(() => resolve(frame.body as T));
          else if (frame.kind === 'rpc-error' && frame.id === 1) {
            settle(() => reject(new NeuwerkError(frame.code in ERROR_CATALOGUE ? (frame.code as ErrorCode) : 'NW_ERR_RPC', frame.message)));
          }
        }
      } catch (err) {
        settle(() => reject(err as Error));
      }
    });
    socket.on('error', (err) => settle(() => reject(new NeuwerkError('NW_ERR_API_UNREACHABLE', `cannot reach the cluster port ${options.host}:${options.port}: ${err.message}`))));
    socket.on('close', () => settle(() => reject(new NeuwerkError('NW_ERR_RPC', `the cluster port ${options.host}:${options.port} closed the connection (not a member of this cluster?)`))));
  });
}
