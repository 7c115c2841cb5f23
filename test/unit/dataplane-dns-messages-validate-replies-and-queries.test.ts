import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import type { Answer, Packet } from 'dns-packet';
import fc from 'fast-check';
import { buildResponse, checkReply, classifyQuery, EDE, questionEnd, RCODE, rcodeOf, replyAddresses } from '../../src/dataplane/dns-messages.js';

function query(name: string, options: Partial<Packet> = {}): Buffer {
  return dnsPacket.encode({ type: 'query', id: 4321, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name, class: 'IN' }], ...options });
}

function response(id: number, name: string, answers: Answer[] = [], type: 'A' | 'AAAA' = 'A'): Buffer {
  return dnsPacket.encode({ type: 'response', id, flags: dnsPacket.RECURSION_AVAILABLE, questions: [{ type, name, class: 'IN' }], answers });
}

describe('DNS message handling', () => {
  it('checkReply accepts only the reply with our ID, response flag and the same question', () => {
    const sent = query('Example.test');
    const end = questionEnd(sent);
    assert.equal(end, sent.length);
    assert.deepEqual(checkReply(response(777, 'example.TEST.'), 777, sent, end), { ok: true, rcode: 0, truncated: false }, 'name compared case-insensitively, trailing dot ignored');
    assert.deepEqual(checkReply(response(778, 'example.test'), 777, sent, end), { ok: false, reason: 'unexpected ID' });
    assert.equal(checkReply(response(777, 'other.test'), 777, sent, end).ok, false);
    assert.equal(checkReply(response(777, 'example.test', [], 'AAAA'), 777, sent, end).ok, false);
    const asQuery = Buffer.from(query('example.test'));
    asQuery.writeUInt16BE(777, 0);
    assert.deepEqual(checkReply(asQuery, 777, sent, end), { ok: false, reason: 'not a response' });
    assert.equal(checkReply(Buffer.from([3, 9, 0x81]), 777, sent, end).ok, false, 'shorter than a header');
    const truncated = response(777, 'example.test', [{ type: 'A', name: 'example.test', ttl: 5, data: '192.0.2.1' }]).subarray(0, 40);
    assert.equal(checkReply(truncated, 777, sent, end).ok, false, 'a record cut short');
    const tc = response(777, 'example.test');
    tc.writeUInt16BE(tc.readUInt16BE(2) | dnsPacket.TRUNCATED_RESPONSE | RCODE.SERVFAIL, 2);
    assert.deepEqual(checkReply(tc, 777, sent, end), { ok: true, rcode: RCODE.SERVFAIL, truncated: true });
  });

  it('questionEnd is the end of the one uncompressed question of a query, else -1', () => {
    const raw = query('www.example.test');
    assert.equal(questionEnd(raw), raw.length);
    assert.equal(questionEnd(dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'a.test' }, { type: 'A', name: 'b.test' }] })), -1);
    assert.equal(questionEnd(raw.subarray(0, raw.length - 1)), -1, 'type and class cut short');
    const pointer = Buffer.concat([raw.subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]);
    assert.equal(questionEnd(pointer), -1, 'a compressed question name');
  });

  it('classifyQuery: one canonical question is a query; responses, garbage and odd names are malformed', () => {
    assert.equal(classifyQuery(query('www.example.test')).kind, 'query');
    assert.equal(classifyQuery(response(1, 'x.test')).kind, 'malformed');
    assert.equal(classifyQuery(Buffer.from('hello world, not dns')).kind, 'malformed');
    assert.equal(classifyQuery(Buffer.alloc(5)).kind, 'malformed');
    // A label containing a dot ("x.allowed" + "test") decodes as x.allowed.test: must not pass.
    const dotted = Buffer.concat([Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]), Buffer.from([9, ...Buffer.from('x.allowed'), 4, ...Buffer.from('test'), 0, 0, 1, 0, 1])]);
    assert.equal(dnsPacket.decode(dotted).questions?.[0]?.name, 'x.allowed.test');
    assert.deepEqual(classifyQuery(dotted), { kind: 'malformed', reason: 'non-canonical question name' });
    const twoQuestions = dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'a.test' }, { type: 'A', name: 'b.test' }] });
    const classified = classifyQuery(twoQuestions);
    assert.equal(classified.kind, 'unsupported');
    assert.equal(classified.kind === 'unsupported' && classified.rcode, RCODE.FORMERR);
    const notify = Buffer.from(query('a.test'));
    notify.writeUInt16BE(0x2000 | 0x0100, 2); // opcode NOTIFY (4)
    const notifyClass = classifyQuery(notify);
    assert.equal(notifyClass.kind === 'unsupported' && notifyClass.rcode, RCODE.NOTIMP);
  });

  it('EDNS: an OPT of version 1 is answered BADVERS (extended code in a version 0 OPT), two OPTs FORMERR without one', () => {
    const opt = (version: number): Answer => ({ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: version, flags: 0, options: [] }) as unknown as Answer;
    assert.equal(classifyQuery(query('a.test', { additionals: [opt(0)] })).kind, 'query');
    const v1 = classifyQuery(query('a.test', { additionals: [opt(1)] }));
    assert.ok(v1.kind === 'unsupported' && v1.rcode === RCODE.BADVERS);
    const badvers = dnsPacket.decode(buildResponse(v1.packet, v1.rcode));
    assert.equal(badvers.id, 4321);
    assert.equal((dnsPacket.decode(buildResponse(v1.packet, v1.rcode)) as { rcode?: string }).rcode, 'NOERROR', 'the header holds the lower 4 bits of 16');
    const answerOpt = badvers.additionals?.[0] as unknown as { type: string; extendedRcode: number; ednsVersion: number };
    assert.deepEqual([answerOpt.type, answerOpt.extendedRcode, answerOpt.ednsVersion], ['OPT', 1, 0], 'BADVERS = 16: upper bits 1 in the OPT, and the version spoken: 0');
    const two = classifyQuery(query('a.test', { additionals: [opt(0), opt(0)] }));
    assert.ok(two.kind === 'unsupported' && two.rcode === RCODE.FORMERR);
    const formerr = buildResponse(two.packet, two.rcode);
    assert.equal((dnsPacket.decode(formerr) as { rcode?: string }).rcode, 'FORMERR');
    assert.deepEqual(dnsPacket.decode(formerr).additionals ?? [], []);
  });

  it('classifyQuery never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        assert.ok(['query', 'unsupported', 'malformed'].includes(classifyQuery(Buffer.from(bytes)).kind));
      }),
      { numRuns: 3_000 },
    );
  });

  it('buildResponse echoes ID, question, RD; sets RA and the rcode; adds OPT with an Extended DNS Error under EDNS', () => {
    const plain = classifyQuery(query('denied.test'));
    assert.equal(plain.kind, 'query');
    if (plain.kind !== 'query') return;
    const answer = dnsPacket.decode(buildResponse(plain.query.packet, RCODE.NXDOMAIN, { code: EDE.BLOCKED, text: 'denied by rule x' }));
    assert.equal(answer.id, 4321);
    assert.equal(answer.flag_qr, true);
    assert.equal(answer.flag_rd, true);
    assert.equal(answer.flag_ra, true);
    assert.equal(rcodeOf(answer), RCODE.NXDOMAIN);
    assert.deepEqual(answer.questions, [{ type: 'A', name: 'denied.test', class: 'IN' }]);
    assert.equal(answer.additionals?.length, 0, 'no EDNS in the query, none in the answer');
    const edns = classifyQuery(query('denied.test', { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096, flags: 0, options: [] } as unknown as Answer] }));
    if (edns.kind !== 'query') throw new Error('expected a query');
    const withOpt = dnsPacket.decode(buildResponse(edns.query.packet, RCODE.NXDOMAIN, { code: EDE.BLOCKED, text: 'denied\nby rule' }));
    const opt = withOpt.additionals?.[0] as unknown as { type: string; options: { code: number; data: Buffer }[] };
    assert.equal(opt.type, 'OPT');
    assert.equal(opt.options[0]?.code, 15);
    assert.equal(opt.options[0]?.data.readUInt16BE(0), EDE.BLOCKED);
    assert.equal(opt.options[0]?.data.subarray(2).toString(), 'denied?by rule');
  });

  it('replyAddresses follows the CNAME chain from the qname and ignores unrelated records', () => {
    const reply = Buffer.from(
      dnsPacket.encode({
        type: 'response',
        id: 1,
        questions: [{ type: 'A', name: 'www.example.test' }],
        answers: [
          { type: 'CNAME', name: 'www.example.test', ttl: 60, data: 'edge.cdn.test' },
          { type: 'CNAME', name: 'edge.cdn.test', ttl: 60, data: 'pop7.cdn.test' },
          { type: 'A', name: 'pop7.cdn.test', ttl: 30, data: '192.0.2.7' },
          { type: 'A', name: 'unrelated.test', ttl: 30, data: '203.0.113.9' },
          { type: 'AAAA', name: 'POP7.cdn.test', ttl: 20, data: '2001:db8::7' },
        ],
      }),
    );
    assert.deepEqual(replyAddresses(reply, 'WWW.example.test.'), [
      { ip: '192.0.2.7', ttlSeconds: 30 },
      { ip: '2001:db8:0:0:0:0:0:7', ttlSeconds: 20 },
    ]);
  });
});
