/**
 * `UpstreamRelay` reuses its read buffer only while no queued write refers to it. A model run
 * with fast-check: random read sizes, writes that the "kernel" takes at once or holds for a while,
 * and the bytes the sink finally takes (copied when it takes them) must equal the bytes read.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { UPSTREAM_READ_BYTES, UPSTREAM_SMALL_READ_BYTES, UpstreamRelay } from '../../src/dataplane/upstream-relay.js';

/** A writable that stands for the client socket: each write completes at once or waits for `flush`. */
class ModelSink extends Writable {
  /** What the "kernel" took, copied at the moment it took it. */
  readonly taken: Buffer[] = [];
  private readonly held: { chunk: Buffer; done: () => void }[] = [];
  takeAtOnce = true;

  constructor() {
    super({ highWaterMark: 16 * 1024 });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    if (this.takeAtOnce) {
      this.taken.push(Buffer.from(chunk));
      done();
    } else {
      this.held.push({ chunk, done: () => done() });
    }
  }

  /** The "kernel" takes the oldest held write; false when none is held. */
  flushOne(): boolean {
    const next = this.held.shift();
    if (next === undefined) return false;
    this.taken.push(Buffer.from(next.chunk));
    next.done();
    return true;
  }
}

/** The relay's view of the socket it reads: whether libuv would read now. */
class ModelSource {
  reading = true;
  resume(): this {
    this.reading = true;
    return this;
  }
  once(): this {
    return this;
  }
}

type Step = { kind: 'read'; bytes: number; atOnce: boolean } | { kind: 'flush' } | { kind: 'tick' };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('read' as const), bytes: fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: UPSTREAM_READ_BYTES })), atOnce: fc.boolean() }),
  fc.record({ kind: fc.constant('flush' as const) }),
  fc.record({ kind: fc.constant('tick' as const) }),
);

/** Drives `onread` like libuv does: a read lands in the buffer the relay handed out last. */
async function run(steps: readonly Step[], readsBeforeStart: number): Promise<void> {
  const relay = new UpstreamRelay();
  const sink = new ModelSink();
  const source = new ModelSource();
  let next = 0;
  const sent: Buffer[] = [];
  let buffer = relay.onread.buffer();
  const read = (wanted: number): void => {
    const bytes = Math.min(wanted, buffer.length); // libuv reads at most the buffer
    for (let i = 0; i < bytes; i++) buffer[i] = (next + i * 7) & 0xff;
    next += bytes;
    sent.push(Buffer.from(buffer.subarray(0, bytes)));
    if (!relay.onread.callback(bytes, buffer)) source.reading = false;
    buffer = relay.onread.buffer();
  };
  for (let i = 0; i < readsBeforeStart && source.reading; i++) read(100 + i);
  relay.start(source, sink);
  for (const s of steps) {
    if (s.kind === 'read') {
      if (!source.reading) continue;
      sink.takeAtOnce = s.atOnce;
      read(s.bytes);
    } else if (s.kind === 'flush') {
      sink.flushOne();
    } else {
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  while (sink.flushOne()) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(Buffer.compare(Buffer.concat(sink.taken), Buffer.concat(sent)), 0, 'the sink took exactly the bytes read, in order');
}

describe('UpstreamRelay', () => {
  it('never lets a read overwrite bytes a queued write still refers to', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 60 }), fc.integer({ min: 0, max: 3 }), (steps, early) => run(steps, early)),
      { numRuns: 300 },
    );
  });

  it('reuses its buffer while writes are taken at once, grows for bulk reads, and reads elsewhere once a write is queued', () => {
    const relay = new UpstreamRelay();
    const sink = new ModelSink();
    relay.start(new ModelSource(), sink);
    const first = relay.onread.buffer();
    assert.equal(first.length, UPSTREAM_SMALL_READ_BYTES, 'a new tunnel starts small');
    first.fill(0x61, 0, 10);
    assert.equal(relay.onread.callback(10, first), true);
    assert.equal(relay.onread.buffer(), first, 'taken at once: reused');
    first.fill(0x62);
    assert.equal(relay.onread.callback(first.length, first), true);
    const bulk = relay.onread.buffer();
    assert.equal(bulk.length, UPSTREAM_READ_BYTES, 'a read that filled the buffer: bulk size next');
    sink.takeAtOnce = false;
    bulk.fill(0x63, 0, 8_000);
    assert.equal(relay.onread.callback(8_000, bulk), true, 'below the high-water mark: keep reading');
    const second = relay.onread.buffer();
    assert.notEqual(second, bulk, 'queued: the next read goes elsewhere');
    assert.equal(second.length, UPSTREAM_READ_BYTES);
    second.fill(0x64, 0, 20_000);
    assert.equal(relay.onread.callback(20_000, second), false, 'beyond the high-water mark: stop reading');
    sink.takeAtOnce = true;
    const third = relay.onread.buffer();
    third.fill(0x65, 0, 100);
    relay.onread.callback(100, third);
    assert.equal(relay.onread.buffer().length, UPSTREAM_SMALL_READ_BYTES, 'a small read: back to the small size');
    while (sink.flushOne());
    const expected = `${'a'.repeat(10)}${'b'.repeat(UPSTREAM_SMALL_READ_BYTES)}${'c'.repeat(8_000)}${'d'.repeat(20_000)}${'e'.repeat(100)}`;
    assert.equal(Buffer.concat(sink.taken).toString('latin1'), expected);
  });
});
