/**
 * Log-line throttling for events a remote party can repeat at will (refused tokens, refused
 * connections): at most one line per key per interval, carrying how many were held back since
 * the last one. At most `maxKeys` keys are remembered; when full, the oldest are forgotten (its
 * next event logs at once), so a flood from many addresses costs bounded memory.
 */
export class LogThrottle {
  private readonly keys = new Map<string, { loggedAtMs: number; suppressed: number }>();

  constructor(
    private readonly intervalMs: number,
    private readonly maxKeys = 1024,
  ) {}

  /** Null: hold this one back. Else log now; the number is how many were held back since the last line. */
  admit(key: string, nowMs: number): number | null {
    const entry = this.keys.get(key);
    if (entry !== undefined && nowMs - entry.loggedAtMs < this.intervalMs) {
      entry.suppressed += 1;
      return null;
    }
    const suppressed = entry?.suppressed ?? 0;
    this.keys.delete(key);
    if (this.keys.size >= this.maxKeys) this.keys.delete(this.keys.keys().next().value as string);
    this.keys.set(key, { loggedAtMs: nowMs, suppressed: 0 });
    return suppressed;
  }
}
