import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createBootstrapToken, currentToken, decodeTokenSecret, loadBootstrapTokens } from '../../src/cluster/bootstrap-token.js';
import { NeuwerkError } from '../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'neuwerk-token-'));
const SECRET = 'hex:' + 'ab'.repeat(32);
let counter = 0;

function file(content: unknown, mode = 0o600): string {
  const path = join(dir, `t${(counter += 1)}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  chmodSync(path, mode);
  return path;
}

function refused(path: string, pattern: RegExp, nowMs?: number): void {
  assert.throws(() => loadBootstrapTokens(path, nowMs), (err: unknown) => {
    assert.ok(err instanceof NeuwerkError);
    assert.equal(err.code, 'NW_ERR_BOOTSTRAP_TOKEN');
    assert.ok(err.message.startsWith(`bootstrap token file ${path}: `), err.message);
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes('abab'), 'the message never shows the secret');
    return true;
  });
}

describe('bootstrap token file refusals (DESIGN §5), each naming the path', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('group- or other-readable files', () => {
    refused(file({ tokens: [{ kid: 'k1', token: SECRET }] }, 0o644), /permissions 0644 are too open/);
    refused(file({ tokens: [{ kid: 'k1', token: SECRET }] }, 0o640), /permissions 0640 are too open/);
  });
  it('a missing file', () => refused(join(dir, 'absent.json'), /no such file/));
  it('invalid JSON', () => refused(file('{"tokens": ['), /not valid JSON/));
  it('a missing field', () => {
    refused(file({}), /missing field "tokens"/);
    refused(file({ tokens: [{ token: SECRET }] }), /tokens\[0\]: missing field "kid"/);
    refused(file({ tokens: [{ kid: 'k1' }] }), /missing field "token"/);
  });
  it('a duplicate kid', () => refused(file({ tokens: [{ kid: 'k1', token: SECRET }, { kid: 'k1', token: SECRET }] }), /duplicate kid "k1"/));
  it('a token shorter than 32 bytes', () => refused(file({ tokens: [{ kid: 'k1', token: 'hex:' + 'ab'.repeat(31) }] }), /31 bytes; at least 32/));
  it('valid_from after valid_until', () =>
    refused(file({ tokens: [{ kid: 'k1', token: SECRET, valid_from: '2030-01-02T00:00:00Z', valid_until: '2030-01-01T00:00:00Z' }] }), /valid_from is after valid_until/));
  it('a malformed time', () => refused(file({ tokens: [{ kid: 'k1', token: SECRET, valid_until: 'tomorrow' }] }), /valid_until of kid "k1" is not an RFC 3339 time/));
  it('no currently valid token', () => {
    refused(file({ tokens: [{ kid: 'old', token: SECRET, valid_until: '2020-01-01T00:00:00Z' }] }), /no token is valid now/);
    refused(file({ tokens: [{ kid: 'future', token: SECRET, valid_from: '2999-01-01T00:00:00Z' }] }), /no token is valid now/);
  });

  it('accepts hex, b64 and bare forms and picks the current token by the documented order', () => {
    assert.equal(decodeTokenSecret('b64:' + Buffer.alloc(32, 7).toString('base64'))?.length, 32);
    assert.equal(decodeTokenSecret('ab'.repeat(32))?.length, 32);
    assert.equal(decodeTokenSecret('hex:zz'), null);
    const path = file({
      tokens: [
        { kid: 'a', token: SECRET, valid_from: '2025-01-01T00:00:00Z' },
        { kid: 'b', token: SECRET, valid_from: '2026-01-01T00:00:00Z', valid_until: '2027-01-01T00:00:00Z' },
        { kid: 'c', token: SECRET, valid_from: '2026-01-01T00:00:00Z' },
        { kid: 'd', token: SECRET, valid_from: '2026-06-01T00:00:00Z', valid_until: '2026-07-01T00:00:00Z' },
      ],
    });
    const now = Date.parse('2026-03-01T00:00:00Z');
    const tokens = loadBootstrapTokens(path, now);
    assert.equal(currentToken(tokens, now)?.kid, 'c', 'latest valid_from, unbounded until beats bounded');
    assert.equal(currentToken(tokens, Date.parse('2026-06-15T00:00:00Z'))?.kid, 'd');
  });
});

describe('neuwerk cluster token create (file side)', () => {
  it('creates a 0600 file with a 32-byte secret, then appends without touching existing entries', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'neuwerk-token-create-')), 'sub', 'bootstrap-token');
    const first = createBootstrapToken(path, { kid: 'first', validForMs: 3_600_000 });
    assert.deepEqual(first, { kid: 'first', created: true });
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const before = JSON.parse(readFileSync(path, 'utf8')) as { tokens: { kid: string; token: string }[] };
    const second = createBootstrapToken(path, { validForMs: null });
    assert.equal(second.created, false);
    const after = JSON.parse(readFileSync(path, 'utf8')) as { tokens: { kid: string; token: string; valid_until?: string }[] };
    assert.deepEqual(after.tokens[0], before.tokens[0]);
    assert.equal(after.tokens.length, 2);
    assert.equal(after.tokens[1]?.valid_until, undefined);
    assert.equal(loadBootstrapTokens(path).length, 2);
    assert.equal(decodeTokenSecret(after.tokens[1]?.token as string)?.length, 32);
    assert.throws(() => createBootstrapToken(path, { kid: 'first' }), /already exists/);
    chmodSync(path, 0o644);
    assert.throws(() => createBootstrapToken(path, {}), /too open/);
  });
});
