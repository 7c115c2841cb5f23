/**
 * The clock port (DESIGN §2: all non-determinism enters through `src/platform/`). Code that needs
 * the time takes a `Clock`, so tests and the simulator can substitute a manual one.
 */

/** Time readings. `monotonicMs` only moves forward and is for durations and deadlines. */
export interface Clock {
  /** Milliseconds on a monotonic clock with an arbitrary origin; never goes back. */
  monotonicMs(): number;
  /** Milliseconds since the Unix epoch (wall clock: may jump); for values stored or shown. */
  wallMs(): number;
}

/** The process's real clocks. */
export const systemClock: Clock = {
  monotonicMs: () => performance.now(),
  wallMs: () => Date.now(),
};
