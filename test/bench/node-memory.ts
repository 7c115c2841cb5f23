/**
 * DESIGN §10 "Memory: RSS of an idle node and under each load". One real node (`neuwerk start`,
 * single voter, management API, DNS proxy and forward proxy on 127.0.0.1, DNS upstream the shared
 * kit's dnsmasq) goes through these phases in order, one table row each: idle; keyval writes (the
 * kit's `etcd/bench.mjs`); DNS queries (dnsperf, allowed and denied names); CONNECT tunnels and
 * plain HTTP (the kit's `proxy/bench.mjs`); a PUT of a 10,000-rule policy; idle again. For every
 * phase: RSS when it starts, the peak sampled every SAMPLE_INTERVAL_MS while it runs, and RSS
 * SETTLE_AFTER_LOAD_MS after it ends (for the idle rows: after IDLE_MS without traffic).
 *
 * Bounded: IDLE_MS per idle phase, LOAD_DURATION_S per DNS and proxy load, KEYVAL_DURATION_S of
 * writes; every external step runs under a timeout. Everything targets 127.0.0.1. The node is
 * stopped by its process; of the kit's origin and dnsmasq only the pieces this run started are
 * stopped (someone else's running kit is used as it is and left alone).
 */
import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { PolicyDocument } from '../../src/policy/index.js';
import { NodeProcess, tempDir } from '../e2e/harness.js';
import { PROXY_KIT_ALLOWED_HOSTS, proxyKitPolicyDocument } from './dataplane-proxies.js';
import { errorText, lastJsonLine } from './kit-tools.js';
import { benchPolicyDocument } from './policy-decision.js';
import { nowMs, round, type BenchCell, type BenchTable } from './raft-bench-util.js';
import { mib, readRssAnonKb, readRssKb, RssSampler } from './rss.js';

const run = promisify(execFile);
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const KIT = resolve(REPO_ROOT, '..', 'shared', 'bench');
const BENCH_DIR = process.env.BENCH_DIR ?? '/tmp/neuwerk-bench';

/** Seconds of each DNS and proxy load (after the proxy tool's warm-up). */
const LOAD_DURATION_S = Number(process.env.BENCH_NODE_MEMORY_DURATION_S ?? 5);
const PROXY_WARMUP_S = 1;
const KEYVAL_DURATION_S = 8;
const KEYVAL_WARMUP_S = 2;
/** Length of each idle phase: the node after start, and the node after the last load. */
const IDLE_MS = 10_000;
/** RSS is read this long after a load ends (what the node gives back on its own). */
const SETTLE_AFTER_LOAD_MS = 5_000;
const SAMPLE_INTERVAL_MS = 100;
const LARGE_POLICY_RULES = 10_000;
/** Upper bound of one load-generator run beyond its own duration. */
const STEP_SLACK_MS = 30_000;
/** Upper bound of a kit start/stop script, an apt-get install and a policy PUT. */
const KIT_SCRIPT_TIMEOUT_MS = 5 * 60_000;
const APT_TIMEOUT_MS = 5 * 60_000;
const PUT_TIMEOUT_MS = 60_000;
const METRICS_TIMEOUT_MS = 5_000;

/** Names in the dnsperf query file: the kit's origins (allowed, forwarded) and names the policy denies (NXDOMAIN). */
const DNS_QUERY_NAMES = [...PROXY_KIT_ALLOWED_HOSTS, 'denied.bench.test', 'blocked-1.bench.test', 'tracker.example.com'];

/** What a load reports: its achieved rate, errors, and anything worth a note. */
interface LoadOutcome {
  readonly rate: number | null;
  readonly unit: string;
  readonly errors: number | null;
  readonly note?: string;
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took over ${timeoutMs} ms`)), timeoutMs)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** V8 heap in use (live objects and garbage not yet collected) from the node's own metrics, MiB; null when unreadable. */
async function heapUsedMib(metricsAddress: string): Promise<number | null> {
  try {
    const response = await fetch(`http://${metricsAddress}/metrics`, { signal: AbortSignal.timeout(METRICS_TIMEOUT_MS) });
    const match = /^neuwerk_nodejs_heap_size_used_bytes(?:\{[^}]*\})?\s+([\d.e+]+)/m.exec(await response.text());
    return match === null ? null : round(Number(match[1]) / 1024 ** 2, 1);
  } catch {
    return null;
  }
}

/** dnsperf on PATH, installed the way the kit does if missing; null when ready, else why not. */
async function ensureDnsperf(): Promise<string | null> {
  const script = 'command -v dnsperf >/dev/null && exit 0; export DEBIAN_FRONTEND=noninteractive; ' +
    'apt-get install -y -qq --no-install-recommends dnsperf >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq --no-install-recommends dnsperf >/dev/null; }';
  try {
    await run('bash', ['-c', script], { timeout: APT_TIMEOUT_MS });
    return null;
  } catch (err) {
    return `dnsperf is not available (${errorText(err)})`;
  }
}

/** dnsperf for LOAD_DURATION_S against `address` with `queryFile`: queries/s, lost queries, rcodes. */
async function dnsLoad(address: string, queryFile: string): Promise<LoadOutcome> {
  const colon = address.lastIndexOf(':');
  const args = ['-s', address.slice(0, colon), '-p', address.slice(colon + 1), '-d', queryFile, '-l', String(LOAD_DURATION_S), '-q', '64', '-t', '2'];
  const { stdout } = await run('dnsperf', args, { timeout: LOAD_DURATION_S * 1000 + STEP_SLACK_MS, maxBuffer: 16 * 1024 * 1024 });
  const qps = /Queries per second:\s+([\d.]+)/.exec(stdout);
  if (qps === null) throw new Error(`dnsperf printed no rate: ${stdout.slice(-300)}`);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(stdout)?.[1] ?? Number.NaN);
  const rcodes = /Response codes:\s+(.*)/.exec(stdout)?.[1]?.trim() ?? '?';
  return { rate: round(Number(qps[1]), 0), unit: 'queries/s', errors: Number.isFinite(lost) ? lost : null, note: `lost = dnsperf's lost queries; ${rcodes}` };
}

interface ProxyResult {
  readonly ops_per_s: number;
  readonly errors: number;
  readonly procs: Record<string, { rss_max_kb: number }>;
}

async function proxyLoad(proxy: string, pid: number, mode: string, concurrency: number, unit: string): Promise<LoadOutcome> {
  const args = ['--proxy', proxy, '--mode', mode, '--concurrency', String(concurrency), '--duration', String(LOAD_DURATION_S), '--warmup', String(PROXY_WARMUP_S), '--pids', `proxy=${pid}`];
  const r = await lastJsonLine<ProxyResult>(join(KIT, 'proxy', 'bench.mjs'), args, (LOAD_DURATION_S + PROXY_WARMUP_S) * 1000 + STEP_SLACK_MS);
  const kitPeak = r.procs.proxy === undefined ? null : mib(r.procs.proxy.rss_max_kb);
  return { rate: round(r.ops_per_s, 0), unit, errors: r.errors, note: `bench.mjs's own peak reading over its window: ${kitPeak ?? '?'} MiB` };
}

/**
 * The `node-memory` benchmark: one table, a row per phase (idle, keyval writes, DNS, CONNECT,
 * plain HTTP, 10,000-rule policy PUT, idle again). A load that fails leaves its row with the error
 * in `note` and the next phase still runs; a node that cannot start fails the benchmark.
 */
export async function benchNodeMemory(): Promise<BenchTable[]> {
  if (!existsSync(join(KIT, 'proxy', 'bench.mjs')) || !existsSync(join(KIT, 'etcd', 'bench.mjs'))) throw new Error(`the shared benchmark kit is not at ${KIT}`);
  const dir = tempDir('neuwerk-bench-memory-');
  const startedKit: string[] = [];
  let node: NodeProcess | null = null;
  const rows: Record<string, BenchCell>[] = [];
  const notes: string[] = [];
  try {
    for (const piece of ['origin', 'dns']) {
      const out = (await run('bash', [join(KIT, 'proxy', 'proxyctl.sh'), 'start', piece], { timeout: KIT_SCRIPT_TIMEOUT_MS, env: { ...process.env, BENCH_DIR } })).stdout;
      if (out.includes('already running')) notes.push(`the kit's ${piece} was already running (another run): used as it is and left running`);
      else startedKit.push(piece);
    }
    const dnsperfMissing = await ensureDnsperf();
    const n = await NodeProcess.start(join(dir.path, 'data'), ['--dns-bind', '127.0.0.1:0', '--dns-upstream', '127.0.0.1:15353', '--proxy-bind', '127.0.0.1:0']);
    node = n;

    /** One row: RSS at start, peak while `load` runs, RSS `settleMs` after it. */
    const phase = async (name: string, description: string, load: () => Promise<LoadOutcome>, settleMs = SETTLE_AFTER_LOAD_MS): Promise<void> => {
      if (n.child.exitCode !== null || n.child.signalCode !== null) throw new Error(`the node exited before phase ${name}: ${n.stderr.slice(-1000)}`);
      const startKb = readRssKb(n.pid);
      const sampler = new RssSampler([n.pid], SAMPLE_INTERVAL_MS);
      let outcome: LoadOutcome;
      try {
        outcome = await load();
      } catch (err) {
        outcome = { rate: null, unit: '', errors: null, note: `failed: ${errorText(err)}` };
      }
      const peak = sampler.stop();
      await sleep(settleMs);
      rows.push({
        phase: name,
        load: description,
        rate: outcome.rate,
        unit: outcome.unit,
        rss_start_mib: mib(startKb),
        rss_peak_mib: mib(peak.maxKb),
        rss_after_mib: mib(readRssKb(n.pid)),
        anon_after_mib: mib(readRssAnonKb(n.pid)),
        heap_used_after_mib: await heapUsedMib(n.metricsAddress),
        errors: outcome.errors,
        note: outcome.note ?? null,
      });
    };
    const idle = async (): Promise<LoadOutcome> => {
      await sleep(IDLE_MS);
      return { rate: null, unit: '', errors: null };
    };

    await phase('idle', `none for ${IDLE_MS / 1000} s after "node started" (no policy yet)`, idle, 0);
    const token = await n.adminToken();
    const caFile = join(dir.path, 'ca.pem');
    writeFileSync(caFile, n.caCert());
    const queryFile = join(dir.path, 'queries.txt');
    writeFileSync(queryFile, DNS_QUERY_NAMES.map((name) => `${name} A\n`).join(''));
    const auth = { authorization: `Bearer ${token}` };
    const putPolicy = async (doc: PolicyDocument): Promise<number> => {
      const sent = nowMs();
      const put = await withTimeout(n.api('PUT', '/api/v1/policy', doc, auth), PUT_TIMEOUT_MS, 'PUT /api/v1/policy');
      if (put.status !== 200) throw new Error(`PUT /api/v1/policy answered ${put.status}: ${JSON.stringify(put.json).slice(0, 300)}`);
      return nowMs() - sent;
    };
    await putPolicy(proxyKitPolicyDocument());
    await phase('keyval writes', `etcd/bench.mjs c=16, ${KEYVAL_DURATION_S} s after ${KEYVAL_WARMUP_S} s warm-up`, async () => {
      const args = ['--kind', 'neuwerk', '--url', `https://${n.httpAddress}`, '--token', token, '--ca', caFile, '--zone', 'bench',
        '--concurrency', '16', '--duration', String(KEYVAL_DURATION_S), '--warmup', String(KEYVAL_WARMUP_S)];
      const r = await lastJsonLine<{ ops_per_s: number; errors: number }>(join(KIT, 'etcd', 'bench.mjs'), args, (KEYVAL_DURATION_S + KEYVAL_WARMUP_S) * 1000 + STEP_SLACK_MS);
      return { rate: round(r.ops_per_s, 0), unit: 'writes/s', errors: r.errors };
    });
    await phase('DNS queries', `dnsperf -q 64, ${LOAD_DURATION_S} s, ${PROXY_KIT_ALLOWED_HOSTS.length} allowed + ${DNS_QUERY_NAMES.length - PROXY_KIT_ALLOWED_HOSTS.length} denied names`, async () => {
      if (dnsperfMissing !== null) throw new Error(dnsperfMissing);
      return dnsLoad(n.dnsAddress, queryFile);
    });
    await phase('CONNECT', `proxy/bench.mjs connect-rate c=64, ${LOAD_DURATION_S} s after ${PROXY_WARMUP_S} s warm-up`, () => proxyLoad(n.proxyAddress, n.pid, 'connect-rate', 64, 'tunnels/s'));
    await phase('plain HTTP', `proxy/bench.mjs http-forward c=16, ${LOAD_DURATION_S} s after ${PROXY_WARMUP_S} s warm-up`, () => proxyLoad(n.proxyAddress, n.pid, 'http-forward', 16, 'req/s'));
    const large = benchPolicyDocument(LARGE_POLICY_RULES).doc;
    const largeBytes = Buffer.byteLength(JSON.stringify(large));
    await phase('large policy', `PUT /api/v1/policy, ${LARGE_POLICY_RULES.toLocaleString('en-US')} rules (${round(largeBytes / 1e6, 1)} MB JSON)`, async () => {
      const ms = await putPolicy(large);
      return { rate: round(ms, 0), unit: 'ms for the PUT', errors: 0 };
    });
    await putPolicy(proxyKitPolicyDocument());
    await phase('idle again', `none for ${IDLE_MS / 1000} s after the last load (kit policy back)`, idle, 0);
    notes.push(
      'one node, single voter, everything on 127.0.0.1; DNS upstream and the proxy\'s resolver = the kit\'s dnsmasq (*.bench.test -> 127.0.0.1); policy = allow origin-{a,b,c}.bench.test on 18080-18082 at 127.0.0.0/8 (the large-policy row replaces it for that row only).',
      `rss_start = when the phase began, rss_peak = highest of readings every ${SAMPLE_INTERVAL_MS} ms while the load ran, rss_after = ${SETTLE_AFTER_LOAD_MS / 1000} s after the load ended (idle rows: at the end of the idle time).`,
      'anon_after = the anonymous (private) part of rss_after; the rest is file-backed, mostly the mapped node executable, shared with every Node process.',
      'heap_used_after = the node\'s own neuwerk_nodejs_heap_size_used_bytes right after rss_after was read (live objects plus garbage not yet collected).',
      'RSS includes the V8 heap, which grows until a collection runs, so peaks are upper bounds of what the node needs; RSS also counts memory V8 and the allocator keep after freeing it.',
      'errors: failed writes (keyval), lost queries (dnsperf), failed operations (bench.mjs); keyval and proxy rates exclude the warm-up.',
    );
    return [{ title: 'Memory: RSS of one full node, idle and under each load (DESIGN §10)', rows, notes }];
  } finally {
    if (node !== null) await node.stop();
    for (const piece of startedKit.reverse()) {
      await run('bash', [join(KIT, 'proxy', 'proxyctl.sh'), 'stop', piece], { timeout: KIT_SCRIPT_TIMEOUT_MS, env: { ...process.env, BENCH_DIR } }).catch(() => undefined);
    }
    dir.cleanup();
  }
}
