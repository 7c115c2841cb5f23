/**
 * DESIGN §10 and the cluster issue: replicated keyval writes on a 3-node neuwerk cluster side by
 * side with a 3-member etcd cluster on the same machine, in the same run, with the same load
 * generator (`../shared/bench/etcd/bench.mjs`): throughput and p50/p99 at concurrency 1, 16 and
 * 64, through the leader and through a follower; then leader failover (kill -9 -> first
 * successful write) over several rounds with the kit's `failover.mjs` for both systems. The
 * members' RSS is read when both clusters are idle (after forming, and after the last write) and
 * sampled during every load (DESIGN §10 "Memory").
 *
 * Bounded: BENCH_CLUSTER_DURATION_S (default 8) seconds per measurement after a 2 s warm-up,
 * BENCH_CLUSTER_REPS (default 2) repetitions, BENCH_FAILOVER_ROUNDS (default 5) rounds.
 * Needs root for `apt-get install etcd-server` on first use (the kit does it).
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { TestCluster, type ClusterMember } from '../e2e/cluster-harness.js';
import type { BenchClusterState } from './cluster-hooks.js';
import { lastJsonLine } from './kit-tools.js';
import { median, type BenchTable } from './raft-bench-util.js';
import { groupRssNow, mib, readRssAnonKb, withRssPeak, type GroupRss } from './rss.js';

const run = promisify(execFile);
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const KIT = resolve(REPO_ROOT, '..', 'shared', 'bench', 'etcd');
const HOOKS = join(REPO_ROOT, 'dist', 'test', 'bench', 'cluster-hooks.js');
const DURATION_S = Number(process.env.BENCH_CLUSTER_DURATION_S ?? 8);
const WARMUP_S = 2;
/**
 * Unmeasured load (c=16 through the leader) on each system once, before the first measurement. A
 * fresh Node process is still compiling its hot paths for the first tens of seconds of load: on a
 * new 3-node cluster, c=1 p99 went 3.2 -> 2.3 -> 2.0 -> 1.8 ms over four back-to-back 8 s runs, so
 * without this the rows measured first (c=1, first repetition) measured the warm-up. Both systems
 * get the same.
 */
const SYSTEM_WARMUP_S = Number(process.env.BENCH_CLUSTER_SYSTEM_WARMUP_S ?? 20);
const REPS = Number(process.env.BENCH_CLUSTER_REPS ?? 2);
const FAILOVER_ROUNDS = Number(process.env.BENCH_FAILOVER_ROUNDS ?? 5);
const CONCURRENCIES = [1, 16, 64] as const;
/** Upper bound of one load-generator invocation (measurement + warm-up + slack). */
const STEP_TIMEOUT_MS = (DURATION_S + WARMUP_S + 60) * 1000;
/** Seconds both clusters sit without load before an idle RSS reading (after forming, and after the last write). */
const IDLE_SETTLE_S = Number(process.env.BENCH_CLUSTER_IDLE_SETTLE_S ?? 5);

interface LoadResult {
  ops_per_s: number;
  latency_ms: { p50: number; p99: number };
  errors: number;
  /** Peak RSS of the system's members while this load ran (sampled here, not by the kit). */
  rss: GroupRss;
}

interface FailoverRound {
  round: number;
  killed: number;
  new_leader: number | null;
  first_write_ok_ms: number | null;
  writes_acked: number;
  acked_lost_per_member: number[];
  error_kinds: Record<string, number>;
}

interface FailoverResult {
  median: { first_write_ok_ms: number | null; leader_seen_ms: number | null };
  range: { first_write_ok_ms: [number, number] | null };
  acked_writes_lost: number;
  rounds: number;
  per_round: FailoverRound[];
}

/** A round to look into: an acknowledged write not read back (the kit also counts a read that keeps failing), or no write after the kill. */
function troubled(round: FailoverRound): boolean {
  return round.first_write_ok_ms === null || round.acked_lost_per_member.some((lost) => lost > 0);
}

/**
 * Keeps what an engineer needs to find out why a failover round went wrong: the kit's full
 * result, every member's log (its first process's and its restarts') and every member's own
 * cluster status now. Returns the directory.
 */
async function keepFailoverEvidence(result: FailoverResult, cluster: TestCluster, state: BenchClusterState): Promise<string> {
  const dir = join(REPO_ROOT, 'bench-results', `failover-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'failover.json'), `${JSON.stringify(result, null, 2)}\n`);
  const dispatcher = new Agent({ connect: { ca: readFileSync(state.caFile, 'utf8') } });
  try {
    for (const [i, member] of cluster.members.entries()) {
      const n = i + 1;
      writeFileSync(join(dir, `node${n}-first-process.log`), member.node.stderr);
      const restarts = join(member.dataDir, 'restart.log');
      if (existsSync(restarts)) copyFileSync(restarts, join(dir, `node${n}-restarts.log`));
      const url = state.members[i]?.url ?? '';
      let status: string;
      try {
        const response = await request(`${url}/api/v1/cluster/status?local=true`, {
          dispatcher,
          headers: { authorization: `Bearer ${state.token}` },
          headersTimeout: 2000,
          bodyTimeout: 2000,
        });
        status = await response.body.text();
      } catch (err) {
        status = JSON.stringify({ error: (err as Error).message });
      }
      writeFileSync(join(dir, `node${n}-status.json`), `${status}\n`);
    }
  } finally {
    await dispatcher.close();
  }
  return dir;
}

async function etcdCtl(...args: string[]): Promise<string> {
  return (await run('bash', [join(KIT, 'cluster.sh'), ...args], { timeout: 180_000 })).stdout.trim();
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

export async function benchClusterVsEtcd(): Promise<BenchTable[]> {
  if (!existsSync(join(KIT, 'bench.mjs'))) throw new Error(`the shared benchmark kit is not at ${KIT}`);
  await etcdCtl('start');
  const cluster = await TestCluster.create(3, ['--metrics-bind', '127.0.0.1:0']);
  const token = await cluster.token();
  const caFile = join((cluster.members[0] as ClusterMember).dataDir, 'http-tls', 'ca.crt');
  const url = (m: ClusterMember): string => `https://127.0.0.1:${m.httpPort}`;
  /** The kit's load generator against one member of each system (`args`: concurrency, duration, warm-up). */
  const etcdPids = await Promise.all([1, 2, 3].map(async (n) => Number(await etcdCtl('pid', String(n)))));
  const neuwerkPids = cluster.members.map((m) => m.node.pid);
  /** The kit's load generator with `args` against one member, sampling the RSS of the system's members meanwhile. */
  const load = async (pids: number[], args: string[], timeoutMs: number): Promise<LoadResult> => {
    const { result, rss } = await withRssPeak(pids, () => lastJsonLine<Omit<LoadResult, 'rss'>>(join(KIT, 'bench.mjs'), args, timeoutMs));
    return { ...result, rss };
  };
  const loadEtcd = (memberUrl: string, args: string[], timeoutMs: number): Promise<LoadResult> =>
    load(etcdPids, ['--kind', 'etcd', '--url', memberUrl, ...args], timeoutMs);
  const loadNeuwerk = (memberUrl: string, args: string[], timeoutMs: number): Promise<LoadResult> =>
    load(neuwerkPids, ['--kind', 'neuwerk', '--url', memberUrl, '--token', token, '--ca', caFile, '--zone', 'bench', ...args], timeoutMs);
  /** Both systems' members after `IDLE_SETTLE_S` without load, with the largest private (anonymous) part of a member. */
  const idleRss = async (): Promise<{ etcd: GroupRss; neuwerk: GroupRss; etcdAnonKb: number; neuwerkAnonKb: number }> => {
    await new Promise((r) => setTimeout(r, IDLE_SETTLE_S * 1000));
    const anon = (pids: number[]): number => Math.max(...pids.map(readRssAnonKb));
    return { etcd: groupRssNow(etcdPids), neuwerk: groupRssNow(neuwerkPids), etcdAnonKb: anon(etcdPids), neuwerkAnonKb: anon(neuwerkPids) };
  };
  const stateFile = join(cluster.dir.path, 'bench-state.json');
  const state: BenchClusterState = {
    token,
    caFile,
    // m.args already carries --metrics-bind 127.0.0.1:0 (passed to TestCluster.create below).
    members: cluster.members.map((m) => ({ dataDir: m.dataDir, args: [...m.args], pid: m.node.pid, url: url(m) })),
  };
  writeFileSync(stateFile, JSON.stringify(state));
  const samples = new Map<string, { etcd: LoadResult[]; neuwerk: LoadResult[] }>();
  try {
    const idleFresh = await idleRss();
    if (SYSTEM_WARMUP_S > 0) {
      const status = await cluster.status();
      if (status === null || status.leader_id === null) throw new Error('neuwerk cluster has no leader');
      const warm = ['--concurrency', '16', '--duration', String(SYSTEM_WARMUP_S), '--warmup', '0'];
      const timeoutMs = (SYSTEM_WARMUP_S + 60) * 1000;
      await loadEtcd(await etcdCtl('leader'), warm, timeoutMs);
      await loadNeuwerk(url(cluster.leader(status)), warm, timeoutMs);
    }
    for (let rep = 0; rep < REPS; rep += 1) {
      for (const concurrency of CONCURRENCIES) {
        for (const via of ['leader', 'follower'] as const) {
          const status = await cluster.status();
          if (status === null || status.leader_id === null) throw new Error('neuwerk cluster has no leader');
          const leader = cluster.leader(status);
          const neuwerkUrl = url(via === 'leader' ? leader : (cluster.members.find((m) => m !== leader) as ClusterMember));
          const etcdUrl = await etcdCtl(via);
          const common = ['--concurrency', String(concurrency), '--duration', String(DURATION_S), '--warmup', String(WARMUP_S)];
          const measureEtcd = (): Promise<LoadResult> => loadEtcd(etcdUrl, common, STEP_TIMEOUT_MS);
          const measureNeuwerk = (): Promise<LoadResult> => loadNeuwerk(neuwerkUrl, common, STEP_TIMEOUT_MS);
          // Alternate who goes first so drift on the shared machine does not favour one side.
          const [first, second] = rep % 2 === 0 ? [measureEtcd, measureNeuwerk] : [measureNeuwerk, measureEtcd];
          const a = await first();
          const b = await second();
          const key = `${via}, c=${concurrency}`;
          const entry = samples.get(key) ?? { etcd: [], neuwerk: [] };
          entry.etcd.push(rep % 2 === 0 ? a : b);
          entry.neuwerk.push(rep % 2 === 0 ? b : a);
          samples.set(key, entry);
        }
      }
    }
    const idleAfter = await idleRss();
    const hook = (command: string): string => `${process.execPath} ${HOOKS} ${command} ${stateFile}`;
    const failures: string[] = [];
    const failover = async (system: string, args: string[]): Promise<FailoverResult | null> => {
      try {
        return await lastJsonLine<FailoverResult>(join(KIT, 'failover.mjs'), args, 15 * 60_000);
      } catch (err) {
        failures.push(`${system} failover run failed: ${(err as Error).message.split('\n').slice(0, 3).join(' ')}`);
        return null;
      }
    };
    const etcdFailover = await failover('etcd', ['--rounds', String(FAILOVER_ROUNDS)]);
    const neuwerkFailover = await failover('neuwerk', [
      '--kind', 'neuwerk', '--url', state.members.map((m) => m.url).join(','), '--token', token, '--ca', caFile, '--zone', 'bench',
      '--rounds', String(FAILOVER_ROUNDS), '--leader-cmd', hook('leader'), '--pid-cmd', `${hook('pid')} {n}`, '--restart-cmd', `${hook('restart')} {n}`,
    ]);
    const trouble = neuwerkFailover?.per_round.filter(troubled) ?? [];
    if (neuwerkFailover !== null && trouble.length > 0) {
      // The restart hook rewrote the state file with the new PIDs.
      const latest = JSON.parse(readFileSync(stateFile, 'utf8')) as BenchClusterState;
      const evidence = await keepFailoverEvidence(neuwerkFailover, cluster, latest);
      for (const r of trouble) {
        failures.push(
          `neuwerk round ${r.round}: killed member ${r.killed}, new leader ${r.new_leader ?? 'none seen'}, ${r.writes_acked} writes acknowledged, ` +
            `first write after the kill ${r.first_write_ok_ms === null ? 'never' : `${r.first_write_ok_ms} ms`}, not read back per member ${r.acked_lost_per_member.join('/')}, ` +
            `errors ${JSON.stringify(r.error_kinds)}`,
        );
      }
      failures.push(`neuwerk failover evidence (kit result, member logs, member status) kept in ${evidence}`);
    }
    const throughput = [...samples.entries()].map(([load, s]) => {
      const etcdOps = median(s.etcd.map((r) => r.ops_per_s));
      const neuwerkOps = median(s.neuwerk.map((r) => r.ops_per_s));
      return {
        load,
        etcd_writes_s: Math.round(etcdOps),
        neuwerk_writes_s: Math.round(neuwerkOps),
        ratio: Math.round((neuwerkOps / etcdOps) * 100) / 100,
        etcd_p50_ms: round1(median(s.etcd.map((r) => r.latency_ms.p50))),
        neuwerk_p50_ms: round1(median(s.neuwerk.map((r) => r.latency_ms.p50))),
        etcd_p99_ms: round1(median(s.etcd.map((r) => r.latency_ms.p99))),
        neuwerk_p99_ms: round1(median(s.neuwerk.map((r) => r.latency_ms.p99))),
        neuwerk_errors: s.neuwerk.reduce((sum, r) => sum + r.errors, 0),
      };
    });
    const memoryRow = (state: string, etcd: GroupRss, neuwerk: GroupRss, anon?: { etcdAnonKb: number; neuwerkAnonKb: number }) => ({
      state,
      etcd_member_mib: mib(etcd.maxKb),
      neuwerk_member_mib: mib(neuwerk.maxKb),
      ratio: Number.isFinite(etcd.maxKb) && Number.isFinite(neuwerk.maxKb) ? Math.round((neuwerk.maxKb / etcd.maxKb) * 100) / 100 : null,
      etcd_3_members_mib: mib(etcd.sumKb),
      neuwerk_3_members_mib: mib(neuwerk.sumKb),
      etcd_member_anon_mib: anon === undefined ? null : mib(anon.etcdAnonKb),
      neuwerk_member_anon_mib: anon === undefined ? null : mib(anon.neuwerkAnonKb),
    });
    const peakOver = (results: LoadResult[]): GroupRss => ({
      maxKb: Math.max(...results.map((r) => r.rss.maxKb)),
      sumKb: Math.max(...results.map((r) => r.rss.sumKb)),
    });
    const memory = [
      memoryRow(`idle, ${IDLE_SETTLE_S} s after forming`, idleFresh.etcd, idleFresh.neuwerk, idleFresh),
      ...[...samples.entries()].map(([load, s]) => memoryRow(`peak under writes, ${load}`, peakOver(s.etcd), peakOver(s.neuwerk))),
      memoryRow(`idle, ${IDLE_SETTLE_S} s after the last write`, idleAfter.etcd, idleAfter.neuwerk, idleAfter),
    ];
    const failoverRow = (system: string, r: FailoverResult) => ({
      system,
      rounds: r.rounds,
      first_write_ok_ms_median: r.median.first_write_ok_ms,
      first_write_ok_ms_range: r.range.first_write_ok_ms === null ? '-' : `${r.range.first_write_ok_ms[0]}-${r.range.first_write_ok_ms[1]}`,
      leader_seen_ms_median: r.median.leader_seen_ms,
      acked_writes_lost: r.acked_writes_lost,
    });
    return [
      {
        title: 'Replicated writes: neuwerk vs etcd, 3 members each, same machine, same run (median of reps)',
        rows: throughput,
        notes: [
          `${DURATION_S} s per measurement after ${WARMUP_S} s warm-up, ${REPS} repetitions, 128-byte values; neuwerk over HTTPS, etcd over plain HTTP.`,
          `before the first measurement each system ran ${SYSTEM_WARMUP_S} s of unmeasured load (c=16 through the leader).`,
        ],
      },
      {
        title: 'Memory: RSS of the members, idle and under the writes above (MiB)',
        rows: memory,
        notes: [
          'member = the largest member (under load: the largest peak of any member over the repetitions); 3 members = their sum (under load: the sum of each member\'s peak).',
          'RSS sampled every 100 ms from /proc; a Node process\'s RSS includes young-generation space that is only collected when full, so peaks are upper bounds.',
          'member_anon (idle rows): the largest member\'s anonymous (private) memory; the rest of its RSS is file-backed, the mapped executable and libraries (about 50 MiB for node, shared by every Node process).',
        ],
      },
      {
        title: 'Leader failover: kill -9 of the leader -> first successful write',
        rows: [...(etcdFailover ? [failoverRow('etcd', etcdFailover)] : []), ...(neuwerkFailover ? [failoverRow('neuwerk', neuwerkFailover)] : [])],
        notes: [
          `${FAILOVER_ROUNDS} rounds each with the kit's failover.mjs (4 writers, 250 ms client timeout).`,
          "acked_writes_lost: acknowledged writes a member did not return within the kit's 10 s read-back (a read that keeps failing counts too).",
          ...failures,
        ],
      },
    ];
  } finally {
    for (const member of state.members) {
      try {
        process.kill(member.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    const latest = JSON.parse(readFileSync(stateFile, 'utf8')) as BenchClusterState;
    for (const member of latest.members) {
      try {
        process.kill(member.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await cluster.stop();
    await etcdCtl('stop').catch(() => '');
  }
}
