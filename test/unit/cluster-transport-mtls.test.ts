import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { connect, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import fc from 'fast-check';
import { after, before, describe, it } from 'node:test';
import { createClusterCa, createNodeCsr, signNodeCertificate, type KeyAndCert } from '../../src/cluster/ca.js';
import { ClusterTransport, encodeFrame, FrameDecoder, MAX_FRAME_BYTES, MAX_QUEUED_FRAMES, MAX_QUEUED_RAFT_AGE_MS, MAX_UNSENT_BYTES_PER_PEER, type ClusterTls } from '../../src/cluster/transport.js';
import { createLogger } from '../../src/log/logger.js';

const logger = createLogger({ level: 'fatal', format: 'json' });

function identity(ca: KeyAndCert, nodeId: string): ClusterTls {
  const { keyPem, csrPem } = createNodeCsr(nodeId, '127.0.0.1');
  return { keyPem, certPem: signNodeCertificate(ca, csrPem, nodeId, '127.0.0.1'), caPem: ca.certPem };
}

/** A port with nothing behind it (yet): connections to it are refused. */
async function unusedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

describe('cluster transport over mutual TLS', () => {
  const ca = createClusterCa('t');
  const addresses = new Map<string, { host: string; port: number }>();
  const resolveAddress = (id: string) => addresses.get(id) ?? null;
  let a: ClusterTransport;
  let b: ClusterTransport;
  const tlsA = identity(ca, 'node-a');
  const tlsB = identity(ca, 'node-b');

  before(async () => {
    a = new ClusterTransport({ nodeId: 'node-a', tls: tlsA, logger, resolveAddress });
    b = new ClusterTransport({ nodeId: 'node-b', tls: tlsB, logger, resolveAddress, isRefused: (id) => id === 'node-removed' });
    addresses.set('node-a', await a.listen('127.0.0.1', 0));
    addresses.set('node-b', await b.listen('127.0.0.1', 0));
    b.handle('echo', async (from, body) => ({ from, body }));
    b.handle('fail', async () => {
      throw new Error('boom');
    });
  });
  after(async () => {
    await a.close();
    await b.close();
  });

  it('delivers Raft messages with binary payloads and identifies the sender by certificate', async () => {
    const received = new Promise<[string, unknown]>((resolve) => b.once('raft', (from: string, message: unknown) => resolve([from, message])));
    a.sendRaft('node-b', { type: 'snapshot', chunk: new Uint8Array([0, 1, 2, 255]), term: 3 });
    const [from, message] = await received;
    assert.equal(from, 'node-a');
    assert.deepEqual(message, { type: 'snapshot', chunk: new Uint8Array([0, 1, 2, 255]), term: 3 });
  });

  it('answers RPCs and carries errors back', async () => {
    assert.deepEqual(await a.call('node-b', 'echo', { n: 1 }), { from: 'node-a', body: { n: 1 } });
    await assert.rejects(a.call('node-b', 'fail', {}), /boom/);
    await assert.rejects(a.call('node-b', 'nope', {}), /unknown cluster RPC nope/);
  });

  it('refuses a connection without a client certificate', async () => {
    const port = (addresses.get('node-b') as { port: number }).port;
    const outcome = await new Promise<string>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port, ca: ca.certPem, checkServerIdentity: () => undefined });
      socket.on('secureConnect', () => {
        socket.write(encodeFrame({ kind: 'rpc', id: 1, method: 'echo', body: {} }));
        socket.on('data', () => resolve('answered'));
      });
      socket.on('error', (err) => resolve(`error: ${err.message}`));
      socket.on('close', () => resolve('closed'));
    });
    assert.notEqual(outcome, 'answered');
  });

  it('refuses a certificate from another CA', async () => {
    const stranger = new ClusterTransport({ nodeId: 'node-x', tls: identity(createClusterCa('other'), 'node-x'), logger, resolveAddress });
    try {
      await assert.rejects(stranger.call('node-b', 'echo', {}, 2000), /closed|timed out/);
    } finally {
      await stranger.close();
    }
  });

  it('refuses a removed member even with a valid certificate', async () => {
    const removed = new ClusterTransport({ nodeId: 'node-removed', tls: identity(ca, 'node-removed'), logger, resolveAddress });
    try {
      await assert.rejects(removed.call('node-b', 'echo', {}, 2000), /closed|timed out/);
    } finally {
      await removed.close();
    }
  });

  it('reconnects after the peer restarts', async () => {
    await b.close();
    b = new ClusterTransport({ nodeId: 'node-b', tls: tlsB, logger, resolveAddress });
    b.handle('echo', async (from, body) => ({ from, body }));
    const previous = addresses.get('node-b') as { host: string; port: number };
    await b.listen('127.0.0.1', previous.port);
    let answer: unknown = null;
    for (let attempt = 0; attempt < 20 && answer === null; attempt += 1) {
      answer = await a.call('node-b', 'echo', { again: true }, 1000).catch(() => null);
    }
    assert.deepEqual(answer, { from: 'node-a', body: { again: true } });
  });

  it('a peer that connects to us ends our backoff toward it: after a full restart the node that waited alone answers at once', async () => {
    const port = await unusedPort();
    addresses.set('node-later', { host: '127.0.0.1', port });
    // A backoff of a minute: without the shortcut nothing would reach node-later within this test.
    const waiter = new ClusterTransport({ nodeId: 'node-waiter', tls: identity(ca, 'node-waiter'), logger, resolveAddress, reconnectBackoffMs: { min: 60_000, max: 60_000 } });
    addresses.set('node-waiter', await waiter.listen('127.0.0.1', 0));
    const later = new ClusterTransport({ nodeId: 'node-later', tls: identity(ca, 'node-later'), logger, resolveAddress });
    const received: string[] = [];
    later.on('raft', (_from: string, message: { tag: string }) => received.push(message.tag));
    const heard = new Promise<string>((resolve) => waiter.once('raft', (from: string) => resolve(from)));
    try {
      // The first attempt fails (nothing listens yet) and the link waits out its backoff.
      await assert.rejects(waiter.call('node-later', 'echo', {}, 10_000), /connection to node-later closed/);
      await later.listen('127.0.0.1', port);
      later.sendRaft('node-waiter', { tag: 'vote?' });
      assert.equal(await heard, 'node-later');
      for (let i = 0; i < 100 && !received.includes('vote!'); i++) {
        waiter.sendRaft('node-later', { tag: 'vote!' });
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(received.includes('vote!'), 'the answer waited for the backoff');
    } finally {
      addresses.delete('node-later');
      addresses.delete('node-waiter');
      await waiter.close();
      await later.close();
    }
  });

  it('an RPC request pushed out of a full queue fails at once instead of at its timeout', async () => {
    // A peer that accepts TCP and never answers the TLS handshake: the link stays connecting.
    const held: Socket[] = [];
    const silent = createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    addresses.set('node-silent', { host: '127.0.0.1', port: (silent.address() as AddressInfo).port });
    try {
      const started = Date.now();
      const first = a.call('node-silent', 'echo', { n: 0 }, 60_000);
      const firstOutcome = first.then(
        () => 'answered',
        (err: Error) => err.message,
      );
      const rest = Array.from({ length: MAX_QUEUED_FRAMES }, (_, n) => a.call('node-silent', 'echo', { n: n + 1 }, 60_000).catch(() => undefined));
      const message = await firstOutcome;
      assert.match(message, /dropped: 4096 frames queued while reconnecting/);
      assert.ok(Date.now() - started < 2_000, `the dropped call failed after ${Date.now() - started} ms`);
      for (const socket of held) socket.destroy();
      await Promise.all(rest);
    } finally {
      addresses.delete('node-silent');
      for (const socket of held) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('a peer that does not read gets at most a bounded backlog of Raft messages; the rest is dropped and counted, and sending resumes once it reads', async () => {
    // A peer with a valid certificate that accepts the connection and then reads nothing until told to.
    const slow = identity(ca, 'node-slow');
    let accepted: TLSSocket | null = null;
    const server = createTlsServer({ key: slow.keyPem, cert: slow.certPem, ca: slow.caPem, requestCert: true, rejectUnauthorized: true }, (socket) => {
      socket.pause();
      accepted = socket;
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    addresses.set('node-slow', { host: '127.0.0.1', port: (server.address() as AddressInfo).port });
    const drops: string[] = [];
    const sender = new ClusterTransport({ nodeId: 'node-s', tls: identity(ca, 'node-s'), logger, resolveAddress, onDropped: (peer, reason) => drops.push(`${peer}:${reason}`) });
    try {
      const payload = 'x'.repeat(512 * 1024);
      const sent = 64; // 32 MiB in all, four times the bound
      // The first message opens the connection; the rest go out once it is up.
      sender.sendRaft('node-slow', { n: 0, payload });
      for (let i = 0; i < 100 && accepted === null; i++) await new Promise((r) => setTimeout(r, 20));
      assert.notEqual(accepted, null, 'the slow peer never saw the connection');
      await new Promise((r) => setTimeout(r, 100));
      for (let n = 1; n < sent; n++) sender.sendRaft('node-slow', { n, payload });
      assert.ok(drops.length > 0, 'nothing was dropped although the peer read nothing');
      assert.ok(drops.every((d) => d === 'node-slow:backlog'), drops.join(','));
      // What the peer gets once it reads: every message not dropped, in order, and no more than the
      // bound plus what the kernel's socket buffers held.
      const decoder = new FrameDecoder();
      const received: number[] = [];
      const socket = accepted as unknown as TLSSocket;
      socket.on('data', (chunk: Buffer) => {
        for (const frame of decoder.push(chunk)) received.push((frame as { body: { n: number } }).body.n);
      });
      socket.resume();
      const expected = sent - drops.length;
      for (let i = 0; i < 250 && received.length < expected; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(received.length, expected);
      assert.deepEqual(received, [...received].sort((x, y) => x - y));
      assert.ok(received.length * payload.length < MAX_UNSENT_BYTES_PER_PEER + 24 * 1024 * 1024, `${received.length} messages of 512 KiB got through`);
      // Drained: the next message is sent, not dropped.
      const before = drops.length;
      sender.sendRaft('node-slow', { n: sent, payload: 'y' });
      for (let i = 0; i < 250 && received.at(-1) !== sent; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(received.at(-1), sent);
      assert.equal(drops.length, before);
    } finally {
      await sender.close();
      (accepted as TLSSocket | null)?.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('Raft messages queued while a peer is down are dropped as stale once older than the bound, fresh ones get through, and a failed RPC is never sent later', async () => {
    // A port with nothing behind it yet: the link retries (with backoff) and queues meanwhile.
    const port = await unusedPort();
    addresses.set('node-late', { host: '127.0.0.1', port });
    const drops: string[] = [];
    const sender = new ClusterTransport({ nodeId: 'node-s2', tls: identity(ca, 'node-s2'), logger, resolveAddress, onDropped: (peer, reason) => drops.push(`${peer}:${reason}`) });
    const late = new ClusterTransport({ nodeId: 'node-late', tls: identity(ca, 'node-late'), logger, resolveAddress });
    const executed: unknown[] = [];
    late.handle('echo', async (from, body) => {
      executed.push(body);
      return { from, body };
    });
    const received: string[] = [];
    late.on('raft', (_from: string, message: { tag: string }) => received.push(message.tag));
    try {
      sender.sendRaft('node-late', { tag: 'old' });
      // The caller learns at the first failed connection attempt, not at its timeout.
      await assert.rejects(sender.call('node-late', 'echo', { queued: true }, 10_000), /connection to node-late closed/);
      await new Promise((r) => setTimeout(r, MAX_QUEUED_RAFT_AGE_MS + 200));
      await late.listen('127.0.0.1', port);
      // Raft sends again until the peer answers; one of these is young enough when the link connects.
      for (let i = 0; i < 100 && !received.includes('fresh'); i++) {
        sender.sendRaft('node-late', { tag: 'fresh' });
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(received.includes('fresh'), 'no fresh message arrived');
      assert.ok(!received.includes('old'), 'a message queued before the bound arrived');
      assert.ok(drops.includes('node-late:stale'), drops.join(','));
      assert.ok(drops.every((d) => d === 'node-late:stale'), drops.join(','));
      assert.deepEqual(await sender.call('node-late', 'echo', { now: true }, 5_000), { from: 'node-s2', body: { now: true } });
      assert.deepEqual(executed, [{ now: true }], 'the failed call was carried out after all');
    } finally {
      addresses.delete('node-late');
      await sender.close();
      await late.close();
    }
  });

  it('a Buffer (a snapshot read from its file) travels as its bytes, not as what Buffer#toJSON makes of it', () => {
    const file = Buffer.from([9, 0, 1, 2, 255, 7]);
    const frame = { kind: 'raft', body: { type: 'snapshot', data: file.subarray(1, 5), nested: [{ bytes: file }] } } as const;
    const [decoded] = new FrameDecoder().push(encodeFrame(frame as never)) as unknown as [{ body: { data: unknown; nested: [{ bytes: unknown }] } }];
    assert.deepEqual(decoded.body.data, new Uint8Array([0, 1, 2, 255]));
    assert.deepEqual(decoded.body.nested[0].bytes, new Uint8Array([9, 0, 1, 2, 255, 7]));
  });

  it('the frame decoder refuses oversized frames and reassembles split ones', () => {
    const decoder = new FrameDecoder();
    const frame = encodeFrame({ kind: 'raft', body: { x: 'y'.repeat(100) } });
    assert.deepEqual(decoder.push(frame.subarray(0, 10)), []);
    assert.equal(decoder.push(frame.subarray(10)).length, 1);
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(MAX_FRAME_BYTES + 1);
    assert.throws(() => new FrameDecoder().push(huge), /exceeds|limit/);
  });

  it('the frame decoder yields the same frames however the stream is cut into chunks', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.string({ maxLength: 300 }), fc.integer()), { minLength: 1, maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 40 }),
        (bodies, cuts) => {
          const frames = bodies.map(([text, n]) => ({ kind: 'raft', body: { text, n } }));
          const stream = Buffer.concat(frames.map((frame) => encodeFrame(frame as never)));
          const decoder = new FrameDecoder();
          const decoded: unknown[] = [];
          let at = 0;
          for (let i = 0; at < stream.length; i++) {
            const size = cuts[i % cuts.length] as number;
            decoded.push(...decoder.push(stream.subarray(at, at + size)));
            at += size;
          }
          decoded.push(...decoder.push(Buffer.alloc(0)));
          assert.deepEqual(decoded, frames);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('the frame codec round-trips binary at any depth and text that merely mentions the binary marker', () => {
    const frames = [
      { kind: 'raft', body: { type: 'snapshot', data: new Uint8Array([0, 255, 7]), meta: { index: 4 } } },
      { kind: 'rpc-ok', id: 3, body: { items: [{ archive: new Uint8Array(0) }, { archive: new Uint8Array([1]) }], note: '"$b64" is the marker' } },
      { kind: 'rpc', id: 4, method: 'echo', body: { text: '{"$b64":"AAE="}', nested: { $b64: 'AAE=', other: 1 } } },
      { kind: 'raft', body: { type: 'append', entries: [{ index: 1, term: 1, data: { value: 'plain' } }] } },
    ] as const;
    for (const frame of frames) {
      const decoded = new FrameDecoder().push(encodeFrame(frame as never));
      assert.deepEqual(decoded, [frame]);
    }
  });
});
