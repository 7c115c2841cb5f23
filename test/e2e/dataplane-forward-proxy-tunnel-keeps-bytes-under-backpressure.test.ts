/**
 * A CONNECT tunnel copies every byte, in order, both ways, when both ends read slowly (the proxy's
 * writes queue, reading pauses and resumes), passes a half-close on, and closes once both sides
 * finished. Also: bytes an origin sends the moment it accepts (server speaks first) reach the client.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Dataplane } from '../../src/dataplane/dataplane.js';
import type { ForwardProxy } from '../../src/dataplane/forward-proxy.js';
import { startProxyOnlyDataplane, startStubDns, type StubDns } from '../bench/dataplane-fixtures.js';

/** Bytes the origin sends down: more than loopback socket buffers hold, so writes must queue. */
const DOWN_BYTES = 24 * 1024 * 1024;
/** Bytes the client sends up. */
const UP_BYTES = 12 * 1024 * 1024;
/** A slow reader stops this long after each mebibyte it reads. */
const SLOW_READ_PAUSE_MS = 15;
/** The first pause of a slow reader, long enough for every buffer on the way to fill. */
const FIRST_PAUSE_MS = 300;

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** Reads `socket` to its end, pausing now and then; resolves with everything read. */
function readSlowly(socket: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let sinceLastPause = 0;
    let firstPause = true;
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      sinceLastPause += chunk.length;
      if (sinceLastPause >= 1024 * 1024) {
        sinceLastPause = 0;
        socket.pause();
        setTimeout(() => socket.resume(), firstPause ? FIRST_PAUSE_MS : SLOW_READ_PAUSE_MS);
        firstPause = false;
      }
    });
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
  });
}

/** Writes `data` in 64 KiB pieces with backpressure, then half-closes unless `keepOpen`. */
async function writeAll(socket: Socket, data: Buffer, keepOpen = false): Promise<void> {
  for (let at = 0; at < data.length; at += 64 * 1024) {
    if (!socket.write(data.subarray(at, at + 64 * 1024))) await new Promise((resolve) => socket.once('drain', resolve));
  }
  if (!keepOpen) await new Promise<void>((resolve) => socket.end(resolve));
}

/** Opens a CONNECT tunnel through the proxy; resolves once the 200 arrived, with any bytes after it. */
function openTunnel(proxyPort: number, authority: string): Promise<{ socket: Socket; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: proxyPort, allowHalfOpen: true });
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.pause();
      const status = head.toString('latin1', 0, head.indexOf('\r\n'));
      if (!/^HTTP\/1\.1 200 /.test(status)) reject(new Error(`CONNECT answered ${status}`));
      else resolve({ socket, rest: head.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  });
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

describe('forward proxy tunnels under backpressure', { timeout: 60_000 }, () => {
  let dns: StubDns;
  let dataplane: Dataplane;
  let proxy: ForwardProxy;
  let proxyPort: number;
  const down = randomBytes(DOWN_BYTES);
  const up = randomBytes(UP_BYTES);
  /** Per accepted connection: the hash of what the origin received. */
  const received: Promise<Buffer>[] = [];
  const origin = createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => undefined);
    received.push(readSlowly(socket));
    // Half of the download now, the rest only after the client half-closed: bytes still flow
    // toward a client that has ended its side.
    const half = Math.floor(down.length / 2);
    const firstHalf = writeAll(socket, down.subarray(0, half), true);
    socket.once('end', () => void firstHalf.then(() => writeAll(socket, down.subarray(half))));
  });
  const banner = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.end('220 server speaks first\r\n');
  });
  let originPort: number;
  let bannerPort: number;

  before(async () => {
    originPort = await listen(origin);
    bannerPort = await listen(banner);
    dns = await startStubDns({ 'bulk.test': { A: ['127.0.0.1'] } });
    ({ dataplane, proxy, proxyPort } = await startProxyOnlyDataplane('bulk.test', [originPort, bannerPort], [dns.address]));
  });

  after(async () => {
    await dataplane.stop();
    await dns.close();
    await Promise.all([origin, banner].map((server) => new Promise((resolve) => server.close(resolve))));
  });

  it('delivers large transfers both ways intact to slow readers, across a half-close, then closes', async () => {
    const before = proxy.stats().tunnel_bytes;
    const { socket, rest } = await openTunnel(proxyPort, `bulk.test:${originPort}`);
    const closed = new Promise((resolve) => socket.once('close', resolve));
    const downloaded = readSlowly(socket);
    socket.resume();
    await writeAll(socket, up);
    const got = Buffer.concat([rest, await downloaded]);
    assert.equal(got.length, down.length, 'every byte the origin sent reached the client');
    assert.equal(sha256(got), sha256(down), 'in order and unchanged');
    assert.equal(received.length, 1);
    const uploaded = await (received[0] as Promise<Buffer>);
    assert.equal(uploaded.length, up.length, 'every byte the client sent reached the origin');
    assert.equal(sha256(uploaded), sha256(up), 'in order and unchanged');
    await closed;
    const deadline = Date.now() + 3_000;
    while (proxy.openSockets().tunnels > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(proxy.openSockets().tunnels, 0, 'the upstream side closed too');
    const after = proxy.stats().tunnel_bytes;
    assert.equal(after.client_to_upstream - before.client_to_upstream, up.length);
    assert.equal(after.upstream_to_client - before.upstream_to_client, down.length);
  });

  it('passes on what an origin sends as soon as it accepts, and its close', async () => {
    const { socket, rest } = await openTunnel(proxyPort, `bulk.test:${bannerPort}`);
    const chunks: Buffer[] = [rest];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    await new Promise((resolve) => socket.once('end', resolve));
    socket.end();
    assert.equal(Buffer.concat(chunks).toString(), '220 server speaks first\r\n');
  });
});
