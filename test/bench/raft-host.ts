/**
 * The whole single-node write path: `RaftReplicator` on a real store (WAL, synchronous=FULL) with
 * the default Raft settings — propose, group commit, apply, resolve — measured by closed-loop
 * clients at concurrency 1, 16 and 64 (throughput and latency), plus the time from opening the
 * store to being leader (fresh store and restart).
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { openRaftReplicator, type RaftReplicator } from '../../src/cluster/raft-host.js';
import {
  DEFAULT_ELECTION_TIMEOUT_TICKS,
  DEFAULT_HEARTBEAT_TICKS,
  DEFAULT_SNAPSHOT_THRESHOLD_ENTRIES,
  DEFAULT_SNAPSHOT_TRAILING_ENTRIES,
  DEFAULT_TICK_MS,
  type RaftSettings,
} from '../../src/config/load.js';
import { openStoreDatabase, type SqliteDatabase } from '../../src/store/database.js';
import { makeBenchDir, median, nowMs, percentile, round, tempLocationNote, type BenchTable } from './raft-bench-util.js';

/** Concurrent closed-loop clients measured. */
export const HOST_CONCURRENCY = [1, 16, 64] as const;
/** Time budget of one measured run, in milliseconds. */
const RUN_BUDGET_MS = 1_000;
/** Measured runs per concurrency (median throughput; latencies pooled). */
const RUNS = 3;
/** Opens measured for time-to-leader, per kind (fresh, restart). */
const LEADER_TRIALS = 5;
/** Bytes of each value written. */
const VALUE_BYTES = 128;

const RAFT: RaftSettings = {
  tickMs: DEFAULT_TICK_MS,
  electionTimeoutTicks: DEFAULT_ELECTION_TIMEOUT_TICKS,
  heartbeatTicks: DEFAULT_HEARTBEAT_TICKS,
  snapshotThresholdEntries: DEFAULT_SNAPSHOT_THRESHOLD_ENTRIES,
  snapshotTrailingEntries: DEFAULT_SNAPSHOT_TRAILING_ENTRIES,
};

async function open(dir: string): Promise<{ replicator: RaftReplicator; db: SqliteDatabase }> {
  const dbPath = join(dir, 'raft.db');
  const db = openStoreDatabase(dbPath);
  const replicator = await openRaftReplicator({
    db,
    dbPath,
    nodeId: 'n1',
    snapshotsDir: join(dir, 'snapshots'),
    raft: RAFT,
    bootstrapVoters: ['n1'],
    send: () => undefined,
    onFatal: (err) => {
      throw err;
    },
  });
  return { replicator, db };
}

async function timeToLeader(base: string): Promise<BenchTable> {
  const fresh: number[] = [];
  const restart: number[] = [];
  for (let trial = 0; trial < LEADER_TRIALS; trial++) {
    const dir = join(base, `leader-${trial}`);
    let started = nowMs();
    let node = await open(dir);
    fresh.push(nowMs() - started);
    await node.replicator.propose({ v: 1, type: 'settings.put', key: 'k', value: 'v' });
    await node.replicator.close();
    node.db.close();
    started = nowMs();
    node = await open(dir);
    restart.push(nowMs() - started);
    await node.replicator.close();
    node.db.close();
  }
  const row = (kind: string, values: number[]): BenchTable['rows'][number] => ({
    start: kind,
    msMedian: round(median(values), 1),
    msMax: round(Math.max(...values), 1),
  });
  return {
    title: `Single voter: time from opening the store to leader (${LEADER_TRIALS} trials each)`,
    rows: [row('fresh store', fresh), row('restart', restart)],
    notes: ['includes opening SQLite, loading the log and the first durable Ready (term and vote)'],
  };
}

async function closedLoop(replicator: RaftReplicator, concurrency: number): Promise<{ writesPerSec: number; latenciesMs: number[] }> {
  const value = 'x'.repeat(VALUE_BYTES);
  const latenciesMs: number[] = [];
  const started = nowMs();
  let sequence = 0;
  const client = async (id: number): Promise<void> => {
    while (nowMs() - started < RUN_BUDGET_MS) {
      sequence += 1;
      const begin = nowMs();
      await replicator.propose({ v: 1, type: 'keyval.put', zone: `client-${id}`, key: `key-${sequence % 10_000}`, value, expires_at: null });
      latenciesMs.push(nowMs() - begin);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, id) => client(id)));
  return { writesPerSec: (latenciesMs.length / (nowMs() - started)) * 1000, latenciesMs };
}

/** Single-node replicated writes through the real host loop, and time to leader. */
export async function benchRaftHost(): Promise<BenchTable[]> {
  const base = makeBenchDir('host');
  try {
    const leader = await timeToLeader(base);
    const node = await open(join(base, 'writes'));
    const rows: BenchTable['rows'] = [];
    try {
      for (const concurrency of HOST_CONCURRENCY) {
        const rates: number[] = [];
        const latencies: number[] = [];
        for (let run = 0; run < RUNS; run++) {
          const result = await closedLoop(node.replicator, concurrency);
          rates.push(result.writesPerSec);
          for (const l of result.latenciesMs) latencies.push(l);
        }
        rows.push({
          concurrency,
          writesPerSecMedian: Math.round(median(rates)),
          p50Ms: round(percentile(latencies, 50), 2),
          p99Ms: round(percentile(latencies, 99), 2),
        });
      }
    } finally {
      await node.replicator.close();
      node.db.close();
    }
    return [
      leader,
      {
        title: `Single-node replicated writes through RaftReplicator (keyval.put, ${VALUE_BYTES}-byte values, default Raft settings; median of ${RUNS} runs of ${RUN_BUDGET_MS} ms)`,
        rows,
        notes: [tempLocationNote(), `compaction runs every ${DEFAULT_SNAPSHOT_THRESHOLD_ENTRIES.toLocaleString('en-US')} entries during the measurement, as in production`],
      },
    ];
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}
