import { Args, Flags } from '@oclif/core';
import { NeuwerkCommand } from '../../../src/cli/base-command.js';
import { removeMember } from '../../../src/cli/cluster.js';
import { connectionFlags, resolveAuthenticatedConnection, tokenFlag } from '../../../src/cli/connection.js';

export default class ClusterMembersRemove extends NeuwerkCommand {
  static override summary = 'Remove a member for good; it cannot rejoin with its old identity.';
  static override description = 'Refuses a removal that would leave the remaining healthy voters below quorum unless --force.';
  static override examples = ['<%= config.bin %> cluster members remove 3f0c9d2e-5b1a-4c7e-9f2d-8a6b4c3d2e1f --http-addr 10.0.0.11:8443'];
  static override args = { 'node-id': Args.string({ description: 'Node id to remove.', required: true }) };
  static override flags = {
    ...connectionFlags,
    ...tokenFlag,
    force: Flags.boolean({ description: 'Remove even if that leaves the healthy voters below a quorum of the remaining voters.', default: false }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ClusterMembersRemove);
    const connection = resolveAuthenticatedConnection(flags);
    try {
      await removeMember(connection, args['node-id'], flags.force);
      process.stderr.write(`removed ${args['node-id']}\n`);
    } finally {
      await connection.close();
    }
  }
}
