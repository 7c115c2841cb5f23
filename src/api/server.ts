import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log/logger.js';
import type { Identity } from '../auth/tokens.js';
import { NeuwerkError, describeError } from '../errors.js';
import type { NodeMetrics } from '../metrics/registry.js';
import { readBody, type HandlerResult, type RequestContext, type Router } from './router.js';
import { FORWARDED_HEADER, type LeaderProxy } from './leader-proxy.js';
import type { TlsMaterial } from './tls.js';

/** How long a request may take to send its headers before the socket is closed. */
export const API_HEADERS_TIMEOUT_MS = 10_000;
/** Idle keep-alive connections are closed after this long. */
export const API_KEEP_ALIVE_TIMEOUT_MS = 5_000;

export interface ApiServerOptions {
  readonly tls: TlsMaterial;
  readonly router: Router;
  readonly logger: Logger;
  readonly metrics: NodeMetrics;
  readonly nodeId: string;
  /** Verifies a bearer token; throws a 401-class NeuwerkError. */
  readonly authenticate: (token: string) => Promise<Identity>;
  /** Called after a successful authentication (e.g. to note service-account token use). */
  readonly onAuthenticated?: (identity: Identity) => void;
  /** Cluster mode: decides whether this node must forward a routed request to the leader. */
  readonly routing?: {
    readonly isLeader: () => boolean;
    readonly proxy: LeaderProxy;
  };
}

/** The cookie set by token-login (DESIGN §6). */
export const AUTH_COOKIE = 'neuwerk_auth';

/** The bearer token of a request, from `Authorization: Bearer` or the auth cookie. */
export function requestToken(req: IncomingMessage): string | null {
  const header = req.headers.authorization;
  if (typeof header === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    return match ? (match[1] as string) : null;
  }
  const cookies = req.headers.cookie;
  if (typeof cookies === 'string') {
    for (const part of cookies.split(';')) {
      const [name, ...rest] = part.trim().split('=');
      if (name === AUTH_COOKIE && rest.length > 0) return rest.join('=');
    }
  }
  return null;
}

/** Writes a JSON response. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** The HTTPS management API. Every error is `{"error", "code"}` with the catalogue's status. */
export function createApiServer(options: ApiServerOptions): Server {
  const { router, logger, metrics } = options;
  const server = createServer({ cert: options.tls.certPem, key: options.tls.keyPem, minVersion: 'TLSv1.2' }, (req, res) => {
    void handle(req, res);
  });
  server.headersTimeout = API_HEADERS_TIMEOUT_MS;
  server.requestTimeout = 60_000;
  server.keepAliveTimeout = API_KEEP_ALIVE_TIMEOUT_MS;
  server.on('tlsClientError', (err) => logger.debug({ err: describeError(err) }, 'management API TLS handshake failed'));

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const method = req.method ?? 'GET';
    let routeLabel = 'unmatched';
    res.setHeader('x-neuwerk-served-by', options.nodeId);
    try {
      const url = new URL(req.url ?? '/', 'https://neuwerk.invalid');
      const match = router.match(method, url.pathname);
      if (match instanceof NeuwerkError) throw match;
      routeLabel = match.route.path;
      const routing = options.routing;
      const routed =
        match.route.access !== 'public' && (match.route.routing ?? 'leader') === 'leader' && url.searchParams.get('stale') !== 'true' && url.searchParams.get('local') !== 'true';
      if (routing !== undefined && routed && !routing.isLeader()) {
        if (req.headers[FORWARDED_HEADER] !== undefined) {
          throw new NeuwerkError('NW_ERR_NO_LEADER', 'no cluster leader (leadership moved while the request was forwarded; retry)');
        }
        const leader = await routing.proxy.waitForLeader();
        if (leader === null) throw new NeuwerkError('NW_ERR_NO_LEADER', 'no cluster leader');
        if (leader.nodeId !== options.nodeId) {
          res.removeHeader('x-neuwerk-served-by');
          await routing.proxy.forward(req, res, leader);
          return;
        }
      }
      let identity: Identity | null = null;
      if (match.route.access !== 'public') {
        const token = requestToken(req);
        if (token === null) throw new NeuwerkError('NW_ERR_AUTH_MISSING', 'authentication required: send Authorization: Bearer <token>');
        identity = await options.authenticate(token);
        if (match.route.access === 'admin' && !identity.roles.includes('admin')) {
          throw new NeuwerkError('NW_ERR_AUTH_FORBIDDEN', `${method} ${match.route.path} needs the admin role`);
        }
        options.onAuthenticated?.(identity);
      }
      let bodyCache: Buffer | null = null;
      const readRaw = async (): Promise<Buffer> => (bodyCache ??= await readBody(req));
      const ctx: RequestContext = {
        req,
        res,
        params: match.params,
        query: url.searchParams,
        identity,
        clientAddress: req.socket.remoteAddress ?? 'unknown',
        readText: async () => (await readRaw()).toString('utf8'),
        readJson: async () => {
          const text = (await readRaw()).toString('utf8');
          if (text.trim() === '') throw new NeuwerkError('NW_ERR_HTTP_BAD_REQUEST', 'request body is empty; expected JSON');
          try {
            return JSON.parse(text) as unknown;
          } catch (err) {
            throw new NeuwerkError('NW_ERR_HTTP_BAD_REQUEST', `request body is not valid JSON: ${(err as Error).message}`);
          }
        },
      };
      const result: HandlerResult = await match.route.handler(ctx);
      if (result !== undefined) {
        if (result.raw !== undefined) {
          res.writeHead(result.status, result.headers ?? {});
          res.end(result.raw);
        } else if (result.body === undefined) {
          res.writeHead(result.status, result.headers ?? {});
          res.end();
        } else {
          sendJson(res, result.status, result.body, result.headers);
        }
      }
    } catch (err) {
      const error = err instanceof NeuwerkError ? err : new NeuwerkError('NW_ERR_INTERNAL', 'internal error', { cause: err });
      if (error.code === 'NW_ERR_INTERNAL') logger.error({ err: describeError(err), route: routeLabel, method }, 'management API handler failed');
      if (!res.headersSent) sendJson(res, error.httpStatus, error.toJSON());
      else res.destroy();
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.apiRequests.inc({ route: routeLabel, method, status: String(res.statusCode) });
      metrics.apiLatency.observe({ route: routeLabel, method }, seconds);
    }
  }

  return server;
}
