import { Flags } from '@oclif/core';
import chalk from 'chalk';
import { BOOTSTRAP_TTL_DEFAULT_MS, BOOTSTRAP_TTL_MAX_MS, MINT_TTL_DEFAULT_MS, MINT_TTL_MAX_MS } from '../auth/tokens.js';
import { formatDurationMs, parseDurationMs } from '../config/duration.js';
import { NeuwerkError } from '../errors.js';
import type { SigningKeyInfo } from '../store/auth-tables.js';
import type { Role } from '../store/commands.js';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseHostPort } from '../config/address.js';
import { callClusterRpcOnce, type ClusterTls } from '../cluster/transport.js';
import { apiFailure, LocalNode, resolveLocalPaths, type LocalAddressing } from './local-node.js';

/** How every `auth` command finds its node (DESIGN §7). */
export const authAddressingFlags = {
  'data-dir': Flags.string({ description: "The local node's data dir; its own signing keys are used (default /var/lib/neuwerk, or node.data_dir of the config file)." }),
  'http-tls-dir': Flags.string({ description: "The local node's management TLS dir (<data-dir>/http-tls); the node's data dir is its parent." }),
  'cluster-addr': Flags.string({ description: 'Cluster RPC address of a member, host:port (cluster mode).' }),
  'cluster-tls-dir': Flags.string({ description: 'Cluster TLS dir with node.crt, node.key and ca.crt (default <data-dir>/cluster/tls).' }),
  config: Flags.string({ description: 'Config file of the local node, used to find its data dir.' }),
};

function ttlFlag(text: string | undefined, defaultMs: number, maxMs: number): number {
  if (text === undefined) return defaultMs;
  const ms = parseDurationMs(text);
  if (typeof ms !== 'number') throw new NeuwerkError('NW_ERR_USAGE', `--ttl: ${ms.error}`);
  if (ms < 1000) throw new NeuwerkError('NW_ERR_USAGE', `--ttl: ${text} is shorter than 1s`);
  if (ms > maxMs) throw new NeuwerkError('NW_ERR_USAGE', `--ttl: ${text} is longer than the maximum of ${formatDurationMs(maxMs)}`);
  return ms;
}

function parseRoles(text: string): Role[] {
  const roles = text.split(',').map((r) => r.trim()).filter((r) => r.length > 0);
  const bad = roles.find((r) => r !== 'admin' && r !== 'readonly');
  if (bad !== undefined || roles.length === 0) throw new NeuwerkError('NW_ERR_USAGE', `--roles: ${JSON.stringify(bad ?? text)} is not a role (admin, readonly)`);
  return [...new Set(roles)] as Role[];
}

interface ClusterTarget {
  readonly host: string;
  readonly port: number;
  readonly tls: ClusterTls;
}

function readClusterTls(dir: string, flag: string): ClusterTls {
  const files = { caPem: join(dir, 'ca.crt'), certPem: join(dir, 'node.crt'), keyPem: join(dir, 'node.key') };
  for (const path of Object.values(files)) {
    if (!existsSync(path)) throw new NeuwerkError('NW_ERR_AUTH_NO_CREDENTIALS', `${flag}: no ${path}; run this on a cluster member (as the user that owns its data dir)`);
  }
  return { caPem: readFileSync(files.caPem, 'utf8'), certPem: readFileSync(files.certPem, 'utf8'), keyPem: readFileSync(files.keyPem, 'utf8') };
}

/**
 * Cluster mode: `--cluster-addr` names a member's cluster port, or `--data-dir` holds a cluster
 * identity (then the node's own cluster address from its store). The node's mTLS identity
 * authenticates the call. Null in single-node mode.
 */
function clusterTarget(addressing: LocalAddressing): ClusterTarget | null {
  const givenTlsDir = addressing['cluster-tls-dir'];
  if (givenTlsDir !== undefined && !existsSync(givenTlsDir)) throw new NeuwerkError('NW_ERR_USAGE', `--cluster-tls-dir: no such directory ${givenTlsDir}`);
  const explicit = addressing['cluster-addr'];
  if (explicit !== undefined) {
    const address = parseHostPort(explicit);
    if ('error' in address) throw new NeuwerkError('NW_ERR_USAGE', `--cluster-addr: "${explicit}" is not a valid address (${address.error})`);
    return { ...address, tls: readClusterTls(resolveLocalPaths(addressing).clusterTlsDir, '--cluster-tls-dir') };
  }
  const paths = resolveLocalPaths(addressing);
  const tlsDir = paths.clusterTlsDir;
  if (!existsSync(join(tlsDir, 'node.key'))) return null;
  const node = LocalNode.open(addressing);
  try {
    const nodeId = readFileSync(paths.nodeIdPath, 'utf8').trim();
    const self = node.stateMachine.member(nodeId);
    if (self === undefined || self.cluster_addr === null) throw new NeuwerkError('NW_ERR_AUTH_NO_CREDENTIALS', `node ${nodeId} has no cluster address in its store yet; pass --cluster-addr`);
    const address = parseHostPort(self.cluster_addr);
    if ('error' in address) throw new NeuwerkError('NW_ERR_AUTH_NO_CREDENTIALS', `stored cluster address ${self.cluster_addr} is not valid`);
    return { ...address, tls: readClusterTls(tlsDir, '--data-dir') };
  } finally {
    node.close();
  }
}

function clusterRpc<T>(target: ClusterTarget, method: string, body: unknown): Promise<T> {
  return callClusterRpcOnce<T>({ host: target.host, port: target.port, tls: target.tls, method, body });
}

async function withLocalNode<T>(addressing: LocalAddressing, action: (node: LocalNode) => Promise<T>): Promise<T> {
  const node = LocalNode.open(addressing);
  try {
    return await action(node);
  } finally {
    node.close();
  }
}

/** `neuwerk auth bootstrap`: a short-lived admin token from the node's own keys. */
export async function bootstrapAdminToken(addressing: LocalAddressing, options: { sub: string; ttl?: string | undefined }): Promise<string> {
  const ttlMs = ttlFlag(options.ttl, BOOTSTRAP_TTL_DEFAULT_MS, BOOTSTRAP_TTL_MAX_MS);
  const target = clusterTarget(addressing);
  if (target !== null) return (await clusterRpc<{ token: string }>(target, 'auth.mint', { sub: options.sub, roles: ['admin'], ttlMs })).token;
  return withLocalNode(addressing, async (node) => (await node.mint({ sub: options.sub, roles: ['admin'], ttlMs })).token);
}

/** `neuwerk auth token mint`. */
export async function mintToken(addressing: LocalAddressing, options: { sub: string; roles: string; ttl?: string | undefined; kid?: string | undefined }): Promise<string> {
  const ttlMs = ttlFlag(options.ttl, MINT_TTL_DEFAULT_MS, MINT_TTL_MAX_MS);
  const roles = parseRoles(options.roles);
  const target = clusterTarget(addressing);
  if (target !== null) return (await clusterRpc<{ token: string }>(target, 'auth.mint', { sub: options.sub, roles, ttlMs, ...(options.kid ? { kid: options.kid } : {}) })).token;
  return withLocalNode(addressing, async (node) => (await node.mint({ sub: options.sub, roles, ttlMs, ...(options.kid ? { kid: options.kid } : {}) })).token);
}

export async function listKeys(addressing: LocalAddressing): Promise<SigningKeyInfo[]> {
  const target = clusterTarget(addressing);
  if (target !== null) return clusterRpc<SigningKeyInfo[]>(target, 'auth.keys.list', {});
  return withLocalNode(addressing, async (node) => node.stateMachine.auth.keys());
}

/** Rotation and retirement are replicated writes: they go through the node's API. */
export async function changeKeys(addressing: LocalAddressing, change: { rotate: true } | { retire: string }): Promise<SigningKeyInfo> {
  const target = clusterTarget(addressing);
  if (target !== null) {
    return 'rotate' in change ? clusterRpc<SigningKeyInfo>(target, 'auth.keys.rotate', {}) : clusterRpc<SigningKeyInfo>(target, 'auth.keys.retire', { kid: change.retire });
  }
  return withLocalNode(addressing, async (node) => {
    const what = 'rotate' in change ? 'auth key rotate' : `auth key retire ${change.retire}`;
    const connection = await node.adminConnection(what);
    try {
      const response = 'rotate' in change
        ? await connection.call('POST', '/api/v1/auth/keys/rotate')
        : await connection.call('DELETE', `/api/v1/auth/keys/${encodeURIComponent(change.retire)}`);
      if (response.status !== 200) throw apiFailure(response, what);
      return response.json as SigningKeyInfo;
    } finally {
      await connection.close();
    }
  });
}

export function renderKeys(keys: readonly SigningKeyInfo[]): string {
  const colour = (status: SigningKeyInfo['status']): string => (status === 'active' ? chalk.green(status) : status === 'retired' ? chalk.dim(status) : status);
  const lines = keys.map((k) => `${k.kid}  ${colour(k.status).padEnd(8)}  created ${k.created_at}${k.retired_at ? `  retired ${k.retired_at}` : ''}`);
  return `${lines.join('\n')}\n`;
}
