/**
 * The cluster transport writes several frames for one peer as ONE socket write (one TLS record,
 * one syscall): the Raft messages of one batch at once (early replication messages must not wait
 * for the end of the turn), and the RPC frames of one turn when `process.nextTick` runs. A TLS
 * receiver reads one record per `data` event, which is what these tests count.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { connect, createServer, type Server, type TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { createClusterCa, createNodeCsr, signNodeCertificate, type KeyAndCert } from '../../src/cluster/ca.js';
import { ClusterTransport, encodeFrame, encodeFrames, FrameDecoder, SocketWriter, type ClusterTls } from '../../src/cluster/transport.js';
import { createLogger } from '../../src/log/logger.js';

const logger = createLogger({ level: 'fatal', format: 'json' });

function identity(ca: KeyAndCert, nodeId: string): ClusterTls {
  const { keyPem, csrPem } = createNodeCsr(nodeId, '127.0.0.1');
  return { keyPem, certPem: signNodeCertificate(ca, csrPem, nodeId, '127.0.0.1'), caPem: ca.certPem };
}

/** Stand-ins for Raft messages: a recipient and a sequence number. */
function messages(...pairs: [string, number][]): { to: string; n: number }[] {
  return pairs.map(([to, n]) => ({ to, n }));
}

/** A bare mutual-TLS peer that records every `data` event it receives, decoded. */
class RecordingPeer {
  readonly chunks: unknown[][] = [];
  private server: Server | null = null;
  private waiters: (() => void)[] = [];

  async listen(tls: ClusterTls): Promise<{ host: string; port: number }> {
    const server = createServer({ key: tls.keyPem, cert: tls.certPem, ca: tls.caPem, requestCert: true, rejectUnauthorized: true }, (socket) => {
      const decoder = new FrameDecoder();
      socket.on('data', (chunk: Buffer) => {
        this.chunks.push(decoder.push(chunk).map((frame) => (frame as { body: unknown }).body));
        for (const wake of this.waiters.splice(0)) wake();
      });
      socket.on('error', () => undefined);
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { host: '127.0.0.1', port: (server.address() as AddressInfo).port };
  }

  /** Resolves once `count` chunks arrived (bounded). */
  async waitForChunks(count: number): Promise<void> {
    const deadline = Date.now() + 5_000;
    while (this.chunks.length < count) {
      assert.ok(Date.now() < deadline, `only ${this.chunks.length} of ${count} chunks arrived`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }

  close(): Promise<void> {
    const server = this.server;
    return server === null ? Promise.resolve() : new Promise((resolve) => server.close(() => resolve()));
  }
}

describe('cluster transport: coalesced writes', () => {
  const ca = createClusterCa('t');
  const addresses = new Map<string, { host: string; port: number }>();
  const sender = new ClusterTransport({ nodeId: 'node-a', tls: identity(ca, 'node-a'), logger, resolveAddress: (id) => addresses.get(id) ?? null });
  const b = new RecordingPeer();
  const c = new RecordingPeer();

  before(async () => {
    addresses.set('node-b', await b.listen(identity(ca, 'node-b')));
    addresses.set('node-c', await c.listen(identity(ca, 'node-c')));
    // Connect both links first: frames queued while connecting take another path.
    sender.sendRaftBatch(messages(['node-b', 0], ['node-c', 0]));
    await b.waitForChunks(1);
    await c.waitForChunks(1);
  });
  after(async () => {
    await sender.close();
    await b.close();
    await c.close();
  });

  it('sends the Raft messages of one batch to each peer as one write, in order, skipping itself', async () => {
    const fromB = b.chunks.length;
    const fromC = c.chunks.length;
    sender.sendRaftBatch(messages(['node-b', 1], ['node-c', 1], ['node-a', 1], ['node-b', 2], ['node-b', 3], ['node-c', 2]));
    await b.waitForChunks(fromB + 1);
    await c.waitForChunks(fromC + 1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(b.chunks.slice(fromB), [[{ to: 'node-b', n: 1 }, { to: 'node-b', n: 2 }, { to: 'node-b', n: 3 }]]);
    assert.deepEqual(c.chunks.slice(fromC), [[{ to: 'node-c', n: 1 }, { to: 'node-c', n: 2 }]]);
  });

  it('answers the RPCs settled in one turn with one write', async () => {
    const server = new ClusterTransport({ nodeId: 'node-b', tls: identity(ca, 'node-b'), logger, resolveAddress: () => null });
    server.handle('echo', async (_from, body) => body);
    const address = await server.listen('127.0.0.1', 0);
    const client = identity(ca, 'node-a');
    const chunks: unknown[][] = [];
    const socket: TLSSocket = connect({ host: address.host, port: address.port, key: client.keyPem, cert: client.certPem, ca: client.caPem, checkServerIdentity: () => undefined });
    try {
      const decoder = new FrameDecoder();
      const answered = new Promise<void>((resolve) => {
        let frames = 0;
        socket.on('data', (chunk: Buffer) => {
          const decoded = decoder.push(chunk);
          chunks.push(decoded.map((frame) => (frame as { id: number }).id));
          frames += decoded.length;
          if (frames >= 3) resolve();
        });
      });
      await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
      // Three requests in one write: the server's handlers settle them in one turn.
      socket.write(encodeFrames([1, 2, 3].map((id) => ({ kind: 'rpc', id, method: 'echo', body: { id } }) as never)));
      await answered;
      assert.deepEqual(chunks, [[1, 2, 3]]);
    } finally {
      socket.destroy();
      await server.close();
    }
  });

  it('encodeFrames is the concatenation of encodeFrame, and an oversized frame throws', () => {
    const frames = [
      { kind: 'raft', body: { n: 1, text: 'ä€😀' } },
      { kind: 'raft', body: { n: 2, data: new Uint8Array([1, 2]) } },
      { kind: 'rpc-ok', id: 9, body: null },
    ] as const;
    const joined = encodeFrames(frames as never);
    assert.deepEqual(joined, Buffer.concat(frames.map((frame) => encodeFrame(frame as never))));
    assert.deepEqual(new FrameDecoder().push(joined), frames);
    assert.throws(() => encodeFrames([{ kind: 'raft', body: 'x'.repeat(16 * 1024 * 1024) }] as never), /exceeds/);
  });

  it('SocketWriter: `later` frames leave together at nextTick; `now` writes at once, after what was corked', async () => {
    const calls: string[] = [];
    let corked = 0;
    const socket = {
      cork: () => {
        corked += 1;
        calls.push('cork');
      },
      uncork: () => {
        corked -= 1;
        calls.push('uncork');
      },
      write: (data: Buffer) => {
        calls.push(`write ${data.toString()}${corked > 0 ? ' (corked)' : ''}`);
        return true;
      },
    } as unknown as TLSSocket;
    const writer = new SocketWriter(socket);
    writer.later(Buffer.from('r1'));
    writer.later(Buffer.from('r2'));
    assert.deepEqual(calls, ['cork', 'write r1 (corked)', 'write r2 (corked)']);
    await new Promise<void>((resolve) => process.nextTick(resolve));
    assert.deepEqual(calls.splice(0), ['cork', 'write r1 (corked)', 'write r2 (corked)', 'uncork']);
    writer.later(Buffer.from('r3'));
    writer.now(Buffer.from('raft'));
    // Written and uncorked synchronously: it does not wait for the end of the turn.
    assert.deepEqual(calls.splice(0), ['cork', 'write r3 (corked)', 'write raft (corked)', 'uncork']);
    writer.now(Buffer.from('raft2'));
    assert.deepEqual(calls.splice(0), ['write raft2']);
    await new Promise<void>((resolve) => process.nextTick(resolve));
    assert.equal(corked, 0);
    assert.deepEqual(calls, []);
  });
});
