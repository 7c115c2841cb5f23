import { existsSync, readFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { NeuwerkError } from '../errors.js';
import { processesHoldingFile } from '../platform/open-files.js';
import { openStoreDatabase } from '../store/database.js';
import { forceNewCluster, type RecoveryOutcome } from '../store/recover.js';
import { resolveLocalPaths } from './local-node.js';

export interface RecoveryReport extends RecoveryOutcome {
  readonly nodeId: string;
  readonly store: string;
}

/**
 * `neuwerk cluster recover --force-new-cluster`: makes the stopped local node the only voter of
 * its cluster, from its own store (see `src/store/recover.ts`). Refuses while any process has the
 * store open, and for a node that is not a member of the configuration its store holds. `dryRun`
 * only reads (through a read-only handle, so also while the node runs).
 */
export function recoverAsNewCluster(addressing: { readonly 'data-dir'?: string | undefined; readonly config?: string | undefined }, dryRun = false): RecoveryReport {
  const paths = resolveLocalPaths(addressing);
  if (!existsSync(paths.storePath)) {
    throw new NeuwerkError('NW_ERR_STORE_UNAVAILABLE', `no store at ${paths.storePath}`, { actions: ["Name the node's data dir with --data-dir, or its config file with --config."] });
  }
  if (!existsSync(paths.nodeIdPath)) throw new NeuwerkError('NW_ERR_STORE_UNAVAILABLE', `no node id at ${paths.nodeIdPath}`);
  const nodeId = readFileSync(paths.nodeIdPath, 'utf8').trim();
  const holders = dryRun ? null : processesHoldingFile(paths.storePath);
  if (holders !== null && holders.length > 0) {
    throw new NeuwerkError('NW_ERR_CONFLICT', `the store ${paths.storePath} is open in process ${holders.join(', ')}: the node must be stopped first`, {
      actions: ['Stop the node (systemctl stop neuwerk, or end its process), then run this again.'],
    });
  }
  // A dry run only reads, through a read-only handle: fine while the node runs (comparing
  // survivors that are up but have no leader).
  const db = dryRun ? new Database(paths.storePath, { readonly: true, fileMustExist: true }) : openStoreDatabase(paths.storePath);
  try {
    return { ...forceNewCluster(db, paths.storePath, nodeId, new Date().toISOString(), { dryRun }), nodeId, store: paths.storePath };
  } finally {
    db.close();
  }
}
