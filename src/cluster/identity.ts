import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NeuwerkError } from '../errors.js';
import { makeDirectory, writeFileAtomic } from '../fs-util.js';
import { createNodeCsr, signNodeCertificate, type KeyAndCert } from './ca.js';
import type { ClusterTls } from './transport.js';

/** Files of a node's cluster identity under `<cluster-data-dir>/tls/` (DESIGN §5). */
export function clusterTlsPaths(clusterDataDir: string): { dir: string; ca: string; cert: string; key: string } {
  const dir = join(clusterDataDir, 'tls');
  return { dir, ca: join(dir, 'ca.crt'), cert: join(dir, 'node.crt'), key: join(dir, 'node.key') };
}

/** Loads the node's cluster TLS identity; null when none exists yet; partial sets are refused. */
export function loadClusterTls(clusterDataDir: string): ClusterTls | null {
  const paths = clusterTlsPaths(clusterDataDir);
  const present = [paths.ca, paths.cert, paths.key].filter((p) => existsSync(p));
  if (present.length === 0) return null;
  if (present.length !== 3) {
    throw new NeuwerkError('NW_ERR_CLUSTER_TLS', `cluster TLS files in ${paths.dir} are incomplete (found ${present.length} of ca.crt, node.crt, node.key)`, {
      actions: ['Restore the missing files from a backup, or remove the node from the cluster and join it again from an empty data dir.'],
    });
  }
  return { caPem: readFileSync(paths.ca, 'utf8'), certPem: readFileSync(paths.cert, 'utf8'), keyPem: readFileSync(paths.key, 'utf8') };
}

/** Writes the identity: the key owner-only (0600), certificates 0644. */
export function saveClusterTls(clusterDataDir: string, tls: ClusterTls): void {
  const paths = clusterTlsPaths(clusterDataDir);
  makeDirectory(paths.dir, 0o700);
  writeFileAtomic(paths.key, tls.keyPem, 0o600);
  writeFileAtomic(paths.cert, tls.certPem, 0o644);
  writeFileAtomic(paths.ca, tls.caPem, 0o644);
}

/**
 * In cluster mode the management API certificate is issued by the cluster CA, so peers (and
 * operators, with one `--ca`) verify every node with the same trust root.
 */
export function saveManagementTls(httpTlsDir: string, material: { keyPem: string; certPem: string; caPem: string }): void {
  makeDirectory(httpTlsDir, 0o700);
  writeFileAtomic(join(httpTlsDir, 'server.key'), material.keyPem, 0o600);
  writeFileAtomic(join(httpTlsDir, 'server.crt'), material.certPem, 0o644);
  writeFileAtomic(join(httpTlsDir, 'ca.crt'), material.caPem, 0o644);
}

/** Issues a node's own certificate directly from a CA key it holds (the seed, at first start). */
export function issueWithCa(ca: KeyAndCert, nodeId: string, host: string): { keyPem: string; certPem: string } {
  const { keyPem, csrPem } = createNodeCsr(nodeId, host);
  return { keyPem, certPem: signNodeCertificate(ca, csrPem, nodeId, host) };
}

/** The members a join answer named, with their cluster addresses: where a joined node finds its peers. */
export interface JoinPeer {
  readonly node_id: string;
  readonly cluster_addr: string;
}

/** `<cluster-data-dir>/join-peers.json`: kept so a joined node that restarts before it has the membership in its store can still reach the others. */
export function joinPeersPath(clusterDataDir: string): string {
  return join(clusterDataDir, 'join-peers.json');
}

/** Records the peers a join answer named (addresses only; 0600 like the rest of the cluster dir). */
export function saveJoinPeers(clusterDataDir: string, peers: readonly JoinPeer[]): void {
  makeDirectory(clusterDataDir, 0o700);
  writeFileAtomic(joinPeersPath(clusterDataDir), `${JSON.stringify({ peers }, null, 2)}\n`, 0o600);
}

const JOIN_PEERS_FIX = 'Remove the file: the node then finds its peers in its store once it has caught up, or join again from an empty data dir.';

/** The peers recorded at join time; none when the file is absent. A damaged file is an error naming it. */
export function loadJoinPeers(clusterDataDir: string): JoinPeer[] {
  const path = joinPeersPath(clusterDataDir);
  if (!existsSync(path)) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new NeuwerkError('NW_ERR_CLUSTER_TLS', `${path} is not valid JSON (${(err as Error).message})`, {
      actions: [JOIN_PEERS_FIX],
    });
  }
  const peers = (parsed as { peers?: unknown } | null)?.peers;
  if (!Array.isArray(peers) || !peers.every((p) => typeof (p as JoinPeer)?.node_id === 'string' && typeof (p as JoinPeer)?.cluster_addr === 'string')) {
    throw new NeuwerkError('NW_ERR_CLUSTER_TLS', `${path}: "peers" must be a list of {node_id, cluster_addr}`, {
      actions: [JOIN_PEERS_FIX],
    });
  }
  return peers as JoinPeer[];
}
