import { Flags } from '@oclif/core';
import { NeuwerkCommand } from '../../../src/cli/base-command.js';
import { authAddressingFlags, mintToken } from '../../../src/cli/auth.js';

export default class AuthTokenMint extends NeuwerkCommand {
  static override summary = 'Mint a token signed with the cluster keys.';
  static override description = 'Prints only the token on stdout.';
  static override examples = ['<%= config.bin %> auth token mint --sub ci-pipeline --roles readonly --ttl 12h --data-dir /var/lib/neuwerk'];
  static override flags = {
    ...authAddressingFlags,
    sub: Flags.string({ description: 'Subject (who the token speaks for).', required: true }),
    roles: Flags.string({ description: 'Comma-separated roles: admin, readonly.', default: 'admin' }),
    ttl: Flags.string({ description: 'Lifetime (default 1h, at most 366d).' }),
    kid: Flags.string({ description: 'Sign with this key (active or previous) instead of the active one.' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(AuthTokenMint);
    process.stdout.write(`${await mintToken(flags, { sub: flags.sub, roles: flags.roles, ttl: flags.ttl, kid: flags.kid })}\n`);
  }
}
