import { Flags } from '@oclif/core';
import { NeuwerkCommand } from '../../../src/cli/base-command.js';
import { createBootstrapToken } from '../../../src/cluster/bootstrap-token.js';
import { parseDurationMs } from '../../../src/config/duration.js';
import { DEFAULT_DATA_DIR } from '../../../src/config/load.js';
import { NeuwerkError } from '../../../src/errors.js';
import { join } from 'node:path';

export default class ClusterTokenCreate extends NeuwerkCommand {
  static override summary = 'Create or append a bootstrap token entry (file mode 0600); prints the new kid.';
  static override description =
    'The same file (same kid and secret) must be on the seed and on every joining node. Appending a new kid rotates tokens without a restart; the old entry can be removed once no node still needs it.';
  static override examples = [
    '<%= config.bin %> cluster token create --path /var/lib/neuwerk/bootstrap-token --valid-for 24h',
    '<%= config.bin %> cluster token create --path ./bootstrap-token --kid rack-2 --valid-for 0',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    path: Flags.string({ description: 'Token file (default <data-dir>/bootstrap-token).' }),
    'data-dir': Flags.string({ description: 'Data dir whose bootstrap-token file to use (default /var/lib/neuwerk).' }),
    kid: Flags.string({ description: 'Key id of the new entry (default t-<date>-<random>).' }),
    'valid-for': Flags.string({ description: 'Lifetime of the new entry; 0 for no expiry.', default: '24h' }),
  };

  async run(): Promise<{ kid: string; path: string; created: boolean }> {
    const { flags } = await this.parse(ClusterTokenCreate);
    const path = flags.path ?? join(flags['data-dir'] ?? DEFAULT_DATA_DIR, 'bootstrap-token');
    const validFor = parseDurationMs(flags['valid-for']);
    if (typeof validFor !== 'number') throw new NeuwerkError('NW_ERR_USAGE', `--valid-for: ${validFor.error}`);
    const result = createBootstrapToken(path, { ...(flags.kid ? { kid: flags.kid } : {}), validForMs: validFor === 0 ? null : validFor });
    if (!this.jsonEnabled()) {
      process.stdout.write(`${result.kid}\n`);
      process.stderr.write(`${result.created ? 'created' : 'appended to'} ${path} (mode 0600)\n`);
    }
    return { ...result, path };
  }
}
