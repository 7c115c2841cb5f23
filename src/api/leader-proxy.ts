import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent, request } from 'undici';
import { NeuwerkError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { readBody } from './router.js';

/** A routed request waits at most this long for a leader to be known (DESIGN §6: within 2 s). */
export const NO_LEADER_WAIT_MS = 2_000;
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

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host', 'content-length']);

/**
 * Forwards management requests from a follower to the leader over HTTPS verified with the cluster
 * CA (every node's management certificate is issued by it), streaming both bodies. The caller's
 * credentials travel unchanged and are checked by the leader.
 */
export class LeaderProxy {
  private readonly dispatcher: Agent;
  constructor(
    private readonly nodeId: string,
    caPem: string,
    private readonly leader: () => { nodeId: string; address: string } | null,
    private readonly logger: Logger,
  ) {
    this.dispatcher = new Agent({ connect: { ca: caPem, rejectUnauthorized: true }, connections: PROXY_CONNECTIONS_MAX, keepAliveTimeout: 10_000 });
  }

  /** Waits up to NO_LEADER_WAIT_MS for a known leader; null when there is none. */
  async waitForLeader(): Promise<{ nodeId: string; address: string } | null> {
    const deadline = Date.now() + NO_LEADER_WAIT_MS;
    for (;;) {
      const leader = this.leader();
      if (leader !== null || Date.now() >= deadline) return leader;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async forward(req: IncomingMessage, res: ServerResponse, leader: { nodeId: string; address: string }): Promise<void> {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name)) continue;
      headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    headers[FORWARDED_HEADER] = this.nodeId;
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    // A small declared body is read whole (the limit matches the leader's, which answers 413 too).
    const declaredBytes = Number(req.headers['content-length'] ?? Number.NaN);
    const body = !hasBody ? null : declaredBytes <= PROXY_BUFFERED_BODY_BYTES_MAX ? await readBody(req, PROXY_BUFFERED_BODY_BYTES_MAX) : req;
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
      this.logger.warn({ leader: leader.nodeId, err: (err as Error).message }, 'forwarding to the leader failed');
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
