import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { parseDocument } from 'yaml';
import { NeuwerkError } from '../errors.js';
import { formatIp, parseDocumentCidr } from '../policy/ip.js';
import { parseHostPort, type HostPort } from './address.js';
import { CONFIG_SCHEMA, DEFAULT_TUNNEL_GRACE_MS, MAX_DNS_UPSTREAMS, MAX_PROXY_PROTOCOL_FROM, type ConfigFile, type LogFormat, type LogLevel } from './schema.js';

/** Where `neuwerk start` looks for a config file when `--config` is not given. */
export const DEFAULT_CONFIG_PATH = '/etc/neuwerk/config.yaml';
/** The data dir of an installed appliance (DESIGN §5). */
export const DEFAULT_DATA_DIR = '/var/lib/neuwerk';
export const DEFAULT_HTTP_BIND = '127.0.0.1:8443';
export const DEFAULT_METRICS_BIND = '127.0.0.1:8080';
export const DEFAULT_CLUSTER_BIND = '127.0.0.1:9600';
export const DEFAULT_TICK_MS = 50;
export const DEFAULT_ELECTION_TIMEOUT_TICKS = 10;
export const DEFAULT_HEARTBEAT_TICKS = 1;
export const DEFAULT_SNAPSHOT_THRESHOLD_ENTRIES = 10_000;
export const DEFAULT_SNAPSHOT_TRAILING_ENTRIES = 1_000;

/** The start flags of DESIGN §7 as parsed by the CLI (undefined = not given). */
export interface StartFlags {
  'data-dir'?: string | undefined;
  'node-id-path'?: string | undefined;
  'cluster-bind'?: string | undefined;
  'cluster-join-bind'?: string | undefined;
  'cluster-advertise'?: string | undefined;
  join?: string | undefined;
  'cluster-data-dir'?: string | undefined;
  'bootstrap-token-path'?: string | undefined;
  'http-bind'?: string | undefined;
  'http-advertise'?: string | undefined;
  'http-tls-dir'?: string | undefined;
  'metrics-bind'?: string | undefined;
  'dns-bind'?: string | undefined;
  'dns-upstream'?: string[] | undefined;
  'proxy-bind'?: string | undefined;
  'proxy-protocol-from'?: string[] | undefined;
  'default-policy'?: 'allow' | 'deny' | undefined;
  'log-level'?: LogLevel | undefined;
  'log-format'?: LogFormat | undefined;
}

export interface ClusterSettings {
  readonly bind: HostPort;
  readonly joinBind: HostPort;
  readonly advertise: HostPort;
  readonly join: HostPort | null;
  readonly bootstrapTokenPath: string;
}

/** Raft timing and compaction; used in single-node mode too (a one-voter group). */
export interface RaftSettings {
  readonly tickMs: number;
  readonly electionTimeoutTicks: number;
  readonly heartbeatTicks: number;
  readonly snapshotThresholdEntries: number;
  readonly snapshotTrailingEntries: number;
}

/** The fully resolved configuration of one node: file, then flags, then defaults. */
export interface NodeConfig {
  /** Absolute path of the config file that was read, or null. */
  readonly configPath: string | null;
  readonly dataDir: string;
  readonly nodeIdPath: string;
  /** Holds `raft.db` and `tls/`; used in single-node mode too. */
  readonly clusterDataDir: string;
  /** Null in single-node mode. */
  readonly cluster: ClusterSettings | null;
  readonly raft: RaftSettings;
  readonly http: {
    readonly bind: HostPort;
    readonly advertise: HostPort;
    readonly tlsDir: string;
    readonly certPath: string | null;
    readonly keyPath: string | null;
  };
  readonly metrics: { readonly bind: HostPort };
  /** `upstreams` empty: use the system resolvers (/etc/resolv.conf). */
  readonly dns: { readonly bind: HostPort; readonly upstreams: readonly HostPort[] } | null;
  /**
   * `tunnelGraceMs`: how long open tunnels and requests may finish once a graceful stop has drained.
   * `proxyProtocolFrom`: canonical CIDRs of the balancers whose connections must begin with a PROXY
   * protocol header (empty: none; no connection is ever parsed for one).
   */
  readonly proxy: { readonly bind: HostPort; readonly tunnelGraceMs: number; readonly proxyProtocolFrom: readonly string[] } | null;
  readonly policy: { readonly defaultPolicy: 'allow' | 'deny' };
  readonly log: { readonly level: LogLevel; readonly format: LogFormat };
  /**
   * Where each listen address came from, as a listen error names it: the flag (`--http-bind`, also
   * for a default) or the file's key (`http.bind (config /etc/neuwerk/config.yaml)`).
   */
  readonly bindSettings: BindSettings;
}

export interface BindSettings {
  readonly http: string;
  readonly metrics: string;
  readonly cluster: string;
  readonly clusterJoin: string;
  readonly dns: string;
  readonly proxy: string;
}

const ajv = new Ajv({ allErrors: true, strict: true });
ajv.addFormat('host-port', (value: string) => !('error' in parseHostPort(value)));
ajv.addFormat('cidr', (value: string) => parseDocumentCidr(value).ok);
const validateConfigDocument = ajv.compile<ConfigFile>(CONFIG_SCHEMA);

function configError(file: string, message: string, detail?: Record<string, unknown>): NeuwerkError {
  return new NeuwerkError('NW_ERR_CONFIG_INVALID', `config ${file}: ${message}`, {
    actions: [`Fix ${file} (see "Configuration reference" in the README) or pass --config with another file.`],
    ...(detail ? { detail } : {}),
  });
}

/** Renders a JSON-pointer-like instance path as `dns.upstreams[1]`. */
function renderPath(instancePath: string): string {
  if (instancePath === '') return '(top level)';
  return instancePath
    .split('/')
    .slice(1)
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, segment) => (/^\d+$/.test(segment) ? `${acc}[${segment}]` : acc === '' ? segment : `${acc}.${segment}`), '');
}

function valueAt(document: unknown, instancePath: string): unknown {
  let current: unknown = document;
  for (const segment of instancePath.split('/').slice(1)) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[segment];
  }
  return current;
}

function renderValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** One readable line per schema violation: path, bad value and what was expected. */
export function describeSchemaError(document: unknown, error: ErrorObject): string {
  const path = renderPath(error.instancePath);
  const value = valueAt(document, error.instancePath);
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = (error.params as { additionalProperty: string }).additionalProperty;
      const at = path === '(top level)' ? key : `${path}.${key}`;
      const schemaProperties = allowedKeys(error.schemaPath);
      return `${at}: unknown key${schemaProperties ? ` (allowed: ${schemaProperties})` : ''}`;
    }
    case 'required':
      return `${path}: missing required key "${(error.params as { missingProperty: string }).missingProperty}"`;
    case 'format': {
      if ((error.params as { format: string }).format === 'cidr') {
        const parsed = typeof value === 'string' ? parseDocumentCidr(value) : null;
        return `${path}: ${renderValue(value)} ${parsed !== null && !parsed.ok ? parsed.reason : 'is not a valid CIDR'}`;
      }
      const parsed = typeof value === 'string' ? parseHostPort(value) : null;
      const why = parsed && 'error' in parsed ? parsed.error : 'expected host:port';
      return `${path}: ${renderValue(value)} is not a valid address (${why})`;
    }
    case 'enum':
      return `${path}: ${renderValue(value)} is not one of ${(error.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
    case 'const':
      return `${path}: ${renderValue(value)} is not supported (expected ${renderValue((error.params as { allowedValue: unknown }).allowedValue)})`;
    case 'type':
      return `${path}: ${renderValue(value)} is not of type ${(error.params as { type: string }).type}`;
    case 'dependencies':
      return `${path}: ${(error.params as { property: string }).property} needs ${(error.params as { missingProperty: string }).missingProperty} too`;
    default:
      return `${path}: ${renderValue(value)} ${error.message ?? 'is invalid'}`;
  }
}

function allowedKeys(schemaPath: string): string | null {
  // schemaPath looks like "#/properties/http/additionalProperties".
  const segments = schemaPath.replace(/^#\//, '').split('/').slice(0, -1);
  let node: unknown = CONFIG_SCHEMA;
  for (const segment of segments) {
    if (node === null || typeof node !== 'object') return null;
    node = (node as Record<string, unknown>)[segment];
  }
  const properties = (node as { properties?: Record<string, unknown> } | undefined)?.properties;
  return properties ? Object.keys(properties).join(', ') : null;
}

/** Validates an already-parsed config document; errors name the file, the path and the value. */
export function validateConfig(document: unknown, file: string): ConfigFile {
  if (document === null || document === undefined) {
    throw configError(file, 'the file is empty (it needs at least "version: 1")');
  }
  if (validateConfigDocument(document)) return document;
  const errors = validateConfigDocument.errors ?? [];
  const lines = errors.map((error) => describeSchemaError(document, error));
  const unique = [...new Set(lines)];
  throw configError(file, unique.join('; '), { errors: unique });
}

/** Reads and validates a YAML config file. */
export function loadConfigFile(file: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new NeuwerkError('NW_ERR_CONFIG_UNREADABLE', `config ${file}: cannot read the file: ${reason}`, {
      actions: ['Pass --config with the path of a readable YAML file, or leave it out to use the defaults.'],
    });
  }
  const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (document.errors.length > 0) {
    const first = document.errors[0]!;
    const where = first.linePos ? ` at line ${first.linePos[0].line}, column ${first.linePos[0].col}` : '';
    // The parser's own message ends with the same position again ("... at line 4, column 1:").
    const message = (first.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    throw configError(file, `not valid YAML${where}: ${message}`);
  }
  return validateConfig(document.toJS(), file);
}

/** The config file to read: `--config`, else the default path when it exists, else none. */
export function chooseConfigPath(flagValue: string | undefined): string | null {
  if (flagValue !== undefined) return resolve(flagValue);
  return existsSync(DEFAULT_CONFIG_PATH) ? DEFAULT_CONFIG_PATH : null;
}

function flagAddress(flag: string, value: string): HostPort {
  const parsed = parseHostPort(value);
  if ('error' in parsed) {
    throw new NeuwerkError('NW_ERR_USAGE', `--${flag}: "${value}" is not a valid address (${parsed.error})`);
  }
  return parsed;
}

/** The CIDR in canonical text (`10.0.0.0/8`, `fd00::/8`), or a usage error naming the flag and the value. */
function flagCidr(flag: string, value: string): string {
  const parsed = parseDocumentCidr(value);
  if (!parsed.ok) throw new NeuwerkError('NW_ERR_USAGE', `--${flag}: "${value}" ${parsed.reason}`);
  return `${formatIp(parsed.value)}/${parsed.value.prefixLength}`;
}

function fileCidr(value: string): string {
  // Already validated by the schema's cidr format.
  return flagCidr('(file)', value);
}

function fileAddress(value: string): HostPort {
  // Already validated by the schema's host-port format.
  return parseHostPort(value) as HostPort;
}

/** Where a node keeps its files (everything but the store file's name, which is the store's). */
export interface NodePaths {
  readonly dataDir: string;
  readonly nodeIdPath: string;
  readonly clusterDataDir: string;
  readonly httpTlsDir: string;
}

/**
 * A node's paths for a command that acts on it from outside (`auth`, `sysdump`): `start`'s own
 * resolution when the configuration resolves (`config`), else the file's keys and then the
 * defaults under the data dir, so a configuration `start` would refuse still names the files.
 */
export function nodePaths(config: NodeConfig | null, file: ConfigFile | null, dataDirFlag: string | undefined): NodePaths {
  const dataDir = config?.dataDir ?? resolve(dataDirFlag ?? file?.node?.data_dir ?? DEFAULT_DATA_DIR);
  return {
    dataDir,
    nodeIdPath: config?.nodeIdPath ?? resolve(file?.node?.node_id_path ?? join(dataDir, 'node_id')),
    clusterDataDir: config?.clusterDataDir ?? resolve(file?.cluster?.data_dir ?? join(dataDir, 'cluster')),
    httpTlsDir: config?.http.tlsDir ?? resolve(file?.http?.tls_dir ?? join(dataDir, 'http-tls')),
  };
}

/** Repeated `--dns-upstream` flags, within the same bound as the file's `dns.upstreams`. */
function dnsUpstreamFlags(values: readonly string[]): HostPort[] {
  if (values.length > MAX_DNS_UPSTREAMS) throw new NeuwerkError('NW_ERR_USAGE', `--dns-upstream: at most ${MAX_DNS_UPSTREAMS} upstreams (got ${values.length})`);
  return values.map((value) => flagAddress('dns-upstream', value));
}

/** Repeated `--proxy-protocol-from` flags, within the same bound as the file's list. */
function proxyProtocolFlags(values: readonly string[]): string[] {
  if (values.length > MAX_PROXY_PROTOCOL_FROM) throw new NeuwerkError('NW_ERR_USAGE', `--proxy-protocol-from: at most ${MAX_PROXY_PROTOCOL_FROM} CIDRs (got ${values.length})`);
  return values.map((value) => flagCidr('proxy-protocol-from', value));
}

/**
 * Resolves the node configuration: a flag wins over the file, the file over the defaults.
 * Relative paths, from flags and file alike, resolve against the current directory.
 */
export function resolveNodeConfig(file: ConfigFile | null, configPath: string | null, flags: StartFlags): NodeConfig {
  const f = file ?? { version: 1 };
  const pick = <T>(flag: T | undefined, fromFile: T | undefined): T | undefined => (flag !== undefined ? flag : fromFile);
  const address = (flag: string, flagValue: string | undefined, fileValue: string | undefined, fallback: string): HostPort =>
    flagValue !== undefined ? flagAddress(flag, flagValue) : fileAddress(fileValue ?? fallback);
  const optionalAddress = (flag: string, flagValue: string | undefined, fileValue: string | undefined): HostPort | null =>
    flagValue !== undefined ? flagAddress(flag, flagValue) : fileValue !== undefined ? fileAddress(fileValue) : null;

  const dataDir = resolve(pick(flags['data-dir'], f.node?.data_dir) ?? DEFAULT_DATA_DIR);
  const nodeIdPath = resolve(pick(flags['node-id-path'], f.node?.node_id_path) ?? join(dataDir, 'node_id'));
  const clusterDataDir = resolve(pick(flags['cluster-data-dir'], f.cluster?.data_dir) ?? join(dataDir, 'cluster'));

  const clusterBindText = pick(flags['cluster-bind'], f.cluster?.bind);
  const joinText = pick(flags.join, f.cluster?.join);
  let cluster: ClusterSettings | null = null;
  if (clusterBindText !== undefined || joinText !== undefined) {
    const bind = address('cluster-bind', flags['cluster-bind'], f.cluster?.bind, DEFAULT_CLUSTER_BIND);
    cluster = {
      bind,
      joinBind: optionalAddress('cluster-join-bind', flags['cluster-join-bind'], f.cluster?.join_bind) ?? { host: bind.host, port: bind.port + 1 },
      advertise: optionalAddress('cluster-advertise', flags['cluster-advertise'], f.cluster?.advertise) ?? bind,
      join: optionalAddress('join', flags.join, f.cluster?.join),
      bootstrapTokenPath: resolve(pick(flags['bootstrap-token-path'], f.cluster?.bootstrap_token_path) ?? join(dataDir, 'bootstrap-token')),
    };
  } else {
    for (const flag of ['cluster-join-bind', 'cluster-advertise', 'bootstrap-token-path'] as const) {
      if (flags[flag] !== undefined) {
        throw new NeuwerkError('NW_ERR_USAGE', `--${flag} only applies in cluster mode; add --cluster-bind or --join`);
      }
    }
  }

  const dnsBindText = pick(flags['dns-bind'], f.dns?.bind);
  const upstreamTexts = pick(flags['dns-upstream'], f.dns?.upstreams);
  let dns: NodeConfig['dns'] = null;
  if (dnsBindText !== undefined || upstreamTexts !== undefined) {
    if (dnsBindText === undefined) {
      if (flags['dns-upstream'] === undefined && configPath !== null) throw configError(configPath, 'dns.upstreams needs dns.bind (or --dns-bind) too');
      throw new NeuwerkError('NW_ERR_USAGE', '--dns-upstream needs --dns-bind (or dns.bind) too');
    }
    dns = {
      bind: flags['dns-bind'] !== undefined ? flagAddress('dns-bind', flags['dns-bind']) : fileAddress(dnsBindText),
      upstreams: flags['dns-upstream'] !== undefined ? dnsUpstreamFlags(flags['dns-upstream']) : (upstreamTexts ?? []).map(fileAddress),
    };
  }

  const proxyBindText = pick(flags['proxy-bind'], f.proxy?.bind);
  const proxyProtocolFrom =
    flags['proxy-protocol-from'] !== undefined ? proxyProtocolFlags(flags['proxy-protocol-from']) : (f.proxy?.proxy_protocol_from ?? []).map(fileCidr);
  let proxy: NodeConfig['proxy'] = null;
  if (proxyBindText !== undefined) {
    proxy = {
      bind: flags['proxy-bind'] !== undefined ? flagAddress('proxy-bind', flags['proxy-bind']) : fileAddress(proxyBindText),
      tunnelGraceMs: f.proxy?.tunnel_grace_ms ?? DEFAULT_TUNNEL_GRACE_MS,
      proxyProtocolFrom,
    };
  } else if (proxyProtocolFrom.length > 0) {
    if (flags['proxy-protocol-from'] === undefined && configPath !== null) throw configError(configPath, 'proxy.proxy_protocol_from needs proxy.bind (or --proxy-bind) too');
    throw new NeuwerkError('NW_ERR_USAGE', '--proxy-protocol-from (proxy.proxy_protocol_from) needs --proxy-bind (or proxy.bind) too');
  }

  const electionTimeoutTicks = f.cluster?.election_timeout_ticks ?? DEFAULT_ELECTION_TIMEOUT_TICKS;
  const heartbeatTicks = f.cluster?.heartbeat_ticks ?? DEFAULT_HEARTBEAT_TICKS;
  if (heartbeatTicks >= electionTimeoutTicks) {
    // Checked here, not only by the Raft core, so the node refuses before it creates any state.
    throw configError(configPath ?? '(defaults)', `cluster.heartbeat_ticks (${heartbeatTicks}) must be below cluster.election_timeout_ticks (${electionTimeoutTicks})`);
  }

  const httpBind = address('http-bind', flags['http-bind'], f.http?.bind, DEFAULT_HTTP_BIND);
  const setting = (flag: keyof StartFlags, key: string, fileValue: string | undefined): string =>
    flags[flag] === undefined && fileValue !== undefined && configPath !== null ? `${key} (config ${configPath})` : `--${flag}`;
  return {
    configPath,
    dataDir,
    nodeIdPath,
    clusterDataDir,
    cluster,
    raft: {
      tickMs: f.cluster?.tick_ms ?? DEFAULT_TICK_MS,
      electionTimeoutTicks,
      heartbeatTicks,
      snapshotThresholdEntries: f.cluster?.snapshot_threshold_entries ?? DEFAULT_SNAPSHOT_THRESHOLD_ENTRIES,
      snapshotTrailingEntries: f.cluster?.snapshot_trailing_entries ?? DEFAULT_SNAPSHOT_TRAILING_ENTRIES,
    },
    http: {
      bind: httpBind,
      advertise: optionalAddress('http-advertise', flags['http-advertise'], f.http?.advertise) ?? httpBind,
      tlsDir: resolve(pick(flags['http-tls-dir'], f.http?.tls_dir) ?? join(dataDir, 'http-tls')),
      certPath: f.http?.cert_path !== undefined ? resolve(f.http.cert_path) : null,
      keyPath: f.http?.key_path !== undefined ? resolve(f.http.key_path) : null,
    },
    metrics: { bind: address('metrics-bind', flags['metrics-bind'], f.metrics?.bind, DEFAULT_METRICS_BIND) },
    dns,
    proxy,
    policy: { defaultPolicy: pick(flags['default-policy'], f.policy?.default) ?? 'deny' },
    log: {
      level: pick(flags['log-level'], f.log?.level) ?? 'info',
      format: pick(flags['log-format'], f.log?.format) ?? 'json',
    },
    bindSettings: {
      http: setting('http-bind', 'http.bind', f.http?.bind),
      metrics: setting('metrics-bind', 'metrics.bind', f.metrics?.bind),
      cluster: setting('cluster-bind', 'cluster.bind', f.cluster?.bind),
      clusterJoin: setting('cluster-join-bind', 'cluster.join_bind', f.cluster?.join_bind),
      dns: setting('dns-bind', 'dns.bind', f.dns?.bind),
      proxy: setting('proxy-bind', 'proxy.bind', f.proxy?.bind),
    },
  };
}

/** Reads the config file (if any) and resolves it with the flags. */
export function loadNodeConfig(configFlag: string | undefined, flags: StartFlags): NodeConfig {
  const configPath = chooseConfigPath(configFlag);
  const file = configPath === null ? null : loadConfigFile(configPath);
  return resolveNodeConfig(file, configPath, flags);
}
