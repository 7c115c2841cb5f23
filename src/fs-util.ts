import { chmodSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, resolve } from 'node:path';

/**
 * Creates `dir` and its missing parents with `mode`, one level at a time. Node 20's
 * `mkdirSync(..., { recursive: true })` spins forever on some paths (e.g. under /proc, where
 * mkdir answers ENOENT for a parent that exists), so it is never used for operator-given paths.
 */
export function makeDirectory(dir: string, mode: number): void {
  const target = resolve(dir);
  const missing: string[] = [];
  let current = target;
  for (;;) {
    try {
      if (!statSync(current).isDirectory()) {
        const error = new Error(`${current} is not a directory`) as NodeJS.ErrnoException;
        error.code = 'ENOTDIR';
        throw error;
      }
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      missing.push(current);
      const parent = dirname(current);
      if (parent === current) break;
      current = parent;
    }
  }
  for (const path of missing.reverse()) {
    try {
      mkdirSync(path, { mode });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

/** Writes a file atomically with the given mode (temp file in the same dir, then rename). */
export function writeFileAtomic(path: string, content: string | Buffer, mode: number): void {
  const temporary = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  writeFileSync(temporary, content, { mode });
  chmodSync(temporary, mode);
  renameSync(temporary, path);
}
