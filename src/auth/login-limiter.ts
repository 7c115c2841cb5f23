/** Failed token-logins allowed per client address within the window. */
export const LOGIN_FAILURES_MAX = 20;
export const LOGIN_FAILURE_WINDOW_MS = 60_000;
/** How long an address that exceeded the limit is refused (429), right token or not. */
export const LOGIN_BLOCK_MS = 120_000;
/** Addresses tracked at once; the oldest entry is dropped beyond this. */
export const LOGIN_TRACKED_ADDRESSES_MAX = 10_000;

interface Entry {
  failures: number;
  windowStartMs: number;
  blockedUntilMs: number;
}

/** Per-address limiter for `POST /api/v1/auth/token-login` against token guessing. */
export class LoginLimiter {
  private readonly entries = new Map<string, Entry>();

  /** Milliseconds the address must still wait, or 0 when it may try. */
  retryAfterMs(address: string, nowMs = Date.now()): number {
    const entry = this.entries.get(address);
    return entry && entry.blockedUntilMs > nowMs ? entry.blockedUntilMs - nowMs : 0;
  }

  recordFailure(address: string, nowMs = Date.now()): void {
    let entry = this.entries.get(address);
    if (entry === undefined || nowMs - entry.windowStartMs > LOGIN_FAILURE_WINDOW_MS) {
      entry = { failures: 0, windowStartMs: nowMs, blockedUntilMs: 0 };
      this.entries.delete(address);
      if (this.entries.size >= LOGIN_TRACKED_ADDRESSES_MAX) this.entries.delete(this.entries.keys().next().value as string);
      this.entries.set(address, entry);
    }
    entry.failures += 1;
    if (entry.failures >= LOGIN_FAILURES_MAX) entry.blockedUntilMs = nowMs + LOGIN_BLOCK_MS;
  }

  recordSuccess(address: string): void {
    this.entries.delete(address);
  }
}
