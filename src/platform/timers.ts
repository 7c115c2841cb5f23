/**
 * The timer port (DESIGN §2): periodic ticks, one-shot delays and "later in this turn of the event
 * loop" callbacks. The Raft host schedules everything through a `Timers`, so a test or the
 * simulator can drive it step by step with `ManualTimers`.
 */
import type { Clock } from './clock.js';

/** A scheduled callback that can be cancelled; cancelling twice is harmless. */
export interface TimerHandle {
  cancel(): void;
}

/** Scheduling primitives. Callbacks never run synchronously inside the call that scheduled them. */
export interface Timers {
  /** Runs `callback` every `intervalMs` until cancelled. */
  every(intervalMs: number, callback: () => void): TimerHandle;
  /** Runs `callback` once after `delayMs`, unless cancelled. */
  after(delayMs: number, callback: () => void): TimerHandle;
  /**
   * Runs `callback` after the current turn's I/O callbacks (`setImmediate`): work requested many
   * times in one turn can be done once, which is what makes group commit possible.
   */
  soon(callback: () => void): void;
}

/** The Node.js event loop's timers. */
export const systemTimers: Timers = {
  every(intervalMs, callback) {
    const handle = setInterval(callback, intervalMs);
    return { cancel: () => clearInterval(handle) };
  },
  after(delayMs, callback) {
    const handle = setTimeout(callback, delayMs);
    return { cancel: () => clearTimeout(handle) };
  },
  soon(callback) {
    setImmediate(callback);
  },
};

interface ManualTimer {
  dueMs: number;
  intervalMs: number | null;
  callback: () => void;
  cancelled: boolean;
}

/** Bound on callbacks `ManualTimers.advance` runs, so a timer that re-arms itself at 0 ms cannot spin forever. */
export const MANUAL_TIMERS_MAX_CALLBACKS_PER_ADVANCE = 1_000_000;

/**
 * Deterministic timers and clock for tests and simulation: time moves only when `advance` is
 * called, and `soon` callbacks run only in `runSoon`/`advance`. Timers due at the same instant
 * run in the order they were scheduled.
 */
export class ManualTimers implements Timers, Clock {
  private nowMsValue = 0;
  private timers: ManualTimer[] = [];
  private soonQueue: (() => void)[] = [];

  monotonicMs(): number {
    return this.nowMsValue;
  }

  wallMs(): number {
    return this.nowMsValue;
  }

  every(intervalMs: number, callback: () => void): TimerHandle {
    return this.add(intervalMs, Math.max(1, intervalMs), callback);
  }

  after(delayMs: number, callback: () => void): TimerHandle {
    return this.add(delayMs, null, callback);
  }

  soon(callback: () => void): void {
    this.soonQueue.push(callback);
  }

  /** Runs queued `soon` callbacks (including ones they queue) until none is left. */
  runSoon(): void {
    let budget = MANUAL_TIMERS_MAX_CALLBACKS_PER_ADVANCE;
    while (this.soonQueue.length > 0) {
      if (budget-- <= 0) throw new Error('ManualTimers: soon callbacks keep re-queueing themselves');
      const queued = this.soonQueue;
      this.soonQueue = [];
      for (const callback of queued) callback();
    }
  }

  /** Moves time forward by `ms`, running due timers in time order and `soon` callbacks after each. */
  advance(ms: number): void {
    const target = this.nowMsValue + ms;
    let budget = MANUAL_TIMERS_MAX_CALLBACKS_PER_ADVANCE;
    this.runSoon();
    for (;;) {
      let next: ManualTimer | null = null;
      for (const timer of this.timers) if (!timer.cancelled && timer.dueMs <= target && (next === null || timer.dueMs < next.dueMs)) next = timer;
      if (next === null) break;
      if (budget-- <= 0) throw new Error('ManualTimers: too many timer callbacks in one advance');
      this.nowMsValue = Math.max(this.nowMsValue, next.dueMs);
      if (next.intervalMs === null) next.cancelled = true;
      else next.dueMs += next.intervalMs;
      next.callback();
      this.runSoon();
    }
    this.timers = this.timers.filter((timer) => !timer.cancelled);
    this.nowMsValue = target;
  }

  private add(delayMs: number, intervalMs: number | null, callback: () => void): TimerHandle {
    const timer: ManualTimer = { dueMs: this.nowMsValue + Math.max(0, delayMs), intervalMs, callback, cancelled: false };
    this.timers.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }
}
