/**
 * Helpers shared by the Raft/store benchmarks and the `npm run bench` entry: result tables,
 * medians, time budgets, and where temporary files really live (a tmpfs makes fsync free, which
 * would flatter every durable figure).
 */
import { mkdtempSync, readFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A cell of a result table. */
export type BenchCell = string | number | boolean | null;

/** One printed table: a title, rows with the same keys, and notes printed under it. */
export interface BenchTable {
  readonly title: string;
  readonly rows: Record<string, BenchCell>[];
  readonly notes?: readonly string[];
}

/** The median of `values` (mean of the middle two for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The `p`-th percentile (0..100, nearest rank) of `values`; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** Rounds to `digits` decimals (for readable tables and JSON). */
export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Milliseconds since an arbitrary origin, high resolution. */
export function nowMs(): number {
  return performance.now();
}

/** Yields to the event loop (lets timers and I/O run between measured rounds). */
export function yieldTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Where `os.tmpdir()` lives: its mount point and file-system type. */
export interface TempLocation {
  readonly dir: string;
  readonly mountPoint: string;
  readonly fsType: string;
  /** True for tmpfs/ramfs: fsync costs nothing there, so durable figures are not disk figures. */
  readonly inMemory: boolean;
}

/** Finds the file system of `os.tmpdir()` from /proc/mounts (Linux); "unknown" elsewhere. */
export function describeTempLocation(): TempLocation {
  const dir = realpathSync(tmpdir());
  let mountPoint = '/';
  let fsType = 'unknown';
  try {
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [, mount, type] = line.split(' ');
      if (mount === undefined || type === undefined) continue;
      const prefix = mount.endsWith('/') ? mount : `${mount}/`;
      if ((dir === mount || dir.startsWith(prefix)) && mount.length >= mountPoint.length) {
        mountPoint = mount;
        fsType = type;
      }
    }
  } catch {
    // Not Linux: leave unknown.
  }
  return { dir, mountPoint, fsType, inMemory: fsType === 'tmpfs' || fsType === 'ramfs' };
}

/** The note every durable benchmark prints about where its files were. */
export function tempLocationNote(): string {
  const where = describeTempLocation();
  return where.inMemory
    ? `files under ${where.dir} are on ${where.fsType} (in memory): fsync is free, so these are NOT disk figures`
    : `files under ${where.dir} are on ${where.fsType} (${where.mountPoint}), a real disk: every commit pays an fsync`;
}

/** A fresh directory under `os.tmpdir()`. */
export function makeBenchDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `neuwerk-bench-${prefix}-`));
}

/**
 * Runs `step` repeatedly until `budgetMs` elapsed or it returned `true` (done), at least once.
 * Returns the elapsed milliseconds and how many times it ran.
 */
export function runFor(budgetMs: number, step: () => boolean | void): { elapsedMs: number; iterations: number } {
  const started = nowMs();
  let iterations = 0;
  for (;;) {
    const done = step() === true;
    iterations += 1;
    const elapsedMs = nowMs() - started;
    if (done || elapsedMs >= budgetMs) return { elapsedMs, iterations };
  }
}

function formatCell(cell: BenchCell): string {
  if (cell === null) return '-';
  if (typeof cell === 'number') {
    if (!Number.isFinite(cell)) return String(cell);
    return Number.isInteger(cell) ? cell.toLocaleString('en-US') : cell.toLocaleString('en-US', { maximumFractionDigits: 3 });
  }
  return String(cell);
}

/** Renders a table as aligned text: header, rule, rows (numbers right-aligned), then notes. */
export function formatTable(table: BenchTable): string {
  const lines = [table.title];
  if (table.rows.length > 0) {
    const keys = Object.keys(table.rows[0]!);
    const cells = table.rows.map((row) => keys.map((k) => formatCell(row[k] ?? null)));
    const widths = keys.map((k, i) => Math.max(k.length, ...cells.map((r) => r[i]!.length)));
    const numeric = keys.map((k) => table.rows.every((row) => typeof row[k] === 'number' || row[k] === null));
    const pad = (text: string, i: number): string => (numeric[i] ? text.padStart(widths[i]!) : text.padEnd(widths[i]!));
    lines.push(`  ${keys.map((k, i) => pad(k, i)).join('  ')}`);
    lines.push(`  ${widths.map((w) => '-'.repeat(w)).join('  ')}`);
    for (const row of cells) lines.push(`  ${row.map((c, i) => pad(c, i)).join('  ')}`);
  }
  for (const note of table.notes ?? []) lines.push(`  note: ${note}`);
  return lines.join('\n');
}
