import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Replicator } from '../../src/cluster/replicator.js';
import { AuthService, LAST_USED_MAX_TOKENS } from '../../src/auth/service.js';
import type { Identity } from '../../src/auth/tokens.js';
import { createLogger } from '../../src/log/logger.js';

function use(jti: string, saId: string | null = 'sa-1'): Identity {
  return { sub: 'sa:ci', roles: ['readonly'], exp: null, sa_id: saId, jti, kid: 'k' };
}

describe('AuthService last-use bookkeeping', () => {
  // noteUse and lastUsedAt touch no replicated state: the replicator is never called.
  const service = new AuthService({} as Replicator, createLogger({ level: 'fatal', format: 'json' }));

  it('remembers service-account token uses only, and at most LAST_USED_MAX_TOKENS of them, least recently used out first', () => {
    service.noteUse(use('admin-token', null));
    assert.equal(service.lastUsedAt('admin-token'), null, 'a token without an account is not tracked');
    service.noteUse(use('t-0'));
    service.noteUse(use('t-1'));
    for (let i = 2; i < LAST_USED_MAX_TOKENS; i++) service.noteUse(use(`t-${i}`));
    service.noteUse(use('t-0')); // used again: now the most recent
    service.noteUse(use('one-more'));
    assert.equal(service.lastUsedAt('t-1'), null, 'the least recently used was forgotten');
    assert.notEqual(service.lastUsedAt('t-0'), null);
    assert.notEqual(service.lastUsedAt('t-2'), null);
    assert.notEqual(service.lastUsedAt('one-more'), null);
  });
});
