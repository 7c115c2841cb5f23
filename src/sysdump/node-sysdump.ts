import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { request } from 'undici';
import { resolveConnection, type ApiConnection } from '../cli/connection.js';
import { decodeTokenSecret } from '../cluster/bootstrap-token.js';
import { LocalNode } from '../cli/local-node.js';
import { formatHostPort, parseHostPort } from '../config/address.js';
import { chooseConfigPath, DEFAULT_METRICS_BIND, loadConfigFile, nodePaths, resolveNodeConfig, type NodeConfig } from '../config/load.js';
import type { ConfigFile } from '../config/schema.js';
import { describeError, NeuwerkError } from '../errors.js';
import { makeDirectory } from '../fs-util.js';
import type { LogRing } from '../log/logger.js';
import type { NodeMetrics } from '../metrics/registry.js';
import type { Readiness } from '../readiness.js';
import type { ReplicationStatus } from '../cluster/replicator.js';
import { STORE_FILE_NAME, type SqliteDatabase } from '../store/database.js';
import { StateMachine } from '../store/state-machine.js';
import { NEUWERK_VERSION } from '../version.js';
import { collectNodeSysdump, parseJsonOrNull, tableExists, type BuiltSysdump, type LiveSource, type StoreView } from './collect.js';
import type { ManifestError } from './manifest.js';
import { KnownSecrets, scrubText } from './redaction.js';
import type { SystemCommandResult } from './system-commands.js';

/** How long the builder waits for `/health` before it treats the node as stopped. */
export const LIVE_PROBE_TIMEOUT_MS = 2_000;
/** Per-request bound on each live snapshot (ready, logs, cluster status, metrics). */
export const LIVE_REQUEST_TIMEOUT_MS = 5_000;
/** Mode of the archive file: created with it, never widened (DESIGN §9: the archive is sensitive). */
export const SYSDUMP_FILE_MODE = 0o600;
/** Mode of output directories the builder has to create. */
const OUTPUT_DIRECTORY_MODE = 0o700;
/** Busy timeout of the read-only store handle, while the running node writes. */
const STORE_BUSY_TIMEOUT_MS = 5_000;
/** The log message whose `listeners.metrics` tells where a running node serves `/metrics`. */
const STARTUP_LOG_MESSAGE = 'neuwerk node started';

/** Options of `neuwerk sysdump` (the flags, already parsed). */
export interface NodeSysdumpOptions {
  readonly dataDir?: string | undefined;
  readonly configPath?: string | undefined;
  /** Where the node keeps its bootstrap token file when neither the config nor the default says. */
  readonly bootstrapTokenPath?: string | undefined;
  /** The output file, or an existing directory to put the default-named file in. */
  readonly output?: string | undefined;
  readonly httpAddr?: string | undefined;
  readonly ca?: string | undefined;
  readonly insecure?: boolean | undefined;
  /** Progress lines (the CLI prints them on stderr). */
  readonly progress?: (message: string) => void;
  /** Clock, injectable for tests. */
  readonly now?: () => Date;
  /** Replaces running the system commands (tests). */
  readonly runCommands?: () => Promise<SystemCommandResult[]>;
}

/** What `buildNodeSysdump` wrote. */
export interface NodeSysdumpResult {
  readonly path: string;
  readonly size_bytes: number;
  readonly node_id: string | null;
  readonly mode: 'running' | 'stopped';
  readonly errors: readonly ManifestError[];
}

/** `YYYYMMDDTHHMMSSZ` in UTC. */
export function compactUtcTimestamp(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

/** The default archive name: `neuwerk-sysdump-<node_id>-<UTC YYYYMMDDTHHMMSSZ>.tar.gz`. */
export function defaultSysdumpFileName(nodeId: string | null, date: Date): string {
  return `neuwerk-sysdump-${nodeId ?? 'unknown-node'}-${compactUtcTimestamp(date)}.tar.gz`;
}

/** The files and addresses of the node a sysdump is about, from flags, config file and defaults. */
interface SysdumpTarget {
  readonly configPath: string | null;
  readonly configFile: ConfigFile | null;
  readonly config: NodeConfig | null;
  readonly dataDir: string;
  readonly nodeIdPath: string;
  readonly storePath: string;
  readonly clusterDataDir: string;
  readonly httpTlsDir: string;
  readonly httpKeyPath: string;
  /** Every place the node's bootstrap token file may be: flag, config and default, deduplicated. */
  readonly bootstrapTokenPaths: readonly string[];
  readonly metricsBind: string;
}

/**
 * Resolves the node's paths with the same rules as `neuwerk start` (flag, then file, then
 * default). An explicit `--config` that cannot be read is a usage error naming the path; a default
 * config file that fails, or a configuration that `start` would refuse, is recorded and the
 * sysdump goes on with what it can tell.
 */
function resolveTarget(options: NodeSysdumpOptions, errors: ManifestError[]): SysdumpTarget {
  const configPath = chooseConfigPath(options.configPath);
  let file: ConfigFile | null = null;
  if (configPath !== null) {
    try {
      file = loadConfigFile(configPath);
    } catch (err) {
      if (options.configPath !== undefined) throw err;
      errors.push({ source: 'configuration', error: describeError(err) });
    }
  }
  let config: NodeConfig | null = null;
  try {
    config = resolveNodeConfig(file, configPath, { 'data-dir': options.dataDir });
  } catch (err) {
    errors.push({ source: 'configuration', error: `cannot resolve the configuration as neuwerk start would: ${describeError(err)}` });
  }
  const { dataDir, nodeIdPath, clusterDataDir, httpTlsDir } = nodePaths(config, file, options.dataDir);
  const tokenPathCandidates = [options.bootstrapTokenPath, config?.cluster?.bootstrapTokenPath, file?.cluster?.bootstrap_token_path, join(dataDir, 'bootstrap-token')];
  const bootstrapTokenPaths = [...new Set(tokenPathCandidates.filter((p): p is string => p !== undefined).map((p) => resolve(p)))];
  return {
    configPath,
    configFile: file,
    config,
    dataDir,
    nodeIdPath,
    storePath: join(clusterDataDir, STORE_FILE_NAME),
    clusterDataDir,
    httpTlsDir,
    httpKeyPath: config?.http.keyPath ?? (file?.http?.key_path ? resolve(file.http.key_path) : join(httpTlsDir, 'server.key')),
    bootstrapTokenPaths,
    metricsBind: config ? formatHostPort(config.metrics.bind) : (file?.metrics?.bind ?? DEFAULT_METRICS_BIND),
  };
}

function readNodeId(path: string, errors: ManifestError[]): string | null {
  try {
    const text = readFileSync(path, 'utf8').trim();
    if (/^[0-9a-f-]{36}$/.test(text)) return text;
    errors.push({ source: 'node_id', error: `node id file ${path} does not hold a node id` });
  } catch (err) {
    errors.push({ source: 'node_id', error: `cannot read the node id file ${path}: ${(err as NodeJS.ErrnoException).code ?? describeError(err)}` });
  }
  return null;
}

function openStoreReadOnly(path: string, errors: ManifestError[]): { view: StoreView; close: () => void } | null {
  if (!existsSync(path)) {
    errors.push({ source: 'store', error: `no store at ${path} (the node has not started yet?)` });
    return null;
  }
  let db: SqliteDatabase | null = null;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    db.pragma(`busy_timeout = ${STORE_BUSY_TIMEOUT_MS}`);
    const opened = db;
    return { view: { path, db: opened, stateMachine: new StateMachine(opened) }, close: () => opened.close() };
  } catch (err) {
    db?.close();
    errors.push({ source: 'store', error: `cannot read the store ${path}: ${describeError(err)}` });
    return null;
  }
}

/** Reads a file for the known-secret list; a missing file is normal and silent. */
function readSecretFile(path: string, errors: ManifestError[]): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') errors.push({ source: 'redaction inputs', error: `cannot read ${path} to make sure its secrets stay out (${code ?? describeError(err)}); the pattern scan still applies` });
    return null;
  }
}

/**
 * Gathers the node's own secrets, so the archive can be scrubbed of and checked for them by value:
 * the bootstrap token file at the path the node uses (from flags and config, not by file name),
 * the management TLS key, every `*.key` under the TLS dirs, and the store's signing private keys.
 * They are kept in memory only.
 */
export function gatherKnownSecrets(paths: { bootstrapTokenPaths: readonly string[]; httpKeyPath: string; keyDirs: readonly string[] }, store: StoreView | null, errors: ManifestError[]): KnownSecrets {
  const known = new KnownSecrets();
  for (const tokenPath of paths.bootstrapTokenPaths) {
    const tokenText = readSecretFile(tokenPath, errors);
    if (tokenText === null) continue;
    known.add('bootstrap token file', tokenText);
    try {
      const parsed = JSON.parse(tokenText) as { tokens?: { token?: unknown }[] };
      for (const entry of parsed.tokens ?? []) {
        if (typeof entry.token !== 'string') continue;
        known.addToken('bootstrap token', entry.token);
        // The same secret in its other encodings, should anything ever print it decoded.
        const secret = decodeTokenSecret(entry.token);
        if (secret !== null) for (const encoding of ['hex', 'base64', 'base64url'] as const) known.add('bootstrap token', secret.toString(encoding));
      }
    } catch {
      for (const line of tokenText.split('\n')) known.add('bootstrap token file line', line);
    }
  }
  const keyFiles = new Set<string>([paths.httpKeyPath]);
  for (const dir of paths.keyDirs) {
    try {
      for (const name of readdirSync(dir)) if (name.endsWith('.key')) keyFiles.add(join(dir, name));
    } catch {
      // A missing TLS dir has no keys to protect.
    }
  }
  for (const file of keyFiles) {
    const pem = readSecretFile(file, errors);
    if (pem !== null) known.addPem(`key file ${basename(file)}`, pem);
  }
  if (store !== null) {
    try {
      for (const info of store.stateMachine.auth.keys()) {
        const record = store.stateMachine.auth.key(info.kid);
        if (record !== null) known.addPem(`signing key ${info.kid}`, record.private_key_pem);
      }
    } catch (err) {
      errors.push({ source: 'redaction inputs', error: `cannot read the signing keys to make sure they stay out: ${describeError(err)}; the pattern scan still applies` });
    }
    try {
      if (tableExists(store.db, 'ca_envelopes')) {
        for (const row of store.db.prepare('SELECT envelope FROM ca_envelopes').all() as { envelope: string }[]) {
          known.add('CA key envelope', row.envelope);
          const fields = parseJsonOrNull(row.envelope);
          if (fields !== null && typeof fields === 'object') {
            for (const value of Object.values(fields as Record<string, unknown>)) if (typeof value === 'string') known.add('CA key envelope field', value);
          }
        }
      }
    } catch (err) {
      errors.push({ source: 'redaction inputs', error: `cannot read the CA key envelopes to make sure they stay out: ${describeError(err)}; the pattern scan still applies` });
    }
  }
  return known;
}

/** Finds the metrics URL in the node's own startup line (right even for port 0), else the configured bind. */
function metricsUrlFrom(lines: readonly string[], configuredBind: string): string {
  for (let i = lines.length - 1; i >= 0; i -= 1) {
    const line = lines[i] as string;
    if (!line.includes(STARTUP_LOG_MESSAGE)) continue;
    try {
      const parsed = JSON.parse(line) as { msg?: string; listeners?: { metrics?: unknown } };
      if (parsed.msg === STARTUP_LOG_MESSAGE && typeof parsed.listeners?.metrics === 'string') return parsed.listeners.metrics;
    } catch {
      // Not a JSON line; keep looking.
    }
  }
  const parsed = parseHostPort(configuredBind);
  if ('error' in parsed) return `http://${configuredBind}/metrics`;
  const host = parsed.host === '0.0.0.0' ? '127.0.0.1' : parsed.host === '::' ? '::1' : parsed.host;
  return `http://${formatHostPort({ host, port: parsed.port })}/metrics`;
}

function answerError(what: string, response: { status: number; json: unknown; text: string }): Error {
  const body = response.json as { error?: string } | null;
  return new Error(`${what}: HTTP ${response.status}${body?.error ? `: ${body.error}` : ''}`);
}

/** Live snapshots over the management API (and the metrics listener), each request bounded. */
/** The running node's configuration (`GET /api/v1/support/configuration`, admin). */
const CONFIGURATION_PATH = '/api/v1/support/configuration';

class ApiLiveSource implements LiveSource {
  private logLines: Promise<string[]> | null = null;

  constructor(
    private readonly connection: ApiConnection,
    private readonly hasToken: boolean,
    private readonly metricsBind: string,
  ) {}

  get description(): string {
    return this.connection.baseUrl;
  }

  async readiness(): Promise<{ httpStatus: number; report: unknown }> {
    const response = await this.connection.call('GET', '/ready', undefined, LIVE_REQUEST_TIMEOUT_MS);
    if (response.status !== 200 && response.status !== 503) throw answerError('GET /ready', response);
    return { httpStatus: response.status, report: response.json };
  }

  async configuration(): Promise<unknown> {
    if (!this.hasToken) throw new Error(`no admin token for GET ${CONFIGURATION_PATH} (see the "api token" error)`);
    const response = await this.connection.call('GET', CONFIGURATION_PATH, undefined, LIVE_REQUEST_TIMEOUT_MS);
    if (response.status === 404) throw new Error(`GET ${CONFIGURATION_PATH}: this build of the node has no such endpoint`);
    if (response.status !== 200) throw answerError(`GET ${CONFIGURATION_PATH}`, response);
    const resolved = (response.json as { resolved?: unknown } | null)?.resolved;
    if (resolved === null || typeof resolved !== 'object') throw new Error(`GET ${CONFIGURATION_PATH}: the answer has no resolved configuration`);
    return resolved;
  }

  logs(): Promise<string[]> {
    this.logLines ??= (async () => {
      if (!this.hasToken) throw new Error('no admin token for GET /api/v1/support/logs (see the "api token" error)');
      const response = await this.connection.call('GET', '/api/v1/support/logs', undefined, LIVE_REQUEST_TIMEOUT_MS);
      if (response.status !== 200) throw answerError('GET /api/v1/support/logs', response);
      const lines = (response.json as { lines?: unknown } | null)?.lines;
      if (!Array.isArray(lines)) throw new Error('GET /api/v1/support/logs: the answer has no lines');
      return lines.map(String);
    })();
    return this.logLines;
  }

  async metrics(): Promise<string> {
    const lines = await this.logs().catch(() => [] as string[]);
    const url = metricsUrlFrom(lines, this.metricsBind);
    try {
      const response = await request(url, { headersTimeout: LIVE_REQUEST_TIMEOUT_MS, bodyTimeout: LIVE_REQUEST_TIMEOUT_MS, signal: AbortSignal.timeout(LIVE_REQUEST_TIMEOUT_MS) });
      const body = await response.body.text();
      if (response.statusCode !== 200) throw new Error(`HTTP ${response.statusCode}`);
      return body;
    } catch (err) {
      const cause = err as { code?: string; cause?: { code?: string } };
      throw new Error(`GET ${url}: ${cause.cause?.code ?? cause.code ?? describeError(err)}`);
    }
  }

  async clusterStatus(): Promise<unknown> {
    if (!this.hasToken) throw new Error('no admin token for GET /api/v1/cluster/status');
    const response = await this.connection.call('GET', '/api/v1/cluster/status', undefined, LIVE_REQUEST_TIMEOUT_MS);
    if (response.status === 404) return null;
    if (response.status !== 200) throw answerError('GET /api/v1/cluster/status', response);
    return response.json;
  }
}

/**
 * Connects to the node's API with a short-lived admin token from `LocalNode.adminConnection`
 * (the operator runs this on the node, as the owner of its data dir). `--http-addr`/`--ca`/
 * `--insecure` override where and how to connect. Without a token (no store, no keys) the public
 * endpoints are still tried.
 */
async function connect(options: NodeSysdumpOptions, target: SysdumpTarget, errors: ManifestError[]): Promise<{ connection: ApiConnection; hasToken: boolean } | null> {
  let token: string | null = null;
  let local: ApiConnection | null = null;
  try {
    const node = LocalNode.open({ 'data-dir': target.dataDir });
    try {
      local = await node.adminConnection('sysdump');
      token = local.token;
    } finally {
      node.close();
    }
  } catch (err) {
    errors.push({ source: 'api token', error: `cannot mint a local admin token: ${describeError(err)}` });
  }
  const explicit = options.httpAddr !== undefined || options.ca !== undefined || options.insecure === true;
  if (local !== null && !explicit) return { connection: local, hasToken: true };
  await local?.close();
  try {
    const connection = resolveConnection(
      { 'http-addr': options.httpAddr, ca: options.ca, insecure: options.insecure, 'data-dir': target.dataDir, config: target.configPath ?? undefined },
      token,
    );
    return { connection, hasToken: token !== null };
  } catch (err) {
    if (explicit) throw err;
    errors.push({ source: 'api', error: describeError(err) });
    return null;
  }
}

/** Asks `/health` once, briefly: an answer means the node runs. */
async function probe(connection: ApiConnection): Promise<string | null> {
  try {
    const response = await connection.call('GET', '/health', undefined, LIVE_PROBE_TIMEOUT_MS);
    if (response.status === 200 && (response.json as { status?: string } | null)?.status === 'ok') return null;
    return `GET ${connection.baseUrl}/health answered HTTP ${response.status}`;
  } catch (err) {
    return describeError(err);
  }
}

/**
 * Writes the archive so that it never exists with a wider mode than 0600: a temporary file beside
 * the target is created with that mode (exclusive), written, synced and renamed over the target.
 */
export function writeArchiveFile(path: string, archive: Buffer): void {
  const temporary = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  let fd: number | null = null;
  try {
    makeDirectory(dirname(path), OUTPUT_DIRECTORY_MODE);
    fd = openSync(temporary, 'wx', SYSDUMP_FILE_MODE);
    let offset = 0;
    while (offset < archive.length) offset += writeSync(fd, archive, offset, archive.length - offset);
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(temporary, path);
  } catch (err) {
    try {
      if (fd !== null) closeSync(fd);
      rmSync(temporary, { force: true });
    } catch {
      // Nothing was created, or the directory itself is the problem; the error below names it.
    }
    throw new NeuwerkError('NW_ERR_SYSDUMP_OUTPUT', `cannot write the sysdump archive ${path}: ${(err as NodeJS.ErrnoException).code ?? describeError(err)}`, {
      actions: ['Pass --output with a path in a writable directory.'],
    });
  }
}

function outputPath(option: string | undefined, nodeId: string | null, date: Date): string {
  return resolveOutputPath(option, defaultSysdumpFileName(nodeId, date));
}

/**
 * Where an archive goes: `--output` as given, or `defaultName` inside it when it is a directory,
 * or `defaultName` in the current directory without `--output`.
 */
export function resolveOutputPath(option: string | undefined, defaultName: string): string {
  if (option === undefined) return resolve(defaultName);
  const path = resolve(option);
  try {
    if (statSync(path).isDirectory()) return join(path, defaultName);
  } catch {
    // Not there yet: it is the file to create.
  }
  return path;
}

/**
 * `neuwerk sysdump`: builds the node-local diagnostic archive of DESIGN §9 and writes it (mode
 * 0600). Works whether or not the node runs: summaries come from the data dir (store opened
 * read-only); when the node answers on its API, live snapshots (readiness, metrics, logs) are
 * added. Every source that fails is recorded in the manifest, never fatal; only a missing data dir,
 * an unusable explicit flag, the final secret scan, or failing to write the file stop it.
 */
export async function buildNodeSysdump(options: NodeSysdumpOptions = {}): Promise<NodeSysdumpResult> {
  const progress = options.progress ?? (() => undefined);
  const generatedAt = (options.now ?? (() => new Date()))();
  const errors: ManifestError[] = [];
  const target = resolveTarget(options, errors);
  if (!existsSync(target.dataDir)) {
    throw new NeuwerkError(options.dataDir === undefined ? 'NW_ERR_SYSDUMP_NO_NODE' : 'NW_ERR_USAGE', `no node data dir at ${target.dataDir}`, {
      actions: ['Pass --data-dir with the data dir of the node (default /var/lib/neuwerk), or --config with its config file.'],
    });
  }
  progress(`collecting a sysdump of the node in ${target.dataDir}`);
  const nodeId = readNodeId(target.nodeIdPath, errors);
  const store = openStoreReadOnly(target.storePath, errors);
  let api: { connection: ApiConnection; hasToken: boolean } | null = null;
  try {
    const known = gatherKnownSecrets(
      { bootstrapTokenPaths: target.bootstrapTokenPaths, httpKeyPath: target.httpKeyPath, keyDirs: [target.httpTlsDir, join(target.clusterDataDir, 'tls')] },
      store?.view ?? null,
      errors,
    );
    api = await connect(options, target, errors);
    let notRunningReason: string | null = 'no management API address';
    let live: LiveSource | null = null;
    if (api !== null) {
      progress(`checking whether the node answers at ${api.connection.baseUrl}`);
      notRunningReason = await probe(api.connection);
      if (notRunningReason === null) live = new ApiLiveSource(api.connection, api.hasToken, target.metricsBind);
    }
    const built = await collectNodeSysdump(
      {
        nodeId,
        dataDir: target.dataDir,
        configuration: { configPath: target.configPath, file: target.configFile, resolved: target.config },
        store: store?.view ?? null,
        live,
        notRunningReason,
        known,
        errors,
        ...(options.runCommands ? { runCommands: options.runCommands } : {}),
      },
      { version: NEUWERK_VERSION, generatedAt, progress },
    );
    const path = outputPath(options.output, nodeId, generatedAt);
    progress(`writing ${path}`);
    writeArchiveFile(path, built.archive);
    return { path, size_bytes: built.archive.length, node_id: nodeId, mode: built.manifest.mode, errors: built.manifest.errors };
  } finally {
    await api?.connection.close();
    store?.close();
  }
}

/** What a running node hands to `buildNodeSysdumpInProcess` (the node side of the cluster fan-out). */
export interface InProcessSysdumpDeps {
  readonly nodeId: string;
  readonly config: NodeConfig;
  /** The node's own store handle. */
  readonly db: SqliteDatabase;
  readonly stateMachine: StateMachine;
  readonly readiness: Readiness;
  readonly metrics: NodeMetrics;
  readonly ring: LogRing | null | undefined;
  /** Live replication status for `summary/cluster.json`; omitted before cluster mode wires it. */
  readonly replicationStatus?: () => ReplicationStatus;
  readonly progress?: (message: string) => void;
  readonly now?: () => Date;
  readonly runCommands?: () => Promise<SystemCommandResult[]>;
}

/**
 * The running node's own secrets (bootstrap token files, TLS keys, signing keys, CA envelopes),
 * gathered as `buildNodeSysdumpInProcess` does; the cluster archive's final scan uses them too.
 */
export function inProcessKnownSecrets(deps: InProcessSysdumpDeps, errors: ManifestError[]): KnownSecrets {
  const store: StoreView = { path: join(deps.config.clusterDataDir, STORE_FILE_NAME), db: deps.db, stateMachine: deps.stateMachine };
  return gatherKnownSecrets(
    {
      bootstrapTokenPaths: [...new Set([deps.config.cluster?.bootstrapTokenPath, join(deps.config.dataDir, 'bootstrap-token')].filter((p): p is string => p !== undefined))],
      httpKeyPath: deps.config.http.keyPath ?? join(deps.config.http.tlsDir, 'server.key'),
      keyDirs: [deps.config.http.tlsDir, join(deps.config.clusterDataDir, 'tls')],
    },
    store,
    errors,
  );
}

/**
 * Builds this node's archive inside the running node and returns it (gzip'd tar), for the future
 * `POST /api/v1/support/sysdump/node` fan-out route: the same layout, redaction and final scan as
 * `neuwerk sysdump`, with live snapshots taken in-process instead of over HTTP.
 */
export async function buildNodeSysdumpInProcess(deps: InProcessSysdumpDeps): Promise<BuiltSysdump> {
  const errors: ManifestError[] = [];
  const generatedAt = (deps.now ?? (() => new Date()))();
  const store: StoreView = { path: join(deps.config.clusterDataDir, STORE_FILE_NAME), db: deps.db, stateMachine: deps.stateMachine };
  const known = inProcessKnownSecrets(deps, errors);
  let configFile: unknown = null;
  if (deps.config.configPath !== null) {
    try {
      configFile = loadConfigFile(deps.config.configPath);
    } catch (err) {
      errors.push({ source: 'configuration', error: describeError(err) });
    }
  }
  const live: LiveSource = {
    description: 'in-process',
    readiness: () => {
      const report = deps.readiness.evaluate();
      return Promise.resolve({ httpStatus: report.ready ? 200 : 503, report });
    },
    metrics: () => deps.metrics.render(),
    logs: () => (deps.ring ? Promise.resolve(deps.ring.snapshot().map((line) => scrubText(line, known))) : Promise.reject(new Error('this node keeps no in-memory log ring'))),
    clusterStatus: () => Promise.resolve(deps.replicationStatus ? deps.replicationStatus() : null),
    configuration: () => Promise.resolve(deps.config),
  };
  return collectNodeSysdump(
    {
      nodeId: deps.nodeId,
      dataDir: deps.config.dataDir,
      configuration: { configPath: deps.config.configPath, file: configFile, resolved: deps.config },
      store,
      live,
      notRunningReason: null,
      known,
      errors,
      ...(deps.runCommands ? { runCommands: deps.runCommands } : {}),
    },
    { version: NEUWERK_VERSION, generatedAt, ...(deps.progress ? { progress: deps.progress } : {}) },
  );
}
