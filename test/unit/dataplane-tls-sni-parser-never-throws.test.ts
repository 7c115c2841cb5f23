import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import fc from 'fast-check';
import { parseClientHello, TLS_CLIENT_HELLO_MAX_BYTES, type ClientHelloResult } from '../../src/dataplane/tls-sni.js';

const KINDS = new Set(['incomplete', 'not-tls', 'malformed', 'client-hello']);

/** The first bytes a real Node TLS client sends, captured by a plain TCP server. */
async function captureClientHello(servername: string | undefined): Promise<Buffer> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no ClientHello within 3 s')), 3_000);
      server.once('connection', (socket) => {
        let bytes = Buffer.alloc(0);
        socket.on('data', (chunk: Buffer) => {
          bytes = Buffer.concat([bytes, chunk]);
          if (parseClientHello(bytes).kind !== 'incomplete') {
            clearTimeout(timer);
            socket.destroy();
            resolve(bytes);
          }
        });
      });
      const client = tlsConnect({ host: '127.0.0.1', port, ...(servername !== undefined ? { servername } : {}), rejectUnauthorized: false });
      client.on('error', () => undefined);
    });
  } finally {
    server.close();
  }
}

interface HelloSpec {
  readonly sni: string | null;
  readonly before: readonly { type: number; data: Uint8Array }[];
  readonly after: readonly { type: number; data: Uint8Array }[];
  readonly sessionId: Uint8Array;
  readonly suites: number;
  /** Record fragment sizes (the last fragment takes the rest). */
  readonly fragments: readonly number[];
}

function u16(n: number): number[] {
  return [(n >> 8) & 0xff, n & 0xff];
}

function extension(type: number, data: Uint8Array): number[] {
  return [...u16(type), ...u16(data.length), ...data];
}

/** Builds a ClientHello per RFC 8446 §4.1.2 in TLS records of the given fragment sizes. */
function buildHello(spec: HelloSpec): Buffer {
  const extensions: number[] = [];
  for (const e of spec.before) extensions.push(...extension(e.type, e.data));
  if (spec.sni !== null) {
    const name = [...Buffer.from(spec.sni, 'ascii')];
    const entry = [0, ...u16(name.length), ...name];
    extensions.push(...extension(0, Uint8Array.from([...u16(entry.length), ...entry])));
  }
  for (const e of spec.after) extensions.push(...extension(e.type, e.data));
  const suites: number[] = [];
  for (let i = 0; i < spec.suites; i++) suites.push(0x13, 0x01 + (i % 3));
  const body = [3, 3, ...new Array<number>(32).fill(7), spec.sessionId.length, ...spec.sessionId, ...u16(suites.length), ...suites, 1, 0, ...u16(extensions.length), ...extensions];
  const handshake = [1, (body.length >> 16) & 0xff, (body.length >> 8) & 0xff, body.length & 0xff, ...body];
  const out: number[] = [];
  let at = 0;
  for (let i = 0; at < handshake.length; i++) {
    const size = i < spec.fragments.length ? Math.max(1, spec.fragments[i] as number) : handshake.length - at;
    const piece = handshake.slice(at, at + size);
    out.push(0x16, 3, 1, ...u16(piece.length), ...piece);
    at += piece.length;
  }
  return Buffer.from(out);
}

const hostnameArb = fc
  .array(fc.stringMatching(/^[a-zA-Z0-9]([a-zA-Z0-9_-]{0,20}[a-zA-Z0-9])?$/), { minLength: 1, maxLength: 5 })
  .map((labels) => labels.join('.'));
const extensionArb = fc.record({ type: fc.integer({ min: 1, max: 0xffff }), data: fc.uint8Array({ maxLength: 40 }) });
const helloArb: fc.Arbitrary<HelloSpec> = fc.record({
  sni: fc.option(hostnameArb, { nil: null }),
  before: fc.array(extensionArb, { maxLength: 4 }),
  after: fc.array(extensionArb, { maxLength: 4 }),
  sessionId: fc.uint8Array({ maxLength: 32 }),
  suites: fc.integer({ min: 1, max: 20 }),
  fragments: fc.array(fc.integer({ min: 1, max: 200 }), { maxLength: 4 }),
});

function isHello(result: ClientHelloResult, sni: string | null): boolean {
  return result.kind === 'client-hello' && result.sni === sni;
}

describe('TLS ClientHello SNI parser', () => {
  it('reads the SNI of a real Node TLS client, lowercased; an IP connection without servername has none', async () => {
    const withSni = await captureClientHello('API.Example.test');
    assert.deepEqual(parseClientHello(withSni), { kind: 'client-hello', sni: 'api.example.test' });
    const withoutSni = await captureClientHello(undefined);
    assert.deepEqual(parseClientHello(withoutSni), { kind: 'client-hello', sni: null });
    for (let cut = 0; cut < withSni.length; cut += 7) assert.equal(parseClientHello(withSni.subarray(0, cut)).kind, 'incomplete', `prefix of ${cut} bytes`);
  });

  it('classifies plain HTTP, SSH banners and other protocols as not TLS', () => {
    assert.equal(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n')).kind, 'not-tls');
    assert.equal(parseClientHello(Buffer.from('SSH-2.0-OpenSSH_9.6\r\n')).kind, 'not-tls');
    assert.equal(parseClientHello(Buffer.from([0x16, 0x02, 0x00])).kind, 'not-tls');
    assert.equal(parseClientHello(Buffer.alloc(0)).kind, 'incomplete');
  });

  it('refuses malformed hellos: wrong handshake type, bad lengths, two host names, odd characters, oversize', () => {
    const good = buildHello({ sni: 'a.test', before: [], after: [], sessionId: new Uint8Array(0), suites: 1, fragments: [] });
    const notHello = Buffer.from(good);
    notHello[5] = 2; // ServerHello
    assert.equal(parseClientHello(notHello).kind, 'malformed');
    const badSuites = Buffer.from(good);
    badSuites[5 + 4 + 2 + 32 + 1 + 1] = 3; // odd cipher_suites length
    assert.equal(parseClientHello(badSuites).kind, 'malformed');
    const twice = buildHello({ sni: 'a.test', before: [{ type: 0, data: Uint8Array.from([0, 4, 0, 0, 1, 0x61]) }], after: [], sessionId: new Uint8Array(0), suites: 1, fragments: [] });
    assert.equal(parseClientHello(twice).kind, 'malformed', 'server_name twice');
    assert.equal(parseClientHello(buildHello({ sni: 'a b.test', before: [], after: [], sessionId: new Uint8Array(0), suites: 1, fragments: [] })).kind, 'malformed');
    const oversize = Buffer.from([0x16, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff]);
    assert.deepEqual(parseClientHello(oversize).kind, 'malformed', `a hello above ${TLS_CLIENT_HELLO_MAX_BYTES} bytes`);
    const zeroRecord = Buffer.from([0x16, 3, 1, 0, 0]);
    assert.equal(parseClientHello(zeroRecord).kind, 'malformed');
  });

  it('property: built hellos, in any record fragmentation, yield exactly their SNI; every prefix is incomplete', () => {
    fc.assert(
      fc.property(helloArb, fc.nat(), (spec, n) => {
        const bytes = buildHello(spec);
        assert.ok(isHello(parseClientHello(bytes), spec.sni === null ? null : spec.sni.toLowerCase()), JSON.stringify(parseClientHello(bytes)));
        assert.equal(parseClientHello(bytes.subarray(0, n % bytes.length)).kind, 'incomplete');
      }),
      { numRuns: 300 },
    );
  });

  it('property: never throws on arbitrary bytes or on mutated hellos', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        assert.ok(KINDS.has(parseClientHello(bytes).kind));
      }),
      { numRuns: 2_000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 300 }), (tail) => {
        // Arbitrary bytes behind a plausible TLS record header reach the deeper parsing code.
        const bytes = Buffer.concat([Buffer.from([0x16, 3, 1, 0, tail.length, 1, 0, 0, Math.max(0, tail.length - 4)]), tail]);
        assert.ok(KINDS.has(parseClientHello(bytes).kind));
      }),
      { numRuns: 2_000 },
    );
    fc.assert(
      fc.property(helloArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), (spec, flips) => {
        const bytes = buildHello(spec);
        for (const [position, value] of flips) bytes[position % bytes.length] = value;
        assert.ok(KINDS.has(parseClientHello(bytes).kind));
      }),
      { numRuns: 1_000 },
    );
  });
});
