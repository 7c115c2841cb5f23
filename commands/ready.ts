import { Flags } from '@oclif/core';
import { NeuwerkCommand } from '../src/cli/base-command.js';
import { connectionFlags, resolveConnection } from '../src/cli/connection.js';
import { checkReady, renderReady, type ReadyResult } from '../src/cli/ready.js';
import { parseDurationMs } from '../src/config/duration.js';
import { EXIT_FAILURE, NeuwerkError } from '../src/errors.js';

export default class Ready extends NeuwerkCommand {
  static override summary = "Check a node's readiness: exit 0 ready, 1 not ready or unreachable, 2 usage error.";
  static override description = 'Queries GET /ready and prints every check. With --wait it polls until the node is ready or --timeout passes.';
  static override examples = [
    '<%= config.bin %> ready --http-addr 127.0.0.1:8443 --ca /var/lib/neuwerk/http-tls/ca.crt',
    '<%= config.bin %> ready --wait --timeout 60s --json',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    ...connectionFlags,
    wait: Flags.boolean({ description: 'Poll until the node is ready or --timeout passes.', default: false }),
    timeout: Flags.string({ description: 'How long --wait polls (e.g. 30s, 2m).', default: '60s' }),
  };

  async run(): Promise<ReadyResult> {
    const { flags } = await this.parse(Ready);
    const timeoutMs = parseDurationMs(flags.timeout);
    if (typeof timeoutMs !== 'number') throw new NeuwerkError('NW_ERR_USAGE', `--timeout: ${timeoutMs.error}`);
    const connection = resolveConnection(flags);
    try {
      const result = await checkReady(connection, flags.wait ? timeoutMs : null);
      if (!this.jsonEnabled()) process.stdout.write(renderReady(result));
      if (!result.ready) process.exitCode = EXIT_FAILURE;
      return result;
    } finally {
      await connection.close();
    }
  }
}
