import { Flags } from '@oclif/core';
import { NeuwerkCommand } from '../../src/cli/base-command.js';
import { connectionFlags, resolveAuthenticatedConnection, tokenFlag } from '../../src/cli/connection.js';
import { applyPolicy } from '../../src/cli/policy.js';

export default class PolicyApply extends NeuwerkCommand {
  static override summary = 'Validate, compile and commit a policy file (YAML or JSON).';
  static override description = 'Answers once the policy is active on the node that served the request. An invalid policy is refused with the failing path named, and the active policy stays.';
  static override examples = ['<%= config.bin %> policy apply --file policy.yaml --http-addr 127.0.0.1:8443'];
  static override enableJsonFlag = true;
  static override flags = {
    ...connectionFlags,
    ...tokenFlag,
    file: Flags.string({ char: 'f', description: 'Policy document to apply.', required: true }),
  };

  async run(): Promise<{ version: number; active: boolean; source_groups: number; rules: number }> {
    const { flags } = await this.parse(PolicyApply);
    const connection = resolveAuthenticatedConnection(flags);
    try {
      const result = await applyPolicy(connection, flags.file);
      if (!this.jsonEnabled()) process.stdout.write(`policy version ${result.version} active (${result.source_groups} source groups, ${result.rules} rules)\n`);
      return result;
    } finally {
      await connection.close();
    }
  }
}
