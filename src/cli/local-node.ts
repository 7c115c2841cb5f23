import { existsSync, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { mintWithKeys, type MintWithKeysRequest } from '../auth/service.js';
import { chooseConfigPath, loadConfigFile, nodePaths, resolveNodeConfig, type NodeConfig, type NodePaths } from '../config/load.js';
import type { ConfigFile } from '../config/schema.js';
import { ERROR_CATALOGUE, NeuwerkError, type ErrorCode } from '../errors.js';
import { STORE_FILE_NAME } from '../store/database.js';
import { StateMachine } from '../store/state-machine.js';
import { ApiConnection } from './connection.js';

/** How `auth` commands find the node they act for (DESIGN §7). */
export interface LocalAddressing {
  readonly 'data-dir'?: string | undefined;
  readonly 'http-tls-dir'?: string | undefined;
  readonly 'cluster-addr'?: string | undefined;
  readonly 'cluster-tls-dir'?: string | undefined;
  readonly config?: string | undefined;
}

/** Lifetime of the token an `auth` command mints for itself to call the local API. */
export const LOCAL_ADMIN_TOKEN_TTL_MS = 60_000;

/** Where a local command finds the node's files, resolved as `neuwerk start` resolves them. */
export interface LocalPaths extends NodePaths {
  readonly storePath: string;
  /** The node's cluster identity (`node.crt`, `node.key`, `ca.crt`), unless `--cluster-tls-dir` names another. */
  readonly clusterTlsDir: string;
}

/**
 * The node's paths for a command run on the node (`nodePaths`): the data dir from `--data-dir`,
 * the parent of `--http-tls-dir` or the config file, and the config file's path keys
 * (`node.node_id_path`, `cluster.data_dir`, `http.tls_dir`) as `neuwerk start` reads them, so a
 * node configured with its own paths is found where it keeps its files. The config file is read
 * once; a default one that fails is ignored when a flag names the data dir.
 */
export function resolveLocalPaths(addressing: LocalAddressing): LocalPaths {
  if (addressing['data-dir'] !== undefined && addressing['http-tls-dir'] !== undefined) {
    throw new NeuwerkError('NW_ERR_USAGE', 'choose either --data-dir or --http-tls-dir, not both');
  }
  const dataDirFlag = addressing['data-dir'] ?? (addressing['http-tls-dir'] !== undefined ? dirname(addressing['http-tls-dir']) : undefined);
  const configPath = chooseConfigPath(addressing.config);
  let file: ConfigFile | null = null;
  try {
    file = configPath === null ? null : loadConfigFile(configPath);
  } catch (err) {
    if (addressing.config !== undefined || dataDirFlag === undefined) throw err;
  }
  let config: NodeConfig | null = null;
  try {
    config = resolveNodeConfig(file, configPath, { 'data-dir': dataDirFlag });
  } catch {
    config = null;
  }
  const paths = nodePaths(config, file, dataDirFlag);
  return {
    ...paths,
    storePath: join(paths.clusterDataDir, STORE_FILE_NAME),
    httpTlsDir: addressing['http-tls-dir'] ?? paths.httpTlsDir,
    clusterTlsDir: addressing['cluster-tls-dir'] ?? join(paths.clusterDataDir, 'tls'),
  };
}

/** A read-only view of the local node's replicated store, for commands run on the node itself. */
export class LocalNode {
  private constructor(
    readonly paths: LocalPaths,
    private readonly db: Database.Database,
    readonly stateMachine: StateMachine,
  ) {}

  get dataDir(): string {
    return this.paths.dataDir;
  }

  /** Resolves the node's paths (`resolveLocalPaths`) and opens its store read-only. */
  static open(addressing: LocalAddressing): LocalNode {
    const paths = resolveLocalPaths(addressing);
    const file = paths.storePath;
    if (!existsSync(file)) {
      throw new NeuwerkError('NW_ERR_AUTH_NO_CREDENTIALS', `no node store at ${file}`, {
        actions: ['Run this on the node, with --data-dir set to its data dir; start the node once first.'],
      });
    }
    let db: Database.Database;
    try {
      db = new Database(file, { readonly: true, fileMustExist: true });
      db.pragma('busy_timeout = 5000');
    } catch (err) {
      throw new NeuwerkError('NW_ERR_AUTH_NO_CREDENTIALS', `cannot read the node store ${file}: ${(err as Error).message}`);
    }
    return new LocalNode(paths, db, new StateMachine(db));
  }

  /** Mints a token with the node's own signing keys (the node need not be running). */
  mint(request: MintWithKeysRequest): Promise<{ token: string; kid: string; jti: string }> {
    return mintWithKeys(this.stateMachine.auth, request);
  }

  /**
   * A connection to this node's management API, authenticated with a short-lived admin token the
   * command mints for itself (the operator has root on the node, hence the keys).
   */
  async adminConnection(purpose: string): Promise<ApiConnection> {
    const nodeId = readFileSync(this.paths.nodeIdPath, 'utf8').trim();
    const member = this.stateMachine.member(nodeId);
    if (member === undefined) throw new NeuwerkError('NW_ERR_AUTH_NO_CREDENTIALS', `node ${nodeId} has no management address in its store; start it once first`);
    const caPath = join(this.paths.httpTlsDir, 'ca.crt');
    const ca = existsSync(caPath) ? readFileSync(caPath, 'utf8') : null;
    if (ca === null) throw new NeuwerkError('NW_ERR_AUTH_NO_CREDENTIALS', `no management CA certificate at ${caPath}`);
    const { token } = await this.mint({ sub: `local:${userInfo().username} (${purpose})`, roles: ['admin'], ttlMs: LOCAL_ADMIN_TOKEN_TTL_MS });
    const host = member.http_addr.startsWith('0.0.0.0:') ? member.http_addr.replace('0.0.0.0', '127.0.0.1') : member.http_addr;
    return new ApiConnection(`https://${host}`, ca, token);
  }

  close(): void {
    this.db.close();
  }
}

/** Turns a non-2xx API answer into the server's own error message and code. */
export function apiFailure(response: { status: number; json: unknown; text: string }, what: string): NeuwerkError {
  const body = response.json as { error?: string; code?: string } | null;
  const message = body?.error ?? (response.text.slice(0, 200) || `HTTP ${response.status}`);
  const code: ErrorCode = body?.code !== undefined && body.code in ERROR_CATALOGUE ? (body.code as ErrorCode) : 'NW_ERR_API_RESPONSE';
  return new NeuwerkError(code, `${what}: ${message}`);
}
