/**
 * Idle expiry for many long-lived entries (the forward proxy's tunnels) with one interval timer
 * instead of a timer per entry that every read and write would re-arm. Entries sit in a
 * `RecencyList` from least to most recently active; the timer advances a tick counter every
 * `intervalMs` and expires entries from the oldest end whose last activity lies more than the
 * idle time back. Marking activity (`touch`) compares the entry's tick with the current one and
 * moves the entry to the newest end at most once per tick.
 *
 * Precision: an entry with no activity for `idleMs` is expired after at least `idleMs` and at most
 * `idleMs + 2 × intervalMs` (one interval for the tick its last activity fell in, one for the
 * rounding of `idleMs` up to whole ticks), plus however late the event loop runs the timer.
 */
import { RecencyList, type RecencyLinks } from './recency-list.js';

/** An entry of an `IdleSweep`: its list links and the tick of its last activity (-1: not in the sweep). */
export interface IdleEntry<T> extends RecencyLinks<T> {
  tick: number;
}

/** The sweep interval for an idle time: a sixteenth of it, at least 10 ms and at most 1 s. */
export function sweepIntervalFor(idleMs: number): number {
  return Math.min(1_000, Math.max(10, Math.floor(idleMs / 16)));
}

export class IdleSweep<T extends IdleEntry<T>> {
  private readonly list = new RecencyList<T>();
  private tick = 0;
  private count = 0;
  /** Whole ticks an entry may stay idle: `idleMs` rounded up. */
  private readonly idleTicks: number;
  private timer: NodeJS.Timeout | null = null;

  /**
   * @param expire called with each expired entry, after it left the sweep (it must not be touched or
   *   removed again until it is added anew).
   */
  constructor(
    readonly idleMs: number,
    readonly intervalMs: number,
    private readonly expire: (entry: T) => void,
  ) {
    this.idleTicks = Math.max(1, Math.ceil(idleMs / intervalMs));
  }

  /** Entries in the sweep. */
  get size(): number {
    return this.count;
  }

  /** Starts the interval timer (unref'd: it never keeps the process alive). Idempotent. */
  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => this.sweep(), this.intervalMs);
    this.timer.unref();
  }

  /** Stops the timer; entries stay where they are. */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Adds an entry that is not in the sweep, active now. */
  add(entry: T): void {
    entry.tick = this.tick;
    this.list.pushNewest(entry);
    this.count++;
  }

  /** Notes activity of an entry (no effect on one that is not in the sweep). */
  touch(entry: T): void {
    if (entry.tick !== this.tick && entry.tick >= 0) {
      entry.tick = this.tick;
      this.list.moveToNewest(entry);
    }
  }

  /** Removes an entry; no effect on one that is not in the sweep. */
  remove(entry: T): void {
    if (entry.tick < 0) return;
    entry.tick = -1;
    this.list.remove(entry);
    this.count--;
  }

  /** The entries, oldest first (a copy: `expire` or `remove` may run while the caller walks it). */
  entries(): T[] {
    const out: T[] = [];
    for (let entry = this.list.oldest; entry !== null; entry = entry.newer) out.push(entry);
    return out;
  }

  /** One tick: expires every entry last active more than `idleTicks` ticks ago. Called by the timer. */
  sweep(): void {
    this.tick++;
    const limit = this.tick - this.idleTicks;
    for (let entry = this.list.oldest; entry !== null && entry.tick < limit; entry = this.list.oldest) {
      this.remove(entry);
      this.expire(entry);
    }
  }
}
