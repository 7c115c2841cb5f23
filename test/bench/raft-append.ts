/**
 * Durable log append throughput through `RaftStorage.persist` on a real SQLite file opened like
 * the node's store (WAL, synchronous=FULL): one transaction per entry versus group commit (all
 * entries that became ready in one event-loop turn in one transaction). The difference is the
 * fsync per commit; the note says whether the temp dir is a tmpfs (then fsync is free).
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Entry } from '../../src/raft/index.js';
import { openStoreDatabase } from '../../src/store/database.js';
import { RaftStorage } from '../../src/store/raft-storage.js';
import { makeBenchDir, median, nowMs, round, tempLocationNote, type BenchTable } from './raft-bench-util.js';

/** Entries per transaction measured; 1 is "no group commit". */
export const APPEND_BATCH_ENTRIES = [1, 16, 256, 4096] as const;
/** Bytes of each entry's data (about a keyval put command). */
const ENTRY_DATA_BYTES = 256;
/** Time budget of one measured run, in milliseconds. */
const RUN_BUDGET_MS = 1_200;
/** Measured runs per batch size (the median is reported). */
const RUNS = 3;

function runOnce(dir: string, batchEntries: number, run: number): { entriesPerSec: number; commitMs: number } {
  const path = join(dir, `append-${batchEntries}-${run}`, 'raft.db');
  const db = openStoreDatabase(path);
  try {
    const storage = RaftStorage.open({ db, dbPath: path, snapshotsDir: join(dir, 'snapshots'), nodeId: 'n1', bootstrapVoters: ['n1'], appliedIndex: 0 });
    const data = JSON.stringify({ v: 1, type: 'keyval.put', zone: 'z', key: 'k', value: 'x'.repeat(ENTRY_DATA_BYTES - 70), expires_at: null });
    let next = 1;
    let commits = 0;
    const started = nowMs();
    while (nowMs() - started < RUN_BUDGET_MS) {
      const entries: Entry[] = new Array<Entry>(batchEntries);
      for (let i = 0; i < batchEntries; i++) entries[i] = { index: next + i, term: 1, type: 'normal', data };
      storage.persist({ hardState: { term: 1, vote: 'n1', commit: next - 1 }, entries });
      next += batchEntries;
      commits += 1;
    }
    const elapsedMs = nowMs() - started;
    return { entriesPerSec: ((next - 1) / elapsedMs) * 1000, commitMs: elapsedMs / commits };
  } finally {
    db.close();
  }
}

/** Durable append entries/s per batch size, median of runs, with the per-commit latency. */
export async function benchRaftAppend(): Promise<BenchTable[]> {
  const dir = makeBenchDir('append');
  try {
    const rows: BenchTable['rows'] = [];
    for (const batchEntries of APPEND_BATCH_ENTRIES) {
      const results = [];
      for (let run = 0; run < RUNS; run++) {
        results.push(runOnce(dir, batchEntries, run));
        await new Promise((resolve) => setImmediate(resolve));
      }
      rows.push({
        entriesPerTransaction: batchEntries,
        mode: batchEntries === 1 ? 'one transaction per entry' : 'group commit',
        entriesPerSecMedian: Math.round(median(results.map((r) => r.entriesPerSec))),
        commitMsMedian: round(median(results.map((r) => r.commitMs)), 3),
      });
    }
    return [
      {
        title: `Durable Raft log append (RaftStorage.persist, WAL + synchronous=FULL, ${ENTRY_DATA_BYTES}-byte entries, median of ${RUNS} runs of ${RUN_BUDGET_MS} ms)`,
        rows,
        notes: [tempLocationNote(), 'each transaction also writes the hard state, as every leader Ready does'],
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
