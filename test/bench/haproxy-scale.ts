/**
 * What horizontal scale buys on this machine: CONNECT tunnels/s straight to one node's forward
 * proxy versus through a real HAProxy in front of three nodes, with the kit's load generator
 * (`../shared/bench/proxy/bench.mjs`, mode connect-rate: CONNECT, 64 bytes echoed, close) in one
 * run, alternating the order per repetition.
 *
 * - `direct`: bench.mjs -> node 1's proxy.
 * - `haproxy source`: the configuration `neuwerk lb haproxy` renders (balance source, consistent
 *   hashing). The load generator connects from one address, so every tunnel lands on one node:
 *   this row is the cost of the extra hop.
 * - `haproxy roundrobin`: the same file with the proxy backend's `balance` line set to
 *   `roundrobin`, so tunnels spread over the three nodes (what many client addresses give).
 *
 * The three nodes are a real cluster (`TestCluster`), the origin an echo server in this process,
 * the policy allows exactly that origin. Bounded: DURATION_S per measurement × REPS × loads ×
 * 3 targets, each under a timeout; every process is stopped by PID at the end.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { TestCluster, freePort, type ClusterMember } from '../e2e/cluster-harness.js';
import { HaproxyProcess } from '../e2e/haproxy-harness.js';
import { runCli, tempDir } from '../e2e/harness.js';
import { startEchoServer } from './dataplane-fixtures.js';
import { median, round, type BenchTable } from './raft-bench-util.js';

const run = promisify(execFile);
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BENCH_MJS = resolve(REPO_ROOT, '..', 'shared', 'bench', 'proxy', 'bench.mjs');

/** Seconds per measurement, after WARMUP_S. */
const DURATION_S = Number(process.env.BENCH_HAPROXY_DURATION_S ?? 4);
const WARMUP_S = 1;
/** Repetitions per target and load; the order of the targets rotates per repetition. */
const REPS = Number(process.env.BENCH_HAPROXY_REPS ?? 3);
const STEP_TIMEOUT_MS = (DURATION_S + WARMUP_S + 30) * 1000;
const CONCURRENCIES = [16, 64] as const;
const PROXY_BACKEND = 'neuwerk_proxy_nodes';

interface BenchResult {
  ops_per_s: number;
  errors: number;
  lat_ms?: { p50: number | null; p99: number | null };
  procs: Record<string, { cpu_pct: number }>;
  sys: { other_cpu_pct: number };
}

async function connectRate(proxy: string, target: string, concurrency: number, pids: string, label: string): Promise<BenchResult> {
  const { stdout } = await run(
    process.execPath,
    [BENCH_MJS, '--proxy', proxy, '--mode', 'connect-rate', '--target', target, '--concurrency', String(concurrency),
      '--duration', String(DURATION_S), '--warmup', String(WARMUP_S), '--pids', pids, '--label', label],
    { timeout: STEP_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 },
  );
  const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (line === undefined) throw new Error(`bench.mjs printed no result for ${label}`);
  return JSON.parse(line) as BenchResult;
}

function med(values: readonly (number | null | undefined)[]): number | null {
  const finite = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  return finite.length === 0 ? null : round(median(finite), 2);
}

export async function benchHaproxyScale(): Promise<BenchTable[]> {
  if (!existsSync(BENCH_MJS)) throw new Error(`the shared benchmark kit is not at ${BENCH_MJS}`);
  const scratch = tempDir('neuwerk-bench-haproxy-');
  const echo = await startEchoServer();
  let cluster: TestCluster | null = null;
  const balancers: HaproxyProcess[] = [];
  try {
    cluster = await TestCluster.create(3, async () => ['--proxy-bind', `127.0.0.1:${await freePort()}`, '--default-policy', 'deny']);
    const nodes = cluster.members;
    const first = nodes[0] as ClusterMember;
    const token = await cluster.token();
    const policy = {
      default_policy: 'deny',
      source_groups: [{ id: 'bench', sources: { cidrs: ['127.0.0.0/8'] }, rules: [{ id: 'echo', action: 'allow', match: { dst_cidrs: ['127.0.0.1/32'], dst_ports: [echo.port] } }] }],
    };
    const put = await cluster.api(first, 'PUT', '/api/v1/policy', policy);
    if (put.status !== 200) throw new Error(`policy PUT answered ${put.status}: ${JSON.stringify(put.json)}`);
    await new Promise((r) => setTimeout(r, 1_000)); // every node applies the policy (propagation p99 is ~25 ms)

    const bindings: Record<'source' | 'roundrobin', string> = { source: `127.0.0.1:${await freePort()}`, roundrobin: `127.0.0.1:${await freePort()}` };
    for (const balance of ['source', 'roundrobin'] as const) {
      const configPath = join(scratch.path, `haproxy-${balance}.cfg`);
      const statsSocket = join(scratch.path, `${balance}.sock`);
      const rendered = await runCli(['lb', 'haproxy', '--http-addr', first.node.httpAddress, '--insecure', '--token', token,
        '--proxy-bind', bindings[balance], '--api-bind', `127.0.0.1:${await freePort()}`, '--stats-socket', statsSocket, '--output', configPath]);
      if (rendered.code !== 0) throw new Error(`lb haproxy failed: ${rendered.stderr}`);
      if (balance === 'roundrobin') {
        const text = readFileSync(configPath, 'utf8');
        const changed = text.replace(/(backend neuwerk_proxy_nodes\n\s+)balance source\n\s+hash-type consistent\n/, '$1balance roundrobin\n');
        if (changed === text) throw new Error('the rendered configuration has no "balance source" in the proxy backend to replace');
        writeFileSync(configPath, changed);
      }
      const haproxy = await HaproxyProcess.start(configPath, statsSocket, scratch.path);
      balancers.push(haproxy);
      await haproxy.waitForServers(PROXY_BACKEND, (s) => s.size === 3 && [...s.values()].every((v) => v === 'UP'), 'three servers UP');
    }

    const targets = [
      { name: 'direct to node 1', proxy: first.node.proxyAddress },
      { name: 'haproxy source (1 client address)', proxy: bindings.source },
      { name: 'haproxy roundrobin (3 nodes)', proxy: bindings.roundrobin },
    ];
    const pids = nodes.map((m, i) => `node${i + 1}=${m.node.child.pid as number}`).join(',');
    const origin = `127.0.0.1:${echo.port}`;
    const rows: BenchTable['rows'] = [];
    const notes: string[] = [];
    for (const concurrency of CONCURRENCIES) {
      const results = new Map<string, BenchResult[]>(targets.map((t) => [t.name, []]));
      for (let rep = 0; rep < REPS; rep += 1) {
        const order = targets.map((_, i) => targets[(i + rep) % targets.length] as (typeof targets)[number]);
        for (const target of order) results.get(target.name)?.push(await connectRate(target.proxy, origin, concurrency, pids, `${target.name} c=${concurrency}`));
      }
      const direct = med((results.get(targets[0]!.name) ?? []).map((r) => r.ops_per_s));
      for (const target of targets) {
        const rs = results.get(target.name) ?? [];
        const rate = med(rs.map((r) => r.ops_per_s));
        const nodeCpu = med(rs.map((r) => Object.values(r.procs).reduce((sum, p) => sum + p.cpu_pct, 0)));
        rows.push({
          c: concurrency,
          target: target.name,
          'tunnels/s': rate === null ? null : round(rate, 0),
          'vs direct': rate === null || direct === null ? null : round(rate / direct, 2),
          p50_ms: med(rs.map((r) => r.lat_ms?.p50)),
          p99_ms: med(rs.map((r) => r.lat_ms?.p99)),
          'node cpu %': nodeCpu,
          errors: rs.reduce((sum, r) => sum + r.errors, 0),
        });
        const other = rs.map((r) => r.sys.other_cpu_pct);
        if (other.some((o) => o > 30)) notes.push(`${target.name} c=${concurrency}: other CPU up to ${Math.max(...other)} % during a measurement`);
      }
    }
    notes.push(
      `kit bench.mjs connect-rate (CONNECT 127.0.0.1:echo, 64 B echoed, close), ${REPS} reps × ${DURATION_S} s after ${WARMUP_S} s warm-up, order rotating; medians.`,
      "node cpu % = the three nodes' CPU summed (100 % = one core); HAProxy and the load generator share the same 2 cores.",
    );
    return [{ title: 'Forward proxy: one node directly vs HAProxy in front of 3 nodes (same run)', rows, notes }];
  } finally {
    for (const haproxy of balancers) await haproxy.stop();
    await cluster?.stop();
    await echo.close();
    scratch.cleanup();
  }
}
