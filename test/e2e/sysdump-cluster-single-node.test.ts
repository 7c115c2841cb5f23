import assert from 'node:assert/strict';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { list } from 'tar';
import { NodeProcess, runCli, tempDir } from './harness.js';

/** A one-node cluster sysdump: the node's own archive plus assembly. */
const RUN_TIMEOUT_MS = 40_000;

describe('neuwerk sysdump cluster on a single node: a one-node archive; the node endpoint refuses over HTTPS', () => {
  const dir = tempDir('neuwerk-sysdump-single-');
  const dataDir = join(dir.path, 'data');
  let node: NodeProcess;
  let token = '';

  before(async () => {
    node = await NodeProcess.start(dataDir);
    const bootstrap = await runCli(['auth', 'bootstrap', '--data-dir', dataDir]);
    assert.equal(bootstrap.code, 0, bootstrap.stderr);
    token = bootstrap.stdout.trim();
  });
  after(async () => {
    await node.stop('SIGKILL');
    dir.cleanup();
  });

  it('writes a 0600 archive with the default name in the cwd holding nodes/<node_id>/ and the summary', async () => {
    const cwd = join(dir.path, 'cwd');
    mkdirSync(cwd);
    const result = await runCli(['sysdump', 'cluster', '--http-addr', node.httpAddress, '--data-dir', dataDir, '--token', token], { cwd, timeoutMs: RUN_TIMEOUT_MS });
    assert.equal(result.code, 0, result.stderr);
    const path = result.stdout.trim();
    assert.match(path, /\/neuwerk-cluster-sysdump-\d{8}T\d{6}Z\.tar\.gz$/);
    assert.ok(path.startsWith(cwd));
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const entries: string[] = [];
    await list({ file: path, onReadEntry: (entry) => entries.push(entry.path) });
    for (const expected of ['manifest.json', 'cluster/summary.json', `nodes/${node.nodeId}/manifest.json`, `nodes/${node.nodeId}/summary/state.json`]) assert.ok(entries.includes(expected), expected);
  });

  it('without a token the cluster endpoint answers 401; the node endpoint 403; a bad flag exits 2', async () => {
    assert.equal((await node.api('POST', '/api/v1/support/sysdump/cluster', {})).status, 401);
    assert.equal((await node.api('POST', '/api/v1/support/sysdump/node', {})).status, 403);
    const usage = await runCli(['sysdump', 'cluster', '--no-such-flag']);
    assert.equal(usage.code, 2);
  });
});
