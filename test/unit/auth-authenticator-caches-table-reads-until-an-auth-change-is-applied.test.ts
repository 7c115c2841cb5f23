import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Authenticator, changesAuthTables, verifiedTokenKey } from '../../src/auth/authenticator.js';
import { generateSigningKey, signToken, type NewSigningKey } from '../../src/auth/tokens.js';
import { NeuwerkError } from '../../src/errors.js';
import { encodeCommand, type Command } from '../../src/store/commands.js';
import { openStoreDatabase } from '../../src/store/database.js';
import { StateMachine } from '../../src/store/state-machine.js';

const AT = '2026-01-01T00:00:00.000Z';

/** A state machine over a real SQLite file that counts the auth-table reads the authenticator makes. */
function fixture(
  dir: string,
  name: string,
): { machine: StateMachine; apply: (command: Command) => void; addKey: () => NewSigningKey; reads: () => number } {
  const machine = new StateMachine(openStoreDatabase(join(dir, name)));
  let index = 0;
  let reads = 0;
  const auth = machine.auth;
  for (const method of ['key', 'token', 'account'] as const) {
    const original = auth[method].bind(auth) as (id: string) => unknown;
    (auth as unknown as Record<string, (id: string) => unknown>)[method] = (id: string) => {
      reads += 1;
      return original(id);
    };
  }
  const apply = (command: Command): void => {
    index += 1;
    machine.apply([{ index, term: 1, data: encodeCommand(command) }]);
  };
  /** A new signing key, added (and so active) through the state machine. */
  const addKey = (): NewSigningKey => {
    const key = generateSigningKey();
    apply({ v: 1, type: 'auth.key.add', kid: key.kid, public_key_pem: key.publicKeyPem, private_key_pem: key.privateKeyPem, created_at: AT, created_by: 't' });
    return key;
  };
  return { machine, apply, addKey, reads: () => reads };
}

async function refuses(authenticator: Authenticator, token: string, message: RegExp): Promise<void> {
  await assert.rejects(authenticator.authenticate(token), (err: unknown) => err instanceof NeuwerkError && err.code === 'NW_ERR_AUTH_INVALID' && message.test(err.message));
}

describe('the authenticator remembers what it read from the auth tables until an auth change is applied', () => {
  const dir = mkdtempSync(join(tmpdir(), 'neuwerk-authn-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a repeated token reads no table until a key retirement, which then takes effect at once', async () => {
    const { machine, apply, addKey, reads } = fixture(dir, 'a.db');
    const first = addKey();
    const authenticator = new Authenticator(machine);
    const token = await signToken(first, { sub: 'admin', roles: ['admin'], ttlMs: 60_000 });
    await authenticator.authenticate(token);
    const afterFirst = reads();
    for (let i = 0; i < 5; i += 1) await authenticator.authenticate(token);
    assert.equal(reads(), afterFirst, 'no table read for a remembered token and key');
    // A keyval write is no auth change: nothing is forgotten.
    apply({ v: 1, type: 'keyval.put', zone: 'z', key: 'k', value: 'v', expires_at: null });
    await authenticator.authenticate(token);
    assert.equal(reads(), afterFirst);
    // A second key becomes active; the first, now previous, still verifies (one fresh read).
    addKey();
    const afterAdd = reads();
    await authenticator.authenticate(token);
    assert.equal(reads(), afterAdd + 1);
    apply({ v: 1, type: 'auth.key.retire', kid: first.kid, retired_at: AT });
    await refuses(authenticator, token, /unknown or retired key/);
  });

  it('a service-account token stops working as soon as its revocation or its account\'s disabling is applied', async () => {
    const { machine, apply, addKey, reads } = fixture(dir, 'b.db');
    const key = addKey();
    apply({ v: 1, type: 'sa.create', id: 'sa-1', name: 'ci', description: '', role: 'admin', created_at: AT, created_by: 't' });
    apply({ v: 1, type: 'sa.token.create', id: 'tok-1', sa_id: 'sa-1', name: 'a', role: 'admin', kid: key.kid, created_at: AT, created_by: 't', expires_at: null });
    apply({ v: 1, type: 'sa.token.create', id: 'tok-2', sa_id: 'sa-1', name: 'b', role: 'admin', kid: key.kid, created_at: AT, created_by: 't', expires_at: null });
    const authenticator = new Authenticator(machine);
    const one = await signToken(key, { sub: 'sa:ci', roles: ['admin'], ttlMs: null, saId: 'sa-1', jti: 'tok-1' });
    const two = await signToken(key, { sub: 'sa:ci', roles: ['admin'], ttlMs: null, saId: 'sa-1', jti: 'tok-2' });
    await authenticator.authenticate(one);
    await authenticator.authenticate(two);
    const remembered = reads();
    await authenticator.authenticate(one);
    await authenticator.authenticate(two);
    assert.equal(reads(), remembered, 'no table read for remembered service-account tokens');
    apply({ v: 1, type: 'sa.token.revoke', sa_id: 'sa-1', id: 'tok-1', revoked_at: AT });
    await refuses(authenticator, one, /has been revoked/);
    await authenticator.authenticate(two);
    apply({ v: 1, type: 'sa.update', id: 'sa-1', status: 'disabled', updated_at: AT });
    await refuses(authenticator, two, /revoked|disabled/);
  });

  it('a snapshot install forgets everything remembered', async () => {
    const { machine, addKey, reads } = fixture(dir, 'c.db');
    const key = addKey();
    const authenticator = new Authenticator(machine);
    const token = await signToken(key, { sub: 'admin', roles: ['admin'], ttlMs: 60_000 });
    await authenticator.authenticate(token);
    const before = reads();
    machine.reload();
    await authenticator.authenticate(token);
    assert.equal(reads(), before + 1, 'the key is read again after a snapshot install');
  });

  it('remembers verified tokens by their SHA-256, never the bearer token itself', async () => {
    const { machine, addKey } = fixture(dir, 'd.db');
    const key = addKey();
    const authenticator = new Authenticator(machine);
    const tokens = await Promise.all([1, 2, 3].map((n) => signToken(key, { sub: `user-${n}`, roles: ['readonly'], ttlMs: 60_000 })));
    for (const token of tokens) await authenticator.authenticate(token);
    // White-box on purpose: what the cache holds is the property under test.
    const remembered = [...(authenticator as unknown as { verified: Map<string, unknown> }).verified.keys()];
    assert.deepEqual(remembered.sort(), tokens.map(verifiedTokenKey).sort());
    for (const [i, token] of tokens.entries()) {
      assert.equal(remembered.some((k) => k.includes(token) || token.includes(k)), false);
      assert.equal((await authenticator.authenticate(token)).sub, `user-${i + 1}`);
    }
  });

  it('tells auth changes from others', () => {
    for (const type of ['snapshot', 'auth.key.add', 'auth.key.retire', 'sa.create', 'sa.update', 'sa.delete', 'sa.token.create', 'sa.token.revoke']) {
      assert.equal(changesAuthTables(new Set(['keyval.put', type])), true, type);
    }
    assert.equal(changesAuthTables(new Set(['keyval.put', 'keyval.zone:auth.x', 'policy.set', 'member.upsert', 'settings.put', 'noop'])), false);
  });
});
