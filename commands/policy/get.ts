import { Flags } from '@oclif/core';
import { NeuwerkCommand } from '../../src/cli/base-command.js';
import { connectionFlags, resolveAuthenticatedConnection, tokenFlag } from '../../src/cli/connection.js';
import { getPolicy } from '../../src/cli/policy.js';

export default class PolicyGet extends NeuwerkCommand {
  static override summary = 'Print the policy document (YAML by default).';
  static override examples = ['<%= config.bin %> policy get --http-addr 127.0.0.1:8443 --token "$NEUWERK_TOKEN" > policy.yaml', '<%= config.bin %> policy get --format json'];
  static override flags = {
    ...connectionFlags,
    ...tokenFlag,
    format: Flags.string({ description: 'Output format.', options: ['yaml', 'json'] as const, default: 'yaml' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(PolicyGet);
    const connection = resolveAuthenticatedConnection(flags);
    try {
      process.stdout.write((await getPolicy(connection, flags.format as 'yaml' | 'json')).text);
    } finally {
      await connection.close();
    }
  }
}
