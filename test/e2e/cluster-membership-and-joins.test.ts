import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { decodeTokenSecret } from '../../src/cluster/bootstrap-token.js';
import { createNodeCsr } from '../../src/cluster/ca.js';
import { signJoinRequest } from '../../src/cluster/crypto.js';
import { TestCluster, assertJoinStages, freePort, type ClusterMember } from './cluster-harness.js';
import { NodeProcess, runCli, tempDir } from './harness.js';

async function postJoin(port: number, body: unknown): Promise<{ status: number; json: { error?: string } }> {
  const response = await request(`http://127.0.0.1:${port}/v1/join`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: response.statusCode, json: (await response.body.json()) as { error?: string } };
}

function craftedRequest(nodeId: string, kid: string, secret: Buffer, clusterPort: number) {
  return signJoinRequest(
    {
      node_id: nodeId,
      cluster_advertise: `127.0.0.1:${clusterPort}`,
      http_advertise: '127.0.0.1:1',
      proxy_advertise: '',
      dns_advertise: '',
      csr: createNodeCsr(nodeId, '127.0.0.1').csrPem,
      http_csr: createNodeCsr(nodeId, '127.0.0.1').csrPem,
      kid,
      nonce: randomBytes(16).toString('base64'),
      timestamp: Date.now(),
    },
    secret,
  );
}

describe('joins, membership and cross-node auth', () => {
  let cluster: TestCluster;
  let secret: Buffer;
  const scratch = tempDir();
  before(async () => {
    cluster = await TestCluster.create(3);
    const file = JSON.parse(readFileSync(cluster.tokenFile, 'utf8')) as { tokens: { kid: string; token: string }[] };
    secret = decodeTokenSecret(file.tokens[0]?.token as string) as Buffer;
  });
  after(async () => {
    await cluster.stop();
    scratch.cleanup();
  });

  it('refuses joins with distinct messages: unknown kid, bad HMAC, replay, expired token, a 0644 token file', async () => {
    const seed = cluster.members[0] as ClusterMember;
    const unused = await freePort();
    const unknownKid = await postJoin(seed.joinPort, craftedRequest('node-x1', 'nope', secret, unused));
    assert.equal(unknownKid.status, 403);
    assert.match(unknownKid.json.error ?? '', /unknown token kid "nope"/);

    const badHmac = await postJoin(seed.joinPort, craftedRequest('node-x2', 'test', randomBytes(32), unused));
    assert.equal(badHmac.status, 403);
    assert.match(badHmac.json.error ?? '', /bad HMAC/);

    const tampered = { ...craftedRequest('node-x3', 'test', secret, unused), node_id: 'node-x4' };
    assert.match((await postJoin(seed.joinPort, tampered)).json.error ?? '', /bad HMAC/);

    const once = craftedRequest('node-x5', 'test', secret, unused);
    assert.equal((await postJoin(seed.joinPort, once)).status, 200);
    const replay = await postJoin(seed.joinPort, once);
    assert.equal(replay.status, 403);
    assert.match(replay.json.error ?? '', /replayed join request/);

    // The seed's file gains an expired entry; a joiner that still believes in it is refused.
    const seedFile = join(seed.dataDir, 'bootstrap-token');
    const document = JSON.parse(readFileSync(seedFile, 'utf8')) as { tokens: object[] };
    const oldSecret = randomBytes(32);
    document.tokens.push({ kid: 'old', token: `hex:${oldSecret.toString('hex')}`, valid_until: '2020-01-01T00:00:00Z' });
    writeFileSync(seedFile, JSON.stringify(document));
    chmodSync(seedFile, 0o600);
    const expired = await postJoin(seed.joinPort, craftedRequest('node-x6', 'old', oldSecret, unused));
    assert.equal(expired.status, 403);
    assert.match(expired.json.error ?? '', /token old has expired/);

    // A real joiner whose token file is group-readable refuses to use it.
    const loose = join(scratch.path, 'loose');
    const tokenCopy = join(scratch.path, 'loose-token');
    writeFileSync(tokenCopy, readFileSync(cluster.tokenFile));
    chmodSync(tokenCopy, 0o644);
    const result = await runCli(['start', '--data-dir', loose, '--join', `127.0.0.1:${seed.joinPort}`, '--bootstrap-token-path', tokenCopy, '--cluster-bind', `127.0.0.1:${await freePort()}`, '--cluster-join-bind', `127.0.0.1:${await freePort()}`, '--http-bind', '127.0.0.1:0', '--metrics-bind', '127.0.0.1:0']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /permissions 0644 are too open/);

    // A real joiner with a wrong secret is told the HMAC failed and how to fix it.
    const wrong = join(scratch.path, 'wrong-token');
    writeFileSync(wrong, JSON.stringify({ tokens: [{ kid: 'test', token: `hex:${randomBytes(32).toString('hex')}` }] }));
    chmodSync(wrong, 0o600);
    const refused = await runCli(['start', '--data-dir', join(scratch.path, 'wrong'), '--join', `127.0.0.1:${seed.joinPort}`, '--bootstrap-token-path', wrong, '--cluster-bind', `127.0.0.1:${await freePort()}`, '--cluster-join-bind', `127.0.0.1:${await freePort()}`, '--http-bind', '127.0.0.1:0', '--metrics-bind', '127.0.0.1:0']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /join refused by .*bad HMAC/);
    assert.match(refused.stderr, /same bootstrap token file/);
    for (const text of [result.stderr, refused.stderr, seed.node.stderr]) assert.ok(!text.includes(secret.toString('hex')), 'no log shows the token');
  });

  it('a token minted through one node verifies on the others; revocation and key retirement apply everywhere', async () => {
    const [a, b, c] = cluster.members as [ClusterMember, ClusterMember, ClusterMember];
    const minted = await runCli(['auth', 'token', 'mint', '--sub', 'ops', '--roles', 'admin', '--data-dir', a.dataDir]);
    assert.equal(minted.code, 0, minted.stderr);
    const token = minted.stdout.trim();
    for (const member of [a, b, c]) assert.equal((await cluster.api(member, 'GET', '/api/v1/auth/whoami', undefined, token)).status, 200);
    assert.ok(a.node.logLines().some((l) => l.action === 'auth.token.mint' && l.sub === 'ops'), 'minted over cluster RPC by node A, audited there');
    // With A's mTLS identity, minting through B's cluster port.
    const viaB = await runCli(['auth', 'token', 'mint', '--sub', 'via-b', '--roles', 'readonly', '--cluster-addr', `127.0.0.1:${b.clusterPort}`, '--cluster-tls-dir', join(a.dataDir, 'cluster', 'tls')]);
    assert.equal(viaB.code, 0, viaB.stderr);
    const who = await cluster.api(c, 'GET', '/api/v1/auth/whoami', undefined, viaB.stdout.trim());
    assert.deepEqual((who.json as { sub: string; roles: string[] }), { sub: 'via-b', roles: ['readonly'], exp: (who.json as { exp: number }).exp, sa_id: null });
    assert.ok(b.node.logLines().some((l) => l.action === 'auth.token.mint' && l.sub === 'via-b'));
    // Without a member identity the cluster port answers nothing.
    const emptyTlsDir = join(scratch.path, 'no-identity');
    mkdirSync(emptyTlsDir, { recursive: true });
    const stranger = await runCli(['auth', 'token', 'mint', '--sub', 'x', '--cluster-addr', `127.0.0.1:${b.clusterPort}`, '--cluster-tls-dir', emptyTlsDir]);
    assert.equal(stranger.code, 1);
    assert.match(stranger.stderr, /no .*node\.key|no .*ca\.crt/);
    const mistyped = await runCli(['auth', 'token', 'mint', '--sub', 'x', '--cluster-addr', `127.0.0.1:${b.clusterPort}`, '--cluster-tls-dir', join(scratch.path, 'nowhere')]);
    assert.equal(mistyped.code, 2, 'a --cluster-tls-dir that does not exist is a usage error');

    const account = (await cluster.api(b, 'POST', '/api/v1/service-accounts', { name: 'robot', role: 'readonly' })).json as { id: string };
    const sa = (await cluster.api(b, 'POST', `/api/v1/service-accounts/${account.id}/tokens`, { ttl: '1h' })).json as { token: string; metadata: { id: string } };
    for (const member of [a, c]) assert.equal((await cluster.api(member, 'GET', '/api/v1/auth/whoami', undefined, sa.token)).status, 200);
    assert.equal((await cluster.api(b, 'DELETE', `/api/v1/service-accounts/${account.id}/tokens/${sa.metadata.id}`)).status, 204);
    for (const member of [a, c]) {
      const deadline = Date.now() + 5000;
      let status = 0;
      while (status !== 401 && Date.now() < deadline) status = (await cluster.api(member, 'GET', '/api/v1/auth/whoami?stale=true', undefined, sa.token)).status;
      assert.equal(status, 401, 'revoked on every node');
    }

    const oldKid = (JSON.parse((await runCli(['auth', 'key', 'list', '--data-dir', a.dataDir, '--json'])).stdout) as { keys: { kid: string; status: string }[] }).keys.find((k) => k.status === 'active')?.kid as string;
    const rotated = await cluster.api(c, 'POST', '/api/v1/auth/keys/rotate');
    assert.equal(rotated.status, 200);
    assert.equal((await cluster.api(c, 'DELETE', `/api/v1/auth/keys/${oldKid}`, undefined, (await runCli(['auth', 'bootstrap', '--data-dir', a.dataDir])).stdout.trim())).status, 200);
    for (const member of [a, b, c]) {
      const deadline = Date.now() + 5000;
      let status = 0;
      while (status !== 401 && Date.now() < deadline) status = (await cluster.api(member, 'GET', '/api/v1/auth/whoami?stale=true', undefined, token)).status;
      assert.equal(status, 401, 'a retired key is refused on every node');
    }
     cluster.forgetToken();
  });

  it('a join is never sent while a listener is taken; a node that fails after its join finds its peers when restarted', async () => {
    const status = await cluster.status();
    assert.ok(status !== null);
    const leader = cluster.leader(status);
    const dataDir = join(scratch.path, 'late');
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    copyFileSync(cluster.tokenFile, join(dataDir, 'bootstrap-token'));
    chmodSync(join(dataDir, 'bootstrap-token'), 0o600);
    // Every port given: the default join port (cluster port + 1) may belong to another process.
    const listeners = ['--cluster-bind', `127.0.0.1:${await freePort()}`, '--cluster-join-bind', `127.0.0.1:${await freePort()}`, '--http-bind', `127.0.0.1:${await freePort()}`];
    const args = [...listeners, '--metrics-bind', '127.0.0.1:0'];

    // A taken --metrics-bind: refused before the join request leaves, so the cluster never hears of it.
    const blocker = createServer();
    const blockedPort = await freePort();
    await new Promise<void>((resolve) => blocker.listen(blockedPort, '127.0.0.1', resolve));
    const taken = await runCli(['join', `127.0.0.1:${leader.joinPort}`, '--data-dir', dataDir, ...listeners, '--metrics-bind', `127.0.0.1:${blockedPort}`]);
    blocker.close();
    assert.equal(taken.code, 1, taken.stderr);
    assert.match(taken.stderr, new RegExp(`--metrics-bind 127\\.0\\.0\\.1:${blockedPort} is already in use`));
    assert.ok(!taken.stderr.includes('join: requesting'), taken.stderr);
    assert.equal((await cluster.status())?.peers.length, status.peers.length, 'no member added');

    // A failure after the join (the configured management certificate does not exist): the node is a learner now.
    const config = join(scratch.path, 'late.yaml');
    writeFileSync(config, `version: 1\nhttp:\n  cert_path: ${join(scratch.path, 'missing.crt')}\n  key_path: ${join(scratch.path, 'missing.key')}\n`);
    const failed = await runCli(['join', `127.0.0.1:${leader.joinPort}`, '--config', config, '--data-dir', dataDir, ...args]);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /join: added as learner/);
    assert.match(failed.stderr, /cannot read TLS file .*missing\.crt/);
    const late = await NodeProcess.start(dataDir, args);
    try {
      await cluster.waitFor((s) => s.peers.some((p) => p.node_id === late.nodeId && p.role !== 'learner' && p.status === 'healthy'), 'the restarted joiner a healthy voter');
      const removed = await cluster.api(leader, 'DELETE', `/api/v1/cluster/members/${late.nodeId}`);
      assert.equal(removed.status, 204, JSON.stringify(removed.json));
    } finally {
      await late.stop('SIGKILL');
    }
    await cluster.waitFor((s) => s.voters === 3 && s.healthy_voters === 3, 'back to three healthy voters');
  });

  it('after the seed stops, a fourth node joins through another member and the new leader signs', async () => {
    const seed = cluster.members[0] as ClusterMember;
    const other = cluster.members[1] as ClusterMember;
    await seed.node.stop('SIGKILL');
    await cluster.waitFor((s) => s.leader_id !== null && s.leader_id !== seed.node.nodeId, 'a leader other than the seed', 15_000);
    const fourth = await cluster.add(other);
    await cluster.waitFor((s) => s.peers.some((p) => p.node_id === fourth.node.nodeId && p.role !== 'learner' && p.status === 'healthy'), 'the fourth node a healthy voter');
    await assertJoinStages(fourth);
    await cluster.restart(seed);
  });

  it('a removed member leaves the voter set and cannot rejoin with its old identity', async () => {
    const status = await cluster.status();
    assert.ok(status !== null);
    const victim = cluster.members.find((m) => m.node.nodeId !== status.leader_id && m !== cluster.members[0]) as ClusterMember;
    const leader = cluster.leader(status);
    const removed = await cluster.api(leader, 'DELETE', `/api/v1/cluster/members/${victim.node.nodeId}`);
    assert.equal(removed.status, 204, JSON.stringify(removed.json));
    await cluster.waitFor((s) => !s.peers.some((p) => p.node_id === victim.node.nodeId), 'the victim gone from the configuration');
    const members = (await cluster.api(leader, 'GET', '/api/v1/cluster/members')).json as { members: { node_id: string }[] };
    assert.ok(!members.members.some((m) => m.node_id === victim.node.nodeId));
    const rejoin = await postJoin(leader.joinPort, craftedRequest(victim.node.nodeId, 'test', secret, victim.clusterPort));
    assert.equal(rejoin.status, 403);
    assert.match(rejoin.json.error ?? '', /was removed from this cluster and cannot rejoin with its old identity/);
    // The removed node was told: it says so in its log and its /ready, and it never restarts into the cluster.
    const ready = await victim.node.api('GET', '/ready');
    assert.equal(ready.status, 503);
    assert.match(JSON.stringify(ready.json), /this node was removed from the cluster/);
    assert.ok(victim.node.logLines().some((l) => typeof l.msg === 'string' && l.msg.startsWith('this node was removed from the cluster')));
    await victim.node.stop('SIGKILL');
    const restarted = await runCli(['start', '--data-dir', victim.dataDir, ...victim.args, '--metrics-bind', '127.0.0.1:0']);
    assert.equal(restarted.code, 1);
    assert.match(restarted.stderr, /was removed from its cluster .* cannot rejoin with its old identity/);
  });

  it('a member removed while it was down learns it from the members that refuse it when it comes back', async () => {
    const status = await cluster.status();
    assert.ok(status !== null);
    const leader = cluster.leader(status);
    const alive = cluster.alive();
    const absent = alive.find((m) => m !== leader) as ClusterMember;
    await absent.node.stop('SIGKILL');
    const removed = await cluster.api(leader, 'DELETE', `/api/v1/cluster/members/${absent.node.nodeId}`);
    assert.equal(removed.status, 204, JSON.stringify(removed.json));
    // It starts from its own identity and store (it cannot know yet), tries its peers, is told.
    await cluster.restart(absent);
    await absent.node.waitForLog((line) => typeof line.msg === 'string' && line.msg.startsWith('this node was removed from the cluster'), 15_000);
    const told = absent.node.logLines().find((line) => typeof line.msg === 'string' && line.msg.startsWith('this node was removed from the cluster'));
    assert.ok(told !== undefined && cluster.alive().some((m) => m !== absent && m.node.nodeId === told.removed_by), JSON.stringify(told));
    const ready = await absent.node.api('GET', '/ready');
    assert.equal(ready.status, 503);
    assert.match(JSON.stringify(ready.json), /this node was removed from the cluster/);
    await absent.node.stop('SIGKILL');
    const again = await runCli(['start', '--data-dir', absent.dataDir, ...absent.args, '--metrics-bind', '127.0.0.1:0']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /was removed from its cluster .* cannot rejoin with its old identity/);
    // The members that refused it logged it once, not once per reconnect attempt.
    for (const member of cluster.alive()) {
      assert.ok(member.node.logLines().filter((line) => typeof line.msg === 'string' && line.msg.startsWith('refused cluster connection from a removed member')).length <= 1);
    }
  });
});
