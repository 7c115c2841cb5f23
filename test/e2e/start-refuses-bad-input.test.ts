import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { existsSync, mkdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { NodeProcess, runCli, tempDir } from './harness.js';

describe('neuwerk start refuses bad input with a clear message and the right exit code', () => {
  const dir = tempDir();
  after(() => dir.cleanup());

  it('unknown flag -> exit 2 naming the flag', async () => {
    const result = await runCli(['start', '--no-such-flag']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--no-such-flag/);
  });

  it('bad flag value -> exit 2 naming the flag and value', async () => {
    const badOption = await runCli(['start', '--log-format', 'xml']);
    assert.equal(badOption.code, 2);
    assert.match(badOption.stderr, /--log-format=xml/);
    const badAddress = await runCli(['start', '--data-dir', join(dir.path, 'x'), '--metrics-bind', '127.0.0.1:99999']);
    assert.equal(badAddress.code, 2);
    assert.match(badAddress.stderr, /--metrics-bind: "127\.0\.0\.1:99999" is not a valid address \(port 99999 is above 65535\)/);
  });

  it('invalid config -> exit 2 naming the file, the path inside it and the value', async () => {
    const file = join(dir.path, 'bad.yaml');
    writeFileSync(file, 'version: 1\nhttp:\n  bind: "localhost:http"\nmetrics:\n  bnd: 1\n');
    const result = await runCli(['start', '--config', file]);
    assert.equal(result.code, 2);
    assert.ok(result.stderr.includes(`config ${file}`), result.stderr);
    assert.match(result.stderr, /http\.bind: "localhost:http" is not a valid address/);
    assert.match(result.stderr, /metrics\.bnd: unknown key \(allowed: bind\)/);
  });

  it('a DNS upstream without a DNS listener -> exit 2 naming both flags', async () => {
    const result = await runCli(['start', '--data-dir', join(dir.path, 'y'), '--dns-upstream', '127.0.0.1:53']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--dns-upstream needs --dns-bind/);
  });

  it('port already in use -> exit 1 naming the address', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const result = await runCli(['start', '--data-dir', join(dir.path, 'z'), '--http-bind', `127.0.0.1:${port}`, '--metrics-bind', '127.0.0.1:0']);
      assert.equal(result.code, 1);
      assert.match(result.stderr, new RegExp(`--http-bind 127\\.0\\.0\\.1:${port} is already in use`));
    } finally {
      blocker.close();
    }
  });

  it('an address from the config file that is in use is named by its key and file, TCP or UDP', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    const udpBlocker = createSocket('udp4');
    await new Promise<void>((resolve) => udpBlocker.bind(0, '127.0.0.1', resolve));
    const udpPort = udpBlocker.address().port;
    try {
      const file = join(dir.path, 'taken.yaml');
      writeFileSync(file, `version: 1\nnode:\n  data_dir: ${join(dir.path, 'taken')}\nhttp:\n  bind: 127.0.0.1:0\nmetrics:\n  bind: 127.0.0.1:${port}\n`);
      const metrics = await runCli(['start', '--config', file]);
      assert.equal(metrics.code, 1, metrics.stderr);
      assert.ok(metrics.stderr.includes(`metrics.bind (config ${file}) 127.0.0.1:${port} is already in use`), metrics.stderr);
      // The same address given as a flag is named by the flag.
      const flagged = await runCli(['start', '--config', file, '--metrics-bind', `127.0.0.1:${port}`]);
      assert.ok(flagged.stderr.includes(`--metrics-bind 127.0.0.1:${port} is already in use`), flagged.stderr);
      writeFileSync(file, `version: 1\nnode:\n  data_dir: ${join(dir.path, 'taken')}\nhttp:\n  bind: 127.0.0.1:0\nmetrics:\n  bind: 127.0.0.1:0\ndns:\n  bind: 127.0.0.1:${udpPort}\n  upstreams: [127.0.0.1:9]\n`);
      const dns = await runCli(['start', '--config', file]);
      assert.equal(dns.code, 1, dns.stderr);
      assert.ok(dns.stderr.includes(`dns.bind (config ${file}) 127.0.0.1:${udpPort} (UDP) is already in use`), dns.stderr);
    } finally {
      blocker.close();
      udpBlocker.close();
    }
  });

  it('cluster port already in use -> exit 1 naming the address, without hanging', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    const data = join(dir.path, 'cluster-port');
    const token = await runCli(['cluster', 'token', 'create', '--path', join(data, 'bootstrap-token')]);
    assert.equal(token.code, 0, token.stderr);
    try {
      const started = Date.now();
      const result = await runCli(['start', '--data-dir', data, '--cluster-bind', `127.0.0.1:${port}`, '--http-bind', '127.0.0.1:0', '--metrics-bind', '127.0.0.1:0'], { timeoutMs: 20_000 });
      assert.equal(result.code, 1);
      assert.match(result.stderr, new RegExp(`--cluster-bind 127\\.0\\.0\\.1:${port} is already in use`));
      assert.ok(Date.now() - started < 15_000, 'the process exits instead of ticking on');
    } finally {
      blocker.close();
    }
  });

  it('data dir not writable -> exit 1 naming the path', async () => {
    // Runs as root in CI, where modes do not stop writes: a path below a regular file cannot be created by anyone.
    const file = join(dir.path, 'plain-file');
    writeFileSync(file, '');
    const result = await runCli(['start', '--data-dir', join(file, 'data')]);
    assert.equal(result.code, 1);
    assert.ok(result.stderr.includes(`data dir ${join(file, 'data')} is not writable`), result.stderr);
  });

  it('a corrupted node_id is refused and left as it was', async () => {
    const data = join(dir.path, 'corrupt-id');
    mkdirSync(data, { recursive: true });
    writeFileSync(join(data, 'node_id'), 'not-a-uuid\n');
    const result = await runCli(['start', '--data-dir', data, '--http-bind', '127.0.0.1:0', '--metrics-bind', '127.0.0.1:0']);
    assert.equal(result.code, 1);
    assert.ok(result.stderr.includes(`node id file ${join(data, 'node_id')} does not hold a node id`), result.stderr);
    assert.equal(readFileSync(join(data, 'node_id'), 'utf8'), 'not-a-uuid\n');
  });

  it('a truncated raft.db is refused, named, with recovery advice, and not reset', async () => {
    const data = join(dir.path, 'corrupt-store');
    const node = await NodeProcess.start(data);
    await node.stop('SIGTERM');
    const store = join(data, 'cluster', 'raft.db');
    truncateSync(store, 50);
    const result = await runCli(['start', '--data-dir', data, '--http-bind', '127.0.0.1:0', '--metrics-bind', '127.0.0.1:0']);
    assert.equal(result.code, 1);
    assert.ok(result.stderr.includes(`store ${store} is damaged`), result.stderr);
    assert.match(result.stderr, /backup/);
    assert.match(result.stderr, /rejoin|join it again/);
    assert.equal(readFileSync(store).length, 50, 'the damaged file is left for recovery');
    assert.ok(existsSync(store));
  });

  it('a raft.db overwritten with garbage is refused', async () => {
    const data = join(dir.path, 'garbage-store');
    mkdirSync(join(data, 'cluster'), { recursive: true });
    writeFileSync(join(data, 'cluster', 'raft.db'), Buffer.alloc(8192, 0x41));
    const result = await runCli(['start', '--data-dir', data, '--http-bind', '127.0.0.1:0', '--metrics-bind', '127.0.0.1:0']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /is damaged and was not opened: it is not an SQLite database/);
  });
});

describe('neuwerk cluster token create', () => {
  const dir = tempDir();
  after(() => dir.cleanup());

  it('prints only the new kid on stdout, writes mode 0600, appends on a second call', async () => {
    const path = join(dir.path, 'bootstrap-token');
    const first = await runCli(['cluster', 'token', 'create', '--path', path, '--kid', 'rack-1', '--valid-for', '1h']);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, 'rack-1\n');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const second = await runCli(['cluster', 'token', 'create', '--path', path, '--json']);
    assert.equal(second.code, 0, second.stderr);
    const answer = JSON.parse(second.stdout) as { kid: string; created: boolean };
    assert.equal(answer.created, false);
    const file = JSON.parse(readFileSync(path, 'utf8')) as { tokens: { kid: string }[] };
    assert.deepEqual(file.tokens.map((t) => t.kid), ['rack-1', answer.kid]);
  });

  it('a bad --valid-for exits 2 naming the flag', async () => {
    const result = await runCli(['cluster', 'token', 'create', '--path', join(dir.path, 'x'), '--valid-for', 'forever']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--valid-for: "forever" is not a duration/);
  });
});
