import { isUtf8 } from 'node:buffer';
import type { IncomingHttpHeaders } from 'node:http';
import { NeuwerkError } from '../errors.js';
import type { Method, Route } from './router.js';

/**
 * The cluster RPC through which a follower has the leader run a management API request
 * (DESIGN §6 leader-aware routing), instead of re-sending it over HTTPS: the request travels on
 * the members' persistent mutual-TLS connection, so the follower spends no HTTP client work and
 * the leader no HTTP parsing and no second TLS session on it.
 */
export const FORWARD_RPC_METHOD = 'api.forward';
/** Version of the payloads below; a leader refuses others. */
export const FORWARD_RPC_VERSION = 1;
/**
 * Request bodies up to this size (by their declared content-length) are read whole by the
 * follower and shipped in the RPC; an undeclared (chunked) or larger body goes over HTTPS,
 * streamed. The leader refuses a larger body in an RPC.
 */
export const FORWARD_RPC_BODY_BYTES_MAX = 64 * 1024;
/**
 * Largest answer body the leader puts into one RPC answer for a GET; a larger one is not sent
 * and the follower re-sends the request over HTTPS, where it streams (a keyval page can hold
 * 10,000 values of 64 KiB). Other methods cannot run twice, so their answer is sent whatever its
 * size (they are small; a route with large answers is declared `forwarding: 'https'`). With JSON
 * escaping or base64 it stays far below the transport's MAX_FRAME_BYTES.
 */
export const FORWARD_RPC_ANSWER_BYTES_MAX = 1024 * 1024;
/** Longest path and query a leader accepts in a forwarded request (Node's own header limit is 16 KiB). */
export const FORWARD_RPC_URL_CHARS_MAX = 16 * 1024;
/** Longest forwarded header value a leader accepts. */
export const FORWARD_RPC_HEADER_CHARS_MAX = 16 * 1024;
/** Most headers a leader's answer may carry. */
export const FORWARD_RPC_ANSWER_HEADERS_MAX = 64;
/** Upper bound of one forwarded request, as for the HTTPS path. */
export const FORWARD_RPC_TIMEOUT_MS = 30_000;
/**
 * Forwarded requests one follower keeps in flight over the RPC; beyond it a request takes the
 * HTTPS path (whose own connection pool bounds it), so a burst never queues without bound.
 */
export const FORWARD_RPC_IN_FLIGHT_MAX = 1024;

/**
 * The request headers a follower forwards: the caller's credentials (checked on the leader) and
 * what the handlers read. Everything else is about the follower's own connection.
 */
export const FORWARDED_REQUEST_HEADERS = ['authorization', 'cookie', 'content-type', 'accept'] as const;
type ForwardedHeaderName = (typeof FORWARDED_REQUEST_HEADERS)[number];

const METHODS: readonly Method[] = ['GET', 'PUT', 'POST', 'DELETE'];
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const HEADER_VALUE_FORBIDDEN = /[\r\n\0]/;

/** What a follower sends: the request as its handler on the leader needs it. */
export interface ForwardedRequest {
  readonly v: typeof FORWARD_RPC_VERSION;
  readonly method: Method;
  /** Path and query, as the caller sent them. */
  readonly url: string;
  readonly headers: Partial<Record<ForwardedHeaderName, string>>;
  /** The caller's address as the follower saw it on the socket. */
  readonly client_address: string;
  /** The buffered body: text when it is valid UTF-8 (no base64 cost), bytes otherwise. */
  readonly body: string | Uint8Array;
}

/** What the leader answers: the HTTP answer, or "send it over HTTPS instead" (nothing ran twice unless it is a GET). */
export type ForwardedAnswer =
  | { readonly v: typeof FORWARD_RPC_VERSION; readonly kind: 'answer'; readonly status: number; readonly headers: Record<string, string>; readonly body: string | Uint8Array }
  | { readonly v: typeof FORWARD_RPC_VERSION; readonly kind: 'use-https'; readonly reason: 'answer-too-large' };

/** Why a follower forwards a request the way it does (the label of `neuwerk_api_forwarded_total`). */
export type ForwardPath =
  | { readonly via: 'rpc' }
  | { readonly via: 'https'; readonly reason: 'route' | 'body-undeclared' | 'body-large' | 'rpc-busy' | 'answer-too-large' | 'leader-without-rpc' };

/**
 * The follower's choice before it reads anything: the RPC for a route that returns its answer and a
 * body it can buffer (declared, at most FORWARD_RPC_BODY_BYTES_MAX), HTTPS otherwise.
 */
export function chooseForwardPath(route: Pick<Route, 'forwarding'>, headers: IncomingHttpHeaders, inFlight: number): ForwardPath {
  if ((route.forwarding ?? 'rpc') === 'https') return { via: 'https', reason: 'route' };
  if (headers['transfer-encoding'] !== undefined) return { via: 'https', reason: 'body-undeclared' };
  const declared = headers['content-length'];
  if (declared !== undefined) {
    const bytes = Number(declared);
    if (!Number.isSafeInteger(bytes) || bytes < 0) return { via: 'https', reason: 'body-undeclared' };
    if (bytes > FORWARD_RPC_BODY_BYTES_MAX) return { via: 'https', reason: 'body-large' };
  }
  if (inFlight >= FORWARD_RPC_IN_FLIGHT_MAX) return { via: 'https', reason: 'rpc-busy' };
  return { via: 'rpc' };
}

/** Builds the RPC payload of a request whose body the follower has read. */
export function encodeForwardedRequest(input: { method: Method; url: string; headers: IncomingHttpHeaders; clientAddress: string; body: Buffer }): ForwardedRequest {
  const headers: Partial<Record<ForwardedHeaderName, string>> = {};
  for (const name of FORWARDED_REQUEST_HEADERS) {
    const value = input.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  return {
    v: FORWARD_RPC_VERSION,
    method: input.method,
    url: input.url,
    headers,
    client_address: input.clientAddress,
    body: input.body.length === 0 ? '' : isUtf8(input.body) ? input.body.toString('utf8') : new Uint8Array(input.body.buffer, input.body.byteOffset, input.body.length),
  };
}

function malformed(what: string): NeuwerkError {
  return new NeuwerkError('NW_ERR_RPC', `malformed ${FORWARD_RPC_METHOD} request: ${what}`);
}

/**
 * The leader's check of a forwarded request from the wire: shape, method, sizes and header names.
 * Throws NW_ERR_RPC naming the problem (the RPC answers with it); never trusts a field unchecked.
 */
export function parseForwardedRequest(raw: unknown): ForwardedRequest & { readonly bodyBytes: Buffer } {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw malformed('not an object');
  const value = raw as Record<string, unknown>;
  if (value.v !== FORWARD_RPC_VERSION) throw malformed(`version ${JSON.stringify(value.v)} is not ${FORWARD_RPC_VERSION}`);
  const method = value.method;
  if (typeof method !== 'string' || !(METHODS as readonly string[]).includes(method)) throw malformed(`method ${JSON.stringify(method)}`);
  const url = value.url;
  if (typeof url !== 'string' || !url.startsWith('/') || url.length > FORWARD_RPC_URL_CHARS_MAX) throw malformed('url must be a path of at most 16384 characters');
  const headersRaw = value.headers;
  if (headersRaw === null || typeof headersRaw !== 'object' || Array.isArray(headersRaw)) throw malformed('headers must be an object');
  const headers: Partial<Record<ForwardedHeaderName, string>> = {};
  for (const [name, headerValue] of Object.entries(headersRaw as Record<string, unknown>)) {
    if (!(FORWARDED_REQUEST_HEADERS as readonly string[]).includes(name)) throw malformed(`header ${JSON.stringify(name.slice(0, 64))} is not forwarded`);
    if (typeof headerValue !== 'string' || headerValue.length > FORWARD_RPC_HEADER_CHARS_MAX || HEADER_VALUE_FORBIDDEN.test(headerValue)) throw malformed(`header ${name} has a bad value`);
    headers[name as ForwardedHeaderName] = headerValue;
  }
  const clientAddress = value.client_address;
  if (typeof clientAddress !== 'string' || clientAddress.length > 64) throw malformed('client_address must be a string of at most 64 characters');
  const body = value.body;
  let bodyBytes: Buffer;
  if (typeof body === 'string') {
    // Every UTF-16 unit takes at least one UTF-8 byte: a cheap bound before encoding.
    if (body.length > FORWARD_RPC_BODY_BYTES_MAX) throw malformed(`body above ${FORWARD_RPC_BODY_BYTES_MAX} bytes`);
    bodyBytes = Buffer.from(body, 'utf8');
  } else if (body instanceof Uint8Array) {
    bodyBytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  } else {
    throw malformed('body must be text or bytes');
  }
  if (bodyBytes.length > FORWARD_RPC_BODY_BYTES_MAX) throw malformed(`body above ${FORWARD_RPC_BODY_BYTES_MAX} bytes`);
  return { v: FORWARD_RPC_VERSION, method: method as Method, url, headers, client_address: clientAddress, body, bodyBytes };
}

/** The leader's answer payload for an HTTP answer (status, headers, body), or the HTTPS fallback for an oversized GET answer. */
export function encodeForwardedAnswer(method: Method, answer: { status: number; headers: Record<string, string>; body: string | Buffer }): ForwardedAnswer {
  const bytes = typeof answer.body === 'string' ? Buffer.byteLength(answer.body, 'utf8') : answer.body.length;
  if (method === 'GET' && bytes > FORWARD_RPC_ANSWER_BYTES_MAX) return { v: FORWARD_RPC_VERSION, kind: 'use-https', reason: 'answer-too-large' };
  const body = typeof answer.body === 'string' ? answer.body : new Uint8Array(answer.body.buffer, answer.body.byteOffset, answer.body.length);
  return { v: FORWARD_RPC_VERSION, kind: 'answer', status: answer.status, headers: answer.headers, body };
}

/**
 * The follower's check of the leader's answer before it writes it to its caller: a bad one is an
 * error (the caller gets a 502), never a crash in `writeHead`.
 */
export function parseForwardedAnswer(raw: unknown): ForwardedAnswer {
  const bad = (what: string): NeuwerkError => new NeuwerkError('NW_ERR_RPC', `the answering node sent a malformed ${FORWARD_RPC_METHOD} answer: ${what}`);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw bad('not an object');
  const value = raw as Record<string, unknown>;
  if (value.v !== FORWARD_RPC_VERSION) throw bad(`version ${JSON.stringify(value.v)}`);
  if (value.kind === 'use-https') {
    if (value.reason !== 'answer-too-large') throw bad(`reason ${JSON.stringify(value.reason)}`);
    return { v: FORWARD_RPC_VERSION, kind: 'use-https', reason: 'answer-too-large' };
  }
  if (value.kind !== 'answer') throw bad(`kind ${JSON.stringify(value.kind)}`);
  const status = value.status;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 200 || status > 599) throw bad(`status ${JSON.stringify(status)}`);
  const headersRaw = value.headers;
  if (headersRaw === null || typeof headersRaw !== 'object' || Array.isArray(headersRaw)) throw bad('headers must be an object');
  const entries = Object.entries(headersRaw as Record<string, unknown>);
  if (entries.length > FORWARD_RPC_ANSWER_HEADERS_MAX) throw bad(`more than ${FORWARD_RPC_ANSWER_HEADERS_MAX} headers`);
  const headers: Record<string, string> = {};
  for (const [name, headerValue] of entries) {
    if (!HEADER_NAME.test(name) || typeof headerValue !== 'string' || HEADER_VALUE_FORBIDDEN.test(headerValue)) throw bad(`header ${JSON.stringify(name.slice(0, 64))}`);
    headers[name] = headerValue;
  }
  const body = value.body;
  if (typeof body !== 'string' && !(body instanceof Uint8Array)) throw bad('body must be text or bytes');
  return { v: FORWARD_RPC_VERSION, kind: 'answer', status, headers, body };
}

/** Headers a leader sets that must not be copied onto the follower's own response. */
export const ANSWER_HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'date']);
