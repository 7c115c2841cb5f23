import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { TestCluster, type ClusterMember } from './cluster-harness.js';
import { runCli } from './harness.js';

/** The follower's `neuwerk_api_forwarded_total` by `via/reason`. */
async function forwardedCounts(member: ClusterMember): Promise<Map<string, number>> {
  const response = await request(`http://${member.node.metricsAddress}/metrics`);
  const text = await response.body.text();
  const counts = new Map<string, number>();
  for (const match of text.matchAll(/^neuwerk_api_forwarded_total\{via="(\w+)",reason="([\w-]+)"[^}]*\} (\d+)$/gm)) {
    counts.set(`${match[1]}/${match[2]}`, Number(match[3]));
  }
  return counts;
}

function delta(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const changed: Record<string, number> = {};
  for (const [key, value] of after) if (value !== (before.get(key) ?? 0)) changed[key] = value - (before.get(key) ?? 0);
  return changed;
}

describe('a follower forwards management requests to the leader over the cluster RPC', () => {
  let cluster: TestCluster;
  let leader: ClusterMember;
  let follower: ClusterMember;
  let token: string;
  before(async () => {
    cluster = await TestCluster.create(3);
    token = await cluster.token();
    const status = await cluster.status();
    assert.ok(status !== null && status.leader_id !== null);
    leader = cluster.leader(status);
    follower = cluster.members.find((m) => m !== leader) as ClusterMember;
  });
  after(async () => {
    await cluster.stop();
  });

  it('keyval PUT, GET and DELETE through a follower are served by the leader over the RPC', async () => {
    const before = await forwardedCounts(follower);
    const put = await cluster.api(follower, 'PUT', '/api/v1/keyval/rpc/k1', { value: 'über' });
    assert.equal(put.status, 200, JSON.stringify(put.json));
    assert.equal(put.headers['x-neuwerk-served-by'], leader.node.nodeId);
    assert.equal((put.json as { value: string }).value, 'über');
    const get = await cluster.api(follower, 'GET', '/api/v1/keyval/rpc/k1');
    assert.equal(get.status, 200);
    assert.equal(get.headers['x-neuwerk-served-by'], leader.node.nodeId);
    assert.equal((get.json as { value: string }).value, 'über');
    const del = await cluster.api(follower, 'DELETE', '/api/v1/keyval/rpc/k1');
    assert.equal(del.status, 204);
    assert.equal(del.headers['x-neuwerk-served-by'], leader.node.nodeId);
    const gone = await cluster.api(follower, 'GET', '/api/v1/keyval/rpc/k1');
    assert.equal(gone.status, 404);
    assert.equal((gone.json as { code: string }).code, 'NW_ERR_NOT_FOUND');
    assert.deepEqual(delta(before, await forwardedCounts(follower)), { 'rpc/none': 4 });
    // The leader forwards nothing: it serves.
    assert.equal((await forwardedCounts(leader)).size, 0);
  });

  it('a client sending x-neuwerk-forwarded-by with no member id in it is forwarded like any other request', async () => {
    const put = await follower.node.api('PUT', '/api/v1/keyval/rpc/spoofed', { value: 'v' }, { authorization: `Bearer ${token}`, 'x-neuwerk-forwarded-by': 'not-a-member' });
    assert.equal(put.status, 200, JSON.stringify(put.json));
    assert.equal(put.headers['x-neuwerk-served-by'], leader.node.nodeId);
  });

  it('authentication failures through a follower have the same status and body as on the leader', async () => {
    const minted = await runCli(['auth', 'token', 'mint', '--sub', 'reader', '--roles', 'readonly', '--ttl', '10m', '--data-dir', leader.dataDir]);
    assert.equal(minted.code, 0, minted.stderr);
    const reader = minted.stdout.trim();
    const before = await forwardedCounts(follower);
    const cases: [string, string, unknown, string | null][] = [
      ['GET', '/api/v1/keyval/rpc/k', undefined, null],
      ['GET', '/api/v1/keyval/rpc/k', undefined, 'not-a-token'],
      ['PUT', '/api/v1/keyval/rpc/k', { value: 'v' }, reader],
      ['DELETE', '/api/v1/keyval/rpc/k', undefined, reader],
    ];
    for (const [method, path, body, token] of cases) {
      const direct = await cluster.api(leader, method, path, body, token);
      const viaFollower = await cluster.api(follower, method, path, body, token);
      assert.ok(direct.status === 401 || direct.status === 403, `${method} ${direct.status}`);
      assert.equal(viaFollower.status, direct.status, `${method} with ${token === null ? 'no token' : 'a token'}`);
      assert.deepEqual(viaFollower.json, direct.json);
      assert.equal(viaFollower.headers['x-neuwerk-served-by'], leader.node.nodeId);
    }
    assert.deepEqual(delta(before, await forwardedCounts(follower)), { 'rpc/none': cases.length });
  });

  it('an answer too large for the RPC and a body above the RPC bound still work over HTTPS', async () => {
    const value = 'v'.repeat(60_000);
    for (let i = 0; i < 20; i += 1) {
      const put = await cluster.api(follower, 'PUT', `/api/v1/keyval/rpc-big/k${String(i).padStart(2, '0')}`, { value });
      assert.equal(put.status, 200);
    }
    const before = await forwardedCounts(follower);
    const list = await cluster.api(follower, 'GET', '/api/v1/keyval/rpc-big?limit=100');
    assert.equal(list.status, 200);
    assert.equal(list.headers['x-neuwerk-served-by'], leader.node.nodeId);
    const items = (list.json as { items: { key: string; value: string }[] }).items;
    assert.equal(items.length, 20);
    assert.ok(items.every((item) => item.value === value));
    // A body above 64 KiB is streamed over HTTPS; the leader answers it (here: the value is above the limit).
    const large = await cluster.api(follower, 'PUT', '/api/v1/keyval/rpc-big/too-large', { value: 'x'.repeat(70_000) });
    const direct = await cluster.api(leader, 'PUT', '/api/v1/keyval/rpc-big/too-large', { value: 'x'.repeat(70_000) });
    assert.equal(large.status, 400);
    assert.deepEqual(large.json, direct.json);
    assert.equal(large.headers['x-neuwerk-served-by'], leader.node.nodeId);
    assert.deepEqual(delta(before, await forwardedCounts(follower)), { 'https/answer-too-large': 1, 'https/body-large': 1 });
  });

  it('a large body sent with Expect: 100-continue (curl does for bodies above 1 MiB) is forwarded over HTTPS like any other', async () => {
    const body = JSON.stringify({ value: 'x'.repeat(70_000) });
    const at = follower.node.httpAddress.lastIndexOf(':');
    const answer = await new Promise<{ status: number; json: unknown; servedBy: unknown; continued: boolean }>((resolve, reject) => {
      let continued = false;
      const req = httpsRequest(
        {
          host: follower.node.httpAddress.slice(0, at),
          port: Number(follower.node.httpAddress.slice(at + 1)),
          method: 'PUT',
          path: '/api/v1/keyval/rpc-big/expects',
          ca: readFileSync(join(follower.dataDir, 'http-tls', 'ca.crt')),
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), expect: '100-continue' },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as unknown, servedBy: res.headers['x-neuwerk-served-by'], continued }));
        },
      );
      req.on('continue', () => {
        continued = true;
        req.end(body);
      });
      req.on('error', reject);
    });
    assert.equal(answer.continued, true, 'the follower said 100 Continue');
    const direct = await cluster.api(leader, 'PUT', '/api/v1/keyval/rpc-big/expects', { value: 'x'.repeat(70_000) });
    assert.equal(answer.status, 400, JSON.stringify(answer.json));
    assert.deepEqual(answer.json, direct.json, 'the leader answered it (the value is above the limit)');
    assert.equal(answer.servedBy, leader.node.nodeId);
  });
});
