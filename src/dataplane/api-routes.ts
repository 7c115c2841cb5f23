/**
 * The dataplane's management API routes (DESIGN §6), ready to mount on the node's router:
 * `GET /api/v1/dns-cache` and `GET /api/v1/audit/findings/local`, both answered by the node that
 * receives them (they describe its own dataplane). `GET /api/v1/stats` belongs to the node (it
 * adds `cluster`); it takes its `dataplane`, `dns` and `proxy` sections from `statsSections`.
 * `mergeFindings` is the aggregation the cluster-wide `GET /api/v1/audit/findings` applies to the
 * nodes' local answers.
 */
import type { QueryParameter, RouteSchemas } from '../api/openapi.js';
import type { Router } from '../api/router.js';
import type { Dataplane, DataplaneStatsSections } from './dataplane.js';
import { FINDINGS_QUERY_LIMIT_DEFAULT, FINDINGS_QUERY_LIMIT_MAX, type FindingJson, type FindingsView } from './findings.js';

/** Path of the node-local DNS allowlist view. */
export const DNS_CACHE_PATH = '/api/v1/dns-cache';
/** Path of the node-local findings. */
export const FINDINGS_LOCAL_PATH = '/api/v1/audit/findings/local';

const FINDING_SCHEMA = {
  type: 'object',
  required: ['type', 'source_group', 'hostname', 'destination', 'port', 'count', 'first_seen', 'last_seen', 'finding', 'rule_id', 'reason', 'last_client_ip'],
  properties: {
    type: { enum: ['dns', 'connect', 'http'] },
    source_group: { type: ['string', 'null'] },
    hostname: { type: ['string', 'null'] },
    destination: { type: ['string', 'null'], description: 'Destination IP checked; null for DNS.' },
    port: { type: ['integer', 'null'] },
    count: { type: 'integer' },
    first_seen: { type: 'string', description: 'RFC 3339.' },
    last_seen: { type: 'string', description: 'RFC 3339.' },
    finding: { enum: ['deny', 'audit'], description: 'Of the latest occurrence: enforced deny, or audit-mode would-be deny.' },
    rule_id: { type: ['string', 'null'] },
    reason: { type: 'string' },
    last_client_ip: { type: 'string' },
  },
} as const;

/** The filters of the local and the cluster-wide findings views. */
export const FINDINGS_QUERY_PARAMETERS: Readonly<Record<string, QueryParameter>> = {
  source_group: { schema: { type: 'string' }, description: 'Only findings of this source group.' },
  finding_type: { schema: { type: 'string', enum: ['dns', 'connect', 'http'] }, description: 'Only findings of this type.' },
  since: { schema: { type: 'string', format: 'date-time' }, description: 'Only findings last seen at or after this time (RFC 3339).' },
  until: { schema: { type: 'string', format: 'date-time' }, description: 'Only findings first seen at or before this time (RFC 3339).' },
  limit: { schema: { type: 'integer', minimum: 1, maximum: FINDINGS_QUERY_LIMIT_MAX, default: FINDINGS_QUERY_LIMIT_DEFAULT }, description: 'At most this many findings, most recently seen first.' },
};

/** Response schemas of the dataplane routes, for the OpenAPI document. */
export const DATAPLANE_SCHEMAS: RouteSchemas = {
  [`GET ${DNS_CACHE_PATH}`]: {
    response: {
      type: 'object',
      required: ['entries'],
      properties: {
        entries: {
          type: 'array',
          items: {
            type: 'object',
            required: ['hostname', 'source_group', 'ips', 'last_seen'],
            properties: {
              hostname: { type: 'string' },
              source_group: { type: 'string' },
              ips: { type: 'array', items: { type: 'string' } },
              last_seen: { type: 'string', description: 'RFC 3339: last answered or used.' },
            },
          },
        },
      },
    },
  },
  [`GET ${FINDINGS_LOCAL_PATH}`]: {
    query: FINDINGS_QUERY_PARAMETERS,
    response: {
      type: 'object',
      required: ['findings', 'total', 'truncated'],
      properties: {
        findings: { type: 'array', items: FINDING_SCHEMA },
        total: { type: 'integer', description: 'Findings matching the filters before limit.' },
        truncated: { type: 'boolean' },
      },
    },
  },
};

/** Mounts `GET /api/v1/dns-cache` and `GET /api/v1/audit/findings/local` (read access, served locally). */
export function addDataplaneRoutes(router: Router, dataplane: Dataplane): void {
  router.add({
    method: 'GET',
    path: DNS_CACHE_PATH,
    access: 'read',
    routing: 'local',
    summary: "This node's dynamic allowlist: A/AAAA answers its DNS proxy forwarded, per source group.",
    handler: () => ({ status: 200, headers: { 'cache-control': 'no-store' }, body: dataplane.dnsCacheView() }),
  });
  router.add({
    method: 'GET',
    path: FINDINGS_LOCAL_PATH,
    access: 'read',
    routing: 'local',
    summary: `This node's audit findings: ?source_group=&finding_type=dns|connect|http&since=&until= (RFC 3339)&limit= (1..${FINDINGS_QUERY_LIMIT_MAX}, default ${FINDINGS_QUERY_LIMIT_DEFAULT}).`,
    handler: (ctx) => ({ status: 200, headers: { 'cache-control': 'no-store' }, body: dataplane.findingsView(ctx.query) }),
  });
}

/** The `dataplane`, `dns` and `proxy` sections of `GET /api/v1/stats` (spread them into the body). */
export function statsSections(dataplane: Dataplane): DataplaneStatsSections {
  return dataplane.statsView();
}

function findingKey(f: FindingJson): string {
  return `${f.type}\u0000${f.source_group ?? ''}\u0001${f.hostname ?? ''}\u0000${f.destination ?? ''}\u0000${f.port ?? ''}`;
}

/**
 * Merges the local findings of several nodes by (type, source group, hostname, destination,
 * port): counts add up, first_seen is the earliest, last_seen the latest, and the latest
 * occurrence's finding/rule/reason/client win. Most recently seen first, at most `limit`. Each
 * input should have been queried with the same filters and the largest limit
 * (FINDINGS_QUERY_LIMIT_MAX), so that `limit` applies to the merged list, not to each node's.
 *
 * `total` counts the merged findings. When a node's own list was truncated, the findings it left
 * out cannot be merged, so `total` is then a lower bound: the larger of the merged count and the
 * largest node's own total.
 */
export function mergeFindings(views: readonly FindingsView[], limit: number): FindingsView {
  const merged = new Map<string, FindingJson>();
  let anyTruncated = false;
  for (const view of views) {
    anyTruncated ||= view.truncated;
    for (const f of view.findings) {
      const key = findingKey(f);
      const seen = merged.get(key);
      if (seen === undefined) {
        merged.set(key, f);
        continue;
      }
      const latest = f.last_seen > seen.last_seen ? f : seen;
      merged.set(key, {
        ...latest,
        count: seen.count + f.count,
        first_seen: f.first_seen < seen.first_seen ? f.first_seen : seen.first_seen,
        last_seen: latest.last_seen,
      });
    }
  }
  const all = [...merged.values()].sort((a, b) => (a.last_seen < b.last_seen ? 1 : a.last_seen > b.last_seen ? -1 : 0));
  let total = all.length;
  if (anyTruncated) for (const view of views) total = Math.max(total, view.total);
  return { findings: all.slice(0, limit), total, truncated: anyTruncated || all.length > limit };
}
