import { Flags } from '@oclif/core';
import { NeuwerkCommand } from '../src/cli/base-command.js';
import { fetchStatus, listMembers, policyVersionsByNode, renderStatus } from '../src/cli/cluster.js';
import { connectionFlags, resolveAuthenticatedConnection, tokenFlag } from '../src/cli/connection.js';
import type { ClusterStatus } from '../src/cluster/runtime.js';

export default class Status extends NeuwerkCommand {
  static override summary = 'Cluster status at a glance: leader, term, members, roles, health, lag, policy version per node and failure tolerance.';
  static override description = "Asks the node at --http-addr; the answer is the leader's view (peer health is known there) unless --local.";
  static override examples = ['<%= config.bin %> status --http-addr 10.0.0.11:8443 --token "$NEUWERK_TOKEN"', '<%= config.bin %> status --json'];
  static override enableJsonFlag = true;
  static override flags = {
    ...connectionFlags,
    ...tokenFlag,
    local: Flags.boolean({ description: "This node's own view, even when no leader is known.", default: false }),
  };

  async run(): Promise<ClusterStatus & { policy_versions: Record<string, number | null> }> {
    const { flags } = await this.parse(Status);
    const connection = resolveAuthenticatedConnection(flags);
    try {
      const status = await fetchStatus(connection, flags.local);
      const policyVersions = await policyVersionsByNode(connection, await listMembers(connection).catch(() => []));
      // The node that answered says its own version (without a leader the member list is not known).
      const own = (status as { policy_version?: unknown }).policy_version;
      if (policyVersions[status.node_id] === undefined && typeof own === 'number') policyVersions[status.node_id] = own;
      if (!this.jsonEnabled()) process.stdout.write(renderStatus(status, policyVersions));
      return { ...status, policy_versions: policyVersions };
    } finally {
      await connection.close();
    }
  }
}
