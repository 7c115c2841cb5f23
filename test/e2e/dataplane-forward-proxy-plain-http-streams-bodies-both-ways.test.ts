/**
 * Plain-HTTP forwarding streams request and response bodies intact: a large response to a slow
 * reader, request bodies with Content-Length and chunked, bodiless requests (GET, DELETE, a zero
 * Content-Length POST), HEAD and 204 answers, all on one keep-alive connection to the proxy.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Agent, createServer, request, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Dataplane } from '../../src/dataplane/dataplane.js';
import type { ForwardProxy } from '../../src/dataplane/forward-proxy.js';
import { startProxyOnlyDataplane, startStubDns, type StubDns } from '../bench/dataplane-fixtures.js';

/** A response larger than the socket buffers on the way, so the proxy must wait for the reader. */
const BIG_BYTES = 16 * 1024 * 1024;

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** Reads a response body, pausing now and then. */
function readBody(res: IncomingMessage, slow: boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let since = 0;
    res.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      since += chunk.length;
      if (slow && since >= 1024 * 1024) {
        since = 0;
        res.pause();
        setTimeout(() => res.resume(), chunks.length < 40 ? 200 : 10);
      }
    });
    res.once('end', () => resolve(Buffer.concat(chunks)));
    res.once('error', reject);
  });
}

describe('forward proxy plain HTTP bodies', { timeout: 60_000 }, () => {
  const big = randomBytes(BIG_BYTES);
  const origin = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.url === '/big') {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': big.length });
        res.end(req.method === 'HEAD' ? undefined : big);
      } else if (req.url === '/empty') {
        res.writeHead(204);
        res.end();
      } else {
        const answer = `${req.method} ${req.url} bytes=${body.length} sha256=${sha256(body)} te=${req.headers['transfer-encoding'] ?? '-'} cl=${req.headers['content-length'] ?? '-'}`;
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(answer); // no Content-Length: chunked to the proxy
      }
    });
  });
  let dns: StubDns;
  let dataplane: Dataplane;
  let proxy: ForwardProxy;
  let proxyPort: number;
  let originPort: number;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });

  /** One request through the proxy (absolute-form) on the shared keep-alive connection. */
  function send(method: string, path: string, body: Buffer | Buffer[] | null, headers: OutgoingHttpHeaders = {}): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: proxyPort, method, path: `http://bulk.test:${originPort}${path}`, headers: { host: `bulk.test:${originPort}`, ...headers }, agent });
      req.once('response', resolve);
      req.once('error', reject);
      if (Array.isArray(body)) {
        for (const piece of body) req.write(piece);
        req.end();
      } else {
        req.end(body ?? undefined);
      }
    });
  }

  before(async () => {
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    originPort = (origin.address() as AddressInfo).port;
    dns = await startStubDns({ 'bulk.test': { A: ['127.0.0.1'] } });
    ({ dataplane, proxy, proxyPort } = await startProxyOnlyDataplane('bulk.test', [originPort], [dns.address]));
  });

  after(async () => {
    agent.destroy();
    await dataplane.stop();
    await dns.close();
    await new Promise((resolve) => origin.close(resolve));
  });

  it('streams a large response to a slow reader intact', async () => {
    const res = await send('GET', '/big', null);
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-length'], String(BIG_BYTES));
    const body = await readBody(res, true);
    assert.equal(body.length, BIG_BYTES);
    assert.equal(sha256(body), sha256(big));
  });

  it('forwards request bodies (Content-Length and chunked) and bodiless requests; HEAD and 204 have no body', async () => {
    const upload = randomBytes(3 * 1024 * 1024);
    const fixed = await send('POST', '/upload', upload, { 'content-length': upload.length });
    assert.equal((await readBody(fixed, false)).toString(), `POST /upload bytes=${upload.length} sha256=${sha256(upload)} te=- cl=${upload.length}`);
    const pieces = [randomBytes(1000), randomBytes(70_000), randomBytes(5)];
    const chunked = await send('PUT', '/chunked', pieces);
    assert.equal((await readBody(chunked, false)).toString(), `PUT /chunked bytes=71005 sha256=${sha256(Buffer.concat(pieces))} te=chunked cl=-`);
    const empty = sha256(Buffer.alloc(0));
    const zero = await send('POST', '/zero', Buffer.alloc(0), { 'content-length': 0 });
    assert.equal((await readBody(zero, false)).toString(), `POST /zero bytes=0 sha256=${empty} te=- cl=0`);
    const get = await send('GET', '/plain?q=1', null);
    assert.equal((await readBody(get, false)).toString(), `GET /plain?q=1 bytes=0 sha256=${empty} te=- cl=-`);
    const del = await send('DELETE', '/thing', null);
    assert.equal((await readBody(del, false)).toString(), `DELETE /thing bytes=0 sha256=${empty} te=- cl=-`);
    const head = await send('HEAD', '/big', null);
    assert.equal(head.statusCode, 200);
    assert.equal(head.headers['content-length'], String(BIG_BYTES));
    assert.equal((await readBody(head, false)).length, 0);
    const noContent = await send('GET', '/empty', null);
    assert.equal(noContent.statusCode, 204);
    assert.equal((await readBody(noContent, false)).length, 0);
    const again = await send('GET', '/after', null);
    assert.equal((await readBody(again, false)).toString(), `GET /after bytes=0 sha256=${empty} te=- cl=-`);
    assert.equal(proxy.stats().client_connections, 1, 'every request used the one keep-alive connection');
    assert.equal(proxy.stats().active_flows, 0);
  });
});
