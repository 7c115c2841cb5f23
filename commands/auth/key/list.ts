import { NeuwerkCommand } from '../../../src/cli/base-command.js';
import { authAddressingFlags, listKeys, renderKeys } from '../../../src/cli/auth.js';
import type { SigningKeyInfo } from '../../../src/store/auth-tables.js';

export default class AuthKeyList extends NeuwerkCommand {
  static override summary = 'List JWT signing keys (kid, status, dates; never key material).';
  static override examples = ['<%= config.bin %> auth key list --data-dir /var/lib/neuwerk --json'];
  static override enableJsonFlag = true;
  static override flags = { ...authAddressingFlags };

  async run(): Promise<{ keys: SigningKeyInfo[] }> {
    const { flags } = await this.parse(AuthKeyList);
    const keys = await listKeys(flags);
    if (!this.jsonEnabled()) process.stdout.write(renderKeys(keys));
    return { keys };
  }
}
