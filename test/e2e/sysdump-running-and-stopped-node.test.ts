import assert from 'node:assert/strict';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NodeProcess, runCli, tempDir } from './harness.js';
import { unpackArchive } from './archive-helpers.js';

/** One sysdump run is bounded by the live probe, the snapshots and the command timeouts. */
const SYSDUMP_RUN_TIMEOUT_MS = 25_000;

interface Manifest {
  format_version: number;
  node_id: string;
  neuwerk_version: string;
  generated_at: string;
  mode: 'running' | 'stopped';
  contents: { path: string; size_bytes: number }[];
  errors: { source: string; error: string }[];
}

const SUMMARY_FILES = [
  'summary/state.json', 'summary/cluster.json', 'summary/policy.json', 'summary/service-accounts.json',
  'summary/configuration.json', 'summary/readiness.json', 'summary/metrics.txt',
];
/** Extracts into a fresh directory; returns every file and the directory. */
async function unpack(archive: string, into: string): Promise<{ files: Map<string, Buffer>; root: string }> {
  return { files: await unpackArchive(archive, into), root: into };
}

const COMMAND_FILES = ['uname-a', 'ip-addr', 'ip-route', 'ss-tlnp', 'df-h', 'free-m', 'node-version'].map((name) => `system/commands/${name}.txt`);


function json<T>(files: Map<string, Buffer>, path: string): T {
  const content = files.get(path);
  assert.ok(content, `${path} is in the archive`);
  return JSON.parse(content.toString('utf8')) as T;
}

function checkManifest(files: Map<string, Buffer>, nodeId: string, mode: 'running' | 'stopped', startedMs: number): Manifest {
  const manifest = json<Manifest>(files, 'manifest.json');
  assert.equal(manifest.node_id, nodeId);
  assert.equal(manifest.mode, mode);
  assert.match(manifest.neuwerk_version, /^\d+\.\d+\.\d+/);
  assert.match(manifest.generated_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/, 'UTC');
  assert.ok(Date.parse(manifest.generated_at) >= startedMs - 1000 && Date.parse(manifest.generated_at) <= Date.now() + 1000);
  assert.deepEqual(manifest.contents.map((c) => c.path).sort(), [...files.keys()].sort(), 'contents lists exactly the archive files');
  for (const entry of manifest.contents) assert.equal(entry.size_bytes, (files.get(entry.path) as Buffer).length, `size of ${entry.path}`);
  for (const path of ['manifest.json', ...SUMMARY_FILES, ...COMMAND_FILES]) assert.ok(files.has(path), `${path} is in the archive`);
  for (const path of COMMAND_FILES) assert.match((files.get(path) as Buffer).toString(), /^\$ .+\nexit_status: .+\n--- stdout ---\n[\s\S]*--- stderr ---\n/, path);
  return manifest;
}

describe('neuwerk sysdump of a running and then a stopped node', () => {
  const dir = tempDir('neuwerk-sysdump-e2e-');
  const dataDir = join(dir.path, 'data');
  let node: NodeProcess;
  let appliedWhileRunning = 0;

  before(async () => {
    node = await NodeProcess.start(dataDir);
  });
  after(async () => {
    await node.stop('SIGKILL');
    dir.cleanup();
  });

  it('running: default name in the current directory, mode 0600, live readiness, metrics and logs', async () => {
    const cwd = join(dir.path, 'cwd');
    mkdirSync(cwd);
    const startedMs = Date.now();
    const result = await runCli(['sysdump', '--data-dir', dataDir], { cwd, timeoutMs: SYSDUMP_RUN_TIMEOUT_MS });
    assert.equal(result.code, 0, result.stderr);
    const path = result.stdout.trim();
    assert.equal(result.stdout, `${path}\n`, 'stdout holds only the path');
    assert.match(path, new RegExp(`^${cwd}/neuwerk-sysdump-${node.nodeId}-\\d{8}T\\d{6}Z\\.tar\\.gz$`));
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.match(result.stderr, /sysdump: node is running/);

    const { files, root } = await unpack(path, join(dir.path, 'running'));
    const manifest = checkManifest(files, node.nodeId, 'running', startedMs);
    const failed = manifest.errors.map((e) => e.source);
    for (const source of ['logs/', 'summary/metrics.txt', 'summary/readiness.json', 'store', 'configuration', 'api token']) {
      assert.ok(!failed.includes(source), `${source} was collected: ${JSON.stringify(manifest.errors)}`);
    }

    const readiness = json<{ node_running: boolean; http_status: number; ready: boolean; checks: { name: string }[] }>(files, 'summary/readiness.json');
    assert.equal(readiness.node_running, true);
    assert.equal(readiness.ready, true);
    assert.ok(readiness.checks.some((c) => c.name === 'store'));
    assert.match((files.get('summary/metrics.txt') as Buffer).toString(), new RegExp(`neuwerk_raft_term\\{node_id="${node.nodeId}"\\}`));
    const logs = (files.get('logs/neuwerk.jsonl') as Buffer).toString().trim().split('\n').map((line) => JSON.parse(line) as { msg: string });
    assert.ok(logs.some((line) => line.msg === 'neuwerk node started'), 'the ring holds the startup line');
    assert.ok(statSync(join(root, 'logs')).isDirectory());

    const state = json<{ node_id: string; data_dir: string; applied_index: number; raft: { hard_state: { term: number; commit: number }; log: { last_index: number } }; members: { node_id: string }[] }>(files, 'summary/state.json');
    assert.equal(state.node_id, node.nodeId);
    assert.equal(state.data_dir, dataDir);
    assert.ok(state.applied_index > 0);
    assert.ok(state.raft.hard_state.term >= 1);
    assert.ok(state.raft.log.last_index >= state.applied_index);
    assert.deepEqual(state.members.map((m) => m.node_id), [node.nodeId]);
    appliedWhileRunning = state.applied_index;
    const cluster = json<{ members: { node_id: string; http_addr: string }[] }>(files, 'summary/cluster.json');
    assert.equal(cluster.members[0]?.http_addr, node.httpAddress);
    const policy = json<{ version: number; document: { default_policy: string } }>(files, 'summary/policy.json');
    assert.ok(policy.version > 0);
    assert.equal(policy.document.default_policy, 'deny');
    // The node was started with --http-bind and --metrics-bind flags (port 0): the archive has
    // what it runs with, not what the sysdump command would resolve on its own (port 8443).
    const configuration = json<{ resolved: { dataDir: string; http: { bind: string } }; resolved_from: string }>(files, 'summary/configuration.json');
    assert.equal(configuration.resolved.dataDir, dataDir);
    assert.equal(configuration.resolved.http.bind, '127.0.0.1:0');
    assert.match(configuration.resolved_from, /^the running node \(https:\/\/127\.0\.0\.1:\d+\)$/);
    const accounts = json<{ accounts: unknown[]; signing_keys: { kid: string }[] }>(files, 'summary/service-accounts.json');
    assert.equal(accounts.signing_keys.length, 1);
  });

  it('stopped: the store summaries are there; logs, metrics and readiness are recorded as missing', async () => {
    const stopped = await node.stop('SIGTERM');
    assert.equal(stopped.code, 0);
    const output = join(dir.path, 'out', 'stopped.tar.gz');
    const startedMs = Date.now();
    const result = await runCli(['sysdump', '--data-dir', dataDir, '--output', output], { timeoutMs: SYSDUMP_RUN_TIMEOUT_MS });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${output}\n`);
    assert.equal(statSync(output).mode & 0o777, 0o600);

    const { files, root } = await unpack(output, join(dir.path, 'stopped'));
    const manifest = checkManifest(files, node.nodeId, 'stopped', startedMs);
    for (const source of ['logs/', 'summary/metrics.txt', 'summary/readiness.json']) {
      const error = manifest.errors.find((e) => e.source === source);
      assert.ok(error, `${source} is listed as missing`);
      assert.match(error.error, /node not running/);
    }
    assert.ok(![...files.keys()].some((p) => p.startsWith('logs/')), 'a stopped node has no log lines');
    assert.ok(statSync(join(root, 'logs')).isDirectory(), 'the layout still has logs/');
    const readiness = json<{ node_running: boolean; detail: string }>(files, 'summary/readiness.json');
    assert.equal(readiness.node_running, false);
    assert.match(readiness.detail, /node not running/);
    const state = json<{ applied_index: number; members: { node_id: string }[] }>(files, 'summary/state.json');
    assert.ok(state.applied_index >= appliedWhileRunning, 'the store was read read-only after the stop');
    assert.deepEqual(state.members.map((m) => m.node_id), [node.nodeId]);
    const configuration = json<{ resolved: { http: { bind: string } }; resolved_from: string }>(files, 'summary/configuration.json');
    assert.equal(configuration.resolved.http.bind, '127.0.0.1:8443', 'without the node, the sysdump resolves the file and defaults itself');
    assert.match(configuration.resolved_from, /the node is not running: its start flags are not known/);
  });

  it('usage and output errors exit 2 or 1 and name the path', async () => {
    const missingConfig = join(dir.path, 'no-such.yaml');
    const badConfig = await runCli(['sysdump', '--data-dir', dataDir, '--config', missingConfig]);
    assert.equal(badConfig.code, 2);
    assert.ok(badConfig.stderr.includes(missingConfig), badConfig.stderr);
    assert.equal(badConfig.stdout, '');

    const missingDir = join(dir.path, 'no-such-dir');
    const badDir = await runCli(['sysdump', '--data-dir', missingDir]);
    assert.equal(badDir.code, 2);
    assert.ok(badDir.stderr.includes(missingDir), badDir.stderr);

    const blocker = join(dir.path, 'a-file');
    writeFileSync(blocker, 'x');
    const unwritable = join(blocker, 'dump.tar.gz');
    const badOutput = await runCli(['sysdump', '--data-dir', dataDir, '--output', unwritable], { timeoutMs: SYSDUMP_RUN_TIMEOUT_MS });
    assert.equal(badOutput.code, 1);
    assert.ok(badOutput.stderr.includes(unwritable), badOutput.stderr);
    assert.equal(badOutput.stdout, '');

    const unknown = await runCli(['sysdump', '--no-such-flag']);
    assert.equal(unknown.code, 2);
  });
});
