import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { canonicalIp } from '../../src/dataplane/allowlist.js';
import { parseProxyHeader, PROXY_HEADER_MAX_BYTES, PROXY_HEADER_V1_MAX_BYTES, PROXY_HEADER_V2_MAX_BYTES, type ProxyHeaderResult } from '../../src/dataplane/proxy-protocol.js';
import { proxyHeaderV1, proxyHeaderV2 } from '../bench/dataplane-fixtures.js';

const KINDS = new Set(['incomplete', 'proxied', 'local', 'invalid']);
const SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

function parse(input: string | Buffer): ProxyHeaderResult {
  return parseProxyHeader(typeof input === 'string' ? Buffer.from(input, 'latin1') : input);
}

function assertInvalid(input: string | Buffer, reason: RegExp): void {
  const result = parse(input);
  assert.equal(result.kind, 'invalid', `${JSON.stringify(input.toString())} -> ${JSON.stringify(result)}`);
  assert.match((result as { reason: string }).reason, reason);
}

/** A v2 header with the given version/command byte, family/transport byte and body. */
function rawV2(versionCommand: number, familyTransport: number, body: Buffer, declaredLength = body.length): Buffer {
  return Buffer.concat([SIGNATURE, Buffer.from([versionCommand, familyTransport, declaredLength >> 8, declaredLength & 0xff]), body]);
}

describe('PROXY protocol v1', () => {
  it('parses a TCP4 line and reports where the header ends (the request follows)', () => {
    const line = 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n';
    assert.deepEqual(parse(`${line}GET / HTTP/1.1\r\n\r\n`), { kind: 'proxied', version: 1, sourceIp: '192.168.0.1', sourcePort: 56324, destIp: '192.168.0.11', destPort: 443, headerBytes: line.length });
    assert.deepEqual(parse('PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n'), { kind: 'proxied', version: 1, sourceIp: '0.0.0.0', sourcePort: 0, destIp: '255.255.255.255', destPort: 65535, headerBytes: 44 });
  });

  it('parses TCP6 lines in full and compressed form; an IPv4-mapped source becomes IPv4', () => {
    const full = 'PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n';
    assert.equal(full.length, 104);
    assert.deepEqual(parse(full), { kind: 'proxied', version: 1, sourceIp: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', sourcePort: 65535, destIp: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', destPort: 65535, headerBytes: 104 });
    const shortLine = 'PROXY TCP6 2001:DB8:0:0::7 fd00::1 1234 3128\r\n';
    assert.deepEqual(parse(shortLine), { kind: 'proxied', version: 1, sourceIp: '2001:db8::7', sourcePort: 1234, destIp: 'fd00::1', destPort: 3128, headerBytes: shortLine.length });
    const mapped = parse('PROXY TCP6 ::ffff:10.9.8.7 ::1 1 2\r\n');
    assert.equal(mapped.kind === 'proxied' && mapped.sourceIp, '10.9.8.7');
  });

  it('UNKNOWN (short form, or with anything before the CRLF) is valid and names no address', () => {
    assert.deepEqual(parse('PROXY UNKNOWN\r\n'), { kind: 'local', version: 1, command: 'UNKNOWN', headerBytes: 15 });
    const worst = `PROXY UNKNOWN ${'ffff:'.repeat(7)}ffff ${'ffff:'.repeat(7)}ffff 65535 65535\r\n`;
    assert.equal(worst.length, PROXY_HEADER_V1_MAX_BYTES);
    assert.deepEqual(parse(worst), { kind: 'local', version: 1, command: 'UNKNOWN', headerBytes: PROXY_HEADER_V1_MAX_BYTES });
  });

  it('every proper prefix of a line is incomplete; no CRLF within 107 bytes is invalid', () => {
    const line = 'PROXY TCP4 10.9.8.7 127.0.0.1 40000 3128\r\n';
    for (let n = 0; n < line.length; n++) assert.equal(parse(line.slice(0, n)).kind, 'incomplete', JSON.stringify(line.slice(0, n)));
    assert.equal(parse(`PROXY UNKNOWN ${'x'.repeat(PROXY_HEADER_V1_MAX_BYTES - 15)}`).kind, 'incomplete');
    assertInvalid(`PROXY UNKNOWN ${'x'.repeat(PROXY_HEADER_V1_MAX_BYTES - 14)}`, /no CRLF within 107 bytes/);
    assertInvalid(`PROXY UNKNOWN ${'x'.repeat(PROXY_HEADER_V1_MAX_BYTES - 14)}\r\n`, /no CRLF within 107 bytes/);
  });

  it('refuses lines that do not match the specification exactly', () => {
    assertInvalid('PROXY TCP4 10.9.8.7  127.0.0.1 1 2\r\n', /6 fields/);
    assertInvalid('PROXY TCP4 10.9.8.7 127.0.0.1 1 2 \r\n', /6 fields/);
    assertInvalid('PROXY TCP4 10.9.8.7 127.0.0.1 1\r\n', /6 fields/);
    assertInvalid('PROXY TCP4 010.9.8.7 127.0.0.1 1 2\r\n', /dotted-quad/);
    assertInvalid('PROXY TCP4 10.9.8.256 127.0.0.1 1 2\r\n', /dotted-quad/);
    assertInvalid('PROXY TCP4 fd00::1 127.0.0.1 1 2\r\n', /dotted-quad/);
    assertInvalid('PROXY TCP6 10.9.8.7 ::1 1 2\r\n', /IPv6/);
    assertInvalid('PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n', /IPv6/);
    assertInvalid('PROXY TCP4 10.9.8.7 127.0.0.1 01 2\r\n', /port/);
    assertInvalid('PROXY TCP4 10.9.8.7 127.0.0.1 1 65536\r\n', /port/);
    assertInvalid('PROXY TCP4 10.9.8.7 127.0.0.1 -1 2\r\n', /port/);
    assertInvalid('PROXY UDP4 10.9.8.7 127.0.0.1 1 2\r\n', /not TCP4, TCP6 or UNKNOWN/);
    assertInvalid('PROXY tcp4 10.9.8.7 127.0.0.1 1 2\r\n', /not TCP4, TCP6 or UNKNOWN/);
    assertInvalid('PROXY TCP4 10.9.8.7 127.0.0.1 1 2\n', /LF without CR/);
    assertInvalid('PROXY TCP4 10.9.8.7 127.0.0.1 1 2\rX', /CR without LF/);
    assertInvalid('proxy TCP4 10.9.8.7 127.0.0.1 1 2\r\n', /not a PROXY protocol header/);
    assertInvalid('PROXYTCP4', /not a PROXY protocol header/);
  });
});

describe('PROXY protocol v2', () => {
  it('parses TCP over IPv4 and IPv6, skipping TLVs, and reports where the header ends', () => {
    const v4 = proxyHeaderV2({ sourceIp: '10.9.8.7', destIp: '192.0.2.1', sourcePort: 40_000, destPort: 3128 });
    assert.equal(v4.length, 28);
    assert.deepEqual(parse(Buffer.concat([v4, Buffer.from('CONNECT a:443 HTTP/1.1\r\n\r\n')])), { kind: 'proxied', version: 2, sourceIp: '10.9.8.7', sourcePort: 40_000, destIp: '192.0.2.1', destPort: 3128, headerBytes: 28 });
    const tlvs = [{ type: 0x01, value: Buffer.from('http/1.1') }, { type: 0x04, value: Buffer.alloc(0) }, { type: 0x05, value: Buffer.alloc(300, 7) }];
    const v6 = proxyHeaderV2({ sourceIp: '2001:db8::7', destIp: 'fd00::1', sourcePort: 1, destPort: 65535 }, tlvs);
    assert.deepEqual(parse(v6), { kind: 'proxied', version: 2, sourceIp: '2001:db8::7', sourcePort: 1, destIp: 'fd00::1', destPort: 65535, headerBytes: v6.length });
    const mapped = parse(proxyHeaderV2({ sourceIp: '::ffff:10.9.8.7', destIp: '::1', sourcePort: 1, destPort: 2 }));
    assert.equal(mapped.kind === 'proxied' && mapped.sourceIp, '10.9.8.7');
  });

  it('LOCAL (any length, family ignored) and PROXY for UNSPEC, UDP or UNIX use the real endpoints', () => {
    assert.deepEqual(parse(proxyHeaderV2('local')), { kind: 'local', version: 2, command: 'LOCAL', headerBytes: 16 });
    assert.deepEqual(parse(rawV2(0x20, 0x11, Buffer.alloc(12))), { kind: 'local', version: 2, command: 'LOCAL', headerBytes: 28 });
    assert.deepEqual(parse(rawV2(0x21, 0x00, Buffer.alloc(0))), { kind: 'local', version: 2, command: 'UNKNOWN', headerBytes: 16 });
    assert.deepEqual(parse(rawV2(0x21, 0x12, Buffer.alloc(12))), { kind: 'local', version: 2, command: 'UNKNOWN', headerBytes: 28 });
    assert.deepEqual(parse(rawV2(0x21, 0x31, Buffer.alloc(216))), { kind: 'local', version: 2, command: 'UNKNOWN', headerBytes: 232 });
  });

  it('every proper prefix of a header is incomplete', () => {
    const header = proxyHeaderV2({ sourceIp: 'fd00::7', destIp: 'fd00::1', sourcePort: 5, destPort: 6 }, [{ type: 0x02, value: Buffer.from('example.test') }]);
    for (let n = 0; n < header.length; n++) assert.equal(parse(header.subarray(0, n)).kind, 'incomplete', `${n} bytes`);
    assert.equal(parse(header).kind, 'proxied');
  });

  it('refuses a bad version, command, family or transport, short addresses, broken TLVs and oversize headers', () => {
    assertInvalid(rawV2(0x11, 0x11, Buffer.alloc(12)), /version nibble is 1/);
    assertInvalid(rawV2(0x22, 0x11, Buffer.alloc(12)), /command 2/);
    assertInvalid(rawV2(0x21, 0x41, Buffer.alloc(12)), /0x41 is not one the specification lists/);
    assertInvalid(rawV2(0x21, 0x13, Buffer.alloc(12)), /0x13/);
    assertInvalid(rawV2(0x21, 0x10, Buffer.alloc(12)), /0x10/);
    assertInvalid(rawV2(0x21, 0x01, Buffer.alloc(12)), /0x01/);
    assertInvalid(rawV2(0x21, 0x11, Buffer.alloc(11)), /needs 12 address bytes, the header has 11/);
    assertInvalid(rawV2(0x21, 0x21, Buffer.alloc(12)), /needs 36 address bytes/);
    assertInvalid(rawV2(0x21, 0x11, Buffer.concat([Buffer.alloc(12), Buffer.from([0x01, 0x00])])), /TLV header truncated/);
    assertInvalid(rawV2(0x21, 0x11, Buffer.concat([Buffer.alloc(12), Buffer.from([0x01, 0x00, 0x05, 0x61])])), /TLV overruns/);
    // Oversize is refused as soon as the fixed part arrives, without waiting for the declared bytes.
    assertInvalid(rawV2(0x21, 0x11, Buffer.alloc(0), PROXY_HEADER_V2_MAX_BYTES - 16 + 1), new RegExp(`exceeds ${PROXY_HEADER_V2_MAX_BYTES}`));
    assertInvalid(rawV2(0x21, 0x11, Buffer.alloc(0), 0xffff), /exceeds/);
    assert.equal(parse(rawV2(0x21, 0x11, Buffer.alloc(0), PROXY_HEADER_V2_MAX_BYTES - 16)).kind, 'incomplete', 'the largest accepted header is awaited');
    assertInvalid(Buffer.concat([SIGNATURE.subarray(0, 11), Buffer.from([0x0b])]), /bad v2 signature/);
  });
});

describe('garbage', () => {
  it('an HTTP request, a TLS ClientHello or random text is not a PROXY header', () => {
    assertInvalid('GET http://example.test/ HTTP/1.1\r\n\r\n', /not a PROXY protocol header/);
    assertInvalid('CONNECT example.test:443 HTTP/1.1\r\n\r\n', /not a PROXY protocol header/);
    assertInvalid(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x10]), /not a PROXY protocol header/);
    assertInvalid('\r\n\r\nGET', /bad v2 signature/);
    assertInvalid(Buffer.from([0]), /not a PROXY protocol header/);
    assert.equal(parse(Buffer.alloc(0)).kind, 'incomplete');
  });
});

describe('properties', () => {
  const ipv4 = fc.ipV4();
  const ipv6 = fc.ipV6();
  const port = fc.integer({ min: 0, max: 65_535 });
  const tlv = fc.record({ type: fc.integer({ min: 0, max: 255 }), value: fc.uint8Array({ maxLength: 64 }) });
  const trailing = fc.uint8Array({ maxLength: 64 });

  it('random bytes never throw, and "incomplete" only while fewer than PROXY_HEADER_MAX_BYTES are present', () => {
    const prefixed = fc.oneof(
      fc.uint8Array({ maxLength: 3_000 }),
      fc.uint8Array({ maxLength: 3_000 }).map((b) => Buffer.concat([SIGNATURE, b])),
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.concat([Buffer.from('PROXY '), b])),
      fc.string({ maxLength: 200 }).map((s) => Buffer.from(`PROXY ${s}`, 'utf8')),
    );
    fc.assert(
      fc.property(prefixed, (bytes) => {
        const result = parseProxyHeader(bytes);
        assert.ok(KINDS.has(result.kind));
        if (result.kind === 'incomplete') assert.ok(bytes.length < PROXY_HEADER_MAX_BYTES);
        if (result.kind === 'proxied' || result.kind === 'local') assert.ok(result.headerBytes >= 15 && result.headerBytes <= bytes.length);
      }),
      { numRuns: 3_000 },
    );
  });

  it('mutated valid headers never throw', () => {
    const valid = fc.oneof(
      fc.tuple(ipv4, ipv4, port, port).map(([s, d, sp, dp]) => proxyHeaderV1(s, d, sp, dp)),
      fc.tuple(ipv6, ipv6, port, port).map(([s, d, sp, dp]) => proxyHeaderV1(s, d, sp, dp)),
      fc.tuple(ipv4, ipv4, port, port, fc.array(tlv, { maxLength: 4 })).map(([s, d, sp, dp, t]) => proxyHeaderV2({ sourceIp: s, destIp: d, sourcePort: sp, destPort: dp }, t)),
      fc.tuple(ipv6, ipv6, port, port, fc.array(tlv, { maxLength: 4 })).map(([s, d, sp, dp, t]) => proxyHeaderV2({ sourceIp: s, destIp: d, sourcePort: sp, destPort: dp }, t)),
    );
    const mutation = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 });
    fc.assert(
      fc.property(valid, mutation, fc.nat(), (header, flips, cut) => {
        const bytes = Buffer.from(header);
        for (const [at, value] of flips) bytes[at % bytes.length] = value;
        for (const input of [bytes, bytes.subarray(0, cut % (bytes.length + 1))]) {
          const result = parseProxyHeader(input);
          assert.ok(KINDS.has(result.kind));
          if (result.kind === 'proxied' || result.kind === 'local') assert.ok(result.headerBytes <= input.length);
        }
      }),
      { numRuns: 3_000 },
    );
  });

  it('round trip: generated v1 and v2 headers parse to their addresses and ports (canonical), followed by any bytes', () => {
    const spec = fc.oneof(fc.tuple(ipv4, ipv4), fc.tuple(ipv6, ipv6)).chain(([s, d]) => fc.record({ sourceIp: fc.constant(s), destIp: fc.constant(d), sourcePort: port, destPort: port }));
    fc.assert(
      fc.property(spec, fc.boolean(), fc.array(tlv, { maxLength: 4 }), trailing, (header, v2, tlvs, rest) => {
        const encoded = v2 ? proxyHeaderV2(header, tlvs) : proxyHeaderV1(header.sourceIp, header.destIp, header.sourcePort, header.destPort);
        const result = parseProxyHeader(Buffer.concat([encoded, rest]));
        assert.deepEqual(result, {
          kind: 'proxied',
          version: v2 ? 2 : 1,
          sourceIp: canonicalIp(header.sourceIp),
          sourcePort: header.sourcePort,
          destIp: canonicalIp(header.destIp),
          destPort: header.destPort,
          headerBytes: encoded.length,
        });
      }),
      { numRuns: 2_000 },
    );
  });
});
