import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { Server } from 'node:https';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { FORWARD_RPC_ANSWER_BYTES_MAX, FORWARD_RPC_METHOD, type ForwardPath } from '../../src/api/forwarded-request.js';
import { LeaderProxy, type ClusterRpcCall } from '../../src/api/leader-proxy.js';
import { Router } from '../../src/api/router.js';
import { createApiServer, createForwardedRequestHandler, type ApiServerOptions } from '../../src/api/server.js';
import { generateSelfSignedTls } from '../../src/api/tls.js';
import type { Identity } from '../../src/auth/tokens.js';
import { createClusterCa, createNodeCsr, signNodeCertificate, type KeyAndCert } from '../../src/cluster/ca.js';
import { ClusterTransport, type ClusterTls } from '../../src/cluster/transport.js';
import { NeuwerkError } from '../../src/errors.js';
import { NodeMetrics } from '../../src/metrics/registry.js';

const logger = pino({ level: 'silent' });
const BIG_RAW_BYTES = 3 * 1024 * 1024;

function clusterIdentity(ca: KeyAndCert, nodeId: string): ClusterTls {
  const { keyPem, csrPem } = createNodeCsr(nodeId, '127.0.0.1');
  return { keyPem, certPem: signNodeCertificate(ca, csrPem, nodeId, '127.0.0.1'), caPem: ca.certPem };
}

function identity(roles: Identity['roles']): Identity {
  return { sub: roles.join('+'), roles, exp: null, sa_id: null } as unknown as Identity;
}

/** The same routes on both nodes; what they did is recorded per node. */
function routes(executions: Map<string, number>, store: Map<string, unknown>): Router {
  const ran = (name: string): void => void executions.set(name, (executions.get(name) ?? 0) + 1);
  const router = new Router();
  router.add({
    method: 'PUT',
    path: '/api/v1/items/:key',
    access: 'admin',
    summary: 'write',
    handler: async (ctx) => {
      ran('put');
      const body = await ctx.readJson();
      store.set(ctx.params.key as string, body);
      return { status: 200, body: { key: ctx.params.key, body, content_type: ctx.headers['content-type'] ?? null, client: ctx.clientAddress, by: ctx.identity?.sub } };
    },
  });
  router.add({
    method: 'GET',
    path: '/api/v1/items/:key',
    access: 'read',
    summary: 'read',
    handler: (ctx) => {
      ran('get');
      if (!store.has(ctx.params.key as string)) throw new NeuwerkError('NW_ERR_NOT_FOUND', `no item ${ctx.params.key}`);
      return { status: 200, body: store.get(ctx.params.key as string), headers: { 'cache-control': 'no-store' } };
    },
  });
  router.add({
    method: 'DELETE',
    path: '/api/v1/items/:key',
    access: 'admin',
    summary: 'delete',
    handler: (ctx) => {
      ran('delete');
      store.delete(ctx.params.key as string);
      return { status: 204 };
    },
  });
  router.add({
    method: 'GET',
    path: '/api/v1/big',
    access: 'read',
    summary: 'an answer above the RPC bound',
    handler: () => {
      ran('big');
      return { status: 200, body: { blob: 'b'.repeat(FORWARD_RPC_ANSWER_BYTES_MAX + 100) } };
    },
  });
  router.add({
    method: 'POST',
    path: '/api/v1/archive',
    access: 'admin',
    forwarding: 'https',
    summary: 'a large binary answer',
    handler: () => {
      ran('archive');
      return { status: 200, headers: { 'content-type': 'application/gzip' }, raw: Buffer.alloc(BIG_RAW_BYTES, 0x5a) };
    },
  });
  return router;
}

const authenticate = (token: string): Promise<Identity> => {
  if (token === 'admin-token') return Promise.resolve(identity(['admin']));
  if (token === 'reader-token') return Promise.resolve(identity(['readonly']));
  return Promise.reject(new NeuwerkError('NW_ERR_AUTH_INVALID', 'invalid or expired token'));
};

describe('a follower forwards leader-routed requests over the cluster RPC', () => {
  const ca = createClusterCa('fwd');
  const addresses = new Map<string, { host: string; port: number }>();
  const resolveAddress = (id: string): { host: string; port: number } | null => addresses.get(id) ?? null;
  const leaderTransport = new ClusterTransport({ nodeId: 'node-a', tls: clusterIdentity(ca, 'node-a'), logger, resolveAddress });
  const followerTransport = new ClusterTransport({ nodeId: 'node-b', tls: clusterIdentity(ca, 'node-b'), logger, resolveAddress });
  const strangerTransport = new ClusterTransport({ nodeId: 'node-s', tls: clusterIdentity(ca, 'node-s'), logger, resolveAddress });
  const tls = generateSelfSignedTls('node', ['127.0.0.1']);
  const material = { ...tls, certPath: 'server.crt', keyPath: 'server.key', caPath: 'ca.crt' };
  const leaderRuns = new Map<string, number>();
  const followerRuns = new Map<string, number>();
  const leaderStore = new Map<string, unknown>();
  let leading = true;
  let leaderHttpRequests = 0;
  const forwarded: ForwardPath[] = [];
  const leaderOptions: ApiServerOptions = { tls: material, router: routes(leaderRuns, leaderStore), logger, metrics: new NodeMetrics('node-a'), nodeId: 'node-a', authenticate };
  const leaderServer = createApiServer(leaderOptions);
  leaderServer.on('request', () => (leaderHttpRequests += 1));
  let leaderHttp = '';
  const rpc: ClusterRpcCall = (to, method, body, timeoutMs) => followerTransport.call(to, method, body, timeoutMs);
  const proxy = new LeaderProxy('node-b', tls.caPem, () => ({ nodeId: 'node-a', address: leaderHttp }), logger, rpc, (path) => forwarded.push(path));
  const follower = createApiServer({
    tls: material,
    router: routes(followerRuns, new Map()),
    logger,
    metrics: new NodeMetrics('node-b'),
    nodeId: 'node-b',
    authenticate: () => Promise.reject(new Error('a follower must not authenticate forwarded requests itself')),
    routing: { isLeader: () => false, proxy },
  });
  const dispatcher = new Agent({ connect: { ca: tls.caPem } });
  let followerBase = '';
  let leaderBase = '';

  const listen = async (server: Server): Promise<string> => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `127.0.0.1:${(server.address() as AddressInfo).port}`;
  };
  const call = async (base: string, method: string, path: string, options: { token?: string | null; body?: string | Readable; contentType?: string } = {}): Promise<{ status: number; text: string; bytes: Buffer; headers: Record<string, unknown> }> => {
    const headers: Record<string, string> = {};
    if (options.token !== null) headers.authorization = `Bearer ${options.token ?? 'admin-token'}`;
    if (options.contentType !== undefined) headers['content-type'] = options.contentType;
    const response = await request(`https://${base}${path}`, { method: method as 'GET', headers, body: options.body ?? null, dispatcher });
    const bytes = Buffer.from(await response.body.arrayBuffer());
    return { status: response.statusCode, text: bytes.toString('utf8'), bytes, headers: response.headers };
  };
  const lastPath = (): ForwardPath | undefined => forwarded[forwarded.length - 1];

  before(async () => {
    addresses.set('node-a', await leaderTransport.listen('127.0.0.1', 0));
    leaderTransport.handle(FORWARD_RPC_METHOD, createForwardedRequestHandler(leaderOptions, { isMember: (id) => id === 'node-a' || id === 'node-b', isLeader: () => leading }));
    leaderHttp = await listen(leaderServer);
    leaderBase = leaderHttp;
    followerBase = await listen(follower);
  });
  after(async () => {
    await dispatcher.close();
    await proxy.close();
    for (const server of [leaderServer, follower]) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    await followerTransport.close();
    await strangerTransport.close();
    await leaderTransport.close();
  });

  it('PUT, GET and DELETE through the follower run on the leader over the RPC, never over HTTPS', async () => {
    const put = await call(followerBase, 'PUT', '/api/v1/items/k1?x=1', { body: '{"value":"héllo"}', contentType: 'application/json' });
    assert.equal(put.status, 200, put.text);
    assert.equal(put.headers['x-neuwerk-served-by'], 'node-a');
    assert.equal(put.headers['content-type'], 'application/json; charset=utf-8');
    assert.equal(put.headers['content-length'], String(put.bytes.length));
    assert.deepEqual(JSON.parse(put.text), { key: 'k1', body: { value: 'héllo' }, content_type: 'application/json', client: '127.0.0.1', by: 'admin' });
    assert.deepEqual(lastPath(), { via: 'rpc' });
    const get = await call(followerBase, 'GET', '/api/v1/items/k1', { token: 'reader-token' });
    assert.equal(get.status, 200);
    assert.equal(get.headers['cache-control'], 'no-store');
    assert.deepEqual(JSON.parse(get.text), { value: 'héllo' });
    const del = await call(followerBase, 'DELETE', '/api/v1/items/k1');
    assert.equal(del.status, 204);
    assert.equal(del.headers['x-neuwerk-served-by'], 'node-a');
    const gone = await call(followerBase, 'GET', '/api/v1/items/k1');
    assert.equal(gone.status, 404);
    assert.equal(JSON.parse(gone.text).code, 'NW_ERR_NOT_FOUND');
    assert.deepEqual(forwarded.map((p) => p.via), ['rpc', 'rpc', 'rpc', 'rpc']);
    assert.equal(leaderHttpRequests, 0, 'the leader served no HTTPS request');
    assert.deepEqual(Object.fromEntries(leaderRuns), { put: 1, get: 2, delete: 1 });
    assert.equal(followerRuns.size, 0, 'nothing ran on the follower');
    const metrics = await leaderOptions.metrics.render();
    assert.match(metrics, /neuwerk_api_requests_total\{route="\/api\/v1\/items\/:key",method="PUT",status="200",node_id="node-a"\} 1/);
  });

  it('authentication and authorisation fail through the follower exactly as on the leader', async () => {
    for (const [token, method, path] of [
      [null, 'GET', '/api/v1/items/k'],
      ['forged', 'GET', '/api/v1/items/k'],
      ['reader-token', 'PUT', '/api/v1/items/k'],
    ] as const) {
      const options = { token, body: method === 'PUT' ? '{"value":"v"}' : undefined, contentType: 'application/json' };
      const direct = await call(leaderBase, method, path, options);
      const viaFollower = await call(followerBase, method, path, options);
      assert.ok(direct.status === 401 || direct.status === 403, `${direct.status}`);
      assert.equal(viaFollower.status, direct.status);
      assert.equal(viaFollower.text, direct.text);
      assert.equal(viaFollower.headers['content-type'], direct.headers['content-type']);
      assert.equal(viaFollower.headers['x-neuwerk-served-by'], 'node-a');
      assert.deepEqual(lastPath(), { via: 'rpc' });
    }
    assert.equal(leaderStore.has('k'), false);
  });

  it('a GET answer above the RPC bound is fetched again over HTTPS; a route declared https and a chunked body go over HTTPS', async () => {
    const httpsBefore = leaderHttpRequests;
    const big = await call(followerBase, 'GET', '/api/v1/big');
    assert.equal(big.status, 200);
    assert.equal((JSON.parse(big.text) as { blob: string }).blob.length, FORWARD_RPC_ANSWER_BYTES_MAX + 100);
    assert.deepEqual(lastPath(), { via: 'https', reason: 'answer-too-large' });
    assert.equal(leaderRuns.get('big'), 2, 'the read ran once for the RPC and once over HTTPS');

    const archive = await call(followerBase, 'POST', '/api/v1/archive');
    assert.equal(archive.status, 200);
    assert.equal(archive.bytes.length, BIG_RAW_BYTES);
    assert.ok(archive.bytes.every((b) => b === 0x5a));
    assert.equal(archive.headers['x-neuwerk-served-by'], 'node-a');
    assert.deepEqual(lastPath(), { via: 'https', reason: 'route' });
    assert.equal(leaderRuns.get('archive'), 1);

    const chunked = await call(followerBase, 'PUT', '/api/v1/items/streamed', { body: Readable.from([Buffer.from('{"value":'), Buffer.from('"s"}')]), contentType: 'application/json' });
    assert.equal(chunked.status, 200, chunked.text);
    assert.deepEqual(lastPath(), { via: 'https', reason: 'body-undeclared' });
    assert.deepEqual(leaderStore.get('streamed'), { value: 's' });
    assert.equal(leaderHttpRequests - httpsBefore, 3);
  });

  it('a leader without the RPC (an older version) gets the request over HTTPS, once', async () => {
    const oldLeader: ClusterRpcCall = () => Promise.reject(new NeuwerkError('NW_ERR_RPC', `unknown cluster RPC ${FORWARD_RPC_METHOD}`));
    const paths: ForwardPath[] = [];
    const oldProxy = new LeaderProxy('node-b', tls.caPem, () => ({ nodeId: 'node-a', address: leaderHttp }), logger, oldLeader, (path) => paths.push(path));
    const server = createApiServer({ tls: material, router: routes(new Map(), new Map()), logger, metrics: new NodeMetrics('node-b'), nodeId: 'node-b', authenticate, routing: { isLeader: () => false, proxy: oldProxy } });
    const base = await listen(server);
    try {
      const puts = leaderRuns.get('put') ?? 0;
      const put = await call(base, 'PUT', '/api/v1/items/old', { body: '{"value":"o"}', contentType: 'application/json' });
      assert.equal(put.status, 200, put.text);
      assert.deepEqual(paths, [{ via: 'https', reason: 'leader-without-rpc' }]);
      assert.equal(leaderRuns.get('put'), puts + 1);
      assert.deepEqual(leaderStore.get('old'), { value: 'o' });
    } finally {
      await oldProxy.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('the leader refuses non-members and malformed payloads with an RPC error', async () => {
    await assert.rejects(strangerTransport.call('node-a', FORWARD_RPC_METHOD, { v: 1, method: 'GET', url: '/api/v1/items/k', headers: {}, client_address: 'x', body: '' }), (err: NeuwerkError) => err.code === 'NW_ERR_AUTH_FORBIDDEN' && /node node-s is not a member/.test(err.message));
    await assert.rejects(followerTransport.call('node-a', FORWARD_RPC_METHOD, { v: 1, method: 'GET' }), (err: NeuwerkError) => err.code === 'NW_ERR_RPC' && /malformed api.forward request/.test(err.message));
    await assert.rejects(followerTransport.call('node-a', FORWARD_RPC_METHOD, 'garbage'), (err: NeuwerkError) => err.code === 'NW_ERR_RPC');
    // A route that is not leader-routed or not declared for the RPC is not run.
    const archive = (await followerTransport.call('node-a', FORWARD_RPC_METHOD, { v: 1, method: 'POST', url: '/api/v1/archive', headers: { authorization: 'Bearer admin-token' }, client_address: 'x', body: '' })) as { status: number; body: string };
    assert.equal(archive.status, 502);
    assert.match(archive.body, /not forwarded over cluster RPC/);
    assert.equal(leaderRuns.get('archive'), 1, 'the refused archive did not run');
  });

  it("a member may ask any node for its own view (a GET it serves locally, as a fan-out does), leader or not, but never have it act", async () => {
    leaderStore.set('own-view', { from: 'node-a' });
    const ask = (method: string, url: string, token = 'admin-token'): Promise<{ status: number; body: string }> =>
      followerTransport.call('node-a', FORWARD_RPC_METHOD, { v: 1, method, url, headers: { authorization: `Bearer ${token}` }, client_address: 'x', body: '' }) as Promise<{ status: number; body: string }>;
    leading = false;
    try {
      const gets = leaderRuns.get('get') ?? 0;
      const stale = await ask('GET', '/api/v1/items/own-view?stale=true');
      assert.equal(stale.status, 200, stale.body);
      assert.deepEqual(JSON.parse(stale.body), { from: 'node-a' });
      assert.equal(leaderRuns.get('get'), gets + 1);
      // The caller's credentials are checked by the node asked.
      assert.equal((await ask('GET', '/api/v1/items/own-view?stale=true', 'forged')).status, 401);
      // Not led by this node, so not run here: a leader-routed GET.
      assert.equal((await ask('GET', '/api/v1/items/own-view')).status, 503);
      // A write with ?local=true is not a view: refused before it runs.
      const puts = leaderRuns.get('put') ?? 0;
      const put = await ask('PUT', '/api/v1/items/own-view?local=true');
      assert.equal(put.status, 502);
      assert.match(put.body, /served by the node that receives it; it is not forwarded over cluster RPC/);
      assert.equal(leaderRuns.get('put') ?? 0, puts);
    } finally {
      leading = true;
    }
  });

  it('leadership moved while forwarding: 503, the request is not run and not forwarded again', async () => {
    leading = false;
    try {
      const puts = leaderRuns.get('put') ?? 0;
      const httpsBefore = leaderHttpRequests;
      const put = await call(followerBase, 'PUT', '/api/v1/items/moved', { body: '{"value":"m"}', contentType: 'application/json' });
      assert.equal(put.status, 503);
      assert.deepEqual(JSON.parse(put.text), { error: 'no cluster leader (leadership moved while the request was forwarded; retry)', code: 'NW_ERR_NO_LEADER' });
      assert.equal(leaderRuns.get('put'), puts);
      assert.equal(leaderHttpRequests, httpsBefore);
    } finally {
      leading = true;
    }
  });

  it('an unreachable leader answers a clear 503 quickly, never a hang', async () => {
    await leaderTransport.close();
    const started = Date.now();
    const put = await call(followerBase, 'PUT', '/api/v1/items/unreachable', { body: '{"value":"u"}', contentType: 'application/json' });
    const elapsedMs = Date.now() - started;
    assert.equal(put.status, 503, put.text);
    const body = JSON.parse(put.text) as { error: string; code: string };
    assert.equal(body.code, 'NW_ERR_NO_LEADER');
    assert.match(body.error, /no cluster leader reachable \(leader node-a did not answer over cluster RPC/);
    assert.ok(elapsedMs < 5_000, `answered in ${elapsedMs} ms`);
  });
});
