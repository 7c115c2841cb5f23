/**
 * The DNS proxy's fast paths give what the full dns-packet round trip gives:
 * - `classifyQuery` decodes the common query (one question, at most one additional record)
 *   section by section; property: its classification (EDNS checks included: one OPT record at
 *   most, version 0) equals the one obtained from the full `dnsPacket.decode` of the message — for valid queries of every shape, for mutated bytes, and
 *   for questions of raw label bytes with any type and class (the printable-ASCII shortcut of the
 *   canonical-question check must agree with re-encoding);
 * - `buildAnswerFromQuery` patches the client's header instead of encoding a packet; property:
 *   its bytes equal `buildResponse` on the fully decoded query, with and without EDNS and EDE,
 *   also when written over the query's own buffer (which it does exactly when the answer fits).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet, Question } from 'dns-packet';
import fc from 'fast-check';
import { buildAnswerFromQuery, buildResponse, classifyQuery, EDE, RCODE, type Rcode } from '../../src/dataplane/dns-messages.js';

/** The classification the proxy made before the fast path: full decode, then the same checks. */
function referenceClassify(raw: Buffer): { kind: string; rcode?: number } {
  if (raw.length < 12 || raw.length > 65_535) return { kind: 'malformed' };
  let packet: DecodedPacket;
  try {
    packet = dnsPacket.decode(raw);
  } catch {
    return { kind: 'malformed' };
  }
  if (packet.flag_qr) return { kind: 'malformed' };
  if ((((packet.flags ?? 0) >> 11) & 0xf) !== 0) return { kind: 'unsupported', rcode: RCODE.NOTIMP };
  const questions = packet.questions ?? [];
  if (questions.length !== 1) return { kind: 'unsupported', rcode: RCODE.FORMERR };
  const opts = (packet.additionals ?? []).filter((record) => record.type === 'OPT') as unknown as { ednsVersion?: number }[];
  if (opts.length > 1) return { kind: 'unsupported', rcode: RCODE.FORMERR };
  if (opts.length === 1 && (opts[0]?.ednsVersion ?? 0) !== 0) return { kind: 'unsupported', rcode: RCODE.BADVERS };
  let encoded: Buffer;
  try {
    encoded = dnsPacket.encode({ type: 'query', id: 0, flags: 0, questions: [questions[0] as Question] });
  } catch {
    return { kind: 'malformed' };
  }
  const length = encoded.length - 12;
  if (raw.length < 12 + length || raw.compare(encoded, 12, encoded.length, 12, 12 + length) !== 0) return { kind: 'malformed' };
  return { kind: 'query' };
}

const label = fc.oneof(fc.constantFrom('www', 'example', 'test', 'A', 'Mixed', 'x-y', '_srv', 'd00042', 'bench'), fc.string({ minLength: 1, maxLength: 12 }));
const name = fc.array(label, { minLength: 0, maxLength: 5 }).map((labels) => labels.join('.'));
const opt = fc.record({ udpPayloadSize: fc.integer({ min: 0, max: 65_535 }), flags: fc.constantFrom(0, 0x8000), withOption: fc.boolean(), ednsVersion: fc.constantFrom(0, 0, 0, 1) }).map(
  ({ udpPayloadSize, flags, withOption, ednsVersion }) =>
    ({ type: 'OPT', name: '.', udpPayloadSize, flags, ednsVersion, options: withOption ? [{ code: 10, data: Buffer.from('0123456789abcdef', 'hex') }] : [] }) as unknown as Answer,
);
const packet = fc.record({
  id: fc.integer({ min: 0, max: 65_535 }),
  flags: fc.oneof(fc.constantFrom(0, 0x0100, 0x0110, 0x0120, 0x0500, 0x2100), fc.integer({ min: 0, max: 0x7fff })),
  type: fc.constantFrom<'query' | 'response'>('query', 'query', 'query', 'response'),
  questions: fc.array(fc.record({ name, type: fc.constantFrom<Question['type']>('A', 'AAAA', 'TXT', 'MX', 'SRV'), class: fc.constantFrom<Question['class']>('IN', 'IN', 'CH') }), { minLength: 0, maxLength: 2 }),
  additionals: fc.array(opt, { maxLength: 2 }),
  answers: fc.array(fc.constant({ type: 'A', name: 'x.test', ttl: 5, data: '192.0.2.1' } as Answer), { maxLength: 1 }),
});

function encoded(p: Packet): Buffer | null {
  try {
    return dnsPacket.encode(p);
  } catch {
    return null;
  }
}

test('classifyQuery decides every message like the full decode', () => {
  fc.assert(
    fc.property(packet, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }), fc.nat(40), (p, mutations, cut) => {
      const raw = encoded(p as unknown as Packet);
      if (raw === null) return;
      for (const bytes of [raw, Buffer.from(raw), raw.subarray(0, Math.max(0, raw.length - cut))]) {
        if (bytes !== raw) for (const [at, value] of mutations) if (bytes.length > 0) bytes[at % bytes.length] = value;
        const got = classifyQuery(bytes);
        const want = referenceClassify(bytes);
        assert.equal(got.kind, want.kind, bytes.toString('hex'));
        if (got.kind === 'unsupported') assert.equal(got.rcode, want.rcode);
      }
    }),
    { numRuns: 5_000 },
  );
});

test('classifyQuery decides questions of raw label bytes, types and classes like the full decode', () => {
  const labelByte = fc.oneof(fc.integer({ min: 0x21, max: 0x7e }), fc.constantFrom(0x2e, 0x0a, 0x0d, 0x20, 0x00, 0x7f, 0x80, 0xc3, 0xff));
  const rawLabel = fc.array(labelByte, { minLength: 1, maxLength: 12 });
  fc.assert(
    fc.property(
      fc.array(rawLabel, { maxLength: 4 }),
      fc.oneof(fc.constantFrom(1, 28, 16, 255, 65, 0, 999), fc.nat(65_535)),
      fc.oneof(fc.constantFrom(1, 3, 255, 0x8001, 0), fc.nat(65_535)),
      fc.boolean(),
      (labels, type, klass, edns) => {
        const name = Buffer.from(labels.flatMap((label) => [label.length, ...label]).concat([0]));
        const tail = Buffer.alloc(4);
        tail.writeUInt16BE(type, 0);
        tail.writeUInt16BE(klass, 2);
        const opt = edns ? Buffer.from([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]) : Buffer.alloc(0);
        const raw = Buffer.concat([Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, edns ? 1 : 0]), name, tail, opt]);
        const got = classifyQuery(raw);
        assert.equal(got.kind, referenceClassify(raw).kind, raw.toString('hex'));
        if (got.kind === 'query') assert.equal(got.query.questionEnd, 12 + name.length + 4);
      },
    ),
    { numRuns: 5_000 },
  );
});

test('buildAnswerFromQuery writes exactly what buildResponse encodes', () => {
  const rcodes: Rcode[] = [RCODE.NXDOMAIN, RCODE.SERVFAIL, RCODE.REFUSED, RCODE.NOERROR];
  fc.assert(
    fc.property(packet, fc.constantFrom(...rcodes), fc.option(fc.record({ code: fc.constantFrom(EDE.BLOCKED, EDE.NOT_READY), text: fc.string({ maxLength: 300 }) }), { nil: undefined }), (p, rcode, ede) => {
      const raw = encoded(p as unknown as Packet);
      if (raw === null) return;
      const classified = classifyQuery(raw);
      if (classified.kind !== 'query') return;
      const expected = buildResponse(dnsPacket.decode(raw), rcode, ede);
      assert.deepEqual(buildAnswerFromQuery(raw, classified.query, rcode, ede), expected);
      assert.deepEqual(buildAnswerFromQuery(raw, classified.query, rcode, ede), expected, 'the same again (cached OPT record)');
      // Written over a copy of the query (the UDP path): the same bytes, and in place when they fit.
      const own = Buffer.from(raw);
      const inPlace = buildAnswerFromQuery(own, classified.query, rcode, ede, true);
      assert.deepEqual(inPlace, expected, 'written over the query');
      assert.equal(inPlace.buffer === own.buffer && inPlace.byteOffset === own.byteOffset, expected.length <= raw.length, 'in place exactly when it fits');
    }),
    { numRuns: 5_000 },
  );
});
