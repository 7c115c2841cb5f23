import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { NodeProcess, tempDir } from './harness.js';

/** DESIGN §7: a graceful stop finishes within 10 s. */
const STOP_LIMIT_MS = 10_000;

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
});
