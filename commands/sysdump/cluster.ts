import { Flags } from '@oclif/core';
import { NeuwerkCommand } from '../../src/cli/base-command.js';
import { connectionFlags, resolveAuthenticatedConnection, tokenFlag } from '../../src/cli/connection.js';
import { fetchClusterSysdump, type ClusterSysdumpDownload } from '../../src/sysdump/cluster-client.js';

export default class SysdumpCluster extends NeuwerkCommand {
  static override summary = 'Build a cluster-wide diagnostic archive (gzip tar, mode 0600) through the management API; prints its path.';
  static override description =
    'The leader asks every member for its node archive over the mTLS cluster port and packs them under nodes/<node_id>/ with cluster/summary.json. ' +
    'A member that does not answer is listed in manifest.json node_errors (partial: true); the rest is still delivered. Progress goes to stderr.';
  static override examples = ['<%= config.bin %> sysdump cluster --http-addr 10.0.0.11:8443 --token "$NEUWERK_TOKEN" --output /tmp/cluster.tar.gz'];
  static override enableJsonFlag = true;
  static override flags = {
    ...connectionFlags,
    ...tokenFlag,
    output: Flags.string({ description: 'Archive path, or an existing directory for the default name (default ./neuwerk-cluster-sysdump-<UTC YYYYMMDDTHHMMSSZ>.tar.gz).' }),
  };

  async run(): Promise<ClusterSysdumpDownload> {
    const { flags } = await this.parse(SysdumpCluster);
    const connection = resolveAuthenticatedConnection(flags);
    try {
      const result = await fetchClusterSysdump(connection, { output: flags.output, progress: (message) => process.stderr.write(`sysdump cluster: ${message}\n`) });
      if (!this.jsonEnabled()) process.stdout.write(`${result.path}\n`);
      return result;
    } finally {
      await connection.close();
    }
  }
}
