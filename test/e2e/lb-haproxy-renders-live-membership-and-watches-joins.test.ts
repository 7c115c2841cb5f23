import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestCluster, freePort, type ClusterMember } from './cluster-harness.js';
import { haproxyBinary } from './haproxy-harness.js';
import { NEUWERK_BIN, REPO_ROOT, runCli, tempDir } from './harness.js';

const PROXY_PORT = 3999;

function servers(text: string): string[] {
  return text.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('server '));
}

/** The rendered file must pass `haproxy -c` (`.ci/run` installs haproxy). */
function assertHaproxyAccepts(path: string): void {
  const checked = spawnSync(haproxyBinary(), ['-c', '-f', path], { encoding: 'utf8' });
  assert.equal(checked.status, 0, `haproxy -c -f ${path}:\n${checked.stdout}\n${checked.stderr}`);
}

async function until(predicate: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (predicate()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

describe('neuwerk lb haproxy against a live cluster', () => {
  let cluster: TestCluster;
  let token: string;
  let base: string[];
  const scratch = tempDir('neuwerk-lb-');
  before(async () => {
    cluster = await TestCluster.create(3);
    token = await cluster.token();
    const first = cluster.members[0] as ClusterMember;
    base = ['lb', 'haproxy', '--http-addr', first.node.httpAddress, '--insecure', '--token', token, '--proxy-port', String(PROXY_PORT),
      '--proxy-bind', `127.0.0.1:${await freePort()}`, '--api-bind', `127.0.0.1:${await freePort()}`, '--stats-socket', join(scratch.path, 'admin.sock')];
  });
  after(async () => {
    await cluster?.stop();
    scratch.cleanup();
  });

  function expectedServers(members: readonly ClusterMember[]): string[] {
    const sorted = [...members].sort((a, b) => (a.node.nodeId < b.node.nodeId ? -1 : 1));
    return [
      ...sorted.map((m) => `server ${m.node.nodeId} 127.0.0.1:${PROXY_PORT} check addr 127.0.0.1 port ${m.httpPort} check-ssl verify none inter 1s fastinter 500ms fall 2 rise 2`),
      ...sorted.map((m) => `server ${m.node.nodeId} 127.0.0.1:${m.httpPort} check check-ssl verify none inter 1s fastinter 500ms fall 2 rise 2`),
    ];
  }

  it('prints a configuration naming every node; nodes without a forward proxy fall back to their http host with --proxy-port', async () => {
    const result = await runCli(base);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(servers(result.stdout), expectedServers(cluster.members));
    const again = await runCli(base);
    assert.equal(again.stdout, result.stdout, 'the same membership renders byte-identical text');
  });

  it('--output reports changed, then unchanged, and writes a 0644 file haproxy accepts', async () => {
    const output = join(scratch.path, 'haproxy.cfg');
    const first = await runCli([...base, '--output', output]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, '');
    assert.equal(first.stderr.trim(), 'changed');
    assert.equal(statSync(output).mode & 0o777, 0o644);
    const second = await runCli([...base, '--output', output]);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stderr.trim(), 'unchanged');
    assert.deepEqual(servers(readFileSync(output, 'utf8')), expectedServers(cluster.members));
    assertHaproxyAccepts(output);
  });

  it('--watch rewrites the file and runs --reload-cmd once when a fourth node joins, and stops on SIGTERM', { timeout: 60_000 }, async () => {
    const output = join(scratch.path, 'watched.cfg');
    const reloads = join(scratch.path, 'reloads.log');
    const prepared = await runCli([...base, '--output', output]);
    assert.equal(prepared.code, 0, prepared.stderr);
    const watcher = spawn(process.execPath, [NEUWERK_BIN, ...base, '--output', output, '--watch', '--interval', '300ms', '--reload-cmd', `echo reloaded >> '${reloads}'`], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    watcher.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => watcher.on('close', (code, signal) => resolve({ code, signal })));
    try {
      await until(() => stderr.includes('unchanged'), 'the watcher to find the file current', 15_000);
      assert.equal(existsSync(reloads), false, 'no reload while the membership holds still');
      await cluster.add(cluster.members[0] as ClusterMember);
      await until(() => servers(readFileSync(output, 'utf8')).length === 8 && existsSync(reloads), `the fourth node in the file (stderr: ${stderr})`, 30_000);
      assert.deepEqual(servers(readFileSync(output, 'utf8')), expectedServers(cluster.members));
      await new Promise((r) => setTimeout(r, 1_000));
      assert.equal(readFileSync(reloads, 'utf8'), 'reloaded\n', 'exactly one reload for one change');
      assertHaproxyAccepts(output);
    } finally {
      watcher.kill('SIGTERM');
    }
    const { code, signal } = await exited;
    assert.equal(signal, null);
    assert.equal(code, 0, stderr);
  });
});
