/**
 * Resident memory of processes, read from `/proc/<pid>/status` (DESIGN §10 "Memory: RSS of an
 * idle node and under each load"). A sampler polls a named group of PIDs while a load runs and
 * keeps each process's peak, so a table can say how large one member grew (the largest of a
 * group) and how much the group held together.
 */
import { readFileSync } from 'node:fs';

function statusField(pid: number, field: 'VmRSS' | 'RssAnon' | 'RssFile'): number {
  try {
    const match = new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** VmRSS of `pid` in KiB, or NaN when the process is gone or /proc is not readable. */
export function readRssKb(pid: number): number {
  return statusField(pid, 'VmRSS');
}

/**
 * The part of `pid`'s RSS that is its own (anonymous memory: heaps, stacks, buffers), in KiB. The
 * rest is file-backed: for a Node process mostly the mapped `node` executable and libraries, about
 * 50 MiB, shared by every process that maps them.
 */
export function readRssAnonKb(pid: number): number {
  return statusField(pid, 'RssAnon');
}

/** KiB -> MiB with one decimal, or null for a reading that failed. */
export function mib(kb: number): number | null {
  return Number.isFinite(kb) ? Math.round((kb / 1024) * 10) / 10 : null;
}

/** What a group of processes used: the largest one's RSS and the group's sum, in KiB. */
export interface GroupRss {
  readonly maxKb: number;
  readonly sumKb: number;
}

/** One reading of every process in `pids` now (NaN fields when any of them could not be read). */
export function groupRssNow(pids: readonly number[]): GroupRss {
  const readings = pids.map(readRssKb);
  return summarise(readings);
}

function summarise(readings: readonly number[]): GroupRss {
  if (readings.length === 0 || readings.some((kb) => !Number.isFinite(kb))) return { maxKb: Number.NaN, sumKb: Number.NaN };
  return { maxKb: Math.max(...readings), sumKb: readings.reduce((a, b) => a + b, 0) };
}

/**
 * Polls the RSS of `pids` every `intervalMs` until `stop()`, which returns each process's peak
 * summarised as a group (`maxKb`: the largest single peak; `sumKb`: the sum of the peaks, an upper
 * bound of what the group held at once). A process that could not be read at all gives NaN.
 */
export class RssSampler {
  private readonly peaks: number[];
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pids: readonly number[],
    intervalMs = 100,
  ) {
    this.peaks = pids.map(() => Number.NaN);
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  private sample(): void {
    this.pids.forEach((pid, i) => {
      const kb = readRssKb(pid);
      const peak = this.peaks[i] as number;
      if (Number.isFinite(kb) && !(kb <= peak)) this.peaks[i] = kb;
    });
  }

  stop(): GroupRss {
    clearInterval(this.timer);
    this.sample();
    return summarise(this.peaks);
  }
}

/** Runs `load` while sampling `pids`; resolves with its result and the group's peaks. */
export async function withRssPeak<T>(pids: readonly number[], load: () => Promise<T>): Promise<{ result: T; rss: GroupRss }> {
  const sampler = new RssSampler(pids);
  try {
    const result = await load();
    return { result, rss: sampler.stop() };
  } catch (err) {
    sampler.stop();
    throw err;
  }
}
