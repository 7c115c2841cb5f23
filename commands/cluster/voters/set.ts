import { Flags } from '@oclif/core';
import { NeuwerkCommand } from '../../../src/cli/base-command.js';
import { setVoters } from '../../../src/cli/cluster.js';
import { connectionFlags, resolveAuthenticatedConnection, tokenFlag } from '../../../src/cli/connection.js';
import { NeuwerkError } from '../../../src/errors.js';

export default class ClusterVotersSet extends NeuwerkCommand {
  static override summary = 'Make exactly these members voters: listed learners are promoted, unlisted voters removed.';
  static override examples = ['<%= config.bin %> cluster voters set --ids a1b2,c3d4,e5f6 --http-addr 10.0.0.11:8443'];
  static override enableJsonFlag = true;
  static override flags = {
    ...connectionFlags,
    ...tokenFlag,
    ids: Flags.string({ description: 'Comma-separated node ids.', required: true }),
    force: Flags.boolean({ description: 'Allow removals that leave the healthy voters below a quorum of the remaining voters.', default: false }),
  };

  async run(): Promise<{ voters: string[] }> {
    const { flags } = await this.parse(ClusterVotersSet);
    const ids = flags.ids.split(',').map((id) => id.trim()).filter((id) => id.length > 0);
    if (ids.length === 0) throw new NeuwerkError('NW_ERR_USAGE', '--ids: give at least one node id');
    const connection = resolveAuthenticatedConnection(flags);
    try {
      const voters = await setVoters(connection, ids, flags.force);
      if (!this.jsonEnabled()) process.stdout.write(`${voters.join('\n')}\n`);
      return { voters };
    } finally {
      await connection.close();
    }
  }
}
