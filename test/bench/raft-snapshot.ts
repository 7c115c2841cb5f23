/**
 * Snapshot create and install time, and file size, at 10k, 100k and 1M keyval records: the cost
 * of log compaction on the leader (`createStateMachineSnapshot`, which blocks the event loop while
 * it copies) and of InstallSnapshot on a follower (`installStateMachineSnapshot`: header and
 * structural check, then every state-machine table replaced in one transaction).
 *
 * For reference it also times the two alternatives considered for the copy — `CREATE TABLE AS
 * SELECT` (no primary keys in the file) and `VACUUM INTO` (copies the whole store, Raft log
 * included) — once per size.
 */
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { openStoreDatabase, STATE_MACHINE_TABLES, type SqliteDatabase } from '../../src/store/database.js';
import { createStateMachineSnapshot, installStateMachineSnapshot } from '../../src/store/snapshot.js';
import { StateMachine } from '../../src/store/state-machine.js';
import { makeBenchDir, median, nowMs, round, tempLocationNote, type BenchTable } from './raft-bench-util.js';

/** Keyval record counts measured. */
export const SNAPSHOT_RECORD_COUNTS = [10_000, 100_000, 1_000_000] as const;
/** Measured runs per operation and size (the median is reported). */
const RUNS = 3;
/** Bytes of each value. */
const VALUE_BYTES = 64;
/** Share of records with an expiry (they populate the partial expiry index). */
const EXPIRING_EVERY_NTH = 10;

function populate(db: SqliteDatabase, records: number): void {
  const insert = db.prepare('INSERT INTO keyval (zone, key, value, version, expires_at, raft_index) VALUES (?, ?, ?, ?, ?, ?)');
  const meta = db.prepare('INSERT INTO sm_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
  const value = 'v'.repeat(VALUE_BYTES);
  db.transaction(() => {
    for (let i = 0; i < records; i++) {
      insert.run(`zone-${i % 16}`, `key-${String(i).padStart(8, '0')}`, value, i + 1, i % EXPIRING_EVERY_NTH === 0 ? 1_900_000_000_000 + i : null, i + 1);
    }
    meta.run('applied_index', String(records));
    meta.run('applied_term', '1');
  })();
}

function fileMiB(path: string): number {
  return round(statSync(path).size / (1024 * 1024), 1);
}

function timeCtas(db: SqliteDatabase, path: string): number {
  rmSync(path, { force: true });
  const started = nowMs();
  db.prepare('ATTACH DATABASE ? AS ctas').run(path);
  try {
    db.pragma('ctas.journal_mode = OFF');
    db.pragma('ctas.synchronous = OFF');
    db.transaction(() => {
      for (const table of STATE_MACHINE_TABLES) db.exec(`CREATE TABLE ctas."${table}" AS SELECT * FROM main."${table}"`);
    })();
  } finally {
    db.exec('DETACH DATABASE ctas');
  }
  return nowMs() - started;
}

function timeVacuumInto(db: SqliteDatabase, path: string): number {
  rmSync(path, { force: true });
  const started = nowMs();
  db.prepare('VACUUM INTO ?').run(path);
  return nowMs() - started;
}

/** Create/install milliseconds (median of runs) and file size per record count. */
export async function benchRaftSnapshot(): Promise<BenchTable[]> {
  const dir = makeBenchDir('snapshot');
  try {
    const rows: BenchTable['rows'] = [];
    for (const records of SNAPSHOT_RECORD_COUNTS) {
      const sourceDb = openStoreDatabase(join(dir, `source-${records}`, 'raft.db'));
      const targetDb = openStoreDatabase(join(dir, `target-${records}`, 'raft.db'));
      try {
        populate(sourceDb, records);
        const snapshotsDir = join(dir, `source-${records}`, 'snapshots');
        const position = { index: records, term: 1 };
        const createMs: number[] = [];
        let path = '';
        for (let run = 0; run < RUNS; run++) {
          const started = nowMs();
          path = createStateMachineSnapshot(sourceDb, snapshotsDir, position).path;
          createMs.push(nowMs() - started);
          await new Promise((resolve) => setImmediate(resolve));
        }
        // The target first holds the same amount of state (a lagging follower), then each
        // measured install replaces it wholesale.
        installStateMachineSnapshot(targetDb, path, records);
        const target = new StateMachine(targetDb);
        const installMs: number[] = [];
        for (let run = 0; run < RUNS; run++) {
          const started = nowMs();
          installStateMachineSnapshot(targetDb, path, records);
          target.reload();
          installMs.push(nowMs() - started);
          await new Promise((resolve) => setImmediate(resolve));
        }
        if (target.appliedIndex !== records) throw new Error(`install ended at applied index ${target.appliedIndex}, expected ${records}`);
        const ctasPath = join(dir, `ctas-${records}.db`);
        const vacuumPath = join(dir, `vacuum-${records}.db`);
        const ctasMs = timeCtas(sourceDb, ctasPath);
        const vacuumMs = timeVacuumInto(sourceDb, vacuumPath);
        rows.push({
          records,
          createMsMedian: round(median(createMs), 1),
          installMsMedian: round(median(installMs), 1),
          fileMiB: fileMiB(path),
          ctasCreateMs: round(ctasMs, 1),
          ctasFileMiB: fileMiB(ctasPath),
          vacuumIntoMs: round(vacuumMs, 1),
          vacuumIntoFileMiB: fileMiB(vacuumPath),
        });
        rmSync(ctasPath, { force: true });
        rmSync(vacuumPath, { force: true });
      } finally {
        sourceDb.close();
        targetDb.close();
      }
      rmSync(join(dir, `source-${records}`), { recursive: true, force: true });
      rmSync(join(dir, `target-${records}`), { recursive: true, force: true });
    }
    return [
      {
        title: `State-machine snapshot create / install (keyval records, ${VALUE_BYTES}-byte values; median of ${RUNS} runs)`,
        rows,
        notes: [
          tempLocationNote(),
          'create = schema-preserving copy of the state-machine tables + fsync + rename (what the node does); install = header + quick_check + column/index validation + replace all tables in one transaction, into a store already holding the same amount of state',
          'ctas / vacuumInto: alternatives, one unsynced run each, for comparison only',
        ],
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
