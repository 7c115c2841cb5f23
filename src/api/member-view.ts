/**
 * Asking another member for its own view of something (a GET it serves locally, such as its
 * findings or its status) over the cluster RPC `api.forward`, on the members' mutual-TLS
 * connections, with the caller's credentials, which the member checks itself. Unlike HTTPS to the
 * member's `http_addr`, this needs no client that trusts the member's management certificate
 * (which may be an operator's own) and no address reachable from here (a member may advertise a
 * loopback management address).
 */
import { NeuwerkError } from '../errors.js';
import { encodeForwardedRequest, FORWARD_RPC_METHOD, parseForwardedAnswer } from './forwarded-request.js';
import type { ClusterRpcCall } from './leader-proxy.js';

/** The request as the member's HTTPS server would get it: path and query, the caller's headers. */
export interface MemberViewRequest {
  /** Path and query of a GET the member serves locally. */
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly clientAddress: string;
}

/** The member's HTTP answer: status and body text. */
export interface MemberViewAnswer {
  readonly status: number;
  readonly text: string;
}

/**
 * The member's answer, or null when it must be asked over HTTPS instead (its answer is above the
 * RPC's bound, or it is of a version that does not serve the request over the RPC). Throws for an
 * unreachable member, a timeout or a malformed answer.
 */
export async function askMemberView(rpc: ClusterRpcCall, nodeId: string, req: MemberViewRequest, timeoutMs: number): Promise<MemberViewAnswer | null> {
  const payload = encodeForwardedRequest({ method: 'GET', url: req.path, headers: req.headers, clientAddress: req.clientAddress, body: Buffer.alloc(0) });
  let raw: unknown;
  try {
    raw = await rpc(nodeId, FORWARD_RPC_METHOD, payload, timeoutMs);
  } catch (err) {
    if (err instanceof NeuwerkError && err.code === 'NW_ERR_RPC' && /unknown cluster RPC|is not forwarded over cluster RPC/.test(err.message)) return null;
    throw err;
  }
  const answer = parseForwardedAnswer(raw);
  if (answer.kind === 'use-https') return null;
  return { status: answer.status, text: typeof answer.body === 'string' ? answer.body : Buffer.from(answer.body).toString('utf8') };
}

/** The caller's credentials, as a member needs them to check the caller itself. */
export function callerCredentials(headers: Readonly<Record<string, string | string[] | undefined>>): Record<string, string> {
  const forwarded: Record<string, string> = { accept: 'application/json' };
  const { authorization, cookie } = headers;
  if (typeof authorization === 'string') forwarded.authorization = authorization;
  if (typeof cookie === 'string') forwarded.cookie = cookie;
  return forwarded;
}
