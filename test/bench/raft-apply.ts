/**
 * Apply throughput: keyval puts/s through `StateMachine.apply` (one transaction per batch, applied
 * index recorded in it) on a real SQLite file. Measured with synchronous=FULL (an fsync per apply
 * commit) and with synchronous=NORMAL, which is what the Raft host uses for apply transactions
 * (`APPLY_WITHOUT_FSYNC`: the entries are already durable in the log; see raft-host.ts).
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { encodeCommand } from '../../src/store/commands.js';
import { openStoreDatabase } from '../../src/store/database.js';
import { StateMachine, type AppliedEntry } from '../../src/store/state-machine.js';
import { makeBenchDir, median, nowMs, tempLocationNote, type BenchTable } from './raft-bench-util.js';

/** Entries per `apply` call measured. */
export const APPLY_BATCH_ENTRIES = [1, 64, 1024] as const;
/** Distinct keys written (puts beyond it update existing rows). */
const KEY_SPACE = 100_000;
/** Bytes of each value. */
const VALUE_BYTES = 128;
/** Time budget of one measured run, in milliseconds. */
const RUN_BUDGET_MS = 1_000;
/** Measured runs per configuration (the median is reported). */
const RUNS = 3;
/** Commands encoded ahead of the measurement, reused cyclically. */
const PREPARED_COMMANDS = 8_192;

const SYNC_MODES = ['FULL', 'NORMAL'] as const;

function runOnce(dir: string, batchEntries: number, sync: (typeof SYNC_MODES)[number], run: number): number {
  const db = openStoreDatabase(join(dir, `apply-${sync}-${batchEntries}-${run}`, 'raft.db'));
  try {
    db.pragma(`synchronous = ${sync}`);
    const machine = new StateMachine(db);
    const value = 'v'.repeat(VALUE_BYTES);
    const commands: string[] = [];
    for (let i = 0; i < PREPARED_COMMANDS; i++) {
      commands.push(encodeCommand({ v: 1, type: 'keyval.put', zone: `zone-${i % 8}`, key: `key-${(i * 7919) % KEY_SPACE}`, value, expires_at: null }));
    }
    let index = 1;
    const started = nowMs();
    while (nowMs() - started < RUN_BUDGET_MS) {
      const batch: AppliedEntry[] = new Array<AppliedEntry>(batchEntries);
      for (let i = 0; i < batchEntries; i++) batch[i] = { index: index + i, term: 1, data: commands[(index + i) % PREPARED_COMMANDS]! };
      machine.apply(batch);
      index += batchEntries;
    }
    return ((index - 1) / (nowMs() - started)) * 1000;
  } finally {
    db.close();
  }
}

/** Keyval puts/s applied, per batch size and synchronous mode (median of runs). */
export async function benchRaftApply(): Promise<BenchTable[]> {
  const dir = makeBenchDir('apply');
  try {
    const rows: BenchTable['rows'] = [];
    for (const sync of SYNC_MODES) {
      for (const batchEntries of APPLY_BATCH_ENTRIES) {
        const rates: number[] = [];
        for (let run = 0; run < RUNS; run++) {
          rates.push(runOnce(dir, batchEntries, sync, run));
          await new Promise((resolve) => setImmediate(resolve));
        }
        rows.push({ synchronous: sync, entriesPerApply: batchEntries, putsPerSecMedian: Math.round(median(rates)) });
      }
    }
    return [
      {
        title: `State-machine apply (keyval.put, ${VALUE_BYTES}-byte values, ${KEY_SPACE.toLocaleString('en-US')} keys; median of ${RUNS} runs of ${RUN_BUDGET_MS} ms)`,
        rows,
        notes: [tempLocationNote(), 'the Raft host applies with synchronous=NORMAL: the entries are already durable in the log'],
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
