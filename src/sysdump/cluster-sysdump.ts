import { Parser, type ReadEntry } from 'tar';
import type { ClusterStatus } from '../cluster/runtime.js';
import { describeError, NeuwerkError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { MemberRecord } from '../store/state-machine.js';
import { packArchive, type ArchiveFile } from './archive.js';
import { SYSDUMP_PATHS } from './collect.js';
import type { ManifestError } from './manifest.js';
import { buildNodeSysdumpInProcess, compactUtcTimestamp, inProcessKnownSecrets, type InProcessSysdumpDeps } from './node-sysdump.js';
import { scrubText } from './redaction.js';

/** The cluster RPC method by which a member hands its node archive to the node assembling a cluster sysdump. */
export const NODE_SYSDUMP_RPC = 'sysdump.node';
/**
 * Largest node archive served over cluster RPC. Frames are limited to 16 MiB and the archive
 * travels base64-encoded (4/3) inside JSON, so 11 MiB leaves room for the envelope.
 */
export const MAX_NODE_ARCHIVE_BYTES = 11 * 1024 * 1024;
/** How long the assembling node waits for each member's archive (system commands included). */
export const NODE_SYSDUMP_TIMEOUT_MS = 20_000;
/** Bound on the entries of one node archive when it is unpacked into `nodes/<node_id>/`. */
export const MAX_NODE_ARCHIVE_ENTRIES = 10_000;
/** Bound on the unpacked size of one node archive. */
export const MAX_NODE_ARCHIVE_UNPACKED_BYTES = 64 * 1024 * 1024;

/** What the cluster side of the sysdump needs from the cluster runtime (a narrow view of `ClusterRuntime`). */
export interface SysdumpClusterView {
  status(): ClusterStatus;
  readonly rpc: {
    call<T>(to: string, method: string, body: unknown, timeoutMs?: number): Promise<T>;
    handle(method: string, handler: (from: string, body: unknown) => Promise<unknown>): void;
  };
}

/** The answer of the `sysdump.node` RPC. */
interface NodeSysdumpAnswer {
  readonly node_id: string;
  readonly archive: Uint8Array;
}

/** One entry of the cluster manifest's `node_errors`. */
export interface NodeError {
  readonly node_id: string;
  readonly error: string;
}

/** `manifest.json` of the cluster archive. */
export interface ClusterSysdumpManifest {
  readonly kind: 'cluster';
  readonly generated_at: string;
  readonly generated_by: string;
  readonly partial: boolean;
  readonly nodes_queried: string[];
  readonly nodes_responded: string[];
  readonly node_errors: NodeError[];
  readonly layout: string;
  readonly files: string[];
}

/** A built cluster archive. */
export interface BuiltClusterSysdump {
  readonly archive: Buffer;
  readonly manifest: ClusterSysdumpManifest;
  readonly filename: string;
}

/** The default name of a cluster archive: `neuwerk-cluster-sysdump-<UTC YYYYMMDDTHHMMSSZ>.tar.gz`. */
export function defaultClusterSysdumpFileName(date: Date): string {
  return `neuwerk-cluster-sysdump-${compactUtcTimestamp(date)}.tar.gz`;
}

/** Builds this node's archive, refusing one too large for a cluster RPC frame. */
async function boundedNodeArchive(deps: InProcessSysdumpDeps): Promise<Buffer> {
  const built = await buildNodeSysdumpInProcess(deps);
  if (built.archive.length > MAX_NODE_ARCHIVE_BYTES) {
    throw new NeuwerkError('NW_ERR_SYSDUMP_TOO_LARGE', `the node archive is ${built.archive.length} bytes, above the limit of ${MAX_NODE_ARCHIVE_BYTES} bytes for cluster transfer; run neuwerk sysdump on that node instead`);
  }
  return built.archive;
}

/**
 * Registers `sysdump.node` on the cluster transport: any member (authenticated by its client
 * certificate from the cluster CA; removed members are refused by the transport) gets this node's
 * archive, built in-process with the usual redaction and final scan.
 */
export function registerNodeSysdumpRpc(cluster: SysdumpClusterView, deps: InProcessSysdumpDeps, logger: Logger): void {
  cluster.rpc.handle(NODE_SYSDUMP_RPC, async (from) => {
    logger.info({ audit: true, actor: `node:${from}`, action: 'support.sysdump.node' }, 'audit: node sysdump requested by a cluster member');
    const archive = await boundedNodeArchive(deps);
    const answer: NodeSysdumpAnswer = { node_id: deps.nodeId, archive };
    return answer;
  });
}

/** Unpacks a node's gzip'd tar in memory (files only), bounded in entries and size. */
export async function unpackArchive(archive: Buffer): Promise<ArchiveFile[]> {
  const files: ArchiveFile[] = [];
  let total = 0;
  const parser = new Parser();
  const done = new Promise<void>((resolve, reject) => {
    parser.on('entry', (entry: ReadEntry) => {
      if (entry.type !== 'File') {
        entry.resume();
        return;
      }
      const chunks: Buffer[] = [];
      entry.on('data', (chunk: Buffer) => {
        total += chunk.length;
        chunks.push(chunk);
      });
      entry.on('end', () => {
        if (files.length >= MAX_NODE_ARCHIVE_ENTRIES || total > MAX_NODE_ARCHIVE_UNPACKED_BYTES) {
          reject(new Error(`node archive exceeds ${MAX_NODE_ARCHIVE_ENTRIES} entries or ${MAX_NODE_ARCHIVE_UNPACKED_BYTES} bytes unpacked`));
          return;
        }
        files.push({ path: entry.path, content: Buffer.concat(chunks) });
      });
    });
    parser.on('end', () => resolve());
    parser.on('error', (err: unknown) => reject(err instanceof Error ? err : new Error(String(err))));
    parser.on('warn', (_code: string, message: string | Error) => reject(new Error(`node archive is not a valid tar: ${String(message)}`)));
  });
  parser.end(archive);
  await done;
  return files;
}

/** Everything `buildClusterSysdump` works with. */
export interface ClusterSysdumpDeps {
  /** This node (its archive is built in-process, not over RPC). */
  readonly node: InProcessSysdumpDeps;
  /** Null in single-node mode: the archive then holds this node only. */
  readonly cluster: SysdumpClusterView | null;
  readonly members: () => MemberRecord[];
  readonly logger: Logger;
  readonly now?: () => Date;
  /** Per-node timeout; default NODE_SYSDUMP_TIMEOUT_MS (tests shorten it). */
  readonly nodeTimeoutMs?: number;
}

function readJson(files: readonly ArchiveFile[], path: string): unknown {
  const file = files.find((f) => f.path === path);
  if (file === undefined) return null;
  try {
    return JSON.parse(file.content.toString('utf8')) as unknown;
  } catch {
    return null;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The cluster-wide archive (DESIGN §9): asks every member of the Raft configuration (this node
 * included) for its node archive in parallel, each bounded by the per-node timeout, and packs
 * `manifest.json`, `cluster/summary.json` and each node's archive unpacked under
 * `nodes/<node_id>/`. A member that fails or does not answer is listed in `node_errors` and the
 * archive is `partial`; the rest is still delivered. The assembled archive goes through the same
 * final secret scan as a node archive (patterns plus this node's known secrets).
 */
export async function buildClusterSysdump(deps: ClusterSysdumpDeps): Promise<BuiltClusterSysdump> {
  const generatedAt = (deps.now ?? (() => new Date()))();
  const timeoutMs = deps.nodeTimeoutMs ?? NODE_SYSDUMP_TIMEOUT_MS;
  const self = deps.node.nodeId;
  const status = deps.cluster?.status() ?? null;
  const queried = status === null ? [self] : [...new Set([self, ...status.peers.map((p) => p.node_id)])].sort();
  const scanErrors: ManifestError[] = [];
  const known = inProcessKnownSecrets(deps.node, scanErrors);

  const results = await Promise.allSettled(
    queried.map(async (nodeId) => {
      if (nodeId === self) return withTimeout(boundedNodeArchive(deps.node), timeoutMs, `node ${nodeId}`);
      const cluster = deps.cluster as SysdumpClusterView;
      const answer = await withTimeout(cluster.rpc.call<NodeSysdumpAnswer>(nodeId, NODE_SYSDUMP_RPC, {}, timeoutMs), timeoutMs + 1_000, `node ${nodeId}`);
      if (!(answer?.archive instanceof Uint8Array)) throw new Error('the answer holds no archive');
      return Buffer.from(answer.archive.buffer, answer.archive.byteOffset, answer.archive.byteLength);
    }),
  );

  const files: ArchiveFile[] = [];
  const responded: string[] = [];
  const nodeErrors: NodeError[] = [];
  const perNode = new Map<string, readonly ArchiveFile[]>();
  for (let i = 0; i < queried.length; i += 1) {
    const nodeId = queried[i] as string;
    const result = results[i] as PromiseSettledResult<Buffer>;
    try {
      if (result.status === 'rejected') throw result.reason;
      const unpacked = await unpackArchive(result.value);
      perNode.set(nodeId, unpacked);
      for (const file of unpacked) files.push({ path: `nodes/${nodeId}/${file.path}`, content: file.content });
      responded.push(nodeId);
    } catch (err) {
      const error = scrubText(describeError(err), known);
      nodeErrors.push({ node_id: nodeId, error });
      deps.logger.warn({ node_id: nodeId, err: error }, 'cluster sysdump: a member did not deliver its archive');
    }
  }

  const members = (() => {
    try {
      return deps.members();
    } catch {
      return [];
    }
  })();
  const summary = {
    generated_at: generatedAt.toISOString(),
    cluster_enabled: status !== null,
    assembled_by: self,
    leader: status?.leader_id ?? (status === null ? self : null),
    term: status?.term ?? null,
    commit_index: status?.commit_index ?? null,
    voters: status?.voters ?? 1,
    healthy_voters: status?.healthy_voters ?? 1,
    tolerates: status?.tolerates ?? 0,
    members: queried.map((nodeId) => {
      const peer = status?.peers.find((p) => p.node_id === nodeId) ?? null;
      const record = members.find((m) => m.node_id === nodeId) ?? null;
      const nodeFiles = perNode.get(nodeId) ?? null;
      const nodeCluster = nodeFiles === null ? null : (readJson(nodeFiles, SYSDUMP_PATHS.cluster) as { live_status?: { appliedIndex?: unknown; commitIndex?: unknown } } | null);
      const readiness = nodeFiles === null ? null : (readJson(nodeFiles, SYSDUMP_PATHS.readiness) as { ready?: unknown; checks?: unknown } | null);
      return {
        node_id: nodeId,
        role: peer?.role ?? (status === null ? 'leader' : null),
        status: peer?.status ?? null,
        cluster_addr: record?.cluster_addr ?? null,
        http_addr: record?.http_addr ?? null,
        match_index: peer?.match_index ?? null,
        lag: peer?.lag ?? null,
        applied_index: typeof nodeCluster?.live_status?.appliedIndex === 'number' ? nodeCluster.live_status.appliedIndex : null,
        ready: typeof readiness?.ready === 'boolean' ? readiness.ready : null,
        readiness_checks: readiness?.checks ?? null,
        archive: nodeFiles === null ? null : `nodes/${nodeId}/`,
        error: nodeErrors.find((e) => e.node_id === nodeId)?.error ?? null,
      };
    }),
  };
  files.unshift({ path: 'cluster/summary.json', content: Buffer.from(`${JSON.stringify(summary, null, 2)}\n`, 'utf8') });

  const manifest: ClusterSysdumpManifest = {
    kind: 'cluster',
    generated_at: generatedAt.toISOString(),
    generated_by: self,
    partial: nodeErrors.length > 0,
    nodes_queried: queried,
    nodes_responded: responded,
    node_errors: nodeErrors,
    layout: 'cluster/summary.json; nodes/<node_id>/ holds that node\'s sysdump archive unpacked (its own manifest.json, summary/, logs/, system/)',
    files: ['manifest.json', ...files.map((f) => f.path)],
  };
  const all: ArchiveFile[] = [{ path: 'manifest.json', content: Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8') }, ...files];
  const archive = await packArchive(all, { mtime: generatedAt, known });
  return { archive, manifest, filename: defaultClusterSysdumpFileName(generatedAt) };
}
