import { NeuwerkCommand } from '../../../src/cli/base-command.js';
import { listMembers, renderMembers, type MemberView } from '../../../src/cli/cluster.js';
import { connectionFlags, resolveAuthenticatedConnection, tokenFlag } from '../../../src/cli/connection.js';

export default class ClusterMembersList extends NeuwerkCommand {
  static override summary = 'List cluster members with roles, health and addresses.';
  static override examples = ['<%= config.bin %> cluster members list --http-addr 10.0.0.11:8443 --json'];
  static override enableJsonFlag = true;
  static override flags = { ...connectionFlags, ...tokenFlag };

  async run(): Promise<{ members: MemberView[] }> {
    const { flags } = await this.parse(ClusterMembersList);
    const connection = resolveAuthenticatedConnection(flags);
    try {
      const members = await listMembers(connection);
      if (!this.jsonEnabled()) process.stdout.write(renderMembers(members));
      return { members };
    } finally {
      await connection.close();
    }
  }
}
