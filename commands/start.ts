import { NeuwerkCommand } from '../src/cli/base-command.js';
import { runNodeInForeground } from '../src/cli/run-node.js';
import { startFlags } from '../src/cli/start-flags.js';
import type { StartFlags } from '../src/config/load.js';

export default class Start extends NeuwerkCommand {
  static override summary = 'Run a node in the foreground until SIGTERM or SIGINT.';
  static override description =
    'Starts the management API (HTTPS), the metrics listener and the replicated store. Settings come from --config, flags override the file, defaults fill the rest. SIGTERM or SIGINT stops it gracefully (exit 0).';
  static override examples = [
    '<%= config.bin %> start --config /etc/neuwerk/config.yaml',
    '<%= config.bin %> start --data-dir ./.neuwerk --http-bind 127.0.0.1:8443 --metrics-bind 127.0.0.1:8080 --log-format pretty',
  ];
  static override flags = startFlags;

  async run(): Promise<void> {
    const { flags } = await this.parse(Start);
    await runNodeInForeground(flags.config, flags as StartFlags);
  }
}
