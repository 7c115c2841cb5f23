import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NodeProcess, runCli, tempDir } from './harness.js';

describe('neuwerk ready', () => {
  const dir = tempDir();
  let node: NodeProcess;
  before(async () => {
    node = await NodeProcess.start(join(dir.path, 'data'));
  });
  after(async () => {
    await node.stop('SIGKILL');
    dir.cleanup();
  });

  it('prints every check and exits 0 for a ready node, verifying with the CA from --data-dir', async () => {
    const result = await runCli(['ready', '--http-addr', node.httpAddress, '--data-dir', node.dataDir]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^ready/);
    assert.match(result.stdout, /ok\s+store/);
  });

  it('--json prints the checks as JSON', async () => {
    const result = await runCli(['ready', '--http-addr', node.httpAddress, '--ca', join(node.dataDir, 'http-tls', 'ca.crt'), '--json']);
    assert.equal(result.code, 0, result.stderr);
    const body = JSON.parse(result.stdout) as { ready: boolean; reachable: boolean; checks: { name: string; ok: boolean }[] };
    assert.equal(body.ready, true);
    assert.equal(body.reachable, true);
    assert.ok(body.checks.some((c) => c.name === 'store' && c.ok));
  });

  it('refuses a server whose certificate is not from the given CA', async () => {
    const other = tempDir();
    try {
      const otherNode = await NodeProcess.start(join(other.path, 'data'));
      try {
        const result = await runCli(['ready', '--http-addr', node.httpAddress, '--ca', join(otherNode.dataDir, 'http-tls', 'ca.crt')]);
        assert.equal(result.code, 1);
        assert.match(result.stdout + result.stderr, /not reachable/);
      } finally {
        await otherNode.stop('SIGKILL');
      }
    } finally {
      other.cleanup();
    }
  });

  it('exits 1 when nothing answers, and --wait gives up after --timeout', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    blocker.close();
    const started = Date.now();
    const result = await runCli(['ready', '--http-addr', `127.0.0.1:${port}`, '--insecure', '--wait', '--timeout', '2s', '--json']);
    const elapsed = Date.now() - started;
    assert.equal(result.code, 1);
    const body = JSON.parse(result.stdout) as { reachable: boolean; ready: boolean };
    assert.equal(body.reachable, false);
    assert.equal(body.ready, false);
    assert.ok(elapsed >= 1500, `polled for ${elapsed} ms`);
  });

  it('an error under --json is one JSON object on stderr, and stdout stays empty', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    blocker.close();
    const result = await runCli(['status', '--http-addr', `127.0.0.1:${port}`, '--insecure', '--token', 'x', '--json']);
    assert.equal(result.code, 1);
    assert.equal(result.stdout, '');
    const error = JSON.parse(result.stderr) as { error: string; code: string; actions: string[] };
    assert.equal(error.code, 'NW_ERR_API_UNREACHABLE');
    assert.ok(error.error.includes(`127.0.0.1:${port}`), error.error);
    assert.ok(error.actions.length > 0);
  });

  it('usage errors exit 2: --ca with --insecure, a bad --timeout, a missing CA', async () => {
    const both = await runCli(['ready', '--ca', '/x', '--insecure']);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--insecure|--ca/);
    const badTimeout = await runCli(['ready', '--insecure', '--timeout', 'soon']);
    assert.equal(badTimeout.code, 2);
    assert.match(badTimeout.stderr, /--timeout: "soon" is not a duration/);
    const noCa = await runCli(['ready', '--http-addr', node.httpAddress, '--data-dir', join(dir.path, 'nowhere')]);
    assert.equal(noCa.code, 2);
    assert.match(noCa.stderr, /no CA certificate to verify/);
  });
});
