import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { SignJWT } from 'jose';
import { NodeProcess, runCli, tempDir } from './harness.js';

interface ApiAnswer { status: number; json: unknown; headers: Record<string, string | string[] | undefined> }

describe('auth on a single node', () => {
  const dir = tempDir();
  let node: NodeProcess;
  let admin: string;
  const responses: string[] = [];
  const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
  const call = async (method: string, path: string, token: string | null, body?: unknown): Promise<ApiAnswer> => {
    const answer = await node.api(method, path, body, token === null ? {} : bearer(token));
    // Everything served except token-login's Set-Cookie, which carries the caller's own token by design.
    const { 'set-cookie': _cookie, ...headers } = answer.headers;
    responses.push(JSON.stringify(answer.json ?? null), JSON.stringify(headers));
    return answer;
  };
  const activeKey = (): { kid: string; private_key_pem: string } => {
    const db = new Database(join(node.dataDir, 'cluster', 'raft.db'), { readonly: true });
    try {
      return db.prepare("SELECT kid, private_key_pem FROM auth_keys WHERE status = 'active'").get() as { kid: string; private_key_pem: string };
    } finally {
      db.close();
    }
  };

  before(async () => {
    node = await NodeProcess.start(join(dir.path, 'data'));
    const result = await runCli(['auth', 'bootstrap', '--data-dir', node.dataDir]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '', 'bootstrap writes nothing to stderr');
    admin = result.stdout.trim();
    assert.match(admin, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'stdout holds only the token');
  });
  after(async () => {
    await node.stop('SIGKILL');
    dir.cleanup();
  });

  it('the bootstrap token is an admin token valid for about 30 minutes', async () => {
    const answer = await call('GET', '/api/v1/auth/whoami', admin);
    assert.equal(answer.status, 200);
    const who = answer.json as { sub: string; roles: string[]; exp: number; sa_id: null };
    assert.deepEqual(who.roles, ['admin']);
    assert.equal(who.sa_id, null);
    const minutes = (who.exp * 1000 - Date.now()) / 60_000;
    assert.ok(minutes > 28 && minutes <= 30, `expires in ${minutes} minutes`);
  });

  it('auth bootstrap --ttl 48h is refused with exit 2', async () => {
    const result = await runCli(['auth', 'bootstrap', '--data-dir', node.dataDir, '--ttl', '48h']);
    assert.equal(result.code, 2);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /--ttl: 48h is longer than the maximum of 1d/);
  });

  it('missing, malformed, expired, tampered, alg:none and foreign-key tokens get 401', async () => {
    assert.equal((await call('GET', '/api/v1/auth/whoami', null)).status, 401);
    assert.equal((await call('GET', '/api/v1/auth/whoami', 'not-a-jwt')).status, 401);

    const key = activeKey();
    const nowSeconds = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({ roles: ['admin'] })
      .setProtectedHeader({ alg: 'EdDSA', kid: key.kid, typ: 'JWT' })
      .setIssuer('neuwerk').setSubject('late').setJti('expired-1')
      .setIssuedAt(nowSeconds - 3600).setExpirationTime(nowSeconds - 60)
      .sign(createPrivateKey(key.private_key_pem));
    const expiredAnswer = await call('GET', '/api/v1/auth/whoami', expired);
    assert.equal(expiredAnswer.status, 401);
    assert.equal((expiredAnswer.json as { code: string }).code, 'NW_ERR_AUTH_EXPIRED');

    const [header, payload, signature] = admin.split('.') as [string, string, string];
    const flipped = `${signature.slice(0, 10)}${signature[10] === 'A' ? 'B' : 'A'}${signature.slice(11)}`;
    assert.equal((await call('GET', '/api/v1/auth/whoami', `${header}.${payload}.${flipped}`)).status, 401);
    const forgedPayload = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), sub: 'mallory' })).toString('base64url');
    assert.equal((await call('GET', '/api/v1/auth/whoami', `${header}.${forgedPayload}.${signature}`)).status, 401);

    const none = `${Buffer.from(JSON.stringify({ alg: 'none', kid: key.kid, typ: 'JWT' })).toString('base64url')}.${payload}.`;
    const noneAnswer = await call('GET', '/api/v1/auth/whoami', none);
    assert.equal(noneAnswer.status, 401);
    assert.match((noneAnswer.json as { error: string }).error, /algorithm "none" is not accepted/);

    const foreign = generateKeyPairSync('ed25519').privateKey;
    const foreignToken = await new SignJWT({ roles: ['admin'] })
      .setProtectedHeader({ alg: 'EdDSA', kid: key.kid, typ: 'JWT' })
      .setIssuer('neuwerk').setSubject('mallory').setJti('foreign-1').setIssuedAt().setExpirationTime('10m')
      .sign(foreign);
    const foreignAnswer = await call('GET', '/api/v1/auth/whoami', foreignToken);
    assert.equal(foreignAnswer.status, 401);
    assert.equal((foreignAnswer.json as { code: string }).code, 'NW_ERR_AUTH_INVALID');

    // Each refusal reason is logged once a minute per client (six invalid tokens above: one line),
    // at warn (pino level 40), with the route and reason and never the token.
    const refusals = node.logLines().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('management API refused the credentials'));
    assert.deepEqual(refusals.map((l) => l.code).sort(), ['NW_ERR_AUTH_EXPIRED', 'NW_ERR_AUTH_INVALID', 'NW_ERR_AUTH_MISSING']);
    const expiredLine = refusals.find((l) => l.code === 'NW_ERR_AUTH_EXPIRED');
    assert.deepEqual([expiredLine?.level, expiredLine?.client, expiredLine?.route, expiredLine?.reason], [40, '127.0.0.1', '/api/v1/auth/whoami', 'token has expired']);
    for (const token of [expired, foreignToken, none]) assert.ok(!node.stderr.includes(token.split('.')[1] as string), 'no token in the log');
  });

  it('a readonly token reads but gets 403 on PUT, POST and DELETE', async () => {
    const minted = await runCli(['auth', 'token', 'mint', '--sub', 'reader', '--roles', 'readonly', '--ttl', '10m', '--data-dir', node.dataDir]);
    assert.equal(minted.code, 0, minted.stderr);
    const reader = minted.stdout.trim();
    assert.equal((await call('GET', '/api/v1/service-accounts', reader)).status, 200);
    const put = await call('PUT', '/api/v1/keyval/zone/key', reader, { value: 'v' });
    assert.equal(put.status, 403);
    assert.equal((put.json as { code: string }).code, 'NW_ERR_AUTH_FORBIDDEN');
    assert.equal((await call('POST', '/api/v1/service-accounts', reader, { name: 'x', role: 'readonly' })).status, 403);
    assert.equal((await call('DELETE', '/api/v1/keyval/zone/key', reader)).status, 403);
  });

  it('mint with a --kid naming no signing key, or a --cluster-tls-dir that does not exist, is a usage error naming it', async () => {
    const unknown = await runCli(['auth', 'token', 'mint', '--sub', 'x', '--kid', 'no-such-kid', '--data-dir', node.dataDir]);
    assert.equal(unknown.code, 2);
    assert.equal(unknown.stdout, '');
    assert.match(unknown.stderr, /kid: signing key no-such-kid does not exist/);
    const missing = join(node.dataDir, 'no-such-tls-dir');
    const noDir = await runCli(['auth', 'token', 'mint', '--sub', 'x', '--cluster-tls-dir', missing, '--data-dir', node.dataDir]);
    assert.equal(noDir.code, 2);
    assert.ok(noDir.stderr.includes(`--cluster-tls-dir: no such directory ${missing}`), noDir.stderr);
  });

  it("a retired key's tokens are refused; the active key cannot be retired", async () => {
    const oldKid = activeKey().kid;
    const oldToken = (await runCli(['auth', 'token', 'mint', '--sub', 'old', '--data-dir', node.dataDir])).stdout.trim();
    assert.equal((await call('GET', '/api/v1/auth/whoami', oldToken)).status, 200);

    const refused = await runCli(['auth', 'key', 'retire', oldKid, '--data-dir', node.dataDir]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /is the active signing key and cannot be retired/);

    const rotated = await runCli(['auth', 'key', 'rotate', '--data-dir', node.dataDir, '--json']);
    assert.equal(rotated.code, 0, rotated.stderr);
    const newKid = (JSON.parse(rotated.stdout) as { kid: string }).kid;
    assert.notEqual(newKid, oldKid);
    assert.equal((await call('GET', '/api/v1/auth/whoami', oldToken)).status, 200, 'the previous key still verifies');

    const retired = await runCli(['auth', 'key', 'retire', oldKid, '--data-dir', node.dataDir]);
    assert.equal(retired.code, 0, retired.stderr);
    const answer = await call('GET', '/api/v1/auth/whoami', oldToken);
    assert.equal(answer.status, 401);
    assert.match((answer.json as { error: string }).error, /unknown or retired key/);

    const listed = await runCli(['auth', 'key', 'list', '--data-dir', node.dataDir, '--json']);
    const keys = (JSON.parse(listed.stdout) as { keys: { kid: string; status: string }[] }).keys;
    assert.deepEqual(keys.map((k) => [k.kid, k.status]).sort(), [[oldKid, 'retired'], [newKid, 'active']].sort());
    assert.ok(!listed.stdout.includes('PRIVATE KEY') && !listed.stdout.includes('PUBLIC KEY'));
    admin = (await runCli(['auth', 'bootstrap', '--data-dir', node.dataDir])).stdout.trim();
  });

  it('service accounts: token shown once, bounded by the account role, revocable, dead when the account is disabled', async () => {
    const created = await call('POST', '/api/v1/service-accounts', admin, { name: 'terraform', role: 'readonly', description: 'infra pipeline' });
    assert.equal(created.status, 201);
    const account = created.json as { id: string; role: string; status: string };
    assert.equal(account.status, 'active');

    const tooHigh = await call('POST', `/api/v1/service-accounts/${account.id}/tokens`, admin, { role: 'admin', ttl: '1h' });
    assert.equal(tooHigh.status, 403);
    const both = await call('POST', `/api/v1/service-accounts/${account.id}/tokens`, admin, { ttl: '1h', eternal: true });
    assert.equal(both.status, 400);
    assert.equal((both.json as { error: string }).error, '"ttl" and "eternal" cannot be given together');

    const mintedA = await call('POST', `/api/v1/service-accounts/${account.id}/tokens`, admin, { name: 'a', ttl: '1h' });
    assert.equal(mintedA.status, 201);
    const tokenA = mintedA.json as { token: string; metadata: { id: string; role: string; status: string; expires_at: string; kid: string } };
    assert.equal(tokenA.metadata.role, 'readonly');
    const mintedB = await call('POST', `/api/v1/service-accounts/${account.id}/tokens`, admin, { name: 'b', eternal: true });
    const tokenB = mintedB.json as { token: string; metadata: { id: string; expires_at: string | null } };
    assert.equal(tokenB.metadata.expires_at, null);

    const whoA = await call('GET', '/api/v1/auth/whoami', tokenA.token);
    assert.equal(whoA.status, 200);
    assert.equal((whoA.json as { sa_id: string }).sa_id, account.id);

    const listed = await call('GET', `/api/v1/service-accounts/${account.id}/tokens`, admin);
    const items = (listed.json as { items: Record<string, unknown>[] }).items;
    assert.equal(items.length, 2);
    for (const item of items) {
      assert.deepEqual(Object.keys(item).sort(), ['created_at', 'created_by', 'expires_at', 'id', 'kid', 'last_used_at', 'name', 'revoked_at', 'role', 'sa_id', 'status']);
      assert.ok(!JSON.stringify(item).includes(tokenA.token) && !JSON.stringify(item).includes(tokenB.token), 'metadata never holds the raw token');
    }
    assert.ok(items.find((i) => i.id === tokenA.metadata.id)?.last_used_at !== null, 'use is recorded');

    assert.equal((await call('DELETE', `/api/v1/service-accounts/${account.id}/tokens/${tokenA.metadata.id}`, admin)).status, 204);
    assert.equal((await call('GET', '/api/v1/auth/whoami', tokenA.token)).status, 401, 'revoked token refused');
    assert.equal((await call('GET', '/api/v1/auth/whoami', tokenB.token)).status, 200, 'the other token still works');

    const disabled = await call('PUT', `/api/v1/service-accounts/${account.id}`, admin, { status: 'disabled' });
    assert.equal(disabled.status, 200);
    const answer = await call('GET', '/api/v1/auth/whoami', tokenB.token);
    assert.equal(answer.status, 401, 'tokens of a disabled account are refused');
    const after = await call('GET', `/api/v1/service-accounts/${account.id}/tokens`, admin);
    assert.ok((after.json as { items: { status: string }[] }).items.every((i) => i.status === 'revoked'));
  });

  it('token-login sets a hardened cookie that authenticates; logout clears it', async () => {
    const login = await call('POST', '/api/v1/auth/token-login', null, { token: `Bearer ${admin}` });
    assert.equal(login.status, 200);
    const cookie = String(login.headers['set-cookie']);
    assert.match(cookie, /^neuwerk_auth=/);
    for (const attribute of ['HttpOnly', 'Secure', 'SameSite=Strict', 'Path=/']) assert.ok(cookie.includes(attribute), `cookie has ${attribute}`);
    const viaCookie = await node.api('GET', '/api/v1/auth/whoami', undefined, { cookie: cookie.split(';')[0] as string });
    assert.equal(viaCookie.status, 200);
    const logout = await call('POST', '/api/v1/auth/logout', null);
    assert.equal(logout.status, 204);
    assert.match(String(logout.headers['set-cookie']), /^neuwerk_auth=;.*Max-Age=0/);
  });

  it('token-login answers 429 after too many failures from one address', async () => {
    const statuses: number[] = [];
    for (let attempt = 0; attempt < 21; attempt += 1) {
      statuses.push((await call('POST', '/api/v1/auth/token-login', null, { token: `Bearer wrong-${attempt}` })).status);
    }
    assert.deepEqual(statuses.slice(0, 20), Array(20).fill(401));
    assert.equal(statuses[20], 429);
    const blocked = await call('POST', '/api/v1/auth/token-login', null, { token: `Bearer ${admin}` });
    assert.equal(blocked.status, 429, 'even the right token waits out the block');
    assert.equal((blocked.json as { code: string }).code, 'NW_ERR_AUTH_RATE_LIMITED');
    // Retry-After carries the wait the message names.
    const seconds = /retry in (\d+) s/.exec((blocked.json as { error: string }).error)?.[1];
    assert.equal(blocked.headers['retry-after'], seconds);
  });

  it('no private key or raw token ever appears in a log line or an API response; audit lines name who did what', async () => {
    // A bootstrap token file in the data dir, as a cluster node has; its secret must never surface either.
    const created = await runCli(['cluster', 'token', 'create', '--path', join(node.dataDir, 'bootstrap-token'), '--kid', 'scan']);
    assert.equal(created.code, 0, created.stderr);
    const bootstrapSecret = (JSON.parse(readFileSync(join(node.dataDir, 'bootstrap-token'), 'utf8')) as { tokens: { token: string }[] }).tokens[0]?.token.replace(/^hex:/, '') as string;
    assert.ok(!created.stdout.includes(bootstrapSecret) && !created.stderr.includes(bootstrapSecret));
    const db = new Database(join(node.dataDir, 'cluster', 'raft.db'), { readonly: true });
    const privateKeys = (db.prepare('SELECT private_key_pem FROM auth_keys').all() as { private_key_pem: string }[]).map((r) => r.private_key_pem);
    db.close();
    const secrets = [
      ...privateKeys.map((pem) => pem.split('\n')[1] as string),
      readFileSync(join(node.dataDir, 'http-tls', 'server.key'), 'utf8').split('\n')[1] as string,
      admin,
      admin.split('.')[2] as string,
      bootstrapSecret,
    ];
    const logs = node.stderr;
    const served = responses.join('\n');
    for (const secret of secrets) {
      assert.ok(secret.length > 20);
      assert.ok(!logs.includes(secret), 'secret found in the log');
      assert.ok(!served.includes(secret), 'secret found in an API response');
    }
    assert.ok(!served.includes('PRIVATE KEY'), 'no key material in any API response');
    const audits = node.logLines().filter((l) => l.audit === true).map((l) => l.action);
    for (const action of ['auth.key.create', 'auth.key.rotate', 'auth.key.retire', 'service_account.create', 'service_account.token.create', 'service_account.token.revoke', 'service_account.update', 'auth.token_login.failed']) {
      assert.ok(audits.includes(action), `audit line for ${action}`);
    }
    const files = readdirSync(node.dataDir);
    assert.ok(files.includes('node_id'));
    assert.equal(statSync(join(node.dataDir, 'cluster', 'raft.db')).mode & 0o077, 0, 'the store holding keys is owner-only');
  });
});
