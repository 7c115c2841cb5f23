/**
 * DESIGN §10: neuwerk's dataplane side by side with its peers from the shared kit
 * (`../shared/bench/`), in one run, on the same machine, with the same load generators:
 *
 * - DNS: neuwerk's DNS proxy (standalone child process, NSD upstream, the kit's 10,000-name deny
 *   list) vs dnsmasq without cache (`dnsmasq-nocache`, and `dnsmasq-nocache-deny` with the same
 *   list), measured by the kit's `dns/run.sh` (dnsperf): qps, CPU µs per query, p50/p99 at a fixed
 *   rate, per query set; neuwerk must answer exactly 50 % NXDOMAIN on `mixed50`.
 * - Forward proxy: neuwerk's proxy (standalone child process, the kit's dnsmasq as resolver, a
 *   policy equal to Squid's) vs Squid, with the kit's `proxy/bench.mjs` in modes connect-rate,
 *   connect-throughput, http-forward and deny-rate, alternating who goes first.
 *
 * Bounded: DNS_DURATION_S per dnsperf measurement × DNS_RUNS, PROXY_DURATION_S per proxy
 * measurement × PROXY_REPS, each external step under a timeout. Everything targets 127.0.0.1; the
 * kit's processes are stopped with the kit's own `stop`, neuwerk's children by PID.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { errorText } from './kit-tools.js';
import { median, round, type BenchCell, type BenchTable } from './raft-bench-util.js';
import { mib, readRssKb } from './rss.js';

const run = promisify(execFile);
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const KIT = resolve(REPO_ROOT, '..', 'shared', 'bench');
const PROXIES_CLI = join(REPO_ROOT, 'dist', 'test', 'bench', 'dataplane-proxies.js');
const BENCH_DIR = process.env.BENCH_DIR ?? '/tmp/neuwerk-bench';
const DNS_DIR = process.env.DNS_DIR ?? join(BENCH_DIR, 'dns');

/** Seconds per dnsperf measurement (throughput and fixed-rate latency each). */
const DNS_DURATION_S = Number(process.env.BENCH_DNS_DURATION_S ?? 5);
/** dnsperf rounds per target and query set. */
const DNS_RUNS = Number(process.env.BENCH_DNS_RUNS ?? 2);
/** Upper bound of the whole `dns/run.sh` invocation. */
const DNS_RUN_TIMEOUT_MS = 10 * 60_000;
/** Seconds per proxy measurement, after PROXY_WARMUP_S. */
const PROXY_DURATION_S = Number(process.env.BENCH_PROXY_DURATION_S ?? 4);
const PROXY_WARMUP_S = 1;
/** Repetitions per proxy mode and concurrency (who goes first alternates). */
const PROXY_REPS = Number(process.env.BENCH_PROXY_REPS ?? 2);
/** Which parts run: `dns`, `proxy` or both (default), comma-separated. */
const PARTS = new Set((process.env.BENCH_DATAPLANE_PARTS ?? 'dns,proxy').split(',').map((part) => part.trim()));
/** Upper bound of one `proxy/bench.mjs` invocation. */
const PROXY_STEP_TIMEOUT_MS = (PROXY_DURATION_S + PROXY_WARMUP_S + 30) * 1000;
/** Upper bound for a kit start/stop script and for a neuwerk child to listen or exit. */
const KIT_SCRIPT_TIMEOUT_MS = 5 * 60_000;
/** Upper bound of the single full pass over mixed50 that checks the NXDOMAIN share. */
const FULL_PASS_TIMEOUT_MS = 30_000;
const CHILD_START_TIMEOUT_MS = 20_000;
const CHILD_STOP_TIMEOUT_MS = 5_000;

/** Proxy loads measured: mode and concurrency. */
const PROXY_LOADS: readonly { mode: string; concurrency: number }[] = [
  { mode: 'connect-rate', concurrency: 1 },
  { mode: 'connect-rate', concurrency: 16 },
  { mode: 'connect-rate', concurrency: 64 },
  { mode: 'connect-throughput', concurrency: 16 },
  { mode: 'http-forward', concurrency: 16 },
  { mode: 'deny-rate', concurrency: 16 },
];

/** A neuwerk dataplane child process started through `dataplane-proxies.js`. */
interface NeuwerkChild {
  readonly child: ChildProcess;
  readonly pid: number;
  /** host:port it listens on. */
  readonly address: string;
}

async function startNeuwerk(args: string[]): Promise<NeuwerkChild> {
  const child = spawn(process.execPath, [PROXIES_CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const lines = createInterface({ input: child.stdout! });
  try {
    const first = await new Promise<string>((resolveLine, reject) => {
      const timer = setTimeout(() => reject(new Error(`neuwerk ${args[0]} did not listen within ${CHILD_START_TIMEOUT_MS} ms: ${stderr}`)), CHILD_START_TIMEOUT_MS);
      lines.once('line', (line) => {
        clearTimeout(timer);
        resolveLine(line);
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`neuwerk ${args[0]} exited with ${code}: ${stderr}`));
      });
    });
    const info = JSON.parse(first) as { pid: number; dns: string | null; proxy: string | null };
    const address = args[0] === 'dns' ? info.dns : info.proxy;
    if (address === null) throw new Error(`neuwerk ${args[0]} reported no listener: ${first}`);
    return { child, pid: info.pid, address };
  } catch (err) {
    await stopNeuwerk({ child, pid: child.pid ?? -1, address: '' });
    throw err;
  }
}

async function stopNeuwerk(running: NeuwerkChild): Promise<void> {
  const { child } = running;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

async function kit(script: string, ...args: string[]): Promise<string> {
  return (await run('bash', [join(KIT, script), ...args], { timeout: KIT_SCRIPT_TIMEOUT_MS, env: { ...process.env, BENCH_DIR } })).stdout.trim();
}

function ratio(a: number | null, b: number | null, digits = 2): number | null {
  return a === null || b === null || !Number.isFinite(a) || !Number.isFinite(b) || b === 0 ? null : round(a / b, digits);
}

// ---------------------------------------------------------------------------------------------
// DNS

/** One row of the kit's runs.tsv. */
interface DnsRun {
  target: string;
  qset: string;
  mode: string;
  qps: number;
  p50: number | null;
  p99: number | null;
  usPerQuery: number | null;
  /** Peak RSS of the server during the run (the kit samples it every 0.5 s), MiB. */
  rssMiB: number | null;
  rcodes: string;
}

function parseRunsTsv(text: string): DnsRun[] {
  const rows: DnsRun[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.split('\t');
    if (f.length < 14) continue;
    const pct = f[7]!.split(' ').map((x) => (x === '-' ? null : Number(x)));
    rows.push({
      target: f[0]!,
      qset: f[1]!,
      mode: f[2]!,
      qps: Number(f[4]),
      p50: pct[0] ?? null,
      p99: pct[2] ?? null,
      usPerQuery: f[9] === '-' ? null : Number(f[9]),
      rssMiB: f[12] === '-' ? null : Number(f[12]),
      rcodes: f[13]!,
    });
  }
  return rows;
}

/** NXDOMAIN share in percent from an rcodes cell like `NOERROR 2000 (50.00%) NXDOMAIN 2000 (50.00%)`. */
function nxdomainPercent(rcodes: string): number {
  const match = /NXDOMAIN \d+ \(([\d.]+)%\)/.exec(rcodes);
  return match === null ? 0 : Number(match[1]);
}

/** The largest of the readings present, or null. */
function peakOf(values: (number | null)[]): number | null {
  const present = values.filter((v): v is number => v !== null && Number.isFinite(v));
  return present.length === 0 ? null : Math.max(...present);
}

function med(values: (number | null)[]): number | null {
  const present = values.filter((v): v is number => v !== null && Number.isFinite(v));
  return present.length === 0 ? null : median(present);
}

/** One pass over the whole mixed50 file (dnsperf -n 1): exactly half the answers must be NXDOMAIN. */
async function mixed50FullPass(address: string): Promise<string> {
  const colon = address.lastIndexOf(':');
  const file = join(DNS_DIR, 'queries', 'mixed50.txt');
  const total = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').length;
  try {
    const { stdout } = await run('dnsperf', ['-s', address.slice(0, colon), '-p', address.slice(colon + 1), '-d', file, '-n', '1', '-q', '100', '-t', '5'], { timeout: FULL_PASS_TIMEOUT_MS });
    const nx = Number(/NXDOMAIN (\d+)/.exec(stdout)?.[1] ?? 0);
    const noerror = Number(/NOERROR (\d+)/.exec(stdout)?.[1] ?? 0);
    const ok = nx * 2 === total && noerror * 2 === total;
    return `mixed50 one full pass (${total} queries, dnsperf -n 1): neuwerk NOERROR ${noerror}, NXDOMAIN ${nx} -> ${ok ? 'exactly 50 % NXDOMAIN: OK' : 'NOT 50 % NXDOMAIN'}`;
  } catch (err) {
    return `mixed50 full pass failed: ${errorText(err)}`;
  }
}

async function benchDns(): Promise<BenchTable> {
  const notes: string[] = [];
  const title = 'DNS proxy: neuwerk vs dnsmasq (no cache), NSD upstream, kit dns/run.sh (dnsperf), same run (median of runs)';
  let peersUp = true;
  try {
    await kit('dns/serve.sh', 'start', 'all');
  } catch (err) {
    peersUp = false;
    notes.push(`kit DNS servers did not start (${errorText(err)}); neuwerk cannot be measured without the NSD upstream`);
  }
  let neuwerk: NeuwerkChild | null = null;
  try {
    if (!peersUp) return { title, rows: [], notes };
    const upstream = await kit('dns/serve.sh', 'addr', 'upstream');
    const denylist = join(DNS_DIR, 'gen', 'denylist.txt');
    neuwerk = await startNeuwerk(['dns', '--bind', '127.0.0.1:0', '--upstream', upstream, '--denylist', denylist]);
    const idleKb = readRssKb(neuwerk.pid);
    const out = join(DNS_DIR, 'results', `neuwerk-bench-${new Date().toISOString().replace(/[:.]/g, '-')}`);
    await run('bash', [join(KIT, 'dns', 'run.sh'), 'dnsmasq-nocache', 'dnsmasq-nocache-deny', `neuwerk=${neuwerk.address}@${neuwerk.pid}`], {
      timeout: DNS_RUN_TIMEOUT_MS,
      maxBuffer: 16 * 1024 * 1024,
      env: { ...process.env, BENCH_DIR, DUR: String(DNS_DURATION_S), RUNS: String(DNS_RUNS), OUT: out },
    });
    const runs = parseRunsTsv(readFileSync(join(out, 'runs.tsv'), 'utf8'));
    const rows: Record<string, BenchCell>[] = [];
    for (const qset of ['allowed', 'mixed50']) {
      const pick = (target: string, mode: string): DnsRun[] => runs.filter((r) => r.target === target && r.qset === qset && r.mode === mode);
      const peers = ['dnsmasq-nocache', 'dnsmasq-nocache-deny'];
      const nwTput = pick('neuwerk', 'tput');
      const nwLat = pick('neuwerk', 'lat');
      const nwQps = med(nwTput.map((r) => r.qps));
      const nwUs = med(nwTput.map((r) => r.usPerQuery));
      for (const peer of peers) {
        const tput = pick(peer, 'tput');
        const lat = pick(peer, 'lat');
        const qps = med(tput.map((r) => r.qps));
        const us = med(tput.map((r) => r.usPerQuery));
        rows.push({
          queries: qset,
          peer,
          peer_qps: qps === null ? null : Math.round(qps),
          neuwerk_qps: nwQps === null ? null : Math.round(nwQps),
          qps_ratio: ratio(nwQps, qps),
          peer_us_q: us,
          neuwerk_us_q: nwUs,
          cpu_ratio: ratio(nwUs, us),
          peer_p50_ms: med(lat.map((r) => r.p50)),
          neuwerk_p50_ms: med(nwLat.map((r) => r.p50)),
          peer_p99_ms: med(lat.map((r) => r.p99)),
          neuwerk_p99_ms: med(nwLat.map((r) => r.p99)),
          peer_rss_mib: peakOf(tput.map((r) => r.rssMiB)),
          neuwerk_rss_mib: peakOf(nwTput.map((r) => r.rssMiB)),
        });
      }
      if (qset === 'mixed50') {
        const shares = nwTput.map((r) => nxdomainPercent(r.rcodes));
        const denyLat = pick('dnsmasq-nocache-deny', 'lat').map((r) => r.rcodes);
        const sameAsDeny = nwLat.length > 0 && nwLat.every((r, i) => r.rcodes === denyLat[i]);
        notes.push(
          `mixed50 in the timed runs: neuwerk ${shares.map((s) => `${s.toFixed(2)} %`).join(', ')} NXDOMAIN (throughput runs stop part-way through the file, so not exactly 50 %); ` +
            `fixed-rate runs (same queries for every target): rcodes ${sameAsDeny ? 'identical to' : 'DIFFER from'} dnsmasq-nocache-deny's`,
        );
        notes.push(await mixed50FullPass(neuwerk.address));
      }
    }
    notes.push(
      `${DNS_RUNS} runs × ${DNS_DURATION_S} s per mode after a 2 s warm-up; qps and µs CPU/query from the saturating runs (dnsperf -q 100), p50/p99 at a fixed ${process.env.LAT_QPS ?? 5000} qps; ratios are neuwerk / peer.`,
      'neuwerk has no answer cache, so dnsmasq without cache is its peer; compare allowed with dnsmasq-nocache and mixed50 with dnsmasq-nocache-deny (same 10,000-name deny list).',
      `rss_mib: the server's peak RSS over the saturating runs (the kit samples it every 0.5 s); neuwerk's DNS process idle before the runs, deny list compiled: ${mib(idleKb) ?? '?'} MiB.`,
      `raw dnsperf output: ${out}`,
    );
    return { title, rows, notes };
  } finally {
    if (neuwerk !== null) await stopNeuwerk(neuwerk);
    await kit('dns/serve.sh', 'stop', 'all').catch(() => '');
  }
}

// ---------------------------------------------------------------------------------------------
// Forward proxy

interface ProxyResult {
  ops_per_s: number;
  mb_per_s: number;
  errors: number;
  all_403?: boolean;
  lat_ms?: { p50: number | null; p99: number | null };
  procs: Record<string, { cpu_pct: number; cpu_us_per_op: number | null; rss_max_kb: number }>;
  sys: { other_cpu_pct: number };
}

async function proxyBench(proxy: string, pid: number, mode: string, concurrency: number, label: string): Promise<ProxyResult> {
  const { stdout } = await run(
    process.execPath,
    [
      join(KIT, 'proxy', 'bench.mjs'), '--proxy', proxy, '--mode', mode, '--concurrency', String(concurrency),
      '--duration', String(PROXY_DURATION_S), '--warmup', String(PROXY_WARMUP_S), '--pids', `proxy=${pid}`, '--label', label,
    ],
    { timeout: PROXY_STEP_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 },
  );
  const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (line === undefined) throw new Error(`bench.mjs ${mode} printed no result`);
  return JSON.parse(line) as ProxyResult;
}

/** CPU per operation, or for the throughput mode CPU µs per MB moved. */
function cpuPerUnit(r: ProxyResult, mode: string): number | null {
  const proc = r.procs.proxy;
  if (proc === undefined) return null;
  if (mode === 'connect-throughput') return r.mb_per_s > 0 ? round(((proc.cpu_pct / 100) * 1e6) / r.mb_per_s, 1) : null;
  return proc.cpu_us_per_op;
}

async function benchProxy(): Promise<BenchTable> {
  const title = 'Forward proxy: neuwerk vs Squid, kit proxy/bench.mjs, same run (median of reps)';
  const notes: string[] = [];
  let neuwerk: NeuwerkChild | null = null;
  try {
    await kit('proxy/proxyctl.sh', 'start', 'origin');
    await kit('proxy/proxyctl.sh', 'start', 'dns');
    let squidPid: number | null = null;
    try {
      await kit('proxy/proxyctl.sh', 'start', 'squid');
      squidPid = Number(await kit('proxy/proxyctl.sh', 'pid', 'squid'));
    } catch (err) {
      notes.push(`Squid could not be started (${errorText(err)}): only neuwerk's figures below`);
    }
    neuwerk = await startNeuwerk(['proxy', '--bind', '127.0.0.1:0', '--upstream', '127.0.0.1:15353']);
    const nw = neuwerk;
    const idle = { squid: squidPid === null ? Number.NaN : readRssKb(squidPid), neuwerk: readRssKb(nw.pid) };
    const rows: Record<string, BenchCell>[] = [];
    for (const load of PROXY_LOADS) {
      const squid: ProxyResult[] = [];
      const ours: ProxyResult[] = [];
      for (let rep = 0; rep < PROXY_REPS; rep += 1) {
        const measureSquid = async (): Promise<void> => {
          if (squidPid !== null) squid.push(await proxyBench('127.0.0.1:13128', squidPid, load.mode, load.concurrency, 'squid'));
        };
        const measureNeuwerk = async (): Promise<void> => {
          ours.push(await proxyBench(nw.address, nw.pid, load.mode, load.concurrency, 'neuwerk'));
        };
        // Alternate who goes first so drift on the shared machine does not favour one side.
        const [first, second] = rep % 2 === 0 ? [measureSquid, measureNeuwerk] : [measureNeuwerk, measureSquid];
        await first();
        await second();
      }
      const throughput = load.mode === 'connect-throughput';
      const rate = (rs: ProxyResult[]): number | null => med(rs.map((r) => (throughput ? r.mb_per_s : r.ops_per_s)));
      const cpu = (rs: ProxyResult[]): number | null => med(rs.map((r) => cpuPerUnit(r, load.mode)));
      const sRate = rate(squid);
      const nRate = rate(ours);
      const sCpu = cpu(squid);
      const nCpu = cpu(ours);
      rows.push({
        mode: load.mode,
        c: load.concurrency,
        unit: throughput ? 'MB/s' : load.mode === 'deny-rate' ? '403/s' : load.mode === 'http-forward' ? 'req/s' : 'tunnels/s',
        squid: sRate === null ? null : round(sRate, 0),
        neuwerk: nRate === null ? null : round(nRate, 0),
        ratio: ratio(nRate, sRate),
        squid_cpu_us: sCpu,
        neuwerk_cpu_us: nCpu,
        cpu_ratio: ratio(nCpu, sCpu),
        squid_p50_ms: throughput ? null : med(squid.map((r) => r.lat_ms?.p50 ?? null)),
        neuwerk_p50_ms: throughput ? null : med(ours.map((r) => r.lat_ms?.p50 ?? null)),
        squid_p99_ms: throughput ? null : med(squid.map((r) => r.lat_ms?.p99 ?? null)),
        neuwerk_p99_ms: throughput ? null : med(ours.map((r) => r.lat_ms?.p99 ?? null)),
        squid_rss_mib: peakOf(squid.map((r) => mib(r.procs.proxy?.rss_max_kb ?? Number.NaN))),
        neuwerk_rss_mib: peakOf(ours.map((r) => mib(r.procs.proxy?.rss_max_kb ?? Number.NaN))),
        neuwerk_errors: ours.reduce((sum, r) => sum + r.errors, 0),
        squid_errors: squidPid === null ? null : squid.reduce((sum, r) => sum + r.errors, 0),
      });
      if (load.mode === 'deny-rate') {
        notes.push(`deny-rate: every neuwerk answer 403: ${ours.every((r) => r.all_403 === true)}; every Squid answer 403: ${squidPid === null ? 'n/a' : squid.every((r) => r.all_403 === true)}`);
      }
      const other = [...squid, ...ours].map((r) => r.sys.other_cpu_pct);
      if (other.some((o) => o > 30)) notes.push(`${load.mode} c=${load.concurrency}: noisy box (other CPU up to ${Math.max(...other)} % during a measurement)`);
    }
    notes.push(
      `${PROXY_REPS} reps × ${PROXY_DURATION_S} s after ${PROXY_WARMUP_S} s warm-up, who goes first alternates; ratios are neuwerk / Squid.`,
      'cpu_us = proxy-process CPU µs per operation (per MB for connect-throughput); neuwerk policy = the kit\'s Squid allowlist (origin-{a,b,c}.bench.test, ports 18080-18082, 403 else).',
      `rss_mib: the proxy's peak RSS over the reps (bench.mjs samples it); idle before the first load: Squid ${mib(idle.squid) ?? '?'} MiB, neuwerk ${mib(idle.neuwerk) ?? '?'} MiB; neuwerk after the last load: ${mib(readRssKb(nw.pid)) ?? '?'} MiB.`,
    );
    return { title, rows, notes };
  } finally {
    if (neuwerk !== null) await stopNeuwerk(neuwerk);
    await kit('proxy/proxyctl.sh', 'stop', 'all').catch(() => '');
  }
}

/**
 * The `dataplane-vs-peers` benchmark: DNS proxy vs dnsmasq and forward proxy vs Squid, same run,
 * same load generators (the shared kit). A part whose peer cannot be started still reports
 * neuwerk's figures where possible and says why in its notes; a part that fails entirely is
 * reported as a table with the error in its notes so the other part still runs.
 */
export async function benchDataplaneVsPeers(): Promise<BenchTable[]> {
  if (!existsSync(join(KIT, 'proxy', 'bench.mjs')) || !existsSync(join(KIT, 'dns', 'run.sh'))) throw new Error(`the shared benchmark kit is not at ${KIT}`);
  if (!existsSync(PROXIES_CLI)) throw new Error(`${PROXIES_CLI} is missing: build first (npm run build)`);
  const tables: BenchTable[] = [];
  for (const [what, part] of [['DNS', benchDns], ['proxy', benchProxy]] as const) {
    if (!PARTS.has(what.toLowerCase())) continue;
    try {
      tables.push(await part());
    } catch (err) {
      tables.push({ title: `${what} comparison failed`, rows: [], notes: [errorText(err)] });
    }
  }
  return tables;
}
