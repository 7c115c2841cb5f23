import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect as netConnect } from 'node:net';
import { join, resolve } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';

/** Repository root (this file runs from dist/test/e2e/). */
export const REPO_ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
export const NEUWERK_BIN = join(REPO_ROOT, 'bin', 'run.js');
/** Upper bound for a node to come up in tests (first start generates RSA keys). */
export const START_TIMEOUT_MS = 20_000;

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A fresh temporary directory, removed by `cleanup`. */
export function tempDir(prefix = 'neuwerk-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** Runs the real CLI to completion (bounded by `timeoutMs`). */
export function runCli(args: readonly string[], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [NEUWERK_BIN, ...args], {
      cwd: options.cwd ?? REPO_ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`neuwerk ${args.join(' ')} did not finish within ${options.timeoutMs ?? 30_000} ms\nstderr: ${stderr}`));
    }, options.timeoutMs ?? 30_000);
    // 'close' fires after the output streams ended, so nothing written is lost.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}

/** A `neuwerk start` process with its parsed startup announcement. */
export class NodeProcess {
  private stderrText = '';
  private exitInfo: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  httpAddress = '';
  metricsAddress = '';
  /** DNS proxy host:port (UDP and TCP) when started with --dns-bind. */
  dnsAddress = '';
  /** Forward proxy host:port when started with --proxy-bind. */
  proxyAddress = '';
  nodeId = '';

  private constructor(readonly child: ChildProcess, readonly dataDir: string) {
    child.stderr?.on('data', (chunk: Buffer) => (this.stderrText += chunk.toString()));
    this.exitInfo = new Promise((resolvePromise) => child.on('exit', (code, signal) => resolvePromise({ code, signal })));
  }

  get stderr(): string {
    return this.stderrText;
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /** JSON log lines written so far. */
  logLines(): Record<string, unknown>[] {
    return this.stderrText
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  /**
   * Spawns `neuwerk start` with the management API and metrics on port 0 (no collisions) unless
   * the caller passes its own binds, and waits for the "node started" announcement.
   */
  static async start(dataDir: string, extraArgs: readonly string[] = [], options: { fileSizeLimitBytes?: number } = {}): Promise<NodeProcess> {
    const args = ['start', '--data-dir', dataDir];
    if (!extraArgs.includes('--http-bind')) args.push('--http-bind', '127.0.0.1:0');
    if (!extraArgs.includes('--metrics-bind')) args.push('--metrics-bind', '127.0.0.1:0');
    const command = [process.execPath, NEUWERK_BIN, ...args, ...extraArgs];
    // A file size limit (RLIMIT_FSIZE; Node ignores SIGXFSZ, so a write past it fails with EFBIG)
    // stands in for a full disk without root or a small file system.
    if (options.fileSizeLimitBytes !== undefined) command.unshift('prlimit', `--fsize=${options.fileSizeLimitBytes}`, '--');
    const child = spawn(command[0] as string, command.slice(1), { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const node = new NodeProcess(child, dataDir);
    await node.waitForLog((line) => line.msg === 'neuwerk node started', START_TIMEOUT_MS);
    const started = node.logLines().find((line) => line.msg === 'neuwerk node started') as { listeners: { http: string; metrics: string; dns?: string; proxy?: string }; node_id: string };
    node.dnsAddress = started.listeners.dns ?? '';
    node.proxyAddress = started.listeners.proxy ?? '';
    node.httpAddress = started.listeners.http.replace('https://', '');
    node.metricsAddress = started.listeners.metrics.replace('http://', '').replace('/metrics', '');
    node.nodeId = started.node_id;
    return node;
  }

  async waitForLog(predicate: (line: Record<string, unknown>) => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exitInfo.then(() => (exited = true));
    while (Date.now() < deadline) {
      if (this.logLines().some(predicate)) return;
      if (exited) throw new Error(`neuwerk exited before the expected log line\n${this.stderrText}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for a log line\n${this.stderrText}`);
  }

  /** The management API's CA, where the node said it is at start (its data dir's `http-tls/` by default). */
  caCert(): string {
    const started = this.logLines().find((line) => line.msg === 'neuwerk node started') as { ca_cert?: string } | undefined;
    return readFileSync(started?.ca_cert ?? join(this.dataDir, 'http-tls', 'ca.crt'), 'utf8');
  }

  /**
   * Sends `head` as is to the management API port — over TLS (verified with the node's CA), or as
   * plain bytes with `tls: false` — and resolves with everything the node sent until it closed.
   */
  rawHttp(head: string, options: { tls: boolean } = { tls: true }): Promise<string> {
    const at = this.httpAddress.lastIndexOf(':');
    const host = this.httpAddress.slice(0, at);
    const port = Number(this.httpAddress.slice(at + 1));
    return new Promise((resolvePromise, reject) => {
      const socket = options.tls ? tlsConnect({ host, port, ca: this.caCert() }, () => socket.write(head)) : netConnect(port, host, () => socket.write(head));
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (text += chunk));
      socket.on('close', () => resolvePromise(text));
      socket.on('error', reject);
    });
  }

  /** A fresh admin token from `neuwerk auth bootstrap` on this node's data dir (fails the test if it cannot). */
  async adminToken(): Promise<string> {
    const result = await runCli(['auth', 'bootstrap', '--data-dir', this.dataDir]);
    if (result.code !== 0) throw new Error(`auth bootstrap failed (${result.code}): ${result.stderr}`);
    return result.stdout.trim();
  }

  /** HTTPS request to the management API, verified against the node's own CA. */
  async api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: unknown; headers: Record<string, string | string[] | undefined> }> {
    const dispatcher = new Agent({ connect: { ca: this.caCert() } });
    try {
      const response = await request(`https://${this.httpAddress}${path}`, {
        method: method as 'GET',
        dispatcher,
        headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
        body: body === undefined ? null : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await response.body.text();
      return { status: response.statusCode, json: text.length > 0 ? JSON.parse(text) : null, headers: response.headers };
    } finally {
      await dispatcher.close();
    }
  }

  /** Sends a signal and waits for the exit (bounded). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; elapsedMs: number }> {
    const started = Date.now();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const info = await this.exitInfo;
    clearTimeout(timer);
    return { ...info, elapsedMs: Date.now() - started };
  }
}
