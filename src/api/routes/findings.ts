/**
 * Cluster-wide `GET /api/v1/audit/findings` (DESIGN §6, §8): the serving node answers its own
 * part locally and asks every other member for its `GET /api/v1/audit/findings/local` over the
 * cluster RPC (`api.forward` on the members' mutual-TLS connections), carrying the caller's
 * `Authorization` (and cookie) unchanged, so each member checks the caller itself. A member whose
 * answer is too large for one RPC answer, or one too old to serve it there, is asked over HTTPS at
 * its `http_addr` instead, verified with the cluster CA (which issues every management
 * certificate a node generates; a member with its own certificate is reachable over the RPC only).
 * The same filters go to every node with the largest `limit` (FINDINGS_QUERY_LIMIT_MAX), so that
 * the caller's `limit` cuts the merged list and a finding's count adds up every node's part; each
 * node gets FINDINGS_NODE_TIMEOUT_MS for both ways together. The answers are merged with
 * `mergeFindings`; a member that fails or times out is listed in `node_errors` and makes the
 * answer `partial` — never a failed request. A single node (no cluster) answers with its local
 * findings only.
 */
import { Agent, request } from 'undici';
import type { Dataplane } from '../../dataplane/dataplane.js';
import { FINDINGS_QUERY_PARAMETERS, mergeFindings } from '../../dataplane/api-routes.js';
import { FINDINGS_QUERY_LIMIT_MAX, parseFindingsQuery, type FindingsView } from '../../dataplane/findings.js';
import { describeError } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import type { ClusterRpcCall } from '../leader-proxy.js';
import { askMemberView, callerCredentials, type MemberViewRequest } from '../member-view.js';
import type { RouteSchemas } from '../openapi.js';
import type { Router } from '../router.js';

/** Path of the cluster-wide findings. */
export const FINDINGS_CLUSTER_PATH = '/api/v1/audit/findings';
/** Each member's local answer must arrive within this long. */
export const FINDINGS_NODE_TIMEOUT_MS = 3_000;
/** Largest local answer accepted from a member (10 000 findings of a few hundred bytes). */
export const FINDINGS_NODE_MAX_BYTES = 16 * 1024 * 1024;
/** Longest error text reported per node. */
const NODE_ERROR_MAX_CHARS = 300;

/** A member to ask: its id and management address (`host:port`). */
export interface FindingsMember {
  readonly node_id: string;
  readonly http_addr: string;
}

/** One node that did not answer in time or answered with an error. */
export interface FindingsNodeError {
  readonly node_id: string;
  readonly error: string;
}

/** The body of `GET /api/v1/audit/findings`. */
export interface ClusterFindingsView extends FindingsView {
  readonly partial: boolean;
  readonly node_errors: FindingsNodeError[];
  readonly nodes_queried: number;
  readonly nodes_responded: number;
}

/** Dependencies of the cluster-wide findings route. */
export interface ClusterFindingsDeps {
  readonly nodeId: string;
  readonly dataplane: Pick<Dataplane, 'findingsView'>;
  /** The cluster's members with their management addresses; null for a single node. */
  readonly members: (() => readonly FindingsMember[]) | null;
  /** The cluster CA (PEM) the members' management certificates are verified with; null: single node. */
  readonly caPem: string | null;
  /** The cluster RPC to ask members with; null: single node. */
  readonly rpc: ClusterRpcCall | null;
  readonly logger: Logger;
  /** Per-node timeout (default FINDINGS_NODE_TIMEOUT_MS). */
  readonly nodeTimeoutMs?: number;
}

/** Response schema of the cluster-wide findings, for the OpenAPI document. */
export const FINDINGS_SCHEMAS: RouteSchemas = {
  [`GET ${FINDINGS_CLUSTER_PATH}`]: {
    query: FINDINGS_QUERY_PARAMETERS,
    response: {
      type: 'object',
      required: ['findings', 'total', 'truncated', 'partial', 'node_errors', 'nodes_queried', 'nodes_responded'],
      properties: {
        findings: { type: 'array', items: { type: 'object', description: 'As in /api/v1/audit/findings/local, merged across nodes.' } },
        total: { type: 'integer', description: `Merged findings matching the filters before limit; a lower bound when some node holds more than ${FINDINGS_QUERY_LIMIT_MAX} of them.` },
        truncated: { type: 'boolean' },
        partial: { type: 'boolean', description: 'Some member did not answer; see node_errors.' },
        node_errors: { type: 'array', items: { type: 'object', required: ['node_id', 'error'], properties: { node_id: { type: 'string' }, error: { type: 'string' } } } },
        nodes_queried: { type: 'integer' },
        nodes_responded: { type: 'integer' },
      },
    },
  },
};

function isFindingsView(value: unknown): value is FindingsView {
  const v = value as Partial<FindingsView> | null;
  return typeof v === 'object' && v !== null && Array.isArray(v.findings) && typeof v.total === 'number' && typeof v.truncated === 'boolean';
}

/** A member's findings from its HTTP status and body text; throws naming what was wrong. */
function findingsFromAnswer(status: number, text: string): FindingsView {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`HTTP ${status} with a body that is not JSON`);
  }
  if (status !== 200) {
    const message = (body as { error?: unknown } | null)?.error;
    throw new Error(`HTTP ${status}${typeof message === 'string' ? `: ${message}` : ''}`);
  }
  if (!isFindingsView(body)) throw new Error('the answer is not a findings view');
  return body;
}

async function askMemberOverHttps(dispatcher: Agent, member: FindingsMember, req: MemberViewRequest, timeoutMs: number): Promise<FindingsView> {
  const signal = AbortSignal.timeout(timeoutMs);
  const response = await request(`https://${member.http_addr}${req.path}`, {
    method: 'GET',
    headers: req.headers,
    dispatcher,
    signal,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of response.body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > FINDINGS_NODE_MAX_BYTES) {
      response.body.destroy();
      throw new Error(`answer larger than ${FINDINGS_NODE_MAX_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  return findingsFromAnswer(response.statusCode, Buffer.concat(chunks).toString('utf8'));
}

/** Over the cluster RPC first, HTTPS when the member asks for it; both within `timeoutMs` together. */
async function askMember(rpc: ClusterRpcCall, dispatcher: Agent, member: FindingsMember, req: MemberViewRequest, timeoutMs: number): Promise<FindingsView> {
  const deadline = Date.now() + timeoutMs;
  const viaRpc = await askMemberView(rpc, member.node_id, req, timeoutMs);
  if (viaRpc !== null) return findingsFromAnswer(viaRpc.status, viaRpc.text);
  const left = deadline - Date.now();
  if (left <= 0) throw new Error(`no answer within ${timeoutMs} ms`);
  return askMemberOverHttps(dispatcher, member, req, left);
}

/**
 * Mounts `GET /api/v1/audit/findings` (read access, served by the node that receives it).
 * Returns the release of the HTTPS client it holds (call when the node stops).
 */
export function addClusterFindingsRoutes(router: Router, deps: ClusterFindingsDeps): () => Promise<void> {
  const timeoutMs = deps.nodeTimeoutMs ?? FINDINGS_NODE_TIMEOUT_MS;
  const dispatcher = deps.caPem === null ? null : new Agent({ connect: { ca: deps.caPem, rejectUnauthorized: true, timeout: timeoutMs }, keepAliveTimeout: 10_000 });
  router.add({
    method: 'GET',
    path: FINDINGS_CLUSTER_PATH,
    access: 'read',
    routing: 'local',
    summary: 'Audit findings of every member, merged (same filters as /api/v1/audit/findings/local); partial, node_errors, nodes_queried, nodes_responded say who answered.',
    handler: async (ctx) => {
      const filter = parseFindingsQuery(ctx.query); // 400 here, before any fan-out
      const nodeQuery = new URLSearchParams(ctx.query);
      nodeQuery.set('limit', String(FINDINGS_QUERY_LIMIT_MAX));
      const local = deps.dataplane.findingsView(nodeQuery);
      const others = deps.members === null || dispatcher === null || deps.rpc === null ? [] : deps.members().filter((m) => m.node_id !== deps.nodeId);
      const req: MemberViewRequest = { path: `/api/v1/audit/findings/local?${nodeQuery.toString()}`, headers: callerCredentials(ctx.headers), clientAddress: ctx.clientAddress };
      const answers = await Promise.allSettled(others.map((m) => askMember(deps.rpc as ClusterRpcCall, dispatcher as Agent, m, req, timeoutMs)));
      const views: FindingsView[] = [local];
      const nodeErrors: FindingsNodeError[] = [];
      answers.forEach((answer, i) => {
        const member = others[i] as FindingsMember;
        if (answer.status === 'fulfilled') {
          views.push(answer.value);
          return;
        }
        const reason = answer.reason as Error;
        const text = reason.name === 'TimeoutError' || reason.name === 'AbortError' ? `no answer within ${timeoutMs} ms` : describeError(reason);
        nodeErrors.push({ node_id: member.node_id, error: text.slice(0, NODE_ERROR_MAX_CHARS) });
      });
      if (nodeErrors.length > 0) deps.logger.warn({ node_errors: nodeErrors }, 'cluster findings: some members did not answer');
      const body: ClusterFindingsView = {
        ...mergeFindings(views, filter.limit),
        partial: nodeErrors.length > 0,
        node_errors: nodeErrors,
        nodes_queried: others.length + 1,
        nodes_responded: views.length,
      };
      return { status: 200, headers: { 'cache-control': 'no-store' }, body };
    },
  });
  return async () => {
    await dispatcher?.close();
  };
}
