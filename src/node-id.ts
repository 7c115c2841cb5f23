import { randomUUID } from 'node:crypto';
import { accessSync, constants, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { NeuwerkError } from './errors.js';
import { makeDirectory } from './fs-util.js';

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/**
 * Creates the data dir (mode 0700) if needed and proves it is writable, so a bad path fails at
 * start with its name rather than later inside SQLite.
 */
export function ensureDataDir(dir: string): void {
  try {
    makeDirectory(dir, 0o700);
    if (!statSync(dir).isDirectory()) throw new Error('not a directory');
    accessSync(dir, constants.W_OK | constants.X_OK);
    const probe = join(dir, `.write-probe-${process.pid}`);
    writeFileSync(probe, '');
    rmSync(probe);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new NeuwerkError('NW_ERR_DATA_DIR_UNUSABLE', `data dir ${dir} is not writable (${reason})`, {
      actions: ['Pass --data-dir with a directory this user can write, or fix its ownership and mode (0700).'],
    });
  }
}

/**
 * Reads the node's permanent id, creating a fresh UUID on first start. A file that exists but does
 * not hold a UUID is refused: the id names this node in the cluster, so replacing it silently
 * would make the node a stranger to its own peers.
 */
export function loadOrCreateNodeId(path: string): { nodeId: string; created: boolean } {
  let text: string | null = null;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new NeuwerkError('NW_ERR_DATA_DIR_UNUSABLE', `node id file ${path} cannot be read: ${(err as Error).message}`);
    }
  }
  if (text !== null) {
    const nodeId = text.trim();
    if (!UUID_PATTERN.test(nodeId)) {
      const shown = JSON.stringify(nodeId.length > 40 ? `${nodeId.slice(0, 40)}...` : nodeId);
      throw new NeuwerkError('NW_ERR_NODE_ID_CORRUPT', `node id file ${path} does not hold a node id (found ${shown}, expected a UUID)`, {
        actions: [
          'Restore the file from a backup of this node. Only if this node has never been part of a cluster,',
          `delete ${path} (and the store under the data dir) to start it as a new node.`,
        ],
      });
    }
    return { nodeId, created: false };
  }
  const nodeId = randomUUID();
  makeDirectory(dirname(path), 0o700);
  const temporary = `${path}.tmp-${process.pid}`;
  writeFileSync(temporary, `${nodeId}\n`, { mode: 0o644 });
  renameSync(temporary, path);
  return { nodeId, created: true };
}
