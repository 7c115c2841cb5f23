import assert from 'node:assert/strict';
import { connect } from 'node:tls';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { createClusterCa, createNodeCsr, signNodeCertificate } from '../../src/cluster/ca.js';
import { MAX_SNAPSHOT_CHUNK_BYTES } from '../../src/cluster/raft-host.js';
import { KEYVAL_VALUE_MAX_BYTES } from '../../src/store/commands.js';
import { TestCluster, type ClusterMember } from './cluster-harness.js';
import { runCli, tempDir } from './harness.js';

/** Connects to a cluster port (optionally with a client certificate), sends a frame, and says what happened. */
function probeClusterPort(port: number, ca: string, client: { key?: string; cert?: string } = {}): Promise<string> {
  return new Promise<string>((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, ca, ...client, checkServerIdentity: () => undefined });
    socket.on('secureConnect', () => {
      socket.write(Buffer.from([0, 0, 0, 2, 123, 125]));
      socket.once('data', () => resolve('answered'));
    });
    socket.on('error', (err) => resolve(`error: ${err.message}`));
    socket.on('close', () => resolve('closed'));
    setTimeout(() => resolve('timeout'), 5000);
  });
}

describe('cluster: snapshots, the mTLS port, and the operator CLI', () => {
  let cluster: TestCluster;
  const scratch = tempDir();
  before(async () => {
    // A tiny snapshot threshold and no trailing window, so a follower that misses writes falls behind the compacted log.
    const config = join(scratch.path, 'config.yaml');
    writeFileSync(config, 'version: 1\ncluster:\n  snapshot_threshold_entries: 16\n  snapshot_trailing_entries: 0\n');
    cluster = await TestCluster.create(3, ['--config', config]);
  });
  after(async () => {
    await cluster.stop();
    scratch.cleanup();
  });

  it('a follower that fell behind the compacted log catches up through InstallSnapshot', async () => {
    const status = await cluster.status();
    assert.ok(status !== null);
    const leader = cluster.leader(status);
    const follower = cluster.members.find((m) => m !== leader) as ClusterMember;
    await follower.node.stop('SIGKILL');
    // Enough state for a snapshot of several InstallSnapshot chunks (MAX_SNAPSHOT_CHUNK_BYTES each).
    const bulk = 'b'.repeat(KEYVAL_VALUE_MAX_BYTES - 1024);
    const bulkKeys = Math.ceil((2.5 * MAX_SNAPSHOT_CHUNK_BYTES) / bulk.length);
    for (let i = 0; i < bulkKeys; i += 1) {
      const put = await cluster.api(leader, 'PUT', `/api/v1/keyval/bulk/k${i}`, { value: bulk });
      assert.equal(put.status, 200);
    }
    for (let i = 0; i < 60; i += 1) {
      const put = await cluster.api(leader, 'PUT', `/api/v1/keyval/snap/k${i}`, { value: `v${i}` });
      assert.equal(put.status, 200);
    }
    assert.ok(leader.node.logLines().some((l) => l.msg === 'created raft snapshot and compacted the log'), 'the leader compacted its log');
    const leaderView = (await cluster.api(leader, 'GET', '/api/v1/cluster/status?local=true')).json as { log_first_index: number };
    await cluster.restart(follower);
    const appliedAtRestart = follower.node.logLines().find((l) => l.msg === 'store opened')?.applied_index as number;
    assert.ok(leaderView.log_first_index > appliedAtRestart + 1, `the leader's log starts at ${leaderView.log_first_index}, past what the follower had (${appliedAtRestart}): only a snapshot can bridge that`);
    const deadline = Date.now() + 20_000;
    let value: string | null = null;
    while (value !== 'v59' && Date.now() < deadline) {
      const get = await cluster.api(follower, 'GET', '/api/v1/keyval/snap/k59?stale=true');
      value = get.status === 200 ? (get.json as { value: string }).value : null;
      if (value !== 'v59') await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(value, 'v59');
    const list = await cluster.api(follower, 'GET', '/api/v1/keyval/snap?stale=true&limit=100');
    assert.equal((list.json as { items: unknown[] }).items.length, 60);
    const bulkList = await cluster.api(follower, 'GET', `/api/v1/keyval/bulk?stale=true&limit=${bulkKeys + 1}`);
    const bulkItems = (bulkList.json as { items: { value: string }[] }).items;
    assert.equal(bulkItems.length, bulkKeys);
    assert.ok(bulkItems.every((item) => item.value === bulk));
    // It caught up by InstallSnapshot, in several chunks — not from appends queued while it was down.
    // (Its log line may reach the pipe after the answers above: the logger writes asynchronously.)
    await follower.node.waitForLog((l) => l.msg === 'installed a raft snapshot from the leader', 5_000).catch(() => undefined);
    const installed = follower.node.logLines().find((l) => l.msg === 'installed a raft snapshot from the leader');
    if (installed === undefined) {
      // Say enough to tell a leader change (a new leader whose own log still held what the follower missed) from a bug.
      const now = await cluster.status();
      const terms = follower.node.logLines().filter((l) => typeof l.msg === 'string' && /leader|snapshot/.test(l.msg)).map((l) => `${String(l.msg)} ${JSON.stringify({ term: l.term, index: l.index })}`);
      assert.fail(`the follower never installed a snapshot; leader then ${leader.node.nodeId}, now ${String(now?.leader_id)} (term ${String(now?.term)}); follower log: ${terms.join(' | ')}`);
    }
    assert.ok((installed.bytes as number) > 2 * MAX_SNAPSHOT_CHUNK_BYTES, `the snapshot had ${String(installed.bytes)} bytes`);
  });

  it('the cluster port refuses a client without a certificate', async () => {
    const member = cluster.members[0] as ClusterMember;
    const ca = readFileSync(join(member.dataDir, 'cluster', 'tls', 'ca.crt'), 'utf8');
    const outcome = await probeClusterPort(member.clusterPort, ca);
    assert.notEqual(outcome, 'answered');
    assert.notEqual(outcome, 'timeout');
    // A certificate from another CA, even one naming a real member, gets nothing either.
    const otherCa = createClusterCa('intruder');
    const forged = createNodeCsr((cluster.members[1] as ClusterMember).node.nodeId, '127.0.0.1');
    const forgedCert = signNodeCertificate(otherCa, forged.csrPem, (cluster.members[1] as ClusterMember).node.nodeId, '127.0.0.1');
    const intruder = await probeClusterPort(member.clusterPort, ca, { key: forged.keyPem, cert: forgedCert });
    assert.notEqual(intruder, 'answered');
    assert.notEqual(intruder, 'timeout');
    // The join listener is plain HTTP, but only a token-authenticated request gets anything.
    const joinAnswer = await request(`http://127.0.0.1:${member.joinPort}/v1/join`, { method: "POST", body: "{}" });
    assert.equal(joinAnswer.statusCode, 403);
    assert.match(await joinAnswer.body.text(), /malformed join request/);
  });

  it('neuwerk status and cluster members list render the cluster; --json carries the numbers', async () => {
    const member = cluster.members[1] as ClusterMember;
    const env = { NEUWERK_TOKEN: await cluster.token() };
    const common = ['--http-addr', `127.0.0.1:${member.httpPort}`, '--ca', join(member.dataDir, 'http-tls', 'ca.crt')];
    const json = await runCli(['status', ...common, '--json'], { env });
    assert.equal(json.code, 0, json.stderr);
    const status = JSON.parse(json.stdout) as { voters: number; healthy_voters: number; tolerates: number; leader_id: string; peers: { node_id: string }[]; policy_versions: Record<string, number | null> };
    assert.equal(status.voters, 3);
    const versions = Object.values(status.policy_versions);
    assert.equal(versions.length, 3);
    assert.ok(versions.every((v) => typeof v === 'number' && v > 0 && v === versions[0]), `every node enforces the same policy version: ${JSON.stringify(status.policy_versions)}`);
    assert.equal(status.tolerates, 1);
    assert.equal(typeof status.leader_id, 'string');
    const text = await runCli(['status', ...common], { env });
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /voters 3\/3 healthy, tolerates 1 failure/);
    assert.match(text.stdout, /POLICY/);
    assert.match(text.stdout, new RegExp(`v${versions[0]}`));
    for (const peer of status.peers) assert.ok(text.stdout.includes(peer.node_id));
    const members = await runCli(['cluster', 'members', 'list', ...common, '--json'], { env });
    assert.equal(members.code, 0, members.stderr);
    const list = (JSON.parse(members.stdout) as { members: { node_id: string; voter: boolean; status: string }[] }).members;
    assert.equal(list.length, 3);
    assert.ok(list.every((m) => m.voter && m.status === 'healthy'));
    const metrics = await request(`http://${member.node.metricsAddress}/metrics`);
    const body = await metrics.body.text();
    assert.match(body, /neuwerk_cluster_voters\{[^}]*\} 3/);
    assert.match(body, /neuwerk_cluster_tolerates\{[^}]*\} 1/);
    // Every drop reason has a sample (0 or more) from the start.
    for (const reason of ['backlog', 'reconnect-queue', 'stale', 'malformed']) assert.match(body, new RegExp(`^neuwerk_cluster_raft_messages_dropped_total\\{reason="${reason}"[^}]*\\} \\d+$`, 'm'), reason);
  });

  it('refuses an unsafe removal without --force', async () => {
    const status = await cluster.status();
    assert.ok(status !== null);
    const follower = cluster.members.find((m) => m.node.nodeId !== status.leader_id) as ClusterMember;
    const other = cluster.members.find((m) => m.node.nodeId !== status.leader_id && m !== follower) as ClusterMember;
    await other.node.stop('SIGKILL');
    await cluster.waitFor((s) => s.healthy_voters === 2, 'one voter down');
    const env = { NEUWERK_TOKEN: await cluster.token() };
    const leader = cluster.leader(status);
    const result = await runCli(['cluster', 'members', 'remove', follower.node.nodeId, '--http-addr', `127.0.0.1:${leader.httpPort}`, '--ca', join(leader.dataDir, 'http-tls', 'ca.crt')], { env });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /below quorum; force it with \?force=true \(CLI: --force\)/);
    await cluster.restart(other);
  });

  it('voters set with a voter down: refused when it would leave too few healthy voters, else the down voter goes first', async () => {
    await cluster.waitFor((s) => s.healthy_voters === 3, 'three healthy voters');
    const status = await cluster.status();
    assert.ok(status !== null);
    const leader = cluster.leader(status);
    const [healthy, down] = cluster.members.filter((m) => m !== leader) as [ClusterMember, ClusterMember];
    await down.node.stop('SIGKILL');
    await cluster.waitFor((s) => s.healthy_voters === 2, 'one voter down');
    const env = { NEUWERK_TOKEN: await cluster.token() };
    const target = ['--http-addr', `127.0.0.1:${leader.httpPort}`, '--ca', join(leader.dataDir, 'http-tls', 'ca.crt')];
    // Keeping the down voter and dropping the healthy one would leave 1 healthy of 2: refused, nothing changed.
    const unsafe = await runCli(['cluster', 'voters', 'set', '--ids', `${leader.node.nodeId},${down.node.nodeId}`, ...target], { env });
    assert.equal(unsafe.code, 1);
    assert.match(unsafe.stderr, /below quorum/);
    assert.equal((await cluster.status())?.voters, 3);
    // Only the leader: the down voter is removed first, then the healthy one; never below quorum on the way.
    const single = await runCli(['cluster', 'voters', 'set', '--ids', leader.node.nodeId, ...target, '--json'], { env });
    assert.equal(single.code, 0, single.stderr);
    assert.deepEqual((JSON.parse(single.stdout) as { voters: string[] }).voters, [leader.node.nodeId]);
    const after = await cluster.status();
    assert.deepEqual([after?.voters, after?.healthy_voters, after?.tolerates], [1, 1, 0]);
    assert.ok(!after?.peers.some((p) => p.node_id === healthy.node.nodeId || p.node_id === down.node.nodeId));
    const removals = leader.node.logLines().filter((l) => l.audit === true && l.action === 'cluster.member.remove').map((l) => l.node_id);
    assert.deepEqual(removals, [down.node.nodeId, healthy.node.nodeId], 'each removal is audited, in order');
  });
});
