/**
 * `npm run bench` entry (runs as `node dist/test/bench/run.js` after a build). Runs the named
 * benchmark modules in order, prints one table per result, and writes everything as JSON to
 * `bench-results/<UTC timestamp>.json` at the repository root (git-ignored).
 *
 *   npm run bench                                  every benchmark
 *   npm run bench -- --only raft-core,raft-append  just those
 *   npm run bench -- --list                        names and descriptions
 *
 * A benchmark that throws is reported and the others still run; the exit code is then 1.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, platform, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchClusterVsEtcd } from './cluster-vs-etcd.js';
import { benchDataplaneVsPeers } from './dataplane-vs-peers.js';
import { benchHaproxyScale } from './haproxy-scale.js';
import { benchNodeMemory } from './node-memory.js';
import { benchPolicyDecision } from './policy-decision.js';
import { benchPolicyPropagation } from './policy-propagation.js';
import { benchRaftAppend } from './raft-append.js';
import { benchRaftApply } from './raft-apply.js';
import { describeTempLocation, formatTable, type BenchTable } from './raft-bench-util.js';
import { benchRaftCore } from './raft-core.js';
import { benchRaftHost } from './raft-host.js';
import { benchRaftSnapshot } from './raft-snapshot.js';

/** A named benchmark: what it measures and how to run it. */
interface Benchmark {
  readonly name: string;
  readonly description: string;
  readonly run: () => Promise<BenchTable[]>;
}

const BENCHMARKS: readonly Benchmark[] = [
  { name: 'raft-core', description: 'entries/s through 3 pure Raft cores with an in-memory pump, per payload size', run: benchRaftCore },
  { name: 'raft-append', description: 'durable log append entries/s, one transaction per entry vs group commit', run: benchRaftAppend },
  { name: 'raft-apply', description: 'keyval puts/s through StateMachine.apply, per batch size and synchronous mode', run: benchRaftApply },
  { name: 'raft-snapshot', description: 'snapshot create/install time and file size at 10k, 100k and 1M keyval records', run: benchRaftSnapshot },
  { name: 'raft-host', description: 'single-node replicated writes through RaftReplicator at concurrency 1/16/64; time to leader', run: benchRaftHost },
  {
    name: 'cluster-vs-etcd',
    description: '3-node replicated keyval writes and leader failover, side by side with a 3-member etcd (../shared/bench/etcd)',
    run: benchClusterVsEtcd,
  },
  {
    name: 'policy-decision',
    description: 'policy decision time, memory and compile time at 10, 1k, 10k and 100k rules',
    run: async () => [
      {
        title: 'Policy scale: decision time and memory (DESIGN §10)',
        rows: (await benchPolicyDecision()).map((row) => ({ ...row })),
      },
    ],
  },
  {
    name: 'policy-propagation',
    description: '3-node cluster: policy PUT through the leader -> every node\'s DNS proxy enforces it (p50/p99/max over 20 flips)',
    run: benchPolicyPropagation,
  },
  {
    name: 'dataplane-vs-peers',
    description: 'DNS proxy vs dnsmasq and forward proxy vs Squid, side by side in one run (../shared/bench/dns and proxy)',
    run: benchDataplaneVsPeers,
  },
  {
    name: 'haproxy-scale',
    description: 'CONNECT tunnels/s directly to one node vs through HAProxy (rendered by lb haproxy) in front of 3 nodes, same run',
    run: benchHaproxyScale,
  },
  { name: 'node-memory', description: 'RSS of one full node idle, under keyval writes, DNS, CONNECT, plain HTTP and a 10k-rule policy PUT, idle again', run: benchNodeMemory },
];

/** Repository root: this file runs from dist/test/bench/. */
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const RESULTS_DIR = join(REPO_ROOT, 'bench-results');

function usage(message: string): never {
  console.error(`${message}\nusage: npm run bench [-- --only <name,...>] [-- --list]\nbenchmarks: ${BENCHMARKS.map((b) => b.name).join(', ')}`);
  process.exit(2);
}

function selectBenchmarks(argv: readonly string[]): readonly Benchmark[] | null {
  let only: string[] | null = null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--list') return null;
    if (arg === '--only' || arg.startsWith('--only=')) {
      const value = arg === '--only' ? argv[++i] : arg.slice('--only='.length);
      if (value === undefined || value === '') usage('--only needs a comma-separated list of benchmark names');
      only = [...(only ?? []), ...value.split(',').map((s) => s.trim()).filter((s) => s !== '')];
    } else {
      usage(`unknown argument ${arg}`);
    }
  }
  if (only === null) return BENCHMARKS;
  const unknown = only.filter((name) => !BENCHMARKS.some((b) => b.name === name));
  if (unknown.length > 0) usage(`unknown benchmark ${unknown.join(', ')}`);
  return BENCHMARKS.filter((b) => only.includes(b.name));
}

function timestampForFile(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/:/g, '-');
}

async function main(): Promise<number> {
  const selected = selectBenchmarks(process.argv.slice(2));
  if (selected === null) {
    for (const b of BENCHMARKS) console.log(`${b.name.padEnd(16)} ${b.description}`);
    return 0;
  }
  const startedAt = new Date();
  const cpuList = cpus();
  const machine = {
    cpuModel: cpuList[0]?.model ?? 'unknown',
    cpuCount: cpuList.length,
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    platform: `${platform()} ${release()}`,
    node: process.version,
    tempDir: describeTempLocation(),
  };
  console.log(`neuwerk benchmarks, ${startedAt.toISOString()}`);
  console.log(`machine: ${machine.cpuModel} x${machine.cpuCount}, ${machine.memoryGiB} GiB, ${machine.platform}, node ${machine.node}`);
  console.log(`temp dir: ${machine.tempDir.dir} on ${machine.tempDir.fsType}${machine.tempDir.inMemory ? ' (in memory: fsync is free)' : ''}\n`);

  const results: { name: string; durationMs: number; tables: BenchTable[]; error?: string }[] = [];
  let failed = false;
  for (const bench of selected) {
    console.log(`== ${bench.name}: ${bench.description}`);
    const started = performance.now();
    try {
      const tables = await bench.run();
      const durationMs = Math.round(performance.now() - started);
      for (const table of tables) console.log(`${formatTable(table)}\n`);
      console.log(`(${bench.name} took ${(durationMs / 1000).toFixed(1)} s)\n`);
      results.push({ name: bench.name, durationMs, tables });
    } catch (err) {
      failed = true;
      const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
      console.error(`${bench.name} failed: ${message}\n`);
      results.push({ name: bench.name, durationMs: Math.round(performance.now() - started), tables: [], error: message });
    }
  }

  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${timestampForFile(startedAt)}.json`);
  writeFileSync(file, `${JSON.stringify({ startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), machine, results }, null, 2)}\n`);
  console.log(`results written to ${file}`);
  return failed ? 1 : 0;
}

process.exitCode = await main();
