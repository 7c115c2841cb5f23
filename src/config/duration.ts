const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses a duration such as `500ms`, `30s`, `30m`, `24h`, `1h30m`. A bare number is seconds.
 * Returns milliseconds, or an explanation the caller turns into an error naming the flag.
 */
export function parseDurationMs(text: string): number | { error: string } {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;
  let total = 0;
  let offset = 0;
  while (offset < trimmed.length) {
    part.lastIndex = offset;
    const match = part.exec(trimmed);
    if (!match) return { error: `"${text}" is not a duration (examples: 30s, 30m, 24h, 1h30m)` };
    total += Number(match[1]) * (UNIT_MS[match[2] as string] as number);
    offset = part.lastIndex;
  }
  if (trimmed.length === 0) return { error: 'empty duration' };
  return Math.round(total);
}

/** Formats milliseconds compactly for messages (`1h30m`, `45s`, `250ms`). */
export function formatDurationMs(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const parts: string[] = [];
  let rest = Math.floor(ms / 1000);
  for (const [unit, seconds] of [['d', 86_400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    if (rest >= seconds) {
      parts.push(`${Math.floor(rest / seconds)}${unit}`);
      rest %= seconds;
    }
  }
  return parts.join('');
}
