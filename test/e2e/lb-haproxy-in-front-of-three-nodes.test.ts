import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import {
  proxyConnect,
  proxyGet,
  startEchoServer,
  startHttpOrigin,
  startStubDns,
  type StubDns,
  type TestServer,
} from '../bench/dataplane-fixtures.js';
import { TestCluster, freePort, type ClusterMember } from './cluster-harness.js';
import { HaproxyProcess } from './haproxy-harness.js';
import { NEUWERK_BIN, REPO_ROOT, runCli, tempDir } from './harness.js';

/**
 * The whole path an operator builds: three real nodes, `neuwerk lb haproxy` rendering the
 * configuration from their live membership, and a real HAProxy (master-worker, foreground) in
 * front, carrying CONNECT tunnels and plain HTTP to origins this test starts.
 */
const PROXY_BACKEND = 'neuwerk_proxy_nodes';

interface TunnelResult {
  ok: boolean;
  status: number | null;
  reason: string;
}

/** One CONNECT through `port` from `source`, a round trip of bytes, then close. */
async function tunnel(port: number, authority: string, source?: string): Promise<TunnelResult> {
  let socket: Socket | null = null;
  try {
    const opened = await proxyConnect(port, authority, source);
    socket = opened.socket;
    if (opened.response.status !== 200) return { ok: false, status: opened.response.status, reason: opened.response.headers['x-neuwerk-reason'] ?? '' };
    const payload = `ping-${Math.random().toString(36).slice(2)}`;
    socket.write(payload);
    const echoed = (await opened.reader.collect(payload.length, 3_000)).toString();
    return { ok: echoed === payload, status: 200, reason: echoed === payload ? '' : `echo mismatch: ${echoed}` };
  } catch (err) {
    return { ok: false, status: null, reason: (err as Error).message };
  } finally {
    socket?.destroy();
  }
}

describe('HAProxy rendered by `neuwerk lb haproxy` in front of three real nodes', { timeout: 240_000 }, () => {
  const scratch = tempDir('neuwerk-haproxy-');
  const statsSocket = join(scratch.path, 'admin.sock');
  const configPath = join(scratch.path, 'haproxy.cfg');
  let dns: StubDns;
  let echo: TestServer;
  let origin: TestServer;
  let cluster: TestCluster;
  let haproxy: HaproxyProcess;
  let lbProxyPort: number;
  let lbArgs: string[];
  const nodeArgs = async (): Promise<string[]> => [
    '--dns-bind', '127.0.0.1:0', '--dns-upstream', `127.0.0.1:${dns.address.port}`, '--proxy-bind', `127.0.0.1:${await freePort()}`, '--default-policy', 'deny',
  ];

  /** connect.allowed of every live node's own stats (routing local: each node describes itself). */
  async function allowedByNode(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (const member of cluster.alive()) {
      const stats = await cluster.api(member, 'GET', '/api/v1/stats');
      assert.equal(stats.status, 200, JSON.stringify(stats.json));
      counts.set(member.node.nodeId, (stats.json as { proxy: { decisions: { connect: { allowed: number } } } }).proxy.decisions.connect.allowed);
    }
    return counts;
  }

  /** Which node served `count` tunnels from `source`: exactly one node's counter moved, by `count`. */
  async function servedBy(source: string, count: number): Promise<string> {
    const before = await allowedByNode();
    for (let i = 0; i < count; i += 1) {
      const result = await tunnel(lbProxyPort, `origin.test:${echo.port}`, source);
      assert.ok(result.ok, `tunnel ${i + 1} from ${source}: ${JSON.stringify(result)}`);
    }
    const after = await allowedByNode();
    const moved = [...after].filter(([id, n]) => n !== (before.get(id) ?? 0)).map(([id, n]) => [id, n - (before.get(id) ?? 0)] as const);
    assert.equal(moved.length, 1, `tunnels from ${source} were served by exactly one node: ${JSON.stringify(moved)}`);
    assert.equal(moved[0]?.[1], count, `that node served all ${count} tunnels from ${source}`);
    return moved[0]?.[0] as string;
  }

  async function render(extra: string[] = []): Promise<void> {
    const rendered = await runCli([...lbArgs, '--output', configPath, ...extra]);
    assert.equal(rendered.code, 0, rendered.stderr);
  }

  before(async () => {
    dns = await startStubDns({ 'origin.test': { A: ['127.0.0.1'], ttl: 60 }, 'other.test': { A: ['127.0.0.1'], ttl: 60 } });
    echo = await startEchoServer();
    origin = await startHttpOrigin();
    cluster = await TestCluster.create(3, nodeArgs);
    const token = await cluster.token();
    const policy = {
      default_policy: 'deny',
      source_groups: [{
        id: 'lab',
        sources: { cidrs: ['127.0.0.0/8'] },
        rules: [
          { id: 'echo', action: 'allow', match: { dns_hostname: { exact: ['origin.test'] }, dst_cidrs: ['127.0.0.1/32'], dst_ports: [echo.port] } },
          { id: 'web', action: 'allow', match: { dns_hostname: { exact: ['origin.test'] }, dst_cidrs: ['127.0.0.1/32'], dst_ports: [origin.port], http: { methods: ['GET'], path: { prefix: ['/ok'] } } } },
        ],
      }],
    };
    const put = await cluster.api(cluster.members[1] as ClusterMember, 'PUT', '/api/v1/policy', policy);
    assert.equal(put.status, 200, JSON.stringify(put.json));
    const version = (put.json as { version: number }).version;
    for (const member of cluster.members) {
      const deadline = Date.now() + 10_000;
      while ((((await cluster.api(member, 'GET', '/api/v1/cluster/status?local=true')).json as { policy_version?: number }).policy_version ?? 0) < version) {
        if (Date.now() > deadline) throw new Error(`node ${member.node.nodeId} did not enforce policy version ${version}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    lbProxyPort = await freePort();
    lbArgs = ['lb', 'haproxy', '--http-addr', (cluster.members[0] as ClusterMember).node.httpAddress, '--insecure', '--token', token,
      '--proxy-bind', `127.0.0.1:${lbProxyPort}`, '--api-bind', `127.0.0.1:${await freePort()}`, '--stats-socket', statsSocket];
    await render();
    haproxy = await HaproxyProcess.start(configPath, statsSocket, scratch.path);
    await haproxy.waitForServers(PROXY_BACKEND, (s) => s.size === 3 && [...s.values()].every((v) => v === 'UP'), 'three servers UP');
  });

  after(async () => {
    await haproxy?.stop();
    await cluster?.stop();
    await Promise.all([dns?.close(), echo?.close(), origin?.close()]);
    scratch.cleanup();
  });

  it('every member records its own forward proxy address, and the rendered servers are exactly those', async () => {
    const members = (await cluster.api(cluster.members[2] as ClusterMember, 'GET', '/api/v1/cluster/members')).json as { members: { node_id: string; proxy_addr: string | null; dns_addr: string | null }[] };
    for (const member of cluster.members) {
      const record = members.members.find((m) => m.node_id === member.node.nodeId);
      assert.equal(record?.proxy_addr, member.node.proxyAddress, `proxy_addr of ${member.node.nodeId}`);
      assert.equal(record?.dns_addr, member.node.dnsAddress, `dns_addr of ${member.node.nodeId}`);
    }
    const servers = readFileSync(configPath, 'utf8').split('\n').filter((l) => l.trim().startsWith('server ')).slice(0, 3);
    assert.deepEqual(servers.map((l) => l.trim().split(' ').slice(1, 3).join(' ')).sort(), cluster.members.map((m) => `${m.node.nodeId} ${m.node.proxyAddress}`).sort());
  });

  it('CONNECT tunnels and plain HTTP through HAProxy reach the origins, and are refused with 403 where the policy says so', async () => {
    const allowed = await tunnel(lbProxyPort, `origin.test:${echo.port}`);
    assert.ok(allowed.ok, JSON.stringify(allowed));
    const otherName = await tunnel(lbProxyPort, `other.test:${echo.port}`);
    assert.equal(otherName.status, 403, JSON.stringify(otherName));
    assert.match(otherName.reason, /denied/);
    const otherPort = await tunnel(lbProxyPort, `origin.test:${origin.port}`);
    assert.equal(otherPort.status, 403, 'CONNECT to the web port is not allowed; only GET /ok over plain HTTP');

    const ok = await proxyGet(lbProxyPort, `http://origin.test:${origin.port}/ok/page`);
    assert.equal(ok.status, 200, ok.headers['x-neuwerk-reason']);
    const wrongPath = await proxyGet(lbProxyPort, `http://origin.test:${origin.port}/admin`);
    assert.equal(wrongPath.status, 403);
    assert.match(wrongPath.headers['x-neuwerk-reason'] ?? '', /denied/);
  });

  it('a client source address keeps landing on the same node; different sources spread over more than one node', async () => {
    const owners = new Map<string, string>();
    for (let i = 2; i <= 13; i += 1) owners.set(`127.0.0.${i}`, await servedBy(`127.0.0.${i}`, 3));
    const used = new Set(owners.values());
    assert.ok(used.size > 1, `12 source addresses all landed on one node: ${JSON.stringify([...owners])}`);
    // Asked again later, each source still lands where it did.
    for (const source of ['127.0.0.2', '127.0.0.7', '127.0.0.13']) assert.equal(await servedBy(source, 1), owners.get(source), `${source} moved`);
  });

  it('kill -9 of a node under a steady stream of new tunnels: the health check takes it out, then every new tunnel succeeds', async (t: TestContext) => {
    const status = await cluster.status();
    const victim = cluster.members.find((m) => m.node.nodeId !== status?.leader_id) as ClusterMember;
    const victimId = victim.node.nodeId;
    const sources = Array.from({ length: 16 }, (_, i) => `127.0.1.${i + 1}`);
    const results: { at: number; ok: boolean; reason: string }[] = [];
    let downAt: number | null = null;
    let running = true;
    const load = (async () => {
      for (let i = 0; running; i += 1) {
        const result = await tunnel(lbProxyPort, `origin.test:${echo.port}`, sources[i % sources.length]);
        results.push({ at: Date.now(), ok: result.ok, reason: result.reason });
      }
    })();
    await new Promise((r) => setTimeout(r, 1_000));
    const killedAt = Date.now();
    await victim.node.stop('SIGKILL');
    try {
      await haproxy.waitForServers(PROXY_BACKEND, (s) => (s.get(victimId) ?? '').startsWith('DOWN'), `${victimId} DOWN`, 15_000);
      downAt = Date.now();
      await new Promise((r) => setTimeout(r, 3_000));
    } finally {
      running = false;
      await load;
    }
    const detectionMs = (downAt as number) - killedAt;
    const before = results.filter((r) => r.at < killedAt);
    const between = results.filter((r) => r.at >= killedAt && r.at < (downAt as number));
    const afterDown = results.filter((r) => r.at >= (downAt as number));
    const failedBetween = between.filter((r) => !r.ok);
    t.diagnostic(`health check marked the killed node DOWN after ${detectionMs} ms; tunnels: ${before.length} before the kill (all ok: ${before.every((r) => r.ok)}), ` +
      `${between.length} until DOWN of which ${failedBetween.length} failed, ${afterDown.length} after DOWN`);
    assert.ok(before.length > 0 && before.every((r) => r.ok), 'tunnels worked before the kill');
    assert.ok(detectionMs < 5_000, `DOWN after ${detectionMs} ms (checks every 1 s, every 500 ms once failing, fall 2)`);
    assert.ok(afterDown.length > 10, `the load kept going after DOWN (${afterDown.length} tunnels)`);
    assert.deepEqual(afterDown.filter((r) => !r.ok).map((r) => r.reason), [], 'every tunnel after the node was marked DOWN succeeded');

    await cluster.restart(victim);
    await haproxy.waitForServers(PROXY_BACKEND, (s) => s.get(victimId) === 'UP', `${victimId} UP again after its restart`);
  });

  it('SIGTERM of a node: /ready turns 503 first, HAProxy takes it out and sends its sources elsewhere while it is still running', async (t: TestContext) => {
    const status = await cluster.status();
    const target = cluster.members.find((m) => m.node.nodeId !== status?.leader_id) as ClusterMember;
    const targetId = target.node.nodeId;
    // Sources HAProxy currently sends to the target.
    const mine: string[] = [];
    for (let i = 1; i <= 40 && mine.length < 3; i += 1) {
      if ((await servedBy(`127.0.2.${i}`, 1)) === targetId) mine.push(`127.0.2.${i}`);
    }
    assert.ok(mine.length > 0, `no source of 40 mapped to ${targetId}`);

    const signalledAt = Date.now();
    const stopping = target.node.stop('SIGTERM');
    let readyAt: number | null = null;
    while (readyAt === null && Date.now() - signalledAt < 2_000) {
      if ((await target.node.api('GET', '/ready')).status === 503) readyAt = Date.now();
    }
    await haproxy.waitForServers(PROXY_BACKEND, (s) => (s.get(targetId) ?? '').startsWith('DOWN'), `${targetId} DOWN`, 5_000);
    const downAt = Date.now();
    assert.equal(target.node.child.exitCode, null, 'the node was still running when HAProxy took it out');
    // While it drains, the sources that were its own go to the other nodes, and it serves none.
    const targetBefore = (await allowedByNode()).get(targetId);
    for (const source of mine) {
      const result = await tunnel(lbProxyPort, `origin.test:${echo.port}`, source);
      assert.ok(result.ok, `tunnel from ${source} while ${targetId} drains: ${JSON.stringify(result)}`);
    }
    const targetAfter = (await allowedByNode()).get(targetId);
    const stillRunning = target.node.child.exitCode === null;
    const stopped = await stopping;
    t.diagnostic(`SIGTERM -> /ready 503 after ${(readyAt ?? NaN) - signalledAt} ms -> HAProxy DOWN after ${downAt - signalledAt} ms -> exit after ${stopped.elapsedMs} ms`);
    assert.ok(readyAt !== null, '/ready answered 503 right after SIGTERM');
    assert.ok(readyAt <= downAt && downAt < signalledAt + stopped.elapsedMs, 'order: /ready 503, then HAProxy DOWN, then exit');
    assert.ok(stillRunning, 'the checks above ran while the node was still draining');
    assert.equal(targetAfter, targetBefore, 'the draining node received no new tunnels');
    assert.equal(stopped.code, 0, target.node.stderr);

    await cluster.restart(target);
    await haproxy.waitForServers(PROXY_BACKEND, (s) => s.get(targetId) === 'UP', `${targetId} UP again after its restart`);
  });

  it('--watch: a fourth node joins, the file gains it and one reload (SIGUSR2 to the same HAProxy master) puts it in service', async () => {
    const masterPid = haproxy.pid;
    const watcher = spawn(process.execPath, [NEUWERK_BIN, ...lbArgs, '--output', configPath, '--watch', '--interval', '300ms', '--reload-cmd', `kill -USR2 ${masterPid}`], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let watcherLog = '';
    watcher.stderr.on('data', (chunk: Buffer) => (watcherLog += chunk.toString()));
    const watcherExited = new Promise<number | null>((resolve) => watcher.on('close', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 15_000;
      while (!watcherLog.includes('unchanged') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.match(watcherLog, /unchanged/, 'the watcher found the file current');
      const fourth = await cluster.add(cluster.members[0] as ClusterMember, await nodeArgs());
      const fourthId = fourth.node.nodeId;
      await haproxy.waitForServers(PROXY_BACKEND, (s) => s.size === 4 && s.get(fourthId) === 'UP', `the fourth server UP after the reload (watcher: ${watcherLog})`, 30_000);
      assert.equal(haproxy.child.exitCode, null, 'the same HAProxy master kept running');
      assert.ok(readFileSync(configPath, 'utf8').includes(`server ${fourthId} ${fourth.node.proxyAddress} `));
      // New sources now also reach the fourth node.
      let reached = false;
      for (let i = 1; i <= 40 && !reached; i += 1) reached = (await servedBy(`127.0.3.${i}`, 1)) === fourthId;
      assert.ok(reached, 'one of 40 new source addresses landed on the fourth node');
    } finally {
      watcher.kill('SIGTERM');
    }
    assert.equal(await watcherExited, 0, watcherLog);
  });
});
