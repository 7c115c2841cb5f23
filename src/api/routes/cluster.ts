import type { ClusterRuntime, ClusterStatus } from '../../cluster/runtime.js';
import type { Replicator } from '../../cluster/replicator.js';
import { describeError, NeuwerkError } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import type { ClusterRpcCall } from '../leader-proxy.js';
import { askMemberView, callerCredentials } from '../member-view.js';
import type { RouteSchemas } from '../openapi.js';
import type { Router } from '../router.js';
import { bodyValidator } from '../validate.js';

const PEER_SCHEMA = {
  type: 'object',
  properties: {
    node_id: { type: 'string' },
    role: { type: 'string', enum: ['leader', 'follower', 'learner', 'candidate'] },
    status: { type: 'string', enum: ['healthy', 'lagging', 'unreachable'] },
    match_index: { type: ['integer', 'null'] },
    lag: { type: ['integer', 'null'] },
    last_contact_ms: { type: ['integer', 'null'] },
  },
} as const;

const STATUS_SCHEMA = {
  type: 'object',
  required: ['cluster_enabled', 'node_id', 'role', 'leader_id', 'term', 'commit_index', 'applied_index', 'voters', 'healthy_voters', 'tolerates', 'peers'],
  properties: {
    cluster_enabled: { type: 'boolean' },
    node_id: { type: 'string' },
    role: { type: 'string' },
    leader_id: { type: ['string', 'null'] },
    term: { type: 'integer' },
    commit_index: { type: 'integer' },
    applied_index: { type: 'integer' },
    policy_version: { type: 'integer', description: 'Version of the policy enforced by the node that answered.' },
    voters: { type: 'integer' },
    healthy_voters: { type: 'integer' },
    tolerates: { type: 'integer', description: 'How many more voters may fail before quorum is lost.' },
    peers: { type: 'array', items: PEER_SCHEMA },
  },
} as const;

const MEMBER_SCHEMA = {
  type: 'object',
  properties: {
    node_id: { type: 'string' }, cluster_addr: { type: ['string', 'null'] }, http_addr: { type: 'string' },
    proxy_addr: { type: ['string', 'null'], description: "The node's forward proxy; null when it runs none or has not recorded it yet." },
    dns_addr: { type: ['string', 'null'], description: "The node's DNS proxy (UDP and TCP); null when it runs none or has not recorded it yet." },
    role: { type: 'string', enum: ['leader', 'follower', 'learner', 'candidate'] }, voter: { type: 'boolean' },
    status: { type: 'string', enum: ['healthy', 'lagging', 'unreachable'] }, joined_at: { type: 'string' },
  },
} as const;

const VOTERS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['ids'],
  properties: { ids: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } }, force: { type: 'boolean' } },
} as const;

/** How long the node asked for a member's own status waits for that member. */
export const MEMBER_STATUS_TIMEOUT_MS = 2_000;

export const CLUSTER_SCHEMAS: RouteSchemas = {
  'GET /api/v1/cluster/members/:node_id/status': { response: STATUS_SCHEMA },
  'GET /api/v1/cluster/status': { response: STATUS_SCHEMA },
  'GET /api/v1/cluster/members': { response: { type: 'object', properties: { members: { type: 'array', items: MEMBER_SCHEMA } } } },
  'DELETE /api/v1/cluster/members/:node_id': {
    query: { force: { schema: { type: 'boolean', default: false }, description: 'true: remove even when the healthy voters left would be fewer than a quorum of the remaining voters.' } },
    responseStatus: 204,
  },
  'PUT /api/v1/cluster/voters': { request: VOTERS_SCHEMA, response: { type: 'object', properties: { voters: { type: 'array', items: { type: 'string' } } } } },
};

const validateVoters = bodyValidator<{ ids: string[]; force?: boolean }>(VOTERS_SCHEMA);

/** The status of a single node: a one-voter group that tolerates no failure. */
function singleNodeStatus(replicator: Replicator): ClusterStatus | Record<string, unknown> {
  const s = replicator.status();
  // A node whose store cannot be written leads nothing (see `RaftReplicator.fail`).
  const role = s.stoppedBy === null ? 'leader' : 'follower';
  return {
    cluster_enabled: false,
    node_id: s.nodeId,
    role,
    leader_id: s.stoppedBy === null ? s.nodeId : null,
    term: s.term,
    commit_index: s.commitIndex,
    applied_index: s.appliedIndex,
    voters: 1,
    healthy_voters: 1,
    tolerates: 0,
    peers: [{ node_id: s.nodeId, role, status: 'healthy', match_index: s.commitIndex, lag: 0, last_contact_ms: 0 }],
  };
}

/** Membership and status (DESIGN §6). Removal refuses to break quorum unless `?force=true`. */
export function addClusterRoutes(
  router: Router,
  deps: { cluster: ClusterRuntime | null; replicator: Replicator; logger: Logger; policyVersion: () => number; rpc: ClusterRpcCall | null },
): void {
  const { cluster, replicator, logger, policyVersion, rpc } = deps;
  /** This node's status (the leader's view on the leader) with the policy version it enforces. */
  const ownStatus = (): Record<string, unknown> => ({ ...(cluster === null ? singleNodeStatus(replicator) : cluster.status()), policy_version: policyVersion() });
  const need = (): ClusterRuntime => {
    if (cluster === null) throw new NeuwerkError('NW_ERR_VALIDATION', 'this node runs in single-node mode; start it with --cluster-bind to manage membership');
    return cluster;
  };

  router.add({
    method: 'GET',
    path: '/api/v1/cluster/status',
    access: 'read',
    summary: "The leader's view of the cluster (peer health is known there): role, leader, term, indexes, voters, failure tolerance; ?local=true answers with this node's own view.",
    handler: () => ({ status: 200, body: ownStatus() }),
  });

  router.add({
    method: 'GET',
    path: '/api/v1/cluster/members/:node_id/status',
    access: 'read',
    routing: 'local',
    summary:
      "One member's own view, as its GET /api/v1/cluster/status?local=true answers (with the policy_version it enforces), asked by the node that receives the request over the cluster RPC: no address or certificate of the member is needed by the caller. 404 for a node that is not a member, 502 when the member does not answer within 2 s.",
    handler: async (ctx) => {
      const target = ctx.params.node_id as string;
      const own = replicator.status().nodeId;
      if (target === own) return { status: 200, headers: { 'x-neuwerk-served-by': own }, body: ownStatus() };
      if (cluster === null || rpc === null || replicator.stateMachine.member(target) === undefined) {
        throw new NeuwerkError('NW_ERR_NOT_FOUND', `node ${target} is not a member of this cluster`);
      }
      const request = { path: '/api/v1/cluster/status?local=true', headers: callerCredentials(ctx.headers), clientAddress: ctx.clientAddress };
      let answer;
      try {
        answer = await askMemberView(rpc, target, request, MEMBER_STATUS_TIMEOUT_MS);
      } catch (err) {
        throw new NeuwerkError('NW_ERR_API_UNREACHABLE', `member ${target} did not answer for its status: ${describeError(err)}`);
      }
      if (answer === null) throw new NeuwerkError('NW_ERR_API_RESPONSE', `member ${target} does not answer for its status over the cluster RPC (an older version)`);
      let body: unknown;
      try {
        body = JSON.parse(answer.text);
      } catch {
        throw new NeuwerkError('NW_ERR_API_RESPONSE', `member ${target} answered HTTP ${answer.status} with a body that is not JSON`);
      }
      return { status: answer.status, headers: { 'x-neuwerk-served-by': target }, body };
    },
  });

  router.add({
    method: 'GET',
    path: '/api/v1/cluster/members',
    access: 'read',
    summary: 'Members with addresses, roles and health.',
    handler: () => {
      const status = cluster === null ? (singleNodeStatus(replicator) as ClusterStatus) : cluster.status();
      const health = new Map(status.peers.map((p) => [p.node_id, p]));
      const members = replicator.stateMachine.members().map((m) => {
        const peer = health.get(m.node_id);
        return {
          node_id: m.node_id,
          cluster_addr: m.cluster_addr,
          http_addr: m.http_addr,
          proxy_addr: m.proxy_addr,
          dns_addr: m.dns_addr,
          role: peer?.role ?? (m.role === 'learner' ? 'learner' : 'follower'),
          voter: peer === undefined ? m.role === 'voter' : peer.role !== 'learner',
          status: peer?.status ?? 'unreachable',
          joined_at: m.joined_at,
        };
      });
      return { status: 200, body: { members } };
    },
  });

  router.add({
    method: 'DELETE',
    path: '/api/v1/cluster/members/:node_id',
    access: 'admin',
    summary: 'Remove a member for good; refuses a removal that would leave the healthy voters below a quorum of the remaining voters unless ?force=true.',
    handler: async (ctx) => {
      const runtime = need();
      const target = ctx.params.node_id as string;
      await removeMember(runtime, replicator, target, ctx.query.get('force') === 'true', ctx.identity?.sub ?? 'unknown', logger);
      return { status: 204 };
    },
  });

  router.add({
    method: 'PUT',
    path: '/api/v1/cluster/voters',
    access: 'admin',
    summary: 'Make exactly these members voters: listed learners are promoted, unlisted voters removed (one change at a time).',
    handler: async (ctx) => {
      const runtime = need();
      const body = validateVoters(await ctx.readJson());
      const status = runtime.status();
      const known = new Set(status.peers.map((p) => p.node_id));
      const unknown = body.ids.filter((id) => !known.has(id));
      if (unknown.length > 0) throw new NeuwerkError('NW_ERR_VALIDATION', `ids: ${unknown.join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not a member`);
      const raftConf = runtime.replicator.raftStatus().conf;
      for (const id of body.ids.filter((i) => raftConf.learners.includes(i))) {
        await runtime.replicator.proposeConfChange({ type: 'promote', nodeId: id });
        logger.info({ audit: true, actor: ctx.identity?.sub ?? 'unknown', action: 'cluster.voter.promote', node_id: id }, 'audit: cluster.voter.promote');
      }
      // Unreachable voters go first: each removal is checked against quorum on its own, and
      // dropping a down voter first never lowers the healthy count the next check sees.
      const unreachable = new Set(status.peers.filter((p) => p.status === 'unreachable').map((p) => p.node_id));
      const leaving = raftConf.voters.filter((v) => !body.ids.includes(v)).sort((a, b) => Number(unreachable.has(b)) - Number(unreachable.has(a)));
      for (const id of leaving) {
        await removeMember(runtime, replicator, id, body.force === true, ctx.identity?.sub ?? 'unknown', logger);
      }
      return { status: 200, body: { voters: runtime.replicator.raftStatus().conf.voters } };
    },
  });
}

async function removeMember(runtime: ClusterRuntime, replicator: Replicator, target: string, force: boolean, actor: string, logger: Logger): Promise<void> {
  const status = runtime.status();
  const peer = status.peers.find((p) => p.node_id === target);
  if (peer === undefined && !replicator.stateMachine.members().some((m) => m.node_id === target)) {
    throw new NeuwerkError('NW_ERR_NOT_FOUND', `node ${target} is not a member`);
  }
  const conf = runtime.replicator.raftStatus().conf;
  const isVoter = conf.voters.includes(target);
  if (isVoter && !force) {
    const remaining = status.voters - 1;
    const healthyRemaining = status.healthy_voters - (peer?.status === 'unreachable' ? 0 : 1);
    if (remaining === 0) throw new NeuwerkError('NW_ERR_CONFLICT', `removing ${target} would leave no voter`);
    if (healthyRemaining < Math.floor(remaining / 2) + 1) {
      throw new NeuwerkError('NW_ERR_CONFLICT', `removing ${target} would leave ${healthyRemaining} healthy of ${remaining} voters, below quorum; force it with ?force=true (CLI: --force) to remove it anyway`);
    }
  }
  if (isVoter || conf.learners.includes(target)) await runtime.replicator.proposeConfChange({ type: 'remove', nodeId: target });
  await replicator.propose({ v: 1, type: 'member.tombstone', node_id: target, removed_at: new Date().toISOString() });
  await runtime.notifyRemoved(target);
  runtime.rpc.forget(target);
  logger.info({ audit: true, actor, action: 'cluster.member.remove', node_id: target, force }, 'audit: cluster.member.remove');
}
