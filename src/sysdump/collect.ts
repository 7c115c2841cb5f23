import { X509Certificate } from 'node:crypto';
import { formatHostPort, type HostPort } from '../config/address.js';
import { describeError } from '../errors.js';
import type { SqliteDatabase } from '../store/database.js';
import type { StateMachine } from '../store/state-machine.js';
import { packArchive, type ArchiveFile } from './archive.js';
import { buildManifest, type ManifestError, type SysdumpManifest, type SysdumpMode } from './manifest.js';
import { redactConfiguration, scrubText, type KnownSecrets } from './redaction.js';
import { runSystemCommands, systemCommandPath, type SystemCommandResult } from './system-commands.js';

/** Archive paths of DESIGN §9. */
export const SYSDUMP_PATHS = {
  state: 'summary/state.json',
  cluster: 'summary/cluster.json',
  policy: 'summary/policy.json',
  serviceAccounts: 'summary/service-accounts.json',
  configuration: 'summary/configuration.json',
  readiness: 'summary/readiness.json',
  metrics: 'summary/metrics.txt',
  logs: 'logs/neuwerk.jsonl',
  logsDir: 'logs/',
} as const;

/** The replicated store as the collector reads it: a handle (read-only from the CLI) and its tables. */
export interface StoreView {
  readonly path: string;
  readonly db: SqliteDatabase;
  readonly stateMachine: StateMachine;
}

/**
 * Live snapshots of a running node, whether read over its API (CLI) or from inside the process
 * (cluster fan-out). Every method may throw; the collector records the failure and goes on.
 */
export interface LiveSource {
  /** Where the snapshots come from, e.g. `https://127.0.0.1:8443` or `in-process`. */
  readonly description: string;
  /** `/ready`: HTTP status and the report body. */
  readiness(): Promise<{ httpStatus: number; report: unknown }>;
  /** `/metrics` in the Prometheus text format. */
  metrics(): Promise<string>;
  /** Recent log lines (JSON), oldest first. */
  logs(): Promise<string[]>;
  /** Live cluster status; null when this build of the node has no such endpoint. */
  clusterStatus(): Promise<unknown>;
  /** The configuration the node runs with (file, flags and defaults), key-redacted or not. */
  configuration(): Promise<unknown>;
}

/** The configuration summary: the file as written and as resolved, both redacted before writing. */
export interface ConfigurationView {
  readonly configPath: string | null;
  /** The parsed file, or null when there is none. */
  readonly file: unknown;
  /** The resolved configuration (file, flags and defaults), or null when it could not be resolved. */
  readonly resolved: unknown;
}

/** Everything the collector reads from; each part may be missing, which the manifest records. */
export interface NodeSysdumpSources {
  readonly nodeId: string | null;
  readonly dataDir: string;
  readonly configuration: ConfigurationView;
  readonly store: StoreView | null;
  /** Null for a stopped node; `notRunningReason` then says why it counts as stopped. */
  readonly live: LiveSource | null;
  readonly notRunningReason: string | null;
  /** The node's own secrets, for scrubbing by value and for the final scan. */
  readonly known: KnownSecrets;
  /** Failures found before collection (configuration, store, API token), carried into the manifest. */
  readonly errors: readonly ManifestError[];
  /** Runs the system commands; injectable so tests and the in-process path can choose. */
  readonly runCommands?: () => Promise<SystemCommandResult[]>;
}

/** A built archive with its manifest, before it is written anywhere. */
export interface BuiltSysdump {
  readonly archive: Buffer;
  readonly manifest: SysdumpManifest;
  /** Archive paths in archive order (manifest first). */
  readonly paths: readonly string[];
}

/** Turns `{host, port}` objects into `host:port` strings everywhere in a resolved configuration. */
export function describeAddresses(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(describeAddresses);
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length === 2 && keys.includes('host') && keys.includes('port')) return formatHostPort(value as HostPort);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, describeAddresses(v)]));
  }
  return value;
}

/** True when the store has the table (stores written by older builds may lack newer tables). */
export function tableExists(db: SqliteDatabase, name: string): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
}

/** Parses JSON text from the store; absent is null, unparseable is marked rather than thrown. */
export function parseJsonOrNull(text: string | undefined): unknown {
  if (text === undefined) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return { unparseable: true };
  }
}

/**
 * `summary/state.json`: identity, applied index, Raft hard state, snapshot metadata and log
 * bounds (never log entries: they carry commands, including signing-key additions), members.
 */
export function stateSummary(nodeId: string | null, dataDir: string, store: StoreView): Record<string, unknown> {
  const meta = new Map<string, string>();
  for (const row of store.db.prepare('SELECT key, value FROM raft_meta').all() as { key: string; value: string }[]) meta.set(row.key, row.value);
  const bounds = store.db.prepare('SELECT MIN(idx) AS first, MAX(idx) AS last, COUNT(*) AS count FROM raft_log').get() as { first: number | null; last: number | null; count: number };
  const hardState = parseJsonOrNull(meta.get('hard_state'));
  const snapshot = parseJsonOrNull(meta.get('snapshot_meta'));
  return {
    node_id: nodeId,
    data_dir: dataDir,
    store_path: store.path,
    store_schema_version: store.db.pragma('user_version', { simple: true }) as number,
    applied_index: store.stateMachine.appliedIndex,
    applied_term: store.stateMachine.appliedTerm,
    raft: {
      hard_state: hardState,
      snapshot,
      log: { first_index: bounds.first, last_index: bounds.last, entries: bounds.count },
      other_meta_keys: [...meta.keys()].filter((k) => k !== 'hard_state' && k !== 'snapshot_meta').sort(),
    },
    members: store.stateMachine.members(),
  };
}

/**
 * Cluster tables beside `members`, when this store has them: the cluster id and the CA
 * certificate's fingerprint (public), and removed members. Never `ca_envelopes` (CA key material).
 */
export function clusterTablesSummary(db: SqliteDatabase): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (tableExists(db, 'cluster_ca')) {
    const ca = db.prepare('SELECT cluster_id, cert_pem FROM cluster_ca WHERE id = 1').get() as { cluster_id: string; cert_pem: string } | undefined;
    out.cluster_ca = ca === undefined ? null : { cluster_id: ca.cluster_id, cert_sha256: certificateFingerprint(ca.cert_pem) };
  }
  if (tableExists(db, 'removed_members')) {
    out.removed_members = db.prepare('SELECT node_id, removed_at, raft_index FROM removed_members ORDER BY node_id').all();
  }
  return out;
}

function certificateFingerprint(pem: string): string | null {
  try {
    return new X509Certificate(pem).fingerprint256;
  } catch {
    return null;
  }
}

/** `summary/policy.json`: the stored policy document and its version. */
export function policySummary(store: StoreView): Record<string, unknown> {
  const policy = store.stateMachine.policy();
  if (policy === null) return { version: 0, document: null, note: 'no policy stored yet' };
  return { version: policy.version, set_by: policy.set_by, set_at: policy.set_at, document: policy.document };
}

/** `summary/service-accounts.json`: accounts, token metadata and signing-key metadata; no key material, no raw token. */
export function serviceAccountsSummary(store: StoreView): Record<string, unknown> {
  const auth = store.stateMachine.auth;
  return {
    accounts: auth.accounts().map((account) => ({ ...account, tokens: auth.tokens(account.id) })),
    signing_keys: auth.keys(),
  };
}

/**
 * Collects every summary, the live snapshots (when running) and the system commands into archive
 * files, scrubs them, builds the manifest, runs the final secret scan and packs the archive.
 * Source failures are recorded in the manifest; only the final scan refuses.
 */
export async function collectNodeSysdump(
  sources: NodeSysdumpSources,
  options: { version: string; generatedAt: Date; progress?: (message: string) => void },
): Promise<BuiltSysdump> {
  const progress = options.progress ?? (() => undefined);
  const errors: ManifestError[] = [...sources.errors];
  const files: ArchiveFile[] = [];
  const text = (path: string, content: string): void => {
    files.push({ path, content: Buffer.from(scrubText(content, sources.known), 'utf8') });
  };
  const json = (path: string, value: unknown): void => text(path, `${JSON.stringify(value, null, 2)}\n`);
  const fail = (source: string, err: unknown): string => {
    const message = scrubText(describeError(err), sources.known);
    errors.push({ source, error: message });
    return message;
  };
  const mode: SysdumpMode = sources.live === null ? 'stopped' : 'running';
  const commands = (sources.runCommands ?? (() => runSystemCommands()))();

  progress('reading the store');
  const storeMissing = 'store not available (see the "store" error)';
  const fromStore = (path: string, build: (store: StoreView) => unknown): void => {
    if (sources.store === null) {
      json(path, { error: storeMissing });
      return;
    }
    try {
      json(path, build(sources.store));
    } catch (err) {
      json(path, { error: fail(path, err) });
    }
  };
  fromStore(SYSDUMP_PATHS.state, (store) => stateSummary(sources.nodeId, sources.dataDir, store));
  fromStore(SYSDUMP_PATHS.policy, policySummary);
  fromStore(SYSDUMP_PATHS.serviceAccounts, serviceAccountsSummary);

  let members: unknown = null;
  let clusterTables: Record<string, unknown> = {};
  if (sources.store !== null) {
    try {
      members = sources.store.stateMachine.members();
      clusterTables = clusterTablesSummary(sources.store.db);
    } catch (err) {
      members = { error: fail(`${SYSDUMP_PATHS.cluster} (members)`, err) };
    }
  }

  // A running node says what it runs with (its start flags included); otherwise the file and the
  // defaults are all there is to go by.
  let resolved = sources.configuration.resolved;
  let resolvedFrom = 'the config file and defaults as `neuwerk start` resolves them without flags (the node is not running: its start flags are not known)';
  if (sources.live !== null) {
    try {
      resolved = await sources.live.configuration();
      resolvedFrom = `the running node (${sources.live.description})`;
    } catch (err) {
      resolvedFrom = `the config file and defaults as \`neuwerk start\` resolves them without flags (the running node's own configuration could not be read: ${fail(SYSDUMP_PATHS.configuration, err)})`;
    }
  }
  json(SYSDUMP_PATHS.configuration, {
    config_path: sources.configuration.configPath,
    file: redactConfiguration(sources.configuration.file, sources.known),
    resolved: redactConfiguration(describeAddresses(resolved), sources.known),
    resolved_from: resolvedFrom,
    redaction: 'values of secret-bearing keys are "<redacted>"; paths are kept; no file the configuration names is copied',
  });

  const notRunning = `node not running${sources.notRunningReason === null ? '' : ` (${sources.notRunningReason})`}`;
  let liveStatus: unknown = null;
  let liveStatusNote: string | null = null;
  if (sources.live === null) {
    json(SYSDUMP_PATHS.readiness, { node_running: false, ready: false, detail: notRunning });
    text(SYSDUMP_PATHS.metrics, `# metrics unavailable: ${notRunning}\n`);
    errors.push({ source: SYSDUMP_PATHS.readiness, error: notRunning });
    errors.push({ source: SYSDUMP_PATHS.metrics, error: notRunning });
    errors.push({ source: SYSDUMP_PATHS.logsDir, error: `${notRunning}: recent log lines live only in the running node's memory; see the service journal (journalctl -u neuwerk)` });
    liveStatusNote = notRunning;
  } else {
    const live = sources.live;
    progress(`node is running; taking live snapshots from ${live.description}`);
    const [readiness, metrics, logs, status] = await Promise.allSettled([live.readiness(), live.metrics(), live.logs(), live.clusterStatus()]);
    if (readiness.status === 'fulfilled') {
      json(SYSDUMP_PATHS.readiness, { node_running: true, http_status: readiness.value.httpStatus, ...(readiness.value.report as Record<string, unknown>) });
    } else {
      json(SYSDUMP_PATHS.readiness, { node_running: true, error: fail(SYSDUMP_PATHS.readiness, readiness.reason) });
    }
    if (metrics.status === 'fulfilled') text(SYSDUMP_PATHS.metrics, metrics.value);
    else text(SYSDUMP_PATHS.metrics, `# metrics unavailable: ${fail(SYSDUMP_PATHS.metrics, metrics.reason)}\n`);
    if (logs.status === 'fulfilled') text(SYSDUMP_PATHS.logs, logs.value.map((line) => `${line}\n`).join(''));
    else fail(SYSDUMP_PATHS.logsDir, logs.reason);
    if (status.status === 'fulfilled') {
      liveStatus = status.value;
      if (status.value === null) liveStatusNote = 'this node has no live cluster status endpoint (GET /api/v1/cluster/status); the members table is from the store';
    } else {
      liveStatusNote = fail(`${SYSDUMP_PATHS.cluster} (live status)`, status.reason);
    }
  }
  json(SYSDUMP_PATHS.cluster, {
    members: sources.store === null ? { error: storeMissing } : members,
    ...clusterTables,
    live_status: liveStatus,
    ...(liveStatusNote === null ? {} : { live_status_note: liveStatusNote }),
  });

  progress('running system commands');
  for (const result of await commands) {
    text(systemCommandPath(result.command), result.text);
    if (result.error !== null) errors.push({ source: systemCommandPath(result.command), error: result.error });
  }

  const ordered = [...files].sort((a, b) => a.path.localeCompare(b.path));
  const { manifest, bytes } = buildManifest({ nodeId: sources.nodeId, version: options.version, generatedAt: options.generatedAt, mode, errors: errors.map((e) => ({ source: e.source, error: scrubText(e.error, sources.known) })) }, ordered);
  const all: ArchiveFile[] = [{ path: 'manifest.json', content: bytes }, ...ordered];
  progress('scanning for secrets and packing the archive');
  const archive = await packArchive(all, { mtime: options.generatedAt, known: sources.known, extraDirectories: [SYSDUMP_PATHS.logsDir] });
  return { archive, manifest, paths: all.map((f) => f.path) };
}
