import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  FORWARD_RPC_ANSWER_BYTES_MAX,
  FORWARD_RPC_BODY_BYTES_MAX,
  FORWARD_RPC_IN_FLIGHT_MAX,
  chooseForwardPath,
  encodeForwardedAnswer,
  encodeForwardedRequest,
  parseForwardedAnswer,
  parseForwardedRequest,
} from '../../src/api/forwarded-request.js';
import { encodeFrame, FrameDecoder } from '../../src/cluster/transport.js';

/** What the other node decodes: the payload through the real frame codec. */
function overTheWire(body: unknown): unknown {
  const frames = new FrameDecoder().push(encodeFrame({ kind: 'rpc', id: 1, method: 'api.forward', body }));
  assert.equal(frames.length, 1);
  return (frames[0] as { body: unknown }).body;
}

function validRequest(): Record<string, unknown> {
  return { v: 1, method: 'PUT', url: '/api/v1/keyval/z/k', headers: { authorization: 'Bearer t' }, client_address: '127.0.0.1', body: '{"value":"v"}' };
}

describe('forwarded request: which path a follower takes', () => {
  it('takes the RPC for a returning route with no body or a declared small body', () => {
    assert.deepEqual(chooseForwardPath({}, {}, 0), { via: 'rpc' });
    assert.deepEqual(chooseForwardPath({ forwarding: 'rpc' }, { 'content-length': '0' }, 0), { via: 'rpc' });
    assert.deepEqual(chooseForwardPath({}, { 'content-length': String(FORWARD_RPC_BODY_BYTES_MAX) }, FORWARD_RPC_IN_FLIGHT_MAX - 1), { via: 'rpc' });
  });

  it('takes HTTPS for routes declared https, undeclared or large bodies, and beyond the in-flight bound', () => {
    assert.deepEqual(chooseForwardPath({ forwarding: 'https' }, {}, 0), { via: 'https', reason: 'route' });
    assert.deepEqual(chooseForwardPath({}, { 'transfer-encoding': 'chunked' }, 0), { via: 'https', reason: 'body-undeclared' });
    assert.deepEqual(chooseForwardPath({}, { 'content-length': 'x' }, 0), { via: 'https', reason: 'body-undeclared' });
    assert.deepEqual(chooseForwardPath({}, { 'content-length': String(FORWARD_RPC_BODY_BYTES_MAX + 1) }, 0), { via: 'https', reason: 'body-large' });
    assert.deepEqual(chooseForwardPath({}, {}, FORWARD_RPC_IN_FLIGHT_MAX), { via: 'https', reason: 'rpc-busy' });
  });
});

describe('forwarded request: encoding', () => {
  it('round-trips a text body and keeps only the forwarded headers', () => {
    const encoded = encodeForwardedRequest({
      method: 'PUT',
      url: '/api/v1/keyval/z/k?x=1',
      headers: { authorization: 'Bearer abc', 'content-type': 'application/json', accept: '*/*', cookie: 'neuwerk_auth=t', host: 'node:1', 'x-other': 'no', 'content-length': '13' },
      clientAddress: '10.0.0.9',
      body: Buffer.from('{"value":"ü"}'),
    });
    assert.deepEqual(encoded.headers, { authorization: 'Bearer abc', cookie: 'neuwerk_auth=t', 'content-type': 'application/json', accept: '*/*' });
    assert.equal(encoded.body, '{"value":"ü"}', 'valid UTF-8 travels as text');
    const parsed = parseForwardedRequest(overTheWire(encoded));
    assert.equal(parsed.method, 'PUT');
    assert.equal(parsed.url, '/api/v1/keyval/z/k?x=1');
    assert.equal(parsed.client_address, '10.0.0.9');
    assert.deepEqual(parsed.headers, encoded.headers);
    assert.equal(parsed.bodyBytes.toString('utf8'), '{"value":"ü"}');
  });

  it('round-trips a body that is not UTF-8 as bytes, and an empty body as empty text', () => {
    const bytes = Buffer.from([0xff, 0x00, 0xc3, 0x28]);
    const encoded = encodeForwardedRequest({ method: 'POST', url: '/x', headers: {}, clientAddress: '::1', body: bytes });
    assert.ok(encoded.body instanceof Uint8Array);
    assert.deepEqual(parseForwardedRequest(overTheWire(encoded)).bodyBytes, bytes);
    const empty = encodeForwardedRequest({ method: 'GET', url: '/x', headers: {}, clientAddress: '::1', body: Buffer.alloc(0) });
    assert.equal(empty.body, '');
    assert.equal(parseForwardedRequest(overTheWire(empty)).bodyBytes.length, 0);
  });

  it('answers with the HTTP answer, or asks for HTTPS when a GET answer is above the bound', () => {
    const small = encodeForwardedAnswer('GET', { status: 200, headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
    assert.deepEqual(parseForwardedAnswer(overTheWire(small)), { v: 1, kind: 'answer', status: 200, headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
    const big = 'x'.repeat(FORWARD_RPC_ANSWER_BYTES_MAX + 1);
    assert.deepEqual(parseForwardedAnswer(overTheWire(encodeForwardedAnswer('GET', { status: 200, headers: {}, body: big }))), { v: 1, kind: 'use-https', reason: 'answer-too-large' });
    const atBound = encodeForwardedAnswer('GET', { status: 200, headers: {}, body: Buffer.alloc(FORWARD_RPC_ANSWER_BYTES_MAX, 7) });
    assert.equal(atBound.kind, 'answer');
    // A write already ran: its answer is delivered whatever its size, never "send it again".
    assert.equal(encodeForwardedAnswer('PUT', { status: 200, headers: {}, body: big }).kind, 'answer');
    const binary = parseForwardedAnswer(overTheWire(encodeForwardedAnswer('GET', { status: 200, headers: {}, body: Buffer.from([1, 2, 3]) })));
    assert.ok(binary.kind === 'answer' && binary.body instanceof Uint8Array);
    assert.deepEqual([...(binary.body as Uint8Array)], [1, 2, 3]);
  });
});

describe('forwarded request: the leader refuses malformed or oversized payloads with a clear error', () => {
  const cases: [string, (r: Record<string, unknown>) => unknown, RegExp][] = [
    ['not an object', () => 'PUT /x', /not an object/],
    ['null', () => null, /not an object/],
    ['an array', () => [], /not an object/],
    ['another version', (r) => ({ ...r, v: 2 }), /version 2/],
    ['an unknown method', (r) => ({ ...r, method: 'PATCH' }), /method "PATCH"/],
    ['a url that is not a path', (r) => ({ ...r, url: 'https://elsewhere/x' }), /url/],
    ['a url above the bound', (r) => ({ ...r, url: `/${'a'.repeat(16 * 1024)}` }), /url/],
    ['headers that are not an object', (r) => ({ ...r, headers: 'authorization: x' }), /headers must be an object/],
    ['a header that is not forwarded', (r) => ({ ...r, headers: { host: 'x' } }), /header "host" is not forwarded/],
    ['a header value with a line break', (r) => ({ ...r, headers: { authorization: 'Bearer a\r\nx-injected: 1' } }), /header authorization has a bad value/],
    ['a header value that is not text', (r) => ({ ...r, headers: { accept: 5 } }), /header accept has a bad value/],
    ['a missing client address', (r) => ({ ...r, client_address: undefined }), /client_address/],
    ['a body that is neither text nor bytes', (r) => ({ ...r, body: { value: 'v' } }), /body must be text or bytes/],
    ['a text body above the bound', (r) => ({ ...r, body: 'x'.repeat(FORWARD_RPC_BODY_BYTES_MAX + 1) }), /body above 65536 bytes/],
    ['a text body above the bound once encoded', (r) => ({ ...r, body: 'é'.repeat(FORWARD_RPC_BODY_BYTES_MAX / 2 + 1) }), /body above 65536 bytes/],
    ['a byte body above the bound', (r) => ({ ...r, body: new Uint8Array(FORWARD_RPC_BODY_BYTES_MAX + 1) }), /body above 65536 bytes/],
  ];
  for (const [name, make, expected] of cases) {
    it(`refuses ${name}`, () => {
      assert.throws(
        () => parseForwardedRequest(overTheWire(make(validRequest()))),
        (err: Error & { code?: string }) => err.code === 'NW_ERR_RPC' && expected.test(err.message),
      );
    });
  }

  it('accepts the valid request these cases start from', () => {
    assert.equal(parseForwardedRequest(overTheWire(validRequest())).bodyBytes.toString(), '{"value":"v"}');
  });
});

describe('forwarded answer: the follower refuses a malformed answer instead of writing it', () => {
  const good = { v: 1, kind: 'answer', status: 200, headers: { 'content-type': 'text/plain' }, body: 'ok' };
  const cases: [string, unknown, RegExp][] = [
    ['not an object', 42, /not an object/],
    ['another version', { ...good, v: 0 }, /version 0/],
    ['an unknown kind', { ...good, kind: 'maybe' }, /kind "maybe"/],
    ['an unknown fallback reason', { v: 1, kind: 'use-https', reason: 'why-not' }, /reason "why-not"/],
    ['a status out of range', { ...good, status: 99 }, /status 99/],
    ['a status that is not an integer', { ...good, status: '200' }, /status "200"/],
    ['an invalid header name', { ...good, headers: { 'bad name': 'x' } }, /header "bad name"/],
    ['a header value with a line break', { ...good, headers: { 'x-a': 'a\nb' } }, /header "x-a"/],
    ['too many headers', { ...good, headers: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`x-h${i}`, 'v'])) }, /more than 64 headers/],
    ['a body that is neither text nor bytes', { ...good, body: 7 }, /body must be text or bytes/],
  ];
  for (const [name, raw, expected] of cases) {
    it(`refuses ${name}`, () => {
      assert.throws(() => parseForwardedAnswer(overTheWire(raw)), (err: Error & { code?: string }) => err.code === 'NW_ERR_RPC' && expected.test(err.message));
    });
  }
});
