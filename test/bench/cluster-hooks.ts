/**
 * Hook commands for the shared failover kit (`../shared/bench/etcd/failover.mjs --kind neuwerk`):
 *
 *   node dist/test/bench/cluster-hooks.js leader  <state.json>        prints the leader's position 1..N (nothing if none)
 *   node dist/test/bench/cluster-hooks.js pid     <state.json> <n>    prints member n's PID
 *   node dist/test/bench/cluster-hooks.js restart <state.json> <n>    starts member n on its data; exits 0 once it serves
 *
 * The state file is written by the cluster benchmark: members with data dir, start arguments, PID,
 * management URL, the CA file and an admin token.
 */
import { spawn } from 'node:child_process';
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';

export interface BenchClusterState {
  readonly token: string;
  readonly caFile: string;
  readonly members: { dataDir: string; args: string[]; pid: number; url: string }[];
}

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** A restarted member must answer /health within this long. */
const RESTART_WAIT_MS = 30_000;

function load(file: string): BenchClusterState {
  return JSON.parse(readFileSync(file, 'utf8')) as BenchClusterState;
}

async function get(url: string, state: BenchClusterState, dispatcher: Agent): Promise<{ status: number; json: unknown }> {
  const response = await request(url, { dispatcher, headers: { authorization: `Bearer ${state.token}` }, headersTimeout: 500, bodyTimeout: 500 });
  const text = await response.body.text();
  return { status: response.statusCode, json: text.length > 0 ? JSON.parse(text) : null };
}

async function leader(file: string): Promise<void> {
  const state = load(file);
  const dispatcher = new Agent({ connect: { ca: readFileSync(state.caFile, 'utf8') } });
  try {
    for (const member of state.members) {
      try {
        const answer = await get(`${member.url}/api/v1/cluster/status?local=true`, state, dispatcher);
        const status = answer.json as { role?: string } | null;
        if (answer.status === 200 && status?.role === 'leader') {
          process.stdout.write(`${state.members.indexOf(member) + 1}\n`);
          return;
        }
      } catch {
        // a dead member: ask the next
      }
    }
  } finally {
    await dispatcher.close();
  }
}

async function restart(file: string, position: number): Promise<void> {
  const state = load(file);
  const member = state.members[position - 1];
  if (member === undefined) throw new Error(`no member ${position}`);
  const log = openSync(join(member.dataDir, 'restart.log'), 'a');
  const child = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'run.js'), 'start', '--data-dir', member.dataDir, ...member.args], {
    cwd: REPO_ROOT,
    detached: true,
    stdio: ['ignore', log, log],
  });
  child.unref();
  member.pid = child.pid as number;
  writeFileSync(file, JSON.stringify(state));
  const dispatcher = new Agent({ connect: { ca: readFileSync(state.caFile, 'utf8') } });
  const deadline = Date.now() + RESTART_WAIT_MS;
  try {
    while (Date.now() < deadline) {
      try {
        if ((await get(`${member.url}/health`, state, dispatcher)).status === 200) return;
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await dispatcher.close();
  }
  throw new Error(`member ${position} did not come back within ${RESTART_WAIT_MS} ms`);
}

async function main(): Promise<void> {
  const [command, file, position] = process.argv.slice(2);
  if (file === undefined) throw new Error('usage: cluster-hooks.js leader|pid|restart <state.json> [n]');
  if (command === 'leader') await leader(file);
  else if (command === 'pid') process.stdout.write(`${load(file).members[Number(position) - 1]?.pid ?? ''}\n`);
  else if (command === 'restart') await restart(file, Number(position));
  else throw new Error(`unknown hook ${command}`);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err: unknown) => {
    console.error((err as Error).message);
    process.exit(1);
  });
}
