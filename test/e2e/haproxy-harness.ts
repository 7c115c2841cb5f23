import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';

/** The haproxy binary (Debian package `haproxy`; `.ci/run` installs it when missing). */
export function haproxyBinary(): string {
  const found = spawnSync('/bin/sh', ['-c', 'command -v haproxy'], { encoding: 'utf8' }).stdout.trim();
  if (found === '') throw new Error('haproxy is not installed: install the Debian package haproxy (.ci/run does)');
  return found;
}

/** One row of HAProxy's `show stat` CSV, by column name (pxname, svname, status, stot, ...). */
export type StatRow = Readonly<Record<string, string>>;

/**
 * A real HAProxy in master-worker mode, in the foreground, with its configuration and pid file in
 * a test's temp dir. `reload()` is what `systemctl reload haproxy` does: SIGUSR2 to the master.
 */
export class HaproxyProcess {
  private output = '';
  private readonly exited: Promise<void>;

  private constructor(
    readonly child: ChildProcess,
    readonly configPath: string,
    readonly statsSocket: string,
  ) {
    child.stdout?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  static async start(configPath: string, statsSocket: string, dir: string): Promise<HaproxyProcess> {
    const child = spawn(haproxyBinary(), ['-W', '-db', '-f', configPath, '-p', join(dir, 'haproxy.pid')], { stdio: ['ignore', 'pipe', 'pipe'] });
    const haproxy = new HaproxyProcess(child, configPath, statsSocket);
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`haproxy exited with ${child.exitCode}: ${haproxy.output}`);
      try {
        await haproxy.stats();
        return haproxy;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`haproxy did not open its stats socket within 10 s (${(err as Error).message}): ${haproxy.output}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  get pid(): number {
    return this.child.pid as number;
  }

  get log(): string {
    return this.output;
  }

  /** Sends one command to the stats socket and returns the whole answer. */
  command(line: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = connect(this.statsSocket);
      let answer = '';
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`stats socket: no answer to "${line}" within 3 s`));
      }, 3_000);
      socket.on('connect', () => socket.write(`${line}\n`));
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
      socket.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(answer);
      });
    });
  }

  async stats(): Promise<StatRow[]> {
    const text = await this.command('show stat');
    const lines = text.split('\n').filter((l) => l.length > 0);
    const header = lines[0];
    if (header === undefined || !header.startsWith('# ')) throw new Error(`unexpected show stat answer: ${text.slice(0, 200)}`);
    const names = header.slice(2).split(',');
    return lines.slice(1).map((line) => {
      const values = line.split(',');
      return Object.fromEntries(names.map((name, i) => [name, values[i] ?? '']));
    });
  }

  /** Status (`UP`, `DOWN`, `MAINT`, `UP 1/2`, ...) of each server of `backend`, by server name. */
  async serverStatus(backend: string): Promise<Map<string, string>> {
    const rows = await this.stats();
    return new Map(rows.filter((r) => r.pxname === backend && r.svname !== 'BACKEND' && r.svname !== 'FRONTEND').map((r) => [r.svname as string, r.status as string]));
  }

  /** Waits until `predicate` holds for the server statuses of `backend`; returns when it did. */
  async waitForServers(backend: string, predicate: (status: Map<string, string>) => boolean, what: string, timeoutMs = 20_000): Promise<Map<string, string>> {
    const deadline = Date.now() + timeoutMs;
    let last = new Map<string, string>();
    while (Date.now() < deadline) {
      try {
        last = await this.serverStatus(backend);
        if (predicate(last)) return last;
      } catch {
        // the socket is briefly away during a reload
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`haproxy backend ${backend} did not reach "${what}" within ${timeoutMs} ms; last: ${JSON.stringify([...last])}`);
  }

  reload(): void {
    process.kill(this.pid, 'SIGUSR2');
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(timer);
  }
}
