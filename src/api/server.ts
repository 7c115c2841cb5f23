import { createServer, type Server } from 'node:https';
import { STATUS_CODES, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '../log/logger.js';
import { LogThrottle } from '../log/throttle.js';
import type { Identity } from '../auth/tokens.js';
import { NeuwerkError, describeError, type ErrorCode } from '../errors.js';
import type { NodeMetrics } from '../metrics/registry.js';
import { readBody, type HandlerResult, type RequestContext, type Route, type RouteMatch, type Router } from './router.js';
import { FORWARDED_HEADER, type LeaderProxy } from './leader-proxy.js';
import { encodeForwardedAnswer, parseForwardedRequest, type ForwardedAnswer } from './forwarded-request.js';
import { formatHostPort } from '../config/address.js';
import { JSON_MAX_DEPTH, jsonNestsDeeperThan } from './json-depth.js';
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
    /** Whether a node id is a member (a forwarded request names its sender in FORWARDED_HEADER). */
    readonly isMember?: (nodeId: string) => boolean;
    /** Why this node stopped replicating for good (its store cannot be written), or null. */
    readonly stoppedBy?: () => NeuwerkError | null;
  };
}

/** The cookie set by token-login (DESIGN §6). */
export const AUTH_COOKIE = 'neuwerk_auth';

/** The bearer token of a request, from `Authorization: Bearer` or the auth cookie. */
export function requestToken(headers: IncomingHttpHeaders): string | null {
  const header = headers.authorization;
  if (typeof header === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    return match ? (match[1] as string) : null;
  }
  const cookies = headers.cookie;
  if (typeof cookies === 'string') {
    for (const part of cookies.split(';')) {
      const [name, ...rest] = part.trim().split('=');
      if (name === AUTH_COOKIE && rest.length > 0) return rest.join('=');
    }
  }
  return null;
}

/** An HTTP answer as the server writes it: the same for its own socket and for a follower's forwarded request. */
interface RenderedAnswer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string | Buffer;
}

const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

function renderResult(result: NonNullable<HandlerResult>): RenderedAnswer {
  if (result.raw !== undefined) return { status: result.status, headers: result.headers ?? {}, body: result.raw };
  if (result.body === undefined) return { status: result.status, headers: result.headers ?? {}, body: '' };
  const text = JSON.stringify(result.body);
  return { status: result.status, headers: { 'content-type': JSON_CONTENT_TYPE, 'content-length': String(Buffer.byteLength(text)), ...result.headers }, body: text };
}

/** Errors a client should simply retry, with the `Retry-After` seconds it is told (an election takes about one). */
const RETRY_AFTER_SECONDS: Partial<Record<ErrorCode, number>> = { NW_ERR_NO_LEADER: 1, NW_ERR_NOT_LEADER: 1 };

/** The error JSON answer (DESIGN §6: `{"error", "code"}` with the catalogue's status). */
function errorAnswer(error: NeuwerkError): RenderedAnswer {
  const text = JSON.stringify(error.toJSON());
  const headers: Record<string, string> = { 'content-type': JSON_CONTENT_TYPE, 'content-length': String(Buffer.byteLength(text)) };
  // A refusal that knows its wait (a rate limit) says so; otherwise the code's usual wait, if any.
  const retryAfter = typeof error.detail?.retryAfterSeconds === 'number' ? error.detail.retryAfterSeconds : RETRY_AFTER_SECONDS[error.code];
  if (retryAfter !== undefined) headers['retry-after'] = String(retryAfter);
  return { status: error.httpStatus, headers, body: text };
}

/**
 * Characters a request target may hold for `splitRequestTarget` to take it apart without the URL
 * parser: ones the parser leaves as they are in a path and in a query (no space, quotes, `#`,
 * `<`, `>`, backslash, backquote, braces, `|`, `^`, control or non-ASCII characters), and no `//`
 * at the start (the parser reads that as a host).
 */
const PLAIN_TARGET = /^\/(?!\/)[A-Za-z0-9\-._~!$&()*+,;=:@/%]*(\?[A-Za-z0-9\-._~!$&()*+,;=:@/%?]*)?$/;
/** A path segment the URL parser would resolve (`.`, `..`, or one spelled with `%2e`). */
const DOT_SEGMENT = /(^|\/)\.\.?(\/|$)|%2e/i;
const PARSE_BASE = 'https://neuwerk.invalid';

/**
 * The path and query of a request target (`req.url`), the same as `new URL(target, base)` gives
 * them. A plain target (most are: `/api/v1/keyval/zone/key`) is split at its first `?` without
 * the URL parser; any other goes through it (dot segments, characters it percent-encodes).
 */
export function splitRequestTarget(target: string): { readonly pathname: string; readonly query: URLSearchParams } {
  if (PLAIN_TARGET.test(target)) {
    const mark = target.indexOf('?');
    const pathname = mark === -1 ? target : target.slice(0, mark);
    // The query keeps its `?`: URLSearchParams drops exactly one leading `?` (a second is data).
    if (!DOT_SEGMENT.test(pathname)) return { pathname, query: new URLSearchParams(mark === -1 ? '' : target.slice(mark)) };
  }
  let url: URL;
  try {
    url = new URL(target, PARSE_BASE);
  } catch {
    throw new NeuwerkError('NW_ERR_HTTP_BAD_REQUEST', `request target ${JSON.stringify(target.slice(0, 80))} is not a valid path or URL`);
  }
  return { pathname: url.pathname, query: url.searchParams };
}

/**
 * Writes an answer in one `writeHead` and one `end`: `x-neuwerk-served-by` (unless null) first,
 * then the answer's headers, in one object (no per-header `setHeader`). Node sends a string body
 * in the same socket write as the head.
 */
function writeAnswer(res: ServerResponse, servedBy: string | null, answer: RenderedAnswer): void {
  res.writeHead(answer.status, servedBy === null ? answer.headers : { 'x-neuwerk-served-by': servedBy, ...answer.headers });
  res.end(answer.body);
}

/** Whether a follower hands this request to the leader (DESIGN §6): authenticated, leader-routed, not a stale or local read. */
function routedToLeader(route: Route, query: URLSearchParams): boolean {
  return route.access !== 'public' && (route.routing ?? 'leader') === 'leader' && query.get('stale') !== 'true' && query.get('local') !== 'true';
}

/** The request as the route's handler sees it, from a socket or from a follower's RPC. */
interface ApiInput {
  readonly method: string;
  readonly query: URLSearchParams;
  readonly headers: IncomingHttpHeaders;
  readonly clientAddress: string;
  readonly readRaw: () => Promise<Buffer>;
  /** The response, for a handler that writes it itself; null for a forwarded request. */
  readonly res: () => ServerResponse | null;
}

/**
 * What a handler sees of its request. A class, not an object literal: with a getter in an object
 * literal made per request (`get res()`), each request's whole object graph (closures, parser,
 * headers, response) stayed alive through every young-generation collection until the next full
 * one — as far as we can tell because V8 keeps such a getter in a hidden class of that object's
 * own, outside the young generation. Measured on one node at c=1: about 3 KB promoted per request and a 2.5-3.5 ms
 * pause every ~200 ms, against nothing promoted and 0.4-0.8 ms pauses with the getter on the
 * prototype, shared by every request.
 */
class ApiRequestContext implements RequestContext {
  readonly headers: IncomingHttpHeaders;
  readonly query: URLSearchParams;
  readonly clientAddress: string;

  constructor(
    private readonly input: ApiInput,
    readonly params: Readonly<Record<string, string>>,
    readonly identity: Identity | null,
  ) {
    this.headers = input.headers;
    this.query = input.query;
    this.clientAddress = input.clientAddress;
  }

  get res(): ServerResponse | null {
    return this.input.res();
  }

  readonly readText = async (): Promise<string> => (await this.input.readRaw()).toString('utf8');

  readonly readJson = async (): Promise<unknown> => {
    const text = (await this.input.readRaw()).toString('utf8');
    if (text.trim() === '') throw new NeuwerkError('NW_ERR_HTTP_BAD_REQUEST', 'request body is empty; expected JSON');
    if (jsonNestsDeeperThan(text)) throw new NeuwerkError('NW_ERR_HTTP_BAD_REQUEST', `request body nests arrays and objects deeper than ${JSON_MAX_DEPTH} levels`);
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new NeuwerkError('NW_ERR_HTTP_BAD_REQUEST', `request body is not valid JSON: ${(err as Error).message}`);
    }
  };
}

/** A refused credential is logged at most this often per client address and reason. */
export const AUTH_REFUSAL_LOG_INTERVAL_MS = 60_000;

/** Reports a request whose credentials were refused (missing, invalid, expired, lacking a role). */
type AuthRefusalLog = (error: NeuwerkError, input: ApiInput, route: string) => void;

/**
 * Refused credentials as warnings an on-call engineer can find ("why does our automation get
 * 401?"): the client address, route, error code and reason, never the token; once a minute per
 * client address and reason, with how many were held back, so a flood of forged tokens cannot
 * flood the log.
 */
function authRefusalLog(logger: Logger): AuthRefusalLog {
  const throttle = new LogThrottle(AUTH_REFUSAL_LOG_INTERVAL_MS);
  return (error, input, route) => {
    const suppressed = throttle.admit(`${input.clientAddress} ${error.code}`, Date.now());
    if (suppressed === null) return;
    logger.warn(
      { client: input.clientAddress, method: input.method, route, code: error.code, reason: error.message, suppressed },
      'management API refused the credentials of a request (logged once a minute per client and reason)',
    );
  };
}

/** Authenticates and authorises the caller, then runs the route's handler. */
async function execute(options: Pick<ApiServerOptions, 'authenticate' | 'onAuthenticated'>, match: RouteMatch, input: ApiInput, refused: AuthRefusalLog): Promise<HandlerResult> {
  let identity: Identity | null = null;
  if (match.route.access !== 'public') {
    try {
      const token = requestToken(input.headers);
      if (token === null) throw new NeuwerkError('NW_ERR_AUTH_MISSING', 'authentication required: send Authorization: Bearer <token>');
      identity = await options.authenticate(token);
      if (match.route.access === 'admin' && !identity.roles.includes('admin')) {
        throw new NeuwerkError('NW_ERR_AUTH_FORBIDDEN', `${input.method} ${match.route.path} needs the admin role`);
      }
    } catch (err) {
      if (err instanceof NeuwerkError) refused(err, input, match.route.path);
      throw err;
    }
    options.onAuthenticated?.(identity);
  }
  return match.route.handler(new ApiRequestContext(input, match.params, identity));
}

function asNeuwerkError(err: unknown, logger: Logger, route: string, method: string): NeuwerkError {
  const error = err instanceof NeuwerkError ? err : new NeuwerkError('NW_ERR_INTERNAL', 'internal error', { cause: err });
  if (error.code === 'NW_ERR_INTERNAL') logger.error({ err: describeError(err), route, method }, 'management API handler failed');
  return error;
}

/**
 * A request Node's HTTP parser refused before any handler saw it (a malformed request line or
 * header, a head beyond the size limit, a head not received within `headersTimeout`): answered
 * with the same `{"error", "code"}` body as every other error, then the connection closes. As in
 * Node's own handler, nothing is written while a response on the connection is under way.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent === true) {
    socket.destroy();
    return;
  }
  const error =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new NeuwerkError('NW_ERR_HTTP_HEADERS_TOO_LARGE', 'request head too large')
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new NeuwerkError('NW_ERR_HTTP_REQUEST_TIMEOUT', 'request head not received in time')
        : new NeuwerkError('NW_ERR_HTTP_BAD_REQUEST', `malformed HTTP request (${err.code ?? 'parse error'})`);
  socket.end(rawErrorAnswer(error));
}

/** A whole HTTP/1.1 answer carrying `error` as the usual JSON body, for writing to a raw socket that then closes. */
function rawErrorAnswer(error: NeuwerkError): string {
  const body = JSON.stringify(error.toJSON());
  const status = error.httpStatus;
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

/**
 * A plain-HTTP request to the HTTPS port (`curl http://...:8443/health`, a common slip) is told
 * so in plain HTTP, instead of a connection closed with no answer. OpenSSL recognises an HTTP
 * request line as the first record (`ERR_SSL_HTTP_REQUEST`); the answer goes to the TCP socket
 * under the TLS one (`_parent`, which Node 20 keeps on a server-side TLS socket; without it the
 * connection just closes as before).
 */
export function answerPlainHttpOnTlsPort(err: NodeJS.ErrnoException, tlsSocket: { _parent?: Duplex | null; localAddress?: string | undefined; localPort?: number | undefined }): void {
  const raw = tlsSocket._parent;
  if (err.code !== 'ERR_SSL_HTTP_REQUEST' || raw === null || raw === undefined || !raw.writable) return;
  const where = tlsSocket.localAddress !== undefined && tlsSocket.localPort !== undefined ? formatHostPort({ host: tlsSocket.localAddress, port: tlsSocket.localPort }) : '<this address>';
  raw.end(rawErrorAnswer(new NeuwerkError('NW_ERR_HTTP_BAD_REQUEST', `this port speaks HTTPS only; use https://${where}`)));
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
  server.on('tlsClientError', (err, tlsSocket) => {
    logger.debug({ err: describeError(err) }, 'management API TLS handshake failed');
    answerPlainHttpOnTlsPort(err, tlsSocket as unknown as Parameters<typeof answerPlainHttpOnTlsPort>[1]);
  });
  server.on('clientError', answerClientError);
  const refused = authRefusalLog(logger);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const method = req.method ?? 'GET';
    let routeLabel = 'unmatched';
    // Named in every answer this node writes itself; not in the error of a request it forwarded
    // (the leader's answer carries the leader's name).
    let servedBy: string | null = options.nodeId;
    try {
      const target = splitRequestTarget(req.url ?? '/');
      const match = router.match(method, target.pathname);
      if (match instanceof NeuwerkError) throw match;
      routeLabel = match.route.path;
      const routing = options.routing;
      // A node that stopped replicating serves no request that needs the leader: it says why at
      // once (local and stale reads, and the public routes, still answer).
      const needsLeader = routing !== undefined && routedToLeader(match.route, target.query);
      const stopped = needsLeader ? (routing.stoppedBy?.() ?? null) : null;
      if (stopped !== null) throw stopped;
      if (needsLeader && !routing.isLeader()) {
        // Forwarded here by a member that took this node for the leader: never forwarded twice.
        // A header naming no member is a client's, and the request goes on like any other.
        const forwardedBy = req.headers[FORWARDED_HEADER];
        if (typeof forwardedBy === 'string' && (routing.isMember?.(forwardedBy) ?? true)) {
          throw new NeuwerkError('NW_ERR_NO_LEADER', 'no cluster leader (leadership moved while the request was forwarded; retry)');
        }
        const leader = await routing.proxy.waitForLeader();
        if (leader === null) throw new NeuwerkError('NW_ERR_NO_LEADER', 'no cluster leader');
        if (leader.nodeId !== options.nodeId) {
          servedBy = null;
          await routing.proxy.forward(req, res, leader, match.route);
          return;
        }
      }
      let bodyCache: Buffer | null = null;
      const result = await execute(options, match, {
        method,
        query: target.query,
        headers: req.headers,
        clientAddress: req.socket.remoteAddress ?? 'unknown',
        readRaw: async () => (bodyCache ??= await readBody(req, match.route.maxBodyBytes)),
        res: () => {
          // A handler that writes the response itself gets it with the header already set.
          if (!res.headersSent) res.setHeader('x-neuwerk-served-by', options.nodeId);
          return res;
        },
      }, refused);
      if (result !== undefined) writeAnswer(res, servedBy, renderResult(result));
    } catch (err) {
      const error = asNeuwerkError(err, logger, routeLabel, method);
      if (!res.headersSent) writeAnswer(res, servedBy, errorAnswer(error));
      else res.destroy();
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.apiRequests.inc({ route: routeLabel, method, status: String(res.statusCode) });
      metrics.apiLatency.observe({ route: routeLabel, method }, seconds);
    }
  }

  return server;
}

/** Who may send forwarded requests, and whether this node still leads. */
export interface ForwardedRequestOptions {
  /** True when `nodeId` (the mTLS identity of the calling peer) is a current member. */
  readonly isMember: (nodeId: string) => boolean;
  readonly isLeader: () => boolean;
}

/**
 * The serving side of cluster RPC `api.forward`: runs a request another member sent through the
 * same router, authentication and handlers as the HTTPS server (the caller's credentials travel
 * unchanged and are checked here) and returns the answer the HTTPS server would have written.
 * Two kinds arrive: a request routed to the leader, which a follower forwarded (refused unless this
 * node still leads), and a GET of this node's own view (`?local=true`, findings), which a member
 * asks every member for in a fan-out (so the fan-out needs no HTTPS client that trusts each
 * member's management certificate). A peer that is not a member, or a malformed or oversized
 * payload, gets an RPC error; everything that happens while serving the request is an HTTP answer,
 * as over HTTPS.
 */
export function createForwardedRequestHandler(options: ApiServerOptions, forwarded: ForwardedRequestOptions): (from: string, body: unknown) => Promise<ForwardedAnswer> {
  const { router, logger, metrics } = options;
  const refused = authRefusalLog(logger);
  return async (from, body) => {
    if (!forwarded.isMember(from)) throw new NeuwerkError('NW_ERR_AUTH_FORBIDDEN', `node ${from} is not a member of this cluster; it may not forward API requests`);
    const request = parseForwardedRequest(body);
    const started = process.hrtime.bigint();
    let routeLabel = 'unmatched';
    let answer: RenderedAnswer;
    try {
      const target = splitRequestTarget(request.url);
      const match = router.match(request.method, target.pathname);
      if (match instanceof NeuwerkError) throw match;
      routeLabel = match.route.path;
      if ((match.route.forwarding ?? 'rpc') !== 'rpc') throw new NeuwerkError('NW_ERR_RPC', `${request.method} ${match.route.path} is not forwarded over cluster RPC`);
      if (routedToLeader(match.route, target.query)) {
        if (!forwarded.isLeader()) throw new NeuwerkError('NW_ERR_NO_LEADER', 'no cluster leader (leadership moved while the request was forwarded; retry)');
      } else if (request.method !== 'GET') {
        // A member may ask for this node's own view (a fan-out: findings), never have it act.
        throw new NeuwerkError('NW_ERR_RPC', `${request.method} ${match.route.path} is served by the node that receives it; it is not forwarded over cluster RPC`);
      }
      const result = await execute(options, match, {
        method: request.method,
        query: target.query,
        headers: request.headers,
        clientAddress: request.client_address,
        readRaw: async () => request.bodyBytes,
        res: () => null,
      }, refused);
      if (result === undefined) throw new NeuwerkError('NW_ERR_INTERNAL', `${match.route.path} writes its own response; it must be declared forwarding: 'https'`);
      answer = renderResult(result);
    } catch (err) {
      answer = errorAnswer(asNeuwerkError(err, logger, routeLabel, request.method));
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.apiLatency.observe({ route: routeLabel, method: request.method }, seconds);
    }
    metrics.apiRequests.inc({ route: routeLabel, method: request.method, status: String(answer.status) });
    return encodeForwardedAnswer(request.method, { status: answer.status, headers: { ...answer.headers, 'x-neuwerk-served-by': options.nodeId }, body: answer.body });
  };
}
