import { readdirSync, readlinkSync } from 'node:fs';

/**
 * Ids of the processes (other than this one) that have `path` open, from `/proc/<pid>/fd` (Linux).
 * Processes whose descriptors cannot be read (another user's, without root) are not seen; null
 * when `/proc` cannot be read at all.
 */
export function processesHoldingFile(path: string): number[] | null {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return null;
  }
  const holders: number[] = [];
  for (const pid of pids) {
    if (Number(pid) === process.pid) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === path) {
          holders.push(Number(pid));
          break;
        }
      } catch {
        // closed meanwhile
      }
    }
  }
  return holders;
}
