import assert from 'node:assert/strict';
import { request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { LeaderProxy } from '../../src/api/leader-proxy.js';
import { Router } from '../../src/api/router.js';
import { createApiServer, type ApiServerOptions } from '../../src/api/server.js';
import { generateSelfSignedTls } from '../../src/api/tls.js';
import type { Identity } from '../../src/auth/tokens.js';
import { NeuwerkError } from '../../src/errors.js';
import { NodeMetrics } from '../../src/metrics/registry.js';

const logger = pino({ level: 'silent' });
const admin = { sub: 'admin', roles: ['admin'], exp: null, sa_id: null, jti: 'j', kid: 'k' } as Identity;

interface RawAnswer {
  status: number;
  names: string[];
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function call(port: number, caPem: string, method: string, path: string, headers: Record<string, string>, body?: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, ca: caPem, headers: body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, names: res.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase()), headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('answers written by the API server', () => {
  const tls = generateSelfSignedTls('node', ['127.0.0.1']);
  const material = { ...tls, certPath: 'a', keyPath: 'b', caPath: 'c' };
  const router = new Router();
  router.add({ method: 'PUT', path: '/api/v1/things/:id', access: 'admin', summary: 'put', handler: async (ctx) => ({ status: 200, body: { id: ctx.params.id, got: await ctx.readJson() } }) });
  router.add({ method: 'GET', path: '/api/v1/things/:id', access: 'read', summary: 'get', handler: () => ({ status: 200, headers: { 'cache-control': 'no-store' }, body: { ok: true } }) });
  router.add({ method: 'DELETE', path: '/api/v1/things/:id', access: 'admin', summary: 'delete', handler: () => ({ status: 204 }) });
  const authenticate = (token: string): Promise<Identity> =>
    token === 'good' ? Promise.resolve(admin) : Promise.reject(new NeuwerkError('NW_ERR_AUTH_INVALID', 'invalid or expired token'));
  const options: ApiServerOptions = { tls: material, router, logger, metrics: new NodeMetrics('node-a'), nodeId: 'node-a', authenticate };
  const server = createApiServer(options);
  // A follower whose leader does not answer its cluster RPC.
  const proxy = new LeaderProxy('node-b', tls.caPem, () => ({ nodeId: 'node-a', address: '127.0.0.1:1' }), logger, () => Promise.reject(new Error('connection refused')));
  const follower = createApiServer({ ...options, metrics: new NodeMetrics('node-b'), nodeId: 'node-b', routing: { isLeader: () => false, proxy } });
  let port = 0;
  let followerPort = 0;
  const listen = (s: Server): Promise<number> => new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));
  before(async () => {
    port = await listen(server);
    followerPort = await listen(follower);
  });
  after(async () => {
    await proxy.close();
    for (const s of [server, follower]) {
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  });

  it('x-neuwerk-served-by comes first, then the answer\'s own headers, on success and on error', async () => {
    const put = await call(port, tls.caPem, 'PUT', '/api/v1/things/a%20b?x=1', { authorization: 'Bearer good', 'content-type': 'application/json' }, '{"v":1}');
    assert.equal(put.status, 200);
    assert.deepEqual(put.names.slice(0, 3), ['x-neuwerk-served-by', 'content-type', 'content-length']);
    assert.equal(put.headers['x-neuwerk-served-by'], 'node-a');
    assert.equal(put.headers['content-type'], 'application/json; charset=utf-8');
    assert.equal(put.body, '{"id":"a b","got":{"v":1}}');
    assert.equal(put.headers['content-length'], String(Buffer.byteLength(put.body)));
    const get = await call(port, tls.caPem, 'GET', '/api/v1/things/a', { authorization: 'Bearer good' });
    assert.deepEqual(get.names.slice(0, 4), ['x-neuwerk-served-by', 'content-type', 'content-length', 'cache-control']);
    const del = await call(port, tls.caPem, 'DELETE', '/api/v1/things/a', { authorization: 'Bearer good' });
    assert.equal(del.status, 204);
    assert.equal(del.names[0], 'x-neuwerk-served-by');
    for (const [method, path, token, status, code] of [
      ['GET', '/api/v1/nothing', 'good', 404, 'NW_ERR_HTTP_NOT_FOUND'],
      ['POST', '/api/v1/things/a', 'good', 405, 'NW_ERR_HTTP_METHOD'],
      ['GET', '/api/v1/things/a', 'bad', 401, 'NW_ERR_AUTH_INVALID'],
    ] as const) {
      const answer = await call(port, tls.caPem, method, path, { authorization: `Bearer ${token}` });
      assert.equal(answer.status, status, `${method} ${path}`);
      assert.deepEqual(answer.names.slice(0, 3), ['x-neuwerk-served-by', 'content-type', 'content-length'], `${method} ${path}`);
      assert.equal(answer.headers['x-neuwerk-served-by'], 'node-a');
      assert.equal(JSON.parse(answer.body).code, code);
    }
  });

  it('a follower that could not forward answers the error without naming itself as the server', async () => {
    const answer = await call(followerPort, tls.caPem, 'PUT', '/api/v1/things/a', { authorization: 'Bearer good', 'content-type': 'application/json' }, '{"v":1}');
    assert.equal(answer.status, 503);
    assert.equal(JSON.parse(answer.body).code, 'NW_ERR_NO_LEADER');
    assert.equal(answer.headers['x-neuwerk-served-by'], undefined);
    assert.deepEqual(answer.names.slice(0, 2), ['content-type', 'content-length']);
    // A route it serves itself (public or local) still names it.
    const local = await call(followerPort, tls.caPem, 'GET', '/api/v1/nothing', { authorization: 'Bearer good' });
    assert.equal(local.status, 404);
    assert.equal(local.headers['x-neuwerk-served-by'], 'node-b');
  });
});
