import type { LogRing } from '../../log/logger.js';
import { scrubText } from '../../sysdump/redaction.js';
import type { RouteSchemas } from '../openapi.js';
import type { Router } from '../router.js';

/** The path of the recent-logs endpoint, used by `neuwerk sysdump` on a running node. */
export const SUPPORT_LOGS_PATH = '/api/v1/support/logs';

/** Response schemas of the support routes, for the OpenAPI document. */
export const SUPPORT_SCHEMAS: RouteSchemas = {
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
};

/** What the support routes read: the node's in-memory log ring (null when the node keeps none). */
export interface SupportRouteDeps {
  readonly ring: LogRing | null | undefined;
  readonly nodeId: string;
}

/**
 * Support endpoints for diagnostics (DESIGN §9). `GET /api/v1/support/logs` (admin only, always
 * served by the node itself) returns the recent log lines of the node's ring buffer, scrubbed of
 * bearer credentials, JWTs and PEM private keys before they leave the process.
 */
export function addSupportRoutes(router: Router, deps: SupportRouteDeps): void {
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
