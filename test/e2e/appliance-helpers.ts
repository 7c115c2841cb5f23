import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './harness.js';

/** Shared by the appliance install tests (a test file cannot import another without running its tests). */
export const INSTALL = join(REPO_ROOT, 'appliance', 'install.sh');
export const UNINSTALL = join(REPO_ROOT, 'appliance', 'uninstall.sh');

export function runScript(script: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(script, args, { cwd: REPO_ROOT, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 120_000 });
  if (result.error) throw result.error;
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Every path under `root` with type, mode, owner, and the sha256 of file contents (or the link target). */
export function snapshot(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const relPath = `${rel}/${name}`;
      const st = lstatSync(path);
      const meta = `${relPath} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      if (st.isSymbolicLink()) out.push(`${meta} -> ${readlinkSync(path)}`);
      else if (st.isDirectory()) {
        out.push(`${meta} dir`);
        walk(path, relPath);
      } else out.push(`${meta} ${createHash('sha256').update(readFileSync(path)).digest('hex')}`);
    }
  };
  walk(root, '');
  return out;
}

/** uid:gid of the neuwerk user in the staging root's passwd file, or undefined. */
export function stagedUser(root: string): { uid: number; gid: number } | undefined {
  let passwd: string;
  try {
    passwd = readFileSync(join(root, 'etc', 'passwd'), 'utf8');
  } catch {
    return undefined;
  }
  const line = passwd.split('\n').find((l) => l.startsWith('neuwerk:'));
  if (!line) return undefined;
  const fields = line.split(':');
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}
