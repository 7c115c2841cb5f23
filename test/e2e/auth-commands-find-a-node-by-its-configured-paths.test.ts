import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NodeProcess, runCli, tempDir } from './harness.js';

describe('auth commands find a node whose config file moves its files', () => {
  const dir = tempDir();
  const dataDir = join(dir.path, 'data');
  const config = join(dir.path, 'node.yaml');
  let node: NodeProcess;
  before(async () => {
    // Everything the node keeps outside the default layout under its data dir.
    writeFileSync(
      config,
      [
        'version: 1',
        'node:',
        `  node_id_path: ${join(dir.path, 'ids', 'my-node-id')}`,
        'cluster:',
        `  data_dir: ${join(dir.path, 'raft-elsewhere')}`,
        'http:',
        `  tls_dir: ${join(dir.path, 'tls-elsewhere')}`,
        '',
      ].join('\n'),
    );
    node = await NodeProcess.start(dataDir, ['--config', config]);
  });
  after(async () => {
    await node.stop('SIGKILL');
    dir.cleanup();
  });

  it('the startup log names the bootstrap command with the config file, and that command works', async () => {
    assert.ok(existsSync(join(dir.path, 'raft-elsewhere', 'raft.db')) && !existsSync(join(dataDir, 'cluster', 'raft.db')), 'the store is where the config put it');
    const started = node.logLines().find((line) => line.msg === 'neuwerk node started') as { admin_token: string };
    assert.equal(started.admin_token, `neuwerk auth bootstrap --data-dir ${dataDir} --config ${config}`);
    const minted = await runCli(started.admin_token.split(' ').slice(1));
    assert.equal(minted.code, 0, minted.stderr);
    const whoami = await node.api('GET', '/api/v1/auth/whoami', undefined, { authorization: `Bearer ${minted.stdout.trim()}` });
    assert.equal(whoami.status, 200);
    // Commands that call the node's own API find its node id and CA where the config put them.
    const rotated = await runCli(['auth', 'key', 'rotate', '--data-dir', dataDir, '--config', config, '--json']);
    assert.equal(rotated.code, 0, rotated.stderr);
    const keys = await runCli(['auth', 'key', 'list', '--data-dir', dataDir, '--config', config, '--json']);
    assert.equal(keys.code, 0, keys.stderr);
    assert.equal((JSON.parse(keys.stdout) as { keys: unknown[] }).keys.length, 2);
  });

  it('without the config file the default layout is searched, and the error names where', async () => {
    const lost = await runCli(['auth', 'bootstrap', '--data-dir', dataDir]);
    assert.equal(lost.code, 1);
    assert.ok(lost.stderr.includes(`no node store at ${join(dataDir, 'cluster', 'raft.db')}`), lost.stderr);
  });
});
