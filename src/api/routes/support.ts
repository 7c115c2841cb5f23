import { NeuwerkError } from '../../errors.js';
import type { LogRing } from '../../log/logger.js';
import { buildClusterSysdump, type ClusterSysdumpDeps } from '../../sysdump/cluster-sysdump.js';
import { describeAddresses } from '../../sysdump/collect.js';
import { redactConfiguration, scrubText } from '../../sysdump/redaction.js';
import type { RouteSchemas } from '../openapi.js';
import type { Router } from '../router.js';

/** The path of the recent-logs endpoint, used by `neuwerk sysdump` on a running node. */
export const SUPPORT_LOGS_PATH = '/api/v1/support/logs';
/** The configuration the node runs with, redacted, used by `neuwerk sysdump` on a running node. */
export const SUPPORT_CONFIGURATION_PATH = '/api/v1/support/configuration';
/** The cluster-wide sysdump endpoint (admin; served by the leader). */
export const SUPPORT_CLUSTER_SYSDUMP_PATH = '/api/v1/support/sysdump/cluster';
/** The members-only node sysdump endpoint; over HTTPS it always refuses (see `addSupportRoutes`). */
export const SUPPORT_NODE_SYSDUMP_PATH = '/api/v1/support/sysdump/node';
/** What the HTTPS node endpoint answers to everyone: members fetch node archives over the cluster port. */
export const NODE_SYSDUMP_HTTP_REFUSAL = 'node sysdumps are served to cluster members over the cluster port';

/** Response schemas of the support routes, for the OpenAPI document. */
export const SUPPORT_SCHEMAS: RouteSchemas = {
  [`POST ${SUPPORT_NODE_SYSDUMP_PATH}`]: { refusal: { status: 403, description: `Always, over HTTPS: ${NODE_SYSDUMP_HTTP_REFUSAL}.` } },
  [`GET ${SUPPORT_LOGS_PATH}`]: {
    response: {
      type: 'object',
      required: ['node_id', 'generated_at', 'lines'],
      properties: {
        node_id: { type: 'string' },
        generated_at: { type: 'string', description: 'RFC 3339 UTC.' },
        lines: { type: 'array', items: { type: 'string' }, description: 'Recent JSON log lines, oldest first, with bearer tokens, JWTs and private keys scrubbed.' },
      },
    },
  },
  [`POST ${SUPPORT_CLUSTER_SYSDUMP_PATH}`]: {
    responseMediaTypes: { 'application/gzip': { type: 'string', format: 'binary', description: 'The archive (tar.gz); x-neuwerk-sysdump-partial says whether a member is missing from it.' } },
  },
  [`GET ${SUPPORT_CONFIGURATION_PATH}`]: {
    response: {
      type: 'object',
      required: ['node_id', 'config_path', 'resolved'],
      properties: {
        node_id: { type: 'string' },
        config_path: { type: ['string', 'null'], description: 'The config file the node read, if any.' },
        resolved: { type: 'object', description: 'The configuration the node runs with (config file, start flags and defaults); addresses as host:port, values of secret-bearing keys "<redacted>".' },
      },
    },
  },
};

/** What the support routes read: the node's in-memory log ring (null when the node keeps none). */
export interface SupportRouteDeps {
  readonly ring: LogRing | null | undefined;
  readonly nodeId: string;
  /** The configuration the node runs with, and the file it came from. */
  readonly config: { readonly configPath: string | null };
  /** Sources of the cluster sysdump; omitted, the sysdump routes are not served. */
  readonly sysdump?: ClusterSysdumpDeps;
}

/**
 * Support endpoints for diagnostics (DESIGN §9). `GET /api/v1/support/logs` (admin only, always
 * served by the node itself) returns the recent log lines of the node's ring buffer, scrubbed of
 * bearer credentials, JWTs and PEM private keys before they leave the process.
 */
export function addSupportRoutes(router: Router, deps: SupportRouteDeps): void {
  const sysdump = deps.sysdump;
  if (sysdump !== undefined) {
    router.add({
      method: 'POST',
      path: SUPPORT_CLUSTER_SYSDUMP_PATH,
      access: 'admin',
      routing: 'leader',
      // Archives run to megabytes and take seconds to build: never buffered into one RPC answer.
      forwarding: 'https',
      summary: 'Cluster-wide diagnostic archive (gzip tar): every member\'s node archive under nodes/<node_id>/, cluster/summary.json, manifest.json with partial/node_errors. Single-node mode: a one-node archive.',
      handler: async (ctx) => {
        const identity = ctx.identity;
        sysdump.logger.info({ audit: true, actor: identity?.sub ?? null, action: 'support.sysdump.cluster' }, 'audit: cluster sysdump requested');
        const built = await buildClusterSysdump(sysdump);
        return {
          status: 200,
          headers: {
            'content-type': 'application/gzip',
            'content-length': String(built.archive.length),
            'content-disposition': `attachment; filename="${built.filename}"`,
            'cache-control': 'no-store',
            'x-neuwerk-sysdump-partial': String(built.manifest.partial),
          },
          raw: built.archive,
        };
      },
    });
  }
  // The HTTPS API has no client certificates, so it cannot tell a member from anyone else holding
  // a token: node archives travel only over the mTLS cluster port (cluster RPC `sysdump.node`).
  router.add({
    method: 'POST',
    path: SUPPORT_NODE_SYSDUMP_PATH,
    access: 'public',
    routing: 'local',
    summary: `Internal fan-out endpoint; always 403 over HTTPS: ${NODE_SYSDUMP_HTTP_REFUSAL} (cluster RPC sysdump.node, mTLS).`,
    handler: () => {
      throw new NeuwerkError('NW_ERR_AUTH_FORBIDDEN', NODE_SYSDUMP_HTTP_REFUSAL);
    },
  });

  router.add({
    method: 'GET',
    path: SUPPORT_CONFIGURATION_PATH,
    access: 'admin',
    routing: 'local',
    summary: 'The configuration this node runs with (config file, start flags and defaults), secret-bearing values redacted.',
    handler: () => ({
      status: 200,
      headers: { 'cache-control': 'no-store' },
      body: { node_id: deps.nodeId, config_path: deps.config.configPath, resolved: redactConfiguration(describeAddresses(deps.config)) },
    }),
  });

  router.add({
    method: 'GET',
    path: SUPPORT_LOGS_PATH,
    access: 'admin',
    // About the node that received the request: a follower never forwards it (DESIGN §6).
    routing: 'local',
    summary: "This node's recent log lines from its in-memory ring buffer (credentials scrubbed).",
    handler: () => ({
      status: 200,
      headers: { 'cache-control': 'no-store' },
      body: {
        node_id: deps.nodeId,
        generated_at: new Date().toISOString(),
        lines: (deps.ring?.snapshot() ?? []).map((line) => scrubText(line)),
      },
    }),
  });
}
