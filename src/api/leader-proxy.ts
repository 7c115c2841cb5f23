import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent, request } from 'undici';
import { NeuwerkError, describeError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import {
  ANSWER_HOP_BY_HOP,
  FORWARD_RPC_BODY_BYTES_MAX,
  FORWARD_RPC_METHOD,
  FORWARD_RPC_TIMEOUT_MS,
  chooseForwardPath,
  encodeForwardedRequest,
  parseForwardedAnswer,
  type ForwardPath,
} from './forwarded-request.js';
import { readBody, type Method, type Route } from './router.js';

/**
 * A routed request waits at most this long for a leader to be known; the 503 then leaves within
 * DESIGN §6's 2 s with room for the request's own handling.
 */
export const NO_LEADER_WAIT_MS = 1_900;
/** Upper bound of one proxied request. */
export const PROXY_TIMEOUT_MS = 30_000;
/** Marks a request a follower already forwarded, so it is never forwarded twice. */
export const FORWARDED_HEADER = 'x-neuwerk-forwarded-by';
/**
 * Keep-alive connections to the leader. A forwarded request holds one until its answer is back
 * (no pipelining: one slow request must not stall others), so this bounds the concurrency of
 * forwarded writes; it is above the loads we measure (64 clients), so none queues behind another.
 */
export const PROXY_CONNECTIONS_MAX = 256;
/**
 * Bodies up to this size (by their declared content-length) are read whole and sent in one piece
 * with a content-length, instead of streamed chunk by chunk: management requests and answers are
 * small, and a buffered one costs fewer writes and event-loop turns on both nodes. Larger or
 * undeclared bodies are streamed.
 */
export const PROXY_BUFFERED_BODY_BYTES_MAX = 64 * 1024;

/**
 * Not passed on in either direction. `expect` included: this node already answered the client's
 * `Expect: 100-continue` (Node does), so the body is on its way, and the HTTPS client refuses it.
 */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host', 'content-length', 'expect']);

/** Calls a cluster RPC on a member (the cluster transport's `call`). */
export type ClusterRpcCall = (nodeId: string, method: string, body: unknown, timeoutMs: number) => Promise<unknown>;

/** The leader as routing sees it: its node id (for the cluster RPC) and management address (for HTTPS). */
export interface LeaderAddress {
  readonly nodeId: string;
  readonly address: string;
}

/**
 * Forwards management requests from a follower to the leader. A request whose route returns its
 * answer and whose body is declared and small runs on the leader over the cluster RPC
 * `api.forward` (the members' persistent mutual-TLS connection); the rest, and a GET whose answer
 * turned out too large for one RPC answer, are re-sent over HTTPS verified with the cluster CA
 * (every node's management certificate is issued by it), streaming both bodies. Either way the
 * caller's credentials travel unchanged and are checked by the leader, and a request is sent to
 * the leader once (only a GET may be sent again, over HTTPS, when the leader says its answer is
 * too large for the RPC).
 */
export class LeaderProxy {
  private readonly dispatcher: Agent;
  private rpcInFlight = 0;
  constructor(
    private readonly nodeId: string,
    caPem: string,
    private readonly leader: () => LeaderAddress | null,
    private readonly logger: Logger,
    private readonly rpc: ClusterRpcCall | null = null,
    private readonly onForwarded: (path: ForwardPath) => void = () => undefined,
  ) {
    this.dispatcher = new Agent({ connect: { ca: caPem, rejectUnauthorized: true }, connections: PROXY_CONNECTIONS_MAX, keepAliveTimeout: 10_000 });
  }

  /** Waits up to NO_LEADER_WAIT_MS for a known leader; null when there is none. */
  async waitForLeader(): Promise<LeaderAddress | null> {
    const deadline = Date.now() + NO_LEADER_WAIT_MS;
    for (;;) {
      const leader = this.leader();
      const left = deadline - Date.now();
      if (leader !== null || left <= 0) return leader;
      await new Promise((resolve) => setTimeout(resolve, Math.min(50, left)));
    }
  }

  /** Forwards one request the follower must not serve itself and writes the leader's answer to `res`. */
  async forward(req: IncomingMessage, res: ServerResponse, leader: LeaderAddress, route: Pick<Route, 'forwarding'>): Promise<void> {
    const path = this.rpc === null ? ({ via: 'https', reason: 'leader-without-rpc' } as const) : chooseForwardPath(route, req.headers, this.rpcInFlight);
    if (path.via === 'https') {
      this.onForwarded(path);
      await this.forwardHttps(req, res, leader, undefined);
      return;
    }
    // The declared length is at most FORWARD_RPC_BODY_BYTES_MAX; readBody still enforces it.
    const body = await readBody(req, FORWARD_RPC_BODY_BYTES_MAX);
    const payload = encodeForwardedRequest({
      method: (req.method ?? 'GET') as Method,
      url: req.url ?? '/',
      headers: req.headers,
      clientAddress: req.socket.remoteAddress ?? 'unknown',
      body,
    });
    let raw: unknown;
    this.rpcInFlight += 1;
    try {
      raw = await (this.rpc as ClusterRpcCall)(leader.nodeId, FORWARD_RPC_METHOD, payload, FORWARD_RPC_TIMEOUT_MS);
    } catch (err) {
      if (err instanceof NeuwerkError && err.code === 'NW_ERR_RPC' && err.message.startsWith(`unknown cluster RPC ${FORWARD_RPC_METHOD}`)) {
        // A leader of an older version: it never ran the request, so HTTPS is safe.
        this.onForwarded({ via: 'https', reason: 'leader-without-rpc' });
        await this.forwardHttps(req, res, leader, body);
        return;
      }
      this.logger.warn({ leader: leader.nodeId, via: 'rpc', err: describeError(err) }, 'forwarding to the leader failed');
      throw new NeuwerkError('NW_ERR_NO_LEADER', `no cluster leader reachable (leader ${leader.nodeId} did not answer over cluster RPC: ${(err as Error).message})`);
    } finally {
      this.rpcInFlight -= 1;
    }
    const answer = parseForwardedAnswer(raw);
    if (answer.kind === 'use-https') {
      // Only a GET gets this answer: running it again is harmless.
      this.onForwarded({ via: 'https', reason: answer.reason });
      await this.forwardHttps(req, res, leader, body);
      return;
    }
    this.onForwarded(path);
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(answer.headers)) if (!ANSWER_HOP_BY_HOP.has(name)) headers[name] = value;
    // A text body stays a string: Node sends it in the same socket write as the head.
    const answerBody = typeof answer.body === 'string' ? answer.body : Buffer.from(answer.body.buffer, answer.body.byteOffset, answer.body.byteLength);
    if (answer.status !== 204 && answer.status !== 304) headers['content-length'] = String(typeof answerBody === 'string' ? Buffer.byteLength(answerBody, 'utf8') : answerBody.length);
    res.writeHead(answer.status, headers);
    res.end(answerBody);
  }

  /** Re-sends the request over HTTPS; `body` is the already read body, or undefined to read (or stream) it here. */
  private async forwardHttps(req: IncomingMessage, res: ServerResponse, leader: LeaderAddress, readAlready: Buffer | undefined): Promise<void> {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name)) continue;
      headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    headers[FORWARDED_HEADER] = this.nodeId;
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    // A small declared body is read whole (the limit matches the leader's, which answers 413 too).
    const declaredBytes = Number(req.headers['content-length'] ?? Number.NaN);
    const body = !hasBody ? null : readAlready !== undefined ? readAlready : declaredBytes <= PROXY_BUFFERED_BODY_BYTES_MAX ? await readBody(req, PROXY_BUFFERED_BODY_BYTES_MAX) : req;
    let upstream;
    try {
      upstream = await request(`https://${leader.address}${req.url ?? '/'}`, {
        method: (req.method ?? 'GET') as 'GET',
        headers,
        body,
        dispatcher: this.dispatcher,
        headersTimeout: PROXY_TIMEOUT_MS,
        bodyTimeout: PROXY_TIMEOUT_MS,
      });
    } catch (err) {
      // The client went away while its body was streamed on: nothing to answer, nothing wrong with the leader.
      if (req.destroyed && !req.complete) throw new NeuwerkError('NW_ERR_HTTP_BAD_REQUEST', 'the client closed the connection before its request body arrived');
      this.logger.warn({ leader: leader.nodeId, via: 'https', err: (err as Error).message }, 'forwarding to the leader failed');
      throw new NeuwerkError('NW_ERR_NO_LEADER', `no cluster leader reachable (leader ${leader.nodeId} at ${leader.address} did not answer)`);
    }
    const responseHeaders: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(upstream.headers)) {
      if (value !== undefined && !HOP_BY_HOP.has(name)) responseHeaders[name] = value;
    }
    const answerBytes = Number(upstream.headers['content-length'] ?? Number.NaN);
    if (req.method !== 'HEAD' && answerBytes <= PROXY_BUFFERED_BODY_BYTES_MAX) {
      const answer = Buffer.from(await upstream.body.arrayBuffer());
      responseHeaders['content-length'] = String(answer.length);
      res.writeHead(upstream.statusCode, responseHeaders);
      res.end(answer);
      return;
    }
    res.writeHead(upstream.statusCode, responseHeaders);
    for await (const chunk of upstream.body) res.write(chunk);
    res.end();
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}
