import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent, request } from 'undici';
import { NeuwerkError } from '../errors.js';
import type { Logger } from '../log/logger.js';

/** A routed request waits at most this long for a leader to be known (DESIGN §6: within 2 s). */
export const NO_LEADER_WAIT_MS = 2_000;
/** Upper bound of one proxied request. */
export const PROXY_TIMEOUT_MS = 30_000;
/** Marks a request a follower already forwarded, so it is never forwarded twice. */
export const FORWARDED_HEADER = 'x-neuwerk-forwarded-by';

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
    this.dispatcher = new Agent({ connect: { ca: caPem, rejectUnauthorized: true }, connections: 32, keepAliveTimeout: 10_000 });
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
    let upstream;
    try {
      upstream = await request(`https://${leader.address}${req.url ?? '/'}`, {
        method: (req.method ?? 'GET') as 'GET',
        headers,
        body: hasBody ? req : null,
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
    res.writeHead(upstream.statusCode, responseHeaders);
    for await (const chunk of upstream.body) res.write(chunk);
    res.end();
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}
