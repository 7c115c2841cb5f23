import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { NodeProcess, runCli, tempDir } from './harness.js';

/**
 * Ports handed out for fixed binds come from below Linux's ephemeral range (32768-60999), so a
 * process that binds port 0 or opens a connection can never be given one of them in between.
 */
const FIXED_PORT_RANGE = { low: 20_000, high: 32_000 } as const;
const handedOut = new Set<number>();

/** A free TCP port on 127.0.0.1 outside the ephemeral range, proven free by binding it. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt += 1) {
    const port = FIXED_PORT_RANGE.low + Math.floor(Math.random() * (FIXED_PORT_RANGE.high - FIXED_PORT_RANGE.low));
    if (handedOut.has(port)) continue;
    const server = createServer();
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen({ port, host: '127.0.0.1', exclusive: true }, () => resolve(true));
    });
    if (!bound) continue;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    handedOut.add(port);
    return port;
  }
  throw new Error('no free port found in the fixed range');
}

export interface ClusterMember {
  node: NodeProcess;
  readonly dataDir: string;
  readonly clusterPort: number;
  readonly joinPort: number;
  readonly httpPort: number;
  readonly args: string[];
}

/** Up to this long for a cluster to reach an expected shape. */
export const CLUSTER_WAIT_MS = 30_000;

/** Real `neuwerk` processes forming a cluster on 127.0.0.1 with one shared bootstrap token file. */
export class TestCluster {
  readonly members: ClusterMember[] = [];
  readonly dir = tempDir('neuwerk-cluster-');
  readonly tokenFile = join(this.dir.path, 'bootstrap-token');
  private adminToken: string | null = null;

  /** `extraArgs`: the same for every node, or made per node (e.g. each with its own fixed port). */
  /** `seedFileSizeLimitBytes`: the seed's files may not grow past this (a stand-in for a full disk). */
  static async create(size: number, extraArgs: string[] | (() => Promise<string[]>) = [], options: { seedFileSizeLimitBytes?: number } = {}): Promise<TestCluster> {
    const cluster = new TestCluster();
    const created = await runCli(['cluster', 'token', 'create', '--path', cluster.tokenFile, '--kid', 'test', '--valid-for', '2h']);
    if (created.code !== 0) throw new Error(created.stderr);
    const argsFor = async (): Promise<string[]> => (typeof extraArgs === 'function' ? extraArgs() : extraArgs);
    await cluster.add(null, await argsFor(), cluster.tokenFile, options.seedFileSizeLimitBytes === undefined ? {} : { fileSizeLimitBytes: options.seedFileSizeLimitBytes });
    for (let i = 1; i < size; i += 1) await cluster.add(cluster.members[0] as ClusterMember, await argsFor());
    await cluster.waitFor((s) => s.voters === size && s.peers.filter((p) => p.status === 'healthy').length === size, `${size} healthy voters`);
    return cluster;
  }

  /** Starts a node: a seed when `via` is null, else a joiner through `via`'s join listener. */
  async add(via: ClusterMember | null, extraArgs: string[] = [], tokenFile = this.tokenFile, options: { fileSizeLimitBytes?: number } = {}): Promise<ClusterMember> {
    const dataDir = join(this.dir.path, `node${this.members.length + 1}`);
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    copyFileSync(tokenFile, join(dataDir, 'bootstrap-token'));
    chmodSync(join(dataDir, 'bootstrap-token'), 0o600);
    const clusterPort = await freePort();
    const joinPort = await freePort();
    const httpPort = await freePort();
    const args = [
      '--cluster-bind', `127.0.0.1:${clusterPort}`, '--cluster-join-bind', `127.0.0.1:${joinPort}`,
      '--http-bind', `127.0.0.1:${httpPort}`, ...extraArgs,
    ];
    const joinArgs = via === null ? [] : ['--join', `127.0.0.1:${via.joinPort}`];
    const node = await NodeProcess.start(dataDir, [...args, ...joinArgs], options);
    const member = { node, dataDir, clusterPort, joinPort, httpPort, args };
    this.members.push(member);
    return member;
  }

  /** Restarts a stopped member on its data dir and ports (no --join: it has its identity). */
  async restart(member: ClusterMember): Promise<void> {
    member.node = await NodeProcess.start(member.dataDir, member.args);
  }

  /** Drops the cached admin token (after its signing key was retired). */
  forgetToken(): void {
    this.adminToken = null;
  }

  async token(): Promise<string> {
    // Minted over cluster RPC with a live member's own identity (any member's keyset replica will do).
    for (const member of this.alive()) {
      if (this.adminToken !== null) break;
      const result = await runCli(['auth', 'bootstrap', '--data-dir', member.dataDir, '--ttl', '2h']);
      if (result.code === 0) this.adminToken = result.stdout.trim();
    }
    if (this.adminToken === null) throw new Error('no live member could mint an admin token');
    return this.adminToken;
  }

  async api(member: ClusterMember, method: string, path: string, body?: unknown, token?: string | null): Promise<{ status: number; json: unknown; headers: Record<string, string | string[] | undefined> }> {
    const bearer: Record<string, string> = token === null ? {} : { authorization: `Bearer ${token ?? (await this.token())}` };
    return member.node.api(method, path, body, bearer);
  }

  alive(): ClusterMember[] {
    return this.members.filter((m) => m.node.child.exitCode === null && m.node.child.signalCode === null);
  }

  /** Status as seen by the leader (through any live member). */
  async status(): Promise<{ leader_id: string | null; voters: number; healthy_voters: number; tolerates: number; term: number; peers: { node_id: string; role: string; status: string }[] } | null> {
    for (const member of this.alive()) {
      try {
        const answer = await this.api(member, 'GET', '/api/v1/cluster/status');
        if (answer.status === 200) return answer.json as never;
      } catch {
        // try the next member
      }
    }
    return null;
  }

  async waitFor(predicate: (status: NonNullable<Awaited<ReturnType<TestCluster['status']>>>) => boolean, what: string, timeoutMs = CLUSTER_WAIT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown = null;
    while (Date.now() < deadline) {
      const status = await this.status();
      last = status;
      if (status !== null && predicate(status)) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`cluster did not reach "${what}" within ${timeoutMs} ms; last status: ${JSON.stringify(last)}`);
  }

  leader(status: { leader_id: string | null }): ClusterMember {
    const leader = this.members.find((m) => m.node.nodeId === status.leader_id);
    if (leader === undefined) throw new Error(`leader ${status.leader_id} is not a known member`);
    return leader;
  }

  async stop(): Promise<void> {
    for (const member of this.members) await member.node.stop('SIGKILL');
    this.dir.cleanup();
  }
}

/** The join stages a joined member logged (the `stage` field), once it logged the last one (`voter`). */
export async function joinStages(member: ClusterMember, timeoutMs = 5_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const stages = member.node.logLines().flatMap((l) => (typeof l.stage === 'string' ? [l.stage] : []));
    if (stages.includes('voter') || Date.now() >= deadline) return stages;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Asserts a joiner's log walks through every stage of a join in order: progress lines, if any,
 * only while it is a learner, and the promotion naming the index it had applied.
 */
export async function assertJoinStages(member: ClusterMember): Promise<void> {
  const stages = await joinStages(member);
  const trail = stages.join(' > ');
  assert.deepEqual(stages.filter((s) => s !== 'catching up'), ['requesting', 'token accepted, certificates issued', 'added as learner', 'voter'], trail);
  const learnerAt = stages.indexOf('added as learner');
  const voterAt = stages.indexOf('voter');
  assert.ok(stages.every((s, i) => s !== 'catching up' || (i > learnerAt && i < voterAt)), trail);
  assert.match(member.node.logLines().find((l) => l.stage === 'voter')?.msg as string, /^join: promoted to voter at index \d+; join complete$/);
}
