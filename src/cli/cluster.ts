import chalk from 'chalk';
import type { ClusterStatus, PeerStatus } from '../cluster/runtime.js';
import { NeuwerkError } from '../errors.js';
import type { ApiConnection } from './connection.js';
import { apiFailure } from './local-node.js';

export interface MemberView {
  node_id: string;
  cluster_addr: string | null;
  http_addr: string;
  /** Absent from nodes older than the field; null when the node runs no forward proxy. */
  proxy_addr?: string | null;
  dns_addr?: string | null;
  role: string;
  voter: boolean;
  status: string;
  joined_at: string;
}

export async function fetchStatus(connection: ApiConnection, local: boolean): Promise<ClusterStatus> {
  const response = await connection.call('GET', `/api/v1/cluster/status${local ? '?local=true' : ''}`);
  if (response.status !== 200) {
    const failure = apiFailure(response, 'cluster status');
    if (failure.code !== 'NW_ERR_NO_LEADER' || local) throw failure;
    throw new NeuwerkError(failure.code, failure.message, { actions: ["Without a leader the cluster's view is unknown; `neuwerk status --local` shows what this node sees (its role, term, and which voters it hears)."] });
  }
  return response.json as ClusterStatus;
}

/**
 * Every member's own view (for its policy version), asked through the node this connection talks
 * to (`GET /api/v1/cluster/members/:id/status`, which asks the member over the cluster RPC): the
 * members' own addresses may not be reachable from here (a loopback management bind on each
 * appliance), nor their certificates trusted by this connection's CA. A member that does not
 * answer maps to null.
 */
export async function policyVersionsByNode(connection: ApiConnection, members: readonly MemberView[]): Promise<Record<string, number | null>> {
  const versions: Record<string, number | null> = {};
  await Promise.all(
    members.map(async (member) => {
      try {
        const response = await connection.call('GET', `/api/v1/cluster/members/${encodeURIComponent(member.node_id)}/status`, undefined, POLICY_VERSION_TIMEOUT_MS);
        const version = (response.json as { policy_version?: unknown } | null)?.policy_version;
        versions[member.node_id] = response.status === 200 && typeof version === 'number' ? version : null;
      } catch {
        versions[member.node_id] = null;
      }
    }),
  );
  return versions;
}

/** How long `neuwerk status` waits for each member's own policy version (the node asked waits 2 s for the member). */
export const POLICY_VERSION_TIMEOUT_MS = 3_000;

export async function listMembers(connection: ApiConnection): Promise<MemberView[]> {
  const response = await connection.call('GET', '/api/v1/cluster/members');
  if (response.status !== 200) throw apiFailure(response, 'cluster members list');
  return (response.json as { members: MemberView[] }).members;
}

export async function removeMember(connection: ApiConnection, nodeId: string, force: boolean): Promise<void> {
  const response = await connection.call('DELETE', `/api/v1/cluster/members/${encodeURIComponent(nodeId)}${force ? '?force=true' : ''}`, undefined, 15_000);
  if (response.status !== 204) throw apiFailure(response, `cluster members remove ${nodeId}`);
}

export async function setVoters(connection: ApiConnection, ids: string[], force: boolean): Promise<string[]> {
  const response = await connection.call('PUT', '/api/v1/cluster/voters', { ids, force }, 30_000);
  if (response.status !== 200) throw apiFailure(response, 'cluster voters set');
  return (response.json as { voters: string[] }).voters;
}

const HEALTH_COLOUR: Record<string, (text: string) => string> = { healthy: chalk.green, lagging: chalk.yellow, unreachable: chalk.red };

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => stripAnsi(row[column] ?? '').length))) ?? [];
  return rows.map((row) => row.map((cell, column) => cell + ' '.repeat((widths[column] ?? 0) - stripAnsi(cell).length)).join('  ').trimEnd()).join('\n');
}

function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;]*m/g, '');
}

/** The at-a-glance rendering of `neuwerk status`; `--json` prints the same object. */
export function renderStatus(
  status: ClusterStatus | (Omit<ClusterStatus, 'cluster_enabled'> & { cluster_enabled: boolean }),
  policyVersions: Readonly<Record<string, number | null>> = {},
): string {
  const tolerance = status.tolerates === 0 ? chalk.red(`tolerates ${status.tolerates} failures`) : chalk.green(`tolerates ${status.tolerates} failure${status.tolerates === 1 ? '' : 's'}`);
  const header = [
    `${status.cluster_enabled ? 'cluster' : 'single node'}  leader ${status.leader_id ?? chalk.red('none')}  term ${status.term}  commit ${status.commit_index}`,
    `voters ${status.healthy_voters}/${status.voters} healthy, ${tolerance}`,
    '',
  ];
  const rows: string[][] = [['NODE', 'ROLE', 'HEALTH', 'MATCH', 'LAG', 'LAST CONTACT', 'POLICY']];
  for (const peer of status.peers as PeerStatus[]) {
    const colour = HEALTH_COLOUR[peer.status] ?? ((t: string) => t);
    rows.push([
      peer.node_id === status.node_id ? `${peer.node_id} *` : peer.node_id,
      peer.role,
      colour(peer.status),
      peer.match_index === null ? '-' : String(peer.match_index),
      peer.lag === null ? '-' : String(peer.lag),
      peer.last_contact_ms === null ? '-' : `${peer.last_contact_ms} ms`,
      policyVersions[peer.node_id] === undefined || policyVersions[peer.node_id] === null ? '-' : `v${policyVersions[peer.node_id]}`,
    ]);
  }
  return `${header.join('\n')}${table(rows)}\n`;
}

export function renderMembers(members: readonly MemberView[]): string {
  const rows: string[][] = [['NODE', 'ROLE', 'VOTER', 'HEALTH', 'CLUSTER ADDR', 'HTTP ADDR', 'PROXY ADDR', 'DNS ADDR']];
  for (const m of members) {
    rows.push([m.node_id, m.role, m.voter ? 'yes' : 'no', (HEALTH_COLOUR[m.status] ?? ((t: string) => t))(m.status), m.cluster_addr ?? '-', m.http_addr, m.proxy_addr ?? '-', m.dns_addr ?? '-']);
  }
  return `${table(rows)}\n`;
}
