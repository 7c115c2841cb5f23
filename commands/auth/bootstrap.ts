import { Flags } from '@oclif/core';
import { NeuwerkCommand } from '../../src/cli/base-command.js';
import { authAddressingFlags, bootstrapAdminToken } from '../../src/cli/auth.js';

export default class AuthBootstrap extends NeuwerkCommand {
  static override summary = "First-admin path: mint a short-lived admin token with the local node's own keys.";
  static override description = 'Run on the node as the user that owns its data dir. Prints only the token on stdout, so `> file` works. TTL at most 24h.';
  static override examples = ['<%= config.bin %> auth bootstrap --data-dir /var/lib/neuwerk --ttl 30m > admin.jwt'];
  static override flags = {
    ...authAddressingFlags,
    sub: Flags.string({ description: 'Subject (who the token speaks for).', default: 'bootstrap-admin' }),
    ttl: Flags.string({ description: 'Lifetime, at most 24h (default 30m).' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(AuthBootstrap);
    process.stdout.write(`${await bootstrapAdminToken(flags, { sub: flags.sub, ttl: flags.ttl })}\n`);
  }
}
