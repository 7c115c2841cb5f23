/**
 * `GET /api/v1/stats` (DESIGN §6): `{dataplane, dns, proxy, cluster}` of the node that serves it
 * (routing `local`: each node describes itself). The first three sections come from
 * `Dataplane.statsView()`; `cluster` carries this node's Raft position and every member's match
 * index and lag as `ClusterRuntime.status()` reports them (on a follower, the leader — whose
 * progress a follower does not track — shows the commit index known locally, a lower bound, and
 * lag 0; a member this node knows nothing about shows null). A single node reports a one-member
 * section (itself, the leader, its commit index, lag = commit − applied).
 */
import type { ClusterRuntime } from '../../cluster/runtime.js';
import type { Replicator } from '../../cluster/replicator.js';
import type { Dataplane } from '../../dataplane/dataplane.js';
import { DNS_RESULTS } from '../../dataplane/dns-proxy.js';
import { PROXY_KINDS, PROXY_RESULTS } from '../../dataplane/forward-proxy.js';
import type { RouteSchemas } from '../openapi.js';
import type { Router } from '../router.js';

/** Path of the node's stats. */
export const STATS_PATH = '/api/v1/stats';

/** One member in the `cluster` section. */
export interface StatsMember {
  readonly node_id: string;
  readonly role: 'leader' | 'follower' | 'learner' | 'candidate';
  readonly status: 'healthy' | 'lagging' | 'unreachable';
  /** Highest log index known replicated on the member (null: unknown to this node). */
  readonly match_index: number | null;
  /** Entries the member is behind (null: unknown). */
  readonly lag: number | null;
  readonly last_contact_ms: number | null;
}

/** The `cluster` section of `GET /api/v1/stats`. */
export interface StatsClusterSection {
  readonly cluster_enabled: boolean;
  readonly node_id: string;
  readonly role: 'leader' | 'follower' | 'learner' | 'candidate';
  readonly leader_id: string | null;
  readonly term: number;
  readonly commit_index: number;
  readonly applied_index: number;
  readonly members: StatsMember[];
}

const MEMBER_SCHEMA = {
  type: 'object',
  required: ['node_id', 'role', 'status', 'match_index', 'lag'],
  properties: {
    node_id: { type: 'string' },
    role: { enum: ['leader', 'follower', 'learner', 'candidate'] },
    status: { enum: ['healthy', 'lagging', 'unreachable'] },
    match_index: { type: ['integer', 'null'] },
    lag: { type: ['integer', 'null'] },
    last_contact_ms: { type: ['integer', 'null'] },
  },
} as const;

const COUNT = { type: 'integer', minimum: 0 } as const;

/** An object of the named non-negative counters, every one present. */
function counters(names: readonly string[], description?: string): object {
  return { type: 'object', required: [...names], properties: Object.fromEntries(names.map((name) => [name, COUNT])), ...(description ? { description } : {}) };
}

function nullable(schema: object, description: string): object {
  return { oneOf: [{ type: 'null' }, schema], description };
}

const DNS_UPSTREAM_SCHEMA = counters(['in_flight', 'timeouts', 'replies_dropped', 'send_errors']);

const DATAPLANE_SECTION_SCHEMA = {
  type: 'object',
  description: 'Allowlist, findings, denylist and the shared DNS upstream client.',
  required: ['policy_active', 'allowlist_entries', 'allowlist_evictions', 'findings_entries', 'findings_recorded', 'findings_evictions', 'dns_upstream', 'denylist'],
  properties: {
    policy_active: { type: 'boolean' },
    allowlist_entries: COUNT,
    allowlist_evictions: COUNT,
    findings_entries: COUNT,
    findings_recorded: COUNT,
    findings_evictions: COUNT,
    dns_upstream: nullable(DNS_UPSTREAM_SCHEMA, 'The upstream client shared by the DNS proxy and the forward proxy\'s resolver; null: none.'),
    denylist: nullable(
      {
        type: 'object',
        required: ['client_ips', 'hostnames', 'invalid_keys', 'truncated', 'rebuilds', 'denies'],
        properties: {
          client_ips: COUNT,
          hostnames: COUNT,
          invalid_keys: COUNT,
          truncated: { type: 'boolean', description: 'The zone held more keys than the index takes.' },
          rebuilds: COUNT,
          denies: counters(['client', 'hostname'], 'Denies by kind since start.'),
        },
      },
      'The dynamic denylist index; null: no denylist source.',
    ),
  },
} as const;

const DNS_SECTION_SCHEMA = nullable(
  {
    type: 'object',
    required: ['listening', 'queries', 'tcp_connections', 'upstreams', 'upstream'],
    properties: {
      listening: { oneOf: [{ type: 'null' }, { type: 'object', required: ['udp', 'tcp'], properties: { udp: { type: 'string' }, tcp: { type: 'string' } } }] },
      queries: counters(DNS_RESULTS, 'Queries by result since start.'),
      tcp_connections: COUNT,
      upstreams: { type: 'array', items: { type: 'string' } },
      upstream: DNS_UPSTREAM_SCHEMA,
    },
  },
  'The DNS proxy; null when not configured.',
);

const PROXY_SECTION_SCHEMA = nullable(
  {
    type: 'object',
    required: ['listening', 'active_flows', 'active_flows_by_group', 'client_connections', 'upstream_connections', 'decisions', 'tunnel_bytes', 'proxy_protocol'],
    properties: {
      listening: { type: ['string', 'null'] },
      active_flows: COUNT,
      active_flows_by_group: { type: 'object', additionalProperties: COUNT, description: 'Active flows per source group (admission limit).' },
      client_connections: COUNT,
      upstream_connections: COUNT,
      decisions: { type: 'object', required: [...PROXY_KINDS], properties: Object.fromEntries(PROXY_KINDS.map((kind) => [kind, counters(PROXY_RESULTS)])), description: 'Decisions by kind and result since start.' },
      tunnel_bytes: counters(['client_to_upstream', 'upstream_to_client']),
      proxy_protocol: nullable(
        {
          type: 'object',
          required: ['trusted_from', 'proxied', 'local', 'refused'],
          properties: { trusted_from: { type: 'array', items: { type: 'string' } }, proxied: COUNT, local: COUNT, refused: COUNT },
        },
        'PROXY protocol headers read; null when no balancer is trusted (--proxy-protocol-from).',
      ),
    },
  },
  'The forward proxy; null when not configured.',
);

/** Response schema of `GET /api/v1/stats`, for the OpenAPI document. */
export const STATS_SCHEMAS: RouteSchemas = {
  [`GET ${STATS_PATH}`]: {
    response: {
      type: 'object',
      required: ['dataplane', 'dns', 'proxy', 'cluster'],
      properties: {
        dataplane: DATAPLANE_SECTION_SCHEMA,
        dns: DNS_SECTION_SCHEMA,
        proxy: PROXY_SECTION_SCHEMA,
        cluster: {
          type: 'object',
          required: ['cluster_enabled', 'node_id', 'role', 'leader_id', 'term', 'commit_index', 'applied_index', 'members'],
          properties: {
            cluster_enabled: { type: 'boolean' },
            node_id: { type: 'string' },
            role: { enum: ['leader', 'follower', 'learner', 'candidate'] },
            leader_id: { type: ['string', 'null'] },
            term: { type: 'integer' },
            commit_index: { type: 'integer' },
            applied_index: { type: 'integer' },
            members: { type: 'array', items: MEMBER_SCHEMA },
          },
        },
      },
    },
  },
};

/** The `cluster` section: from the cluster runtime, or a one-member view of a single node. */
export function clusterStatsSection(cluster: ClusterRuntime | null, replicator: Replicator): StatsClusterSection {
  if (cluster !== null) {
    const status = cluster.status();
    return {
      cluster_enabled: true,
      node_id: status.node_id,
      role: status.role,
      leader_id: status.leader_id,
      term: status.term,
      commit_index: status.commit_index,
      applied_index: status.applied_index,
      // A follower tracks no progress for the leader: it holds every committed entry by
      // definition, so its match index is at least the commit index known here, lag 0.
      members: status.peers.map((p) => {
        const leaderSeenFromFollower = p.node_id === status.leader_id && p.match_index === null;
        return {
          node_id: p.node_id,
          role: p.role,
          status: p.status,
          match_index: leaderSeenFromFollower ? status.commit_index : p.match_index,
          lag: leaderSeenFromFollower ? 0 : p.lag,
          last_contact_ms: p.last_contact_ms,
        };
      }),
    };
  }
  const own = replicator.status();
  const role = own.role === 'pre-candidate' ? 'candidate' : own.role;
  return {
    cluster_enabled: false,
    node_id: own.nodeId,
    role,
    leader_id: own.leaderId,
    term: own.term,
    commit_index: own.commitIndex,
    applied_index: own.appliedIndex,
    members: [{ node_id: own.nodeId, role, status: 'healthy', match_index: own.commitIndex, lag: Math.max(0, own.commitIndex - own.appliedIndex), last_contact_ms: 0 }],
  };
}

/** Mounts `GET /api/v1/stats` (read access, served by the node that receives it). */
export function addStatsRoutes(router: Router, deps: { readonly dataplane: Dataplane; readonly cluster: ClusterRuntime | null; readonly replicator: Replicator }): void {
  router.add({
    method: 'GET',
    path: STATS_PATH,
    access: 'read',
    routing: 'local',
    summary: "This node's statistics: dataplane (allowlist, findings, denylist, DNS upstreams), dns, proxy, and cluster (per-member match index and lag).",
    handler: () => ({
      status: 200,
      headers: { 'cache-control': 'no-store' },
      body: { ...deps.dataplane.statsView(), cluster: clusterStatsSection(deps.cluster, deps.replicator) },
    }),
  });
}
