import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NodeProcess, tempDir } from './harness.js';

describe('replicated key-value zones on a single node', () => {
  const dir = tempDir();
  let node: NodeProcess;
  let headers: Record<string, string>;
  before(async () => {
    node = await NodeProcess.start(join(dir.path, 'data'));
    headers = { authorization: `Bearer ${await node.adminToken()}` };
  });
  after(async () => {
    await node.stop('SIGKILL');
    dir.cleanup();
  });

  it('PUT answers with the committed record; GET reads it back, linearizable or stale', async () => {
    const put = await node.api('PUT', '/api/v1/keyval/denylist/10.0.0.7', { value: 'blocked' }, headers);
    assert.equal(put.status, 200);
    const record = put.json as { zone: string; key: string; value: string; version: number; expires_at: null };
    assert.deepEqual({ ...record, version: 0 }, { zone: 'denylist', key: '10.0.0.7', value: 'blocked', version: 0, expires_at: null });
    assert.ok(record.version > 0);
    for (const path of ['/api/v1/keyval/denylist/10.0.0.7', '/api/v1/keyval/denylist/10.0.0.7?stale=true']) {
      const get = await node.api('GET', path, undefined, headers);
      assert.equal(get.status, 200);
      assert.deepEqual(get.json, record);
    }
    const second = await node.api('PUT', '/api/v1/keyval/denylist/10.0.0.7', { value: 'again' }, headers);
    assert.ok((second.json as { version: number }).version > record.version, 'version is the Raft index of the last write');
  });

  it('lists in key order with prefix, after and limit, and pages with next', async () => {
    for (const key of ['b2', 'a1', 'b1', 'b3', 'c1']) await node.api('PUT', `/api/v1/keyval/pages/${key}`, { value: key }, headers);
    const first = await node.api('GET', '/api/v1/keyval/pages?prefix=b&limit=2', undefined, headers);
    assert.equal(first.status, 200);
    const page1 = first.json as { items: { key: string }[]; next: string | null };
    assert.deepEqual(page1.items.map((i) => i.key), ['b1', 'b2']);
    assert.equal(page1.next, 'b2');
    const second = await node.api('GET', `/api/v1/keyval/pages?prefix=b&limit=2&after=${page1.next}`, undefined, headers);
    const page2 = second.json as { items: { key: string }[]; next: string | null };
    assert.deepEqual(page2.items.map((i) => i.key), ['b3']);
    assert.equal(page2.next, null);
    assert.equal((await node.api('GET', '/api/v1/keyval/pages?limit=0', undefined, headers)).status, 400);
    assert.equal((await node.api('GET', '/api/v1/keyval/pages?limit=10001', undefined, headers)).status, 400);
    const typo = await node.api('GET', '/api/v1/keyval/pages?prefx=a', undefined, headers);
    assert.equal(typo.status, 400);
    assert.equal((typo.json as { error: string }).error, 'prefx: unknown query parameter (expected prefix, after, limit, stale, local)');
    assert.equal((await node.api('GET', '/api/v1/keyval/pages/k?stale=true&verbose=1', undefined, headers)).status, 400);
    for (const spelled of ['1e3', '0x10', '%20%205', '2.0', '-1']) {
      assert.equal((await node.api('GET', `/api/v1/keyval/pages?limit=${spelled}`, undefined, headers)).status, 400, `limit=${spelled}`);
    }
  });

  it('DELETE answers 204 and the key is gone (404)', async () => {
    await node.api('PUT', '/api/v1/keyval/tmp/k', { value: 'v' }, headers);
    assert.equal((await node.api('DELETE', '/api/v1/keyval/tmp/k', undefined, headers)).status, 204);
    const get = await node.api('GET', '/api/v1/keyval/tmp/k', undefined, headers);
    assert.equal(get.status, 404);
    assert.equal((get.json as { code: string }).code, 'NW_ERR_NOT_FOUND');
  });

  it('a key with ttl_secs expires', async () => {
    const put = await node.api('PUT', '/api/v1/keyval/ttl/short', { value: 'v', ttl_secs: 1 }, headers);
    assert.equal(put.status, 200);
    assert.ok(Date.parse((put.json as { expires_at: string }).expires_at) > Date.now());
    await new Promise((r) => setTimeout(r, 1300));
    assert.equal((await node.api('GET', '/api/v1/keyval/ttl/short?stale=true', undefined, headers)).status, 404);
  });

  it('refuses bad names, bad bodies and oversized values with 400/413 naming the problem', async () => {
    const badKey = await node.api('PUT', `/api/v1/keyval/z/${encodeURIComponent('has space')}`, { value: 'v' }, headers);
    assert.equal(badKey.status, 400);
    assert.match((badKey.json as { error: string }).error, /key "has space" is not valid/);
    // Reads check names the same way: a bad name is a 400, not an empty zone or a missing key.
    const badZoneList = await node.api('GET', `/api/v1/keyval/${encodeURIComponent('bad zone')}`, undefined, headers);
    assert.equal(badZoneList.status, 400);
    assert.match((badZoneList.json as { error: string }).error, /zone "bad zone" is not valid/);
    const badKeyRead = await node.api('GET', `/api/v1/keyval/z/${encodeURIComponent('has space')}`, undefined, headers);
    assert.equal(badKeyRead.status, 400);
    assert.match((badKeyRead.json as { error: string }).error, /key "has space" is not valid/);
    const badBody = await node.api('PUT', '/api/v1/keyval/z/k', { value: 5, extra: true }, headers);
    assert.equal(badBody.status, 400);
    assert.match((badBody.json as { error: string }).error, /value: 5 must be string/);
    assert.match((badBody.json as { error: string }).error, /extra: unknown field/);
    const notJson = await node.api('PUT', '/api/v1/keyval/z/k', '{nope', headers);
    assert.equal(notJson.status, 400);
    const big = await node.api('PUT', '/api/v1/keyval/z/k', { value: 'x'.repeat(70 * 1024) }, headers);
    assert.equal(big.status, 400);
    assert.match((big.json as { error: string }).error, /above the limit of 65536/);
    const huge = await node.api('PUT', '/api/v1/keyval/z/k', { value: 'x'.repeat(3 * 1024 * 1024) }, headers);
    assert.equal(huge.status, 413);
  });

  it('keeps what was written across a restart', async () => {
    await node.api('PUT', '/api/v1/keyval/durable/k', { value: 'kept' }, headers);
    await node.stop('SIGTERM');
    node = await NodeProcess.start(node.dataDir);
    const get = await node.api('GET', '/api/v1/keyval/durable/k', undefined, headers);
    assert.equal(get.status, 200);
    assert.equal((get.json as { value: string }).value, 'kept');
  });
});
