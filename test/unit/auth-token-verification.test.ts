import assert from 'node:assert/strict';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import { LoginLimiter, LOGIN_BLOCK_MS, LOGIN_FAILURES_MAX } from '../../src/auth/login-limiter.js';
import { CLOCK_SKEW_SECONDS, generateSigningKey, signToken, verifyToken } from '../../src/auth/tokens.js';
import { NeuwerkError } from '../../src/errors.js';

const key = generateSigningKey();
const other = generateSigningKey();
const resolver = (keys: Record<string, KeyObject>) => (kid: string): KeyObject | null => keys[kid] ?? null;
const known = resolver({ [key.kid]: createPublicKey(key.publicKeyPem) });

async function rejects(token: string, code: string, message: RegExp, nowMs = Date.now()): Promise<void> {
  await assert.rejects(verifyToken(token, known, nowMs), (err: unknown) => {
    assert.ok(err instanceof NeuwerkError);
    assert.equal(err.code, code);
    assert.equal(err.httpStatus, 401);
    assert.match(err.message, message);
    return true;
  });
}

describe('token verification', () => {
  it('round-trips the claims: sub, roles, exp, jti, kid, sa_id', async () => {
    const nowMs = 1_800_000_000_000;
    const token = await signToken(key, { sub: 'sa:ci', roles: ['readonly'], ttlMs: 60_000, saId: 'acct-1', jti: 'tok-1' }, nowMs);
    const identity = await verifyToken(token, known, nowMs);
    assert.deepEqual(identity, { sub: 'sa:ci', roles: ['readonly'], exp: nowMs / 1000 + 60, sa_id: 'acct-1', jti: 'tok-1', kid: key.kid });
  });

  it('honours at most CLOCK_SKEW_SECONDS of skew on exp', async () => {
    const issuedMs = 1_800_000_000_000;
    const token = await signToken(key, { sub: 'x', roles: ['admin'], ttlMs: 10_000 }, issuedMs);
    const expMs = issuedMs + 10_000;
    await verifyToken(token, known, expMs + (CLOCK_SKEW_SECONDS - 1) * 1000);
    await rejects(token, 'NW_ERR_AUTH_EXPIRED', /expired/, expMs + (CLOCK_SKEW_SECONDS + 1) * 1000);
  });

  it('refuses an unknown kid, a foreign key under a known kid, alg none and HS256', async () => {
    await rejects(await signToken(other, { sub: 'x', roles: ['admin'], ttlMs: 60_000 }), 'NW_ERR_AUTH_INVALID', /unknown or retired key/);
    await rejects(await signToken({ kid: key.kid, privateKeyPem: other.privateKeyPem }, { sub: 'x', roles: ['admin'], ttlMs: 60_000 }), 'NW_ERR_AUTH_INVALID', /signature does not verify/);
    const body = Buffer.from(JSON.stringify({ sub: 'x', roles: ['admin'], iss: 'neuwerk', jti: 'j', exp: 4_000_000_000 })).toString('base64url');
    const header = (alg: string): string => Buffer.from(JSON.stringify({ alg, kid: key.kid })).toString('base64url');
    await rejects(`${header('none')}.${body}.`, 'NW_ERR_AUTH_INVALID', /algorithm "none"/);
    await rejects(`${header('HS256')}.${body}.c2ln`, 'NW_ERR_AUTH_INVALID', /algorithm "HS256"/);
    await rejects('garbage', 'NW_ERR_AUTH_INVALID', /malformed/);
  });

  it('refuses tokens without roles or with an unknown role', async () => {
    const token = await signToken(key, { sub: 'x', roles: ['superuser' as 'admin'], ttlMs: 60_000 });
    await rejects(token, 'NW_ERR_AUTH_INVALID', /claims are incomplete/);
  });
});

describe('token-login limiter', () => {
  it('blocks an address after LOGIN_FAILURES_MAX failures for LOGIN_BLOCK_MS, others unaffected', () => {
    const limiter = new LoginLimiter();
    const t0 = 1_000_000;
    for (let i = 0; i < LOGIN_FAILURES_MAX - 1; i += 1) limiter.recordFailure('10.0.0.1', t0 + i);
    assert.equal(limiter.retryAfterMs('10.0.0.1', t0 + 100), 0);
    limiter.recordFailure('10.0.0.1', t0 + 100);
    assert.equal(limiter.retryAfterMs('10.0.0.1', t0 + 100), LOGIN_BLOCK_MS);
    assert.equal(limiter.retryAfterMs('10.0.0.2', t0 + 100), 0);
    assert.equal(limiter.retryAfterMs('10.0.0.1', t0 + 100 + LOGIN_BLOCK_MS), 0);
  });

  it('a success clears the count', () => {
    const limiter = new LoginLimiter();
    for (let i = 0; i < LOGIN_FAILURES_MAX - 1; i += 1) limiter.recordFailure('a', i);
    limiter.recordSuccess('a');
    limiter.recordFailure('a', 100);
    assert.equal(limiter.retryAfterMs('a', 100), 0);
  });
});
