import { Flags } from '@oclif/core';
import { NeuwerkCommand } from '../../src/cli/base-command.js';
import { connectionFlags, resolveAuthenticatedConnection, tokenFlag } from '../../src/cli/connection.js';
import { getPolicy } from '../../src/cli/policy.js';
import { NeuwerkError } from '../../src/errors.js';

export default class PolicyGet extends NeuwerkCommand {
  static override summary = 'Print the policy document (YAML by default).';
  static override examples = ['<%= config.bin %> policy get --http-addr 127.0.0.1:8443 --token "$NEUWERK_TOKEN" > policy.yaml', '<%= config.bin %> policy get --json'];
  static override flags = {
    ...connectionFlags,
    ...tokenFlag,
    format: Flags.string({ description: 'Output format (default yaml).', options: ['yaml', 'json'] as const }),
    json: Flags.boolean({ description: 'Print the document as JSON (same as --format json).', default: false }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(PolicyGet);
    if (flags.json && flags.format === 'yaml') throw new NeuwerkError('NW_ERR_USAGE', '--json and --format yaml ask for different formats; pass one of them');
    const format = flags.json ? 'json' : ((flags.format ?? 'yaml') as 'yaml' | 'json');
    const connection = resolveAuthenticatedConnection(flags);
    try {
      process.stdout.write((await getPolicy(connection, format)).text);
    } finally {
      await connection.close();
    }
  }
}
