import { Args } from '@oclif/core';
import { NeuwerkCommand } from '../../../src/cli/base-command.js';
import { authAddressingFlags, changeKeys, renderKeys } from '../../../src/cli/auth.js';
import type { SigningKeyInfo } from '../../../src/store/auth-tables.js';

export default class AuthKeyRetire extends NeuwerkCommand {
  static override summary = "Retire a signing key: its tokens stop verifying on every node. The active key can't be retired.";
  static override examples = ['<%= config.bin %> auth key retire k-3f2a9c01d4e5 --data-dir /var/lib/neuwerk'];
  static override enableJsonFlag = true;
  static override args = { kid: Args.string({ description: 'Key id to retire.', required: true }) };
  static override flags = { ...authAddressingFlags };

  async run(): Promise<SigningKeyInfo> {
    const { args, flags } = await this.parse(AuthKeyRetire);
    const key = await changeKeys(flags, { retire: args.kid });
    if (!this.jsonEnabled()) process.stdout.write(renderKeys([key]));
    return key;
  }
}
