import { readdirSync, statSync } from 'node:fs';

/**
 * Ids of the processes (other than this one) that have the file at `path` open, from
 * `/proc/<pid>/fd` (Linux). The file is recognised by its device and inode, so a path through a
 * symbolic link or a bind mount finds it too. Processes whose descriptors cannot be read
 * (another user's, without root) are not seen; null when `/proc` cannot be read at all.
 */
export function processesHoldingFile(path: string): number[] | null {
  const target = statSync(path);
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
        // stat follows the descriptor's link to the open file itself.
        const open = statSync(`/proc/${pid}/fd/${fd}`);
        if (open.ino === target.ino && open.dev === target.dev) {
          holders.push(Number(pid));
          break;
        }
      } catch {
        // closed meanwhile, or not a file we may stat
      }
    }
  }
  return holders;
}
