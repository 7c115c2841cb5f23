import { NeuwerkCommand } from '../../../src/cli/base-command.js';
import { authAddressingFlags, changeKeys, renderKeys } from '../../../src/cli/auth.js';
import type { SigningKeyInfo } from '../../../src/store/auth-tables.js';

export default class AuthKeyRotate extends NeuwerkCommand {
  static override summary = 'Create a new active signing key; the previous key keeps verifying until retired.';
  static override examples = ['<%= config.bin %> auth key rotate --data-dir /var/lib/neuwerk'];
  static override enableJsonFlag = true;
  static override flags = { ...authAddressingFlags };

  async run(): Promise<SigningKeyInfo> {
    const { flags } = await this.parse(AuthKeyRotate);
    const key = await changeKeys(flags, { rotate: true });
    if (!this.jsonEnabled()) process.stdout.write(renderKeys([key]));
    return key;
  }
}
