import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Identity } from '../auth/tokens.js';
import { NeuwerkError } from '../errors.js';

/** Request bodies above this size are refused with 413 (DESIGN §6). */
export const MAX_BODY_BYTES = 2 * 1024 * 1024;

export type Method = 'GET' | 'PUT' | 'POST' | 'DELETE';

/** Who may call a route: anyone, any valid token, or an admin token (DESIGN §6). */
export type Access = 'public' | 'read' | 'admin';

export interface RequestContext {
  /** The request headers (on a leader running a follower's forwarded request: the ones it forwarded). */
  readonly headers: IncomingHttpHeaders;
  /**
   * The HTTP response, for a handler that writes it itself (and returns `undefined`); null when the
   * leader runs a request a follower forwarded over cluster RPC. Such a route must be declared
   * `forwarding: 'https'`.
   */
  readonly res: ServerResponse | null;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** The caller's verified identity; null only on public routes. */
  readonly identity: Identity | null;
  /** The client's IP address as seen on the socket. */
  readonly clientAddress: string;
  /** Reads the body as UTF-8 text, at most MAX_BODY_BYTES. */
  readonly readText: () => Promise<string>;
  /** Reads and parses a JSON body; a parse error is a 400 naming the problem. */
  readonly readJson: () => Promise<unknown>;
}

/** A handler's answer; `undefined` means the handler wrote the response itself (streams). */
export type HandlerResult = { status: number; body?: unknown; headers?: Record<string, string>; raw?: string | Buffer } | undefined;

export interface Route {
  readonly method: Method;
  /** Path template with `:name` segments, e.g. `/api/v1/keyval/:zone/:key`. */
  readonly path: string;
  readonly access: Access;
  /**
   * In cluster mode a follower proxies routes that read or write replicated state to the leader
   * (default for authenticated routes); `local` routes always run on the node that got them.
   */
  readonly routing?: 'leader' | 'local';
  /**
   * How a follower forwards a leader-routed request (DESIGN §6). `rpc` (the default): the request,
   * its body buffered, runs on the leader through the cluster RPC `api.forward` and its answer
   * comes back whole in one RPC answer. A GET whose answer is larger than
   * FORWARD_RPC_ANSWER_BYTES_MAX is sent again over HTTPS (a read may run twice); any other
   * method's answer must stay small, since it cannot run twice. `https`: the request is re-sent
   * over HTTPS and both bodies are streamed, for handlers that write the response themselves or
   * answer with large bodies.
   */
  readonly forwarding?: 'rpc' | 'https';
  /** Largest request body this route reads (default MAX_BODY_BYTES); 413 beyond it. */
  readonly maxBodyBytes?: number;
  readonly summary: string;
  readonly handler: (ctx: RequestContext) => Promise<HandlerResult> | HandlerResult;
}

interface CompiledRoute extends Route {
  /** The template's segments: a literal, or null where a `:name` parameter stands. */
  readonly literals: readonly (string | null)[];
  /** The parameter names, in the order of their segments. */
  readonly names: readonly string[];
}

export interface RouteMatch {
  readonly route: Route;
  readonly params: Record<string, string>;
}

/**
 * Matches method and path against a small table of templates. Templates are kept by segment
 * count, in the order they were added (the first match wins); a path is compared literal by
 * literal before any parameter is decoded.
 */
export class Router {
  private readonly routes: CompiledRoute[] = [];
  private readonly bySegmentCount = new Map<number, CompiledRoute[]>();

  add(route: Route): void {
    const segments = route.path.split('/').slice(1);
    const compiled: CompiledRoute = {
      ...route,
      literals: segments.map((segment) => (segment.startsWith(':') ? null : segment)),
      names: segments.filter((segment) => segment.startsWith(':')).map((segment) => segment.slice(1)),
    };
    this.routes.push(compiled);
    const sameLength = this.bySegmentCount.get(segments.length);
    if (sameLength === undefined) this.bySegmentCount.set(segments.length, [compiled]);
    else sameLength.push(compiled);
  }

  all(): readonly Route[] {
    return this.routes;
  }

  /** Returns the match, or an error telling 404 from 405. */
  match(method: string, pathname: string): RouteMatch | NeuwerkError {
    const parts = pathname.split('/');
    parts.shift();
    let pathMatched = false;
    for (const route of this.bySegmentCount.get(parts.length) ?? []) {
      if (!literalsMatch(route.literals, parts)) continue;
      // HEAD is a GET without the body (Node leaves it out), on the public routes a load balancer
      // or monitor probes (/health, /ready); they are answered locally, never forwarded.
      const asHead = method === 'HEAD' && route.method === 'GET' && route.access === 'public';
      if (route.method !== method && !asHead) {
        if (!pathMatched) pathMatched = decodeParams(route, parts) !== null;
        continue;
      }
      const params = decodeParams(route, parts);
      if (params === null) continue;
      return { route, params };
    }
    return pathMatched
      ? new NeuwerkError('NW_ERR_HTTP_METHOD', `method ${method} is not allowed on ${pathname}`)
      : new NeuwerkError('NW_ERR_HTTP_NOT_FOUND', `no such endpoint: ${pathname}`);
  }
}

/** The literal segments equal the path's, and no parameter segment is empty. */
function literalsMatch(literals: readonly (string | null)[], parts: readonly string[]): boolean {
  for (let i = 0; i < literals.length; i += 1) {
    const literal = literals[i];
    const actual = parts[i] as string;
    if (literal === null ? actual.length === 0 : literal !== actual) return false;
  }
  return true;
}

/** The decoded parameters of a path whose literals matched; null when one is not valid percent-encoding. */
function decodeParams(route: CompiledRoute, parts: readonly string[]): Record<string, string> | null {
  const params: Record<string, string> = {};
  let next = 0;
  for (let i = 0; i < route.literals.length; i += 1) {
    if (route.literals[i] !== null) continue;
    const actual = parts[i] as string;
    let decoded: string;
    try {
      decoded = actual.indexOf('%') === -1 ? actual : decodeURIComponent(actual);
    } catch {
      return null;
    }
    params[route.names[next] as string] = decoded;
    next += 1;
  }
  return params;
}

/** Reads a request body up to `limitBytes`, answering 413 beyond it. */
export function readBody(req: IncomingMessage, limitBytes = MAX_BODY_BYTES): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > limitBytes) {
      reject(new NeuwerkError('NW_ERR_HTTP_BODY_TOO_LARGE', `request body of ${declared} bytes exceeds the limit of ${limitBytes} bytes`));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let total = 0;
    req.on('data', (chunk: Buffer) => {
      total += chunk.length;
      if (total > limitBytes) {
        reject(new NeuwerkError('NW_ERR_HTTP_BODY_TOO_LARGE', `request body exceeds the limit of ${limitBytes} bytes`));
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    // A client that resets the connection mid-body: a 400 nobody reads, not a handler failure.
    req.on('error', () => reject(new NeuwerkError('NW_ERR_HTTP_BAD_REQUEST', 'the client closed the connection before its request body arrived')));
  });
}
