import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { EXPIRED_TOKEN_RETENTION_MS } from '../../src/store/auth-tables.js';
import { encodeCommand, type Command } from '../../src/store/commands.js';
import { openStoreDatabase } from '../../src/store/database.js';
import { StateMachine } from '../../src/store/state-machine.js';

const NOW = Date.parse('2026-11-24T12:00:00.000Z');
const at = (offsetMs: number): string => new Date(NOW + offsetMs).toISOString();
const DAY = 24 * 3600 * 1000;

describe('service-account token rows', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nw-sa-tokens-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("an account's next token removes its tokens that expired more than the retention before; nothing else goes", () => {
    const machine = new StateMachine(openStoreDatabase(join(dir, 'store.db')));
    let index = 1;
    const apply = (command: Command): void => {
      machine.apply([{ index: index++, term: 1, data: encodeCommand(command) }]);
    };
    const token = (id: string, saId: string, createdAt: string, expiresAt: string | null): Command => ({
      v: 1, type: 'sa.token.create', id, sa_id: saId, name: id, role: 'readonly', kid: 'k', created_at: createdAt, created_by: 't', expires_at: expiresAt,
    });
    for (const id of ['sa-1', 'sa-2']) apply({ v: 1, type: 'sa.create', id, name: id, description: '', role: 'admin', created_at: at(-30 * DAY), created_by: 't' });
    apply(token('long-expired', 'sa-1', at(-20 * DAY), at(-EXPIRED_TOKEN_RETENTION_MS - DAY)));
    apply(token('just-expired', 'sa-1', at(-20 * DAY), at(-DAY)));
    apply(token('eternal', 'sa-1', at(-20 * DAY), null));
    apply(token('other-account', 'sa-2', at(-20 * DAY), at(-EXPIRED_TOKEN_RETENTION_MS - DAY)));
    assert.deepEqual(machine.auth.tokens('sa-1').map((t) => t.id).sort(), ['eternal', 'just-expired', 'long-expired']);
    apply(token('new', 'sa-1', at(0), at(DAY)));
    assert.deepEqual(machine.auth.tokens('sa-1').map((t) => t.id).sort(), ['eternal', 'just-expired', 'new']);
    assert.deepEqual(machine.auth.tokens('sa-2').map((t) => t.id), ['other-account'], 'only the creating account is tidied');
  });
});
