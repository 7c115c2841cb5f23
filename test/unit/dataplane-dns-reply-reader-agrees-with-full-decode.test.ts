/**
 * The upstream-reply reader (`checkReply`, `replyAddresses`) walks the bytes instead of decoding
 * the reply with dns-packet. Properties:
 * - on every reply dns-packet encodes (random questions in random case, CNAME chains, A/AAAA and
 *   other records in all three sections, EDNS), it accepts exactly what the full decode with the
 *   previous checks accepted and finds the same addresses;
 * - on arbitrary and mutated bytes it never throws, and what it accepts has a header, our ID, the
 *   response flag and the asked question.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Question } from 'dns-packet';
import fc from 'fast-check';
import { canonicalIp } from '../../src/dataplane/allowlist.js';
import { checkReply, questionEnd, replyAddresses } from '../../src/dataplane/dns-messages.js';
import { normalizeHostname } from '../../src/policy/hostname.js';

const ID = 0x5151;

function sameName(a: string, b: string): boolean {
  return normalizeHostname(a === '.' ? '' : a) === normalizeHostname(b === '.' ? '' : b);
}

/** The checks the proxy made before the reader: full decode, then ID, flags, opcode, question. */
function referenceCheck(raw: Buffer, question: Question): DecodedPacket | null {
  if (raw.length < 12 || raw.readUInt16BE(0) !== ID) return null;
  let packet: DecodedPacket;
  try {
    packet = dnsPacket.decode(raw);
  } catch {
    return null;
  }
  if (!packet.flag_qr || (((packet.flags ?? 0) >> 11) & 0xf) !== 0) return null;
  const questions = packet.questions ?? [];
  if (questions.length !== 1) return null;
  const q = questions[0] as Question;
  if (!sameName(q.name, question.name) || q.type !== question.type || (q.class ?? 'IN') !== (question.class ?? 'IN')) return null;
  return packet;
}

/** The addresses the proxy read from the decoded packet before the reader (canonical text). */
function referenceAddresses(qname: string, packet: DecodedPacket): { ip: string; ttlSeconds: number }[] {
  const answers = packet.answers ?? [];
  const names = new Set<string>([normalizeHostname(qname)]);
  for (let hop = 0; hop < 16; hop++) {
    let grew = false;
    for (const record of answers) {
      if (record.type !== 'CNAME' || typeof record.data !== 'string') continue;
      if (names.has(normalizeHostname(record.name)) && !names.has(normalizeHostname(record.data))) {
        names.add(normalizeHostname(record.data));
        grew = true;
      }
    }
    if (!grew) break;
  }
  const v4: { ip: string; ttlSeconds: number }[] = [];
  const v6: { ip: string; ttlSeconds: number }[] = [];
  for (const record of answers) {
    if ((record.type !== 'A' && record.type !== 'AAAA') || (record.class ?? 'IN') !== 'IN') continue;
    if (typeof record.data !== 'string' || !names.has(normalizeHostname(record.name))) continue;
    (record.type === 'A' ? v4 : v6).push({ ip: canonicalIp(record.data) ?? record.data, ttlSeconds: record.ttl ?? 0 });
  }
  return [...v4, ...v6];
}

function canonical(addresses: readonly { ip: string; ttlSeconds: number }[]): { ip: string; ttlSeconds: number }[] {
  return addresses.map(({ ip, ttlSeconds }) => ({ ip: canonicalIp(ip) ?? `not an IP: ${ip}`, ttlSeconds }));
}

const label = fc.oneof(fc.constantFrom('www', 'example', 'test', 'cdn', 'edge', 'a0001', 'bench'), fc.string({ minLength: 1, maxLength: 10 }).filter((l) => !l.includes('.')));
const name = fc.array(label, { minLength: 1, maxLength: 4 }).map((labels) => labels.join('.'));
const randomCase = (text: string, flips: readonly boolean[]): string =>
  [...text].map((c, i) => (flips[i % Math.max(1, flips.length)] === true ? c.toUpperCase() : c.toLowerCase())).join('');
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join('.'));
const ipv6 = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 }).map((g) => g.map((x) => x.toString(16)).join(':'));
const ttl = fc.nat(0x7fffffff);

/** A record about one of `names` (or an unrelated one). */
const record = (names: readonly string[]): fc.Arbitrary<Answer> => {
  const owner = fc.oneof(fc.constantFrom(...names), name);
  return fc.oneof(
    fc.record({ type: fc.constant('A' as const), name: owner, ttl, data: ipv4, class: fc.constantFrom('IN' as const, 'IN' as const, 'CH' as const) }),
    fc.record({ type: fc.constant('AAAA' as const), name: owner, ttl, data: ipv6 }),
    fc.record({ type: fc.constant('CNAME' as const), name: owner, ttl, data: fc.oneof(fc.constantFrom(...names), name) }),
    fc.record({ type: fc.constant('TXT' as const), name: owner, ttl, data: fc.string({ maxLength: 20 }) }),
    fc.record({ type: fc.constant('NS' as const), name: owner, ttl, data: name }),
    fc.record({ type: fc.constant('MX' as const), name: owner, ttl, data: fc.record({ preference: fc.nat(100), exchange: name }) }),
  ) as fc.Arbitrary<Answer>;
};

const scenario = fc
  .record({
    qname: name,
    qtype: fc.constantFrom<'A' | 'AAAA'>('A', 'AAAA'),
    flips: fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
    chain: fc.array(name, { maxLength: 4 }),
    replyQuestion: fc.constantFrom('same', 'same', 'same', 'other-name', 'other-type'),
    rcode: fc.constantFrom(0, 0, 2, 3),
    edns: fc.boolean(),
  })
  .chain((s) =>
    fc.record({
      s: fc.constant(s),
      answers: fc.array(record([s.qname, ...s.chain]), { maxLength: 8 }),
      authorities: fc.array(record([s.qname]), { maxLength: 2 }),
      additionals: fc.array(record([s.qname, ...s.chain]), { maxLength: 2 }),
    }),
  );

function encode(packet: Parameters<typeof dnsPacket.encode>[0]): Buffer | null {
  try {
    return Buffer.from(dnsPacket.encode(packet));
  } catch {
    return null;
  }
}

test('checkReply and replyAddresses agree with the full decode on every encodable reply', () => {
  fc.assert(
    fc.property(scenario, ({ s, answers, authorities, additionals }) => {
      const asked: Question = { type: s.qtype, name: s.qname, class: 'IN' };
      const query = encode({ type: 'query', id: 0, flags: dnsPacket.RECURSION_DESIRED, questions: [asked] });
      fc.pre(query !== null);
      const end = questionEnd(query as Buffer);
      assert.ok(end > 12);
      const replyQuestion: Question =
        s.replyQuestion === 'same'
          ? { ...asked, name: randomCase(s.qname, s.flips) }
          : s.replyQuestion === 'other-name'
            ? { ...asked, name: `x${s.qname}` }
            : { ...asked, type: s.qtype === 'A' ? 'AAAA' : 'A' };
      const opt = s.edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0, options: [] } as unknown as Answer] : [];
      const reply = encode({ type: 'response', id: ID, flags: dnsPacket.RECURSION_AVAILABLE | s.rcode, questions: [replyQuestion], answers, authorities, additionals: [...additionals, ...opt] });
      fc.pre(reply !== null);
      const raw = reply as Buffer;
      const reference = referenceCheck(raw, asked);
      const check = checkReply(raw, ID, query as Buffer, end);
      assert.equal(check.ok, reference !== null, check.ok ? 'accepted what the full decode refused' : `refused: ${check.reason}`);
      if (!check.ok || reference === null) return;
      assert.equal(check.rcode, s.rcode);
      assert.equal(check.truncated, false);
      assert.deepEqual(canonical(replyAddresses(raw, s.qname)), referenceAddresses(s.qname, reference));
    }),
    { numRuns: 3_000 },
  );
});

test('checkReply and replyAddresses never throw on garbage or mutated replies', () => {
  const asked: Question = { type: 'A', name: 'www.example.test', class: 'IN' };
  const sent = Buffer.from(dnsPacket.encode({ type: 'query', id: 0, questions: [asked] }));
  const end = questionEnd(sent);
  const valid = Buffer.from(
    dnsPacket.encode({
      type: 'response',
      id: ID,
      flags: dnsPacket.RECURSION_AVAILABLE,
      questions: [asked],
      answers: [
        { type: 'CNAME', name: 'www.example.test', ttl: 60, data: 'edge.example.test' },
        { type: 'A', name: 'edge.example.test', ttl: 60, data: '192.0.2.1' },
        { type: 'AAAA', name: 'edge.example.test', ttl: 60, data: '2001:db8::1' },
      ],
      authorities: [{ type: 'NS', name: 'example.test', ttl: 60, data: 'ns1.example.test' }],
      additionals: [{ type: 'A', name: 'ns1.example.test', ttl: 60, data: '192.0.2.53' }],
    }),
  );
  const accepted = (raw: Buffer): void => {
    const check = checkReply(raw, ID, sent, end);
    const addresses = replyAddresses(raw, asked.name);
    for (const { ip, ttlSeconds } of addresses) {
      assert.ok(canonicalIp(ip) !== null, ip);
      assert.ok(Number.isInteger(ttlSeconds) && ttlSeconds >= 0);
    }
    if (!check.ok) return;
    assert.ok(raw.length >= 12 && raw.readUInt16BE(0) === ID && (raw.readUInt16BE(2) & 0x8000) !== 0);
    assert.ok(raw.subarray(12, end).toString('latin1').toLowerCase() === sent.subarray(12, end).toString('latin1').toLowerCase());
  };
  assert.deepEqual(checkReply(valid, ID, sent, end), { ok: true, rcode: 0, truncated: false });
  assert.deepEqual(canonical(replyAddresses(valid, 'WWW.example.test')), [
    { ip: '192.0.2.1', ttlSeconds: 60 },
    { ip: '2001:db8::1', ttlSeconds: 60 },
  ]);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      const raw = Buffer.from(bytes);
      if (raw.length >= 2) raw.writeUInt16BE(ID, 0);
      accepted(raw);
    }),
    { numRuns: 3_000 },
  );
  fc.assert(
    fc.property(
      fc.array(fc.record({ at: fc.nat(valid.length - 1), value: fc.nat(255) }), { minLength: 1, maxLength: 6 }),
      fc.nat(valid.length),
      (edits, cut) => {
        const raw = Buffer.from(valid);
        for (const { at, value } of edits) raw[at] = value;
        accepted(raw);
        accepted(raw.subarray(0, cut));
      },
    ),
    { numRuns: 5_000 },
  );
});

test('replyAddresses ignores A/AAAA records whose RDLENGTH is not their type size, and pointer loops', () => {
  const asked: Question = { type: 'A', name: 'a.test', class: 'IN' };
  const raw = Buffer.from(dnsPacket.encode({ type: 'response', id: ID, questions: [asked], answers: [{ type: 'A', name: 'a.test', ttl: 9, data: '192.0.2.9' }] }));
  // The answer record: owner pointer (c0 0c), type, class, TTL, RDLENGTH 4, then 4 bytes.
  const rdlength = raw.length - 4 - 2;
  assert.equal(raw.readUInt16BE(rdlength), 4);
  assert.deepEqual(replyAddresses(raw, 'a.test'), [{ ip: '192.0.2.9', ttlSeconds: 9 }]);
  const five = Buffer.concat([raw, Buffer.from([7])]);
  five.writeUInt16BE(5, rdlength);
  const sent = Buffer.from(dnsPacket.encode({ type: 'query', id: 0, questions: [asked] }));
  assert.equal(checkReply(five, ID, sent, questionEnd(sent)).ok, true);
  assert.deepEqual(replyAddresses(five, 'a.test'), []);
  const selfPointer = Buffer.from(raw);
  selfPointer.writeUInt16BE(0xc000 | (raw.length - 14), raw.length - 14); // the owner name points at itself
  assert.deepEqual(replyAddresses(selfPointer, 'a.test'), []);
});
