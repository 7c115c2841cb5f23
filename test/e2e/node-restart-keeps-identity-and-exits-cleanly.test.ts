import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { NodeProcess, tempDir } from './harness.js';

/** DESIGN §7: graceful stop within 10 s. */
const STOP_LIMIT_MS = 10_000;

describe('node lifecycle', () => {
  const dir = tempDir();
  after(() => dir.cleanup());

  it('keeps its node id and TLS files across a restart, and exits 0 on SIGTERM and SIGINT', async () => {
    const data = join(dir.path, 'data');
    const first = await NodeProcess.start(data);
    const certBefore = readFileSync(join(data, 'http-tls', 'server.crt'), 'utf8');
    const firstStop = await first.stop('SIGTERM');
    assert.equal(firstStop.code, 0, `exit code after SIGTERM; stderr:\n${first.stderr}`);
    assert.ok(firstStop.elapsedMs < STOP_LIMIT_MS, `stopped in ${firstStop.elapsedMs} ms`);
    assert.ok(first.logLines().some((l) => l.msg === 'node stopped'));

    const second = await NodeProcess.start(data);
    try {
      assert.equal(second.nodeId, first.nodeId);
      assert.equal(readFileSync(join(data, 'http-tls', 'server.crt'), 'utf8'), certBefore, 'certificate is reused, not regenerated');
      assert.ok(!second.logLines().some((l) => l.msg === 'created node id'));
      const ready = await second.api('GET', '/ready');
      assert.equal(ready.status, 200);
    } finally {
      const secondStop = await second.stop('SIGINT');
      assert.equal(secondStop.code, 0, `exit code after SIGINT; stderr:\n${second.stderr}`);
    }
  });

  it('stops accepting API connections once stopped', async () => {
    const node = await NodeProcess.start(join(dir.path, 'data2'));
    const address = node.httpAddress;
    await node.stop('SIGTERM');
    await assert.rejects(node.api('GET', '/health'), (err: Error & { code?: string }) => {
      assert.match(`${err.code ?? ''} ${err.message}`, /ECONNREFUSED/);
      return true;
    }, `nothing listens on ${address} after the stop`);
  });
});
