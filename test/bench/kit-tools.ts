/** Running the shared kit's tools (`../shared/bench/`) from the benchmarks. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Runs a kit `.mjs` tool with this Node and parses the JSON line it prints last. */
export async function lastJsonLine<T>(file: string, args: string[], timeoutMs: number, env: NodeJS.ProcessEnv = {}): Promise<T> {
  const { stdout } = await run(process.execPath, [file, ...args], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, ...env } });
  const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (line === undefined) throw new Error(`${file} printed no result`);
  return JSON.parse(line) as T;
}

/** A failed step in one line: its message's first line and the last lines of its stderr. */
export function errorText(err: unknown): string {
  const e = err as { message?: string; stderr?: string };
  return `${(e.message ?? String(err)).split('\n')[0]}${e.stderr ? ` (${e.stderr.trim().split('\n').slice(-2).join(' ')})` : ''}`;
}
