import { Writable } from 'node:stream';
import pinoPretty from 'pino-pretty';
import { destination, multistream, pino, stdTimeFunctions, type Logger, type StreamEntry } from 'pino';
import type { LogFormat, LogLevel } from '../config/schema.js';

export type { Logger } from 'pino';

/** How many recent log lines a node keeps in memory for sysdump bundles. */
export const LOG_RING_CAPACITY_LINES = 5000;

/**
 * Field paths whose values never reach a log line (DESIGN: secrets never in logs). Anything named
 * like a credential is replaced, wherever the caller put it.
 */
export const REDACTED_LOG_PATHS = [
  'token', '*.token', 'authorization', '*.authorization', 'req.headers.authorization', 'req.headers.cookie',
  'cookie', '*.cookie', 'secret', '*.secret', 'password', '*.password', 'privateKey', '*.privateKey',
  'private_key', '*.private_key', 'key_pem', '*.key_pem',
];

/** Keeps the most recent log lines (as written, JSON) for diagnostics. */
export class LogRing extends Writable {
  private readonly lines: string[] = [];
  private next = 0;

  constructor(private readonly capacityLines = LOG_RING_CAPACITY_LINES) {
    super();
  }

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    for (const line of text.split('\n')) {
      if (line.length === 0) continue;
      if (this.lines.length < this.capacityLines) this.lines.push(line);
      else this.lines[this.next] = line;
      this.next = (this.next + 1) % this.capacityLines;
    }
    callback();
  }

  /** Lines oldest first. */
  snapshot(): string[] {
    if (this.lines.length < this.capacityLines) return [...this.lines];
    return [...this.lines.slice(this.next), ...this.lines.slice(0, this.next)];
  }
}

export interface LoggerOptions {
  readonly level: LogLevel;
  readonly format: LogFormat;
  /** Receives every line in JSON regardless of the output format. */
  readonly ring?: LogRing;
  /** Where human or JSON output goes; default stderr (stdout is reserved for command products). */
  readonly destinationFd?: number;
}

/** Creates the process logger: JSON lines (or pretty text) on stderr, plus the ring buffer. */
export function createLogger(options: LoggerOptions): Logger {
  const fd = options.destinationFd ?? 2;
  const output =
    options.format === 'pretty'
      ? pinoPretty({ destination: fd, sync: true, colorize: fd === 2 ? process.stderr.isTTY : process.stdout.isTTY, ignore: 'pid,hostname', translateTime: 'SYS:HH:MM:ss.l' })
      : destination({ fd, sync: true });
  const streams: StreamEntry<LogLevel>[] = [{ stream: output, level: options.level }];
  if (options.ring) streams.push({ stream: options.ring, level: options.level });
  return pino(
    {
      level: options.level,
      base: { service: 'neuwerk' },
      timestamp: stdTimeFunctions.isoTime,
      redact: { paths: REDACTED_LOG_PATHS, censor: '<redacted>' },
    },
    multistream(streams),
  );
}
