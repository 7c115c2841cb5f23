import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { proxyConnect, startEchoServer } from '../bench/dataplane-fixtures.js';
import { NodeProcess, tempDir } from './harness.js';

/** DESIGN §7: a graceful stop finishes within 10 s. */
const STOP_LIMIT_MS = 10_000;

/** Writes `text` through the tunnel and resolves true when it comes back, false on close or after 1 s. */
function echoes(socket: Socket, text: string): Promise<boolean> {
  return new Promise((resolve) => {
    let received = '';
    const timer = setTimeout(() => finish(false), 1_000);
    const onData = (chunk: Buffer): void => {
      received += chunk.toString();
      if (received.includes(text)) finish(true);
    };
    const onClose = (): void => finish(false);
    function finish(ok: boolean): void {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve(ok);
    }
    if (socket.destroyed) return finish(false);
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.write(text);
  });
}

function proxyAccepts(address: string): Promise<boolean> {
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

describe('graceful stop behind a load balancer', () => {
  const dir = tempDir();
  after(() => dir.cleanup());

  it('SIGTERM: /ready turns 503 (draining) while the proxy still accepts connections, then the node exits 0', async () => {
    const node = await NodeProcess.start(join(dir.path, 'data'), ['--proxy-bind', '127.0.0.1:0']);
    assert.match(node.proxyAddress, /^127\.0\.0\.1:\d+$/);
    assert.equal((await node.api('GET', '/ready')).status, 200);
    const stopping = node.stop('SIGTERM');
    let sawDraining = false;
    let proxyOpenWhileDraining = false;
    const deadline = Date.now() + 5_000;
    while (!sawDraining && Date.now() < deadline) {
      try {
        const ready = await node.api('GET', '/ready');
        if (ready.status === 503 && JSON.stringify(ready.json).includes('draining')) {
          sawDraining = true;
          proxyOpenWhileDraining = await proxyAccepts(node.proxyAddress);
        }
      } catch {
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const stopped = await stopping;
    assert.ok(sawDraining, '/ready answered 503 with the draining check before the node went away');
    assert.ok(proxyOpenWhileDraining, 'the proxy still accepted connections while draining');
    assert.equal(stopped.code, 0, node.stderr);
    assert.ok(stopped.elapsedMs < STOP_LIMIT_MS, `stopped in ${stopped.elapsedMs} ms`);
  });

  it('SIGTERM with an open tunnel: it keeps working through the drain, new connections are refused after it, and it is closed at the end of proxy.tunnel_grace_ms', { timeout: 30_000 }, async () => {
    const graceMs = 2_000;
    const echo = await startEchoServer();
    const config = join(dir.path, 'grace.yaml');
    writeFileSync(config, `version: 1\nproxy:\n  bind: 127.0.0.1:0\n  tunnel_grace_ms: ${graceMs}\n`);
    const node = await NodeProcess.start(join(dir.path, 'grace-data'), ['--config', config, '--default-policy', 'deny']);
    try {
      const token = await node.adminToken();
      const policy = {
        default_policy: 'deny',
        source_groups: [{ id: 'lab', sources: { cidrs: ['127.0.0.0/8'] }, rules: [{ id: 'echo', action: 'allow', match: { dst_cidrs: ['127.0.0.1/32'], dst_ports: [echo.port] } }] }],
      };
      assert.equal((await node.api('PUT', '/api/v1/policy', policy, { authorization: `Bearer ${token}` })).status, 200);
      const proxyPort = Number(node.proxyAddress.slice(node.proxyAddress.lastIndexOf(':') + 1));
      const tunnel = await proxyConnect(proxyPort, `127.0.0.1:${echo.port}`);
      assert.equal(tunnel.response.status, 200);
      assert.ok(await echoes(tunnel.socket, 'before'), 'the tunnel works before the stop');

      const signalledAt = Date.now();
      const stopping = node.stop('SIGTERM');
      // Drain (2.5 s): the listener still accepts. After it: refused, while the open tunnel still works.
      let refusedAt: number | null = null;
      let echoedAfterRefusal = false;
      while (Date.now() - signalledAt < 2_500 + graceMs) {
        if (refusedAt === null && !(await proxyAccepts(node.proxyAddress))) refusedAt = Date.now();
        if (refusedAt !== null) {
          echoedAfterRefusal = await echoes(tunnel.socket, `after-${Date.now()}`);
          break;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(refusedAt !== null, 'new proxy connections were refused after the drain');
      assert.ok(refusedAt - signalledAt >= 2_000, `new connections refused ${refusedAt - signalledAt} ms after SIGTERM, not before the drain ended`);
      assert.ok(echoedAfterRefusal, 'the open tunnel still carried data once new connections were refused');
      const closedAt = await new Promise<number>((resolve) => (tunnel.socket.destroyed ? resolve(Date.now()) : tunnel.socket.once('close', () => resolve(Date.now()))));
      assert.ok(closedAt - refusedAt >= graceMs - 500, `the tunnel was closed ${closedAt - refusedAt} ms after the listener stopped; the grace is ${graceMs} ms`);
      const stopped = await stopping;
      assert.equal(stopped.code, 0, node.stderr);
      assert.ok(stopped.elapsedMs < STOP_LIMIT_MS, `stopped in ${stopped.elapsedMs} ms`);
      assert.match(node.stderr, /waiting for open tunnels and requests/);
      assert.match(node.stderr, /closing flows still open after the grace period/);
    } finally {
      await node.stop('SIGKILL').catch(() => undefined);
      await echo.close();
    }
  });
});
