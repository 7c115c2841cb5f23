import { Flags } from '@oclif/core';
import { NeuwerkCommand } from '../../src/cli/base-command.js';
import { recoverAsNewCluster, type RecoveryReport } from '../../src/cli/recover.js';
import { NeuwerkError } from '../../src/errors.js';

export default class ClusterRecover extends NeuwerkCommand {
  static override summary = 'Break glass: make this stopped node the only voter of its cluster, from its own store, after a quorum was lost for good.';
  static override description =
    'For a cluster that lost a majority of its voters for good (membership changes need a leader, so `cluster members remove` cannot help). ' +
    'Run it on the surviving member with the most recent data, with the node stopped: `--dry-run` on each survivor prints the term and index of ' +
    'its last log entry without changing anything; choose the highest term, then the highest index. ' +
    'It keeps its whole log and commits it (entries it had not yet learned were committed included), removes every other member (they are ' +
    'refused if they come back with their old identity: wipe them and join them again) and makes the node the only voter; start it, then join ' +
    'new members to it. Writes the lost members held but this node never received are lost.';
  static override examples = [
    '<%= config.bin %> cluster recover --dry-run --data-dir /var/lib/neuwerk',
    '<%= config.bin %> cluster recover --force-new-cluster --data-dir /var/lib/neuwerk',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    'force-new-cluster': Flags.boolean({ description: 'Required: confirms the node becomes the only voter and every other member is removed.', default: false }),
    'dry-run': Flags.boolean({ description: 'Change nothing: print what this node holds (last log term and index, commit index) and what recovery would remove.', default: false }),
    'data-dir': Flags.string({ description: "The node's data dir (default node.data_dir of the config file, else /var/lib/neuwerk)." }),
    config: Flags.string({ description: "The node's config file, used to find its data dir (default /etc/neuwerk/config.yaml when it exists)." }),
  };

  async run(): Promise<RecoveryReport> {
    const { flags } = await this.parse(ClusterRecover);
    if (flags['dry-run']) {
      const report = recoverAsNewCluster(flags, true);
      if (!this.jsonEnabled()) {
        process.stdout.write(
          `node ${report.nodeId}: last log entry term ${report.keptThroughTerm} index ${report.keptThroughIndex}, commit index ${report.previousCommitIndex}; ` +
            `${report.droppedEntries > 0 ? `recovery would drop ${report.droppedEntries} uncommitted entries from its own removal on; ` : ''}` +
            `recovery would remove ${report.removed.join(', ') || 'nobody'}. Nothing was changed.\n`,
        );
      }
      return report;
    }
    if (!flags['force-new-cluster']) {
      throw new NeuwerkError('NW_ERR_USAGE', 'cluster recover changes the membership without a quorum; confirm with --force-new-cluster', {
        actions: ['Read `neuwerk cluster recover --help` first: every other member is removed.'],
      });
    }
    const report = recoverAsNewCluster(flags);
    if (!this.jsonEnabled()) {
      process.stderr.write(
        `node ${report.nodeId} is now the only voter (term ${report.term}); kept its log through index ${report.keptThroughIndex} ` +
          `(term ${report.keptThroughTerm}; its commit index was ${report.previousCommitIndex})` +
          `${report.droppedEntries > 0 ? `, dropped ${report.droppedEntries} uncommitted entries from its own removal on` : ''}; removed ${report.removed.join(', ') || 'nobody'}.\n` +
          'Start the node, then join new members to it (removed members must be wiped before they join again).\n',
      );
    }
    return report;
  }
}
