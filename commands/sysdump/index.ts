import { Flags } from '@oclif/core';
import { NeuwerkCommand } from '../../src/cli/base-command.js';
import { connectionFlags } from '../../src/cli/connection.js';
import { buildNodeSysdump, type NodeSysdumpResult } from '../../src/sysdump/node-sysdump.js';

export default class Sysdump extends NeuwerkCommand {
  static override summary = 'Build a diagnostic archive of this node (gzip tar, mode 0600); prints its path.';
  static override description =
    'Reads the node\'s data dir (store opened read-only) and, when the node runs, takes live snapshots over its API: readiness, metrics, recent logs. ' +
    'Adds system command outputs. Never includes private keys, bootstrap tokens, raw JWTs or signing keys. ' +
    'Sources that fail are listed in manifest.json, never fatal. Progress goes to stderr.';
  static override examples = [
    '<%= config.bin %> sysdump --data-dir /var/lib/neuwerk',
    '<%= config.bin %> sysdump --config /etc/neuwerk/config.yaml --output /tmp/node-a.tar.gz',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    'data-dir': Flags.string({ description: "The node's data dir (default node.data_dir of the config file, else /var/lib/neuwerk)." }),
    config: Flags.string({ description: "The node's config file (default /etc/neuwerk/config.yaml when it exists)." }),
    output: Flags.string({ description: 'Archive path, or an existing directory for the default name (default ./neuwerk-sysdump-<node_id>-<UTC YYYYMMDDTHHMMSSZ>.tar.gz).' }),
    'bootstrap-token-path': Flags.string({ description: "The node's bootstrap token file when the config does not name it (read only to keep its secrets out)." }),
    'http-addr': connectionFlags['http-addr'],
    ca: connectionFlags.ca,
    insecure: connectionFlags.insecure,
  };

  async run(): Promise<NodeSysdumpResult> {
    const { flags } = await this.parse(Sysdump);
    const result = await buildNodeSysdump({
      dataDir: flags['data-dir'],
      configPath: flags.config,
      output: flags.output,
      bootstrapTokenPath: flags['bootstrap-token-path'],
      httpAddr: flags['http-addr'],
      ca: flags.ca,
      insecure: flags.insecure,
      progress: (message) => process.stderr.write(`sysdump: ${message}\n`),
    });
    if (!this.jsonEnabled()) {
      for (const error of result.errors) process.stderr.write(`sysdump: not collected: ${error.source}: ${error.error}\n`);
      process.stdout.write(`${result.path}\n`);
    }
    return result;
  }
}
