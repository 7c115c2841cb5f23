import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { NeuwerkError } from '../../src/errors.js';
import { encodeCommand, validateCommand } from '../../src/store/commands.js';
import { openStoreDatabase } from '../../src/store/database.js';
import { StateMachine } from '../../src/store/state-machine.js';

describe('the state machine over a real SQLite file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'neuwerk-sm-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('records the applied index with the changes and survives reopening', () => {
    const file = join(dir, 'a.db');
    const db = openStoreDatabase(file);
    const machine = new StateMachine(db);
    const put = encodeCommand({ v: 1, type: 'keyval.put', zone: 'z', key: 'k', value: 'v1', expires_at: null });
    const results = machine.apply([
      { index: 1, term: 1, data: '' },
      { index: 2, term: 1, data: put },
    ]);
    assert.deepEqual(results[0], { type: 'noop' });
    assert.deepEqual(results[1], { type: 'keyval.put', record: { zone: 'z', key: 'k', value: 'v1', version: 2, expires_at: null } });
    machine.apply([{ index: 3, term: 2, data: '' }]);
    db.close();
    const reopened = new StateMachine(openStoreDatabase(file));
    assert.equal(reopened.appliedIndex, 3);
    assert.equal(reopened.appliedTerm, 2);
    assert.equal(reopened.getKeyval('z', 'k', 0)?.value, 'v1');
  });

  it('refuses to apply out of order (an invariant, not an error to continue from)', () => {
    const machine = new StateMachine(openStoreDatabase(join(dir, 'b.db')));
    assert.throws(() => machine.apply([{ index: 2, term: 1, data: '' }]), /invariant violated: apply out of order/);
    assert.equal(machine.appliedIndex, 0);
  });

  it('a committed entry that is not a valid command stops the apply and changes nothing', () => {
    const machine = new StateMachine(openStoreDatabase(join(dir, 'c.db')));
    const good = encodeCommand({ v: 1, type: 'settings.put', key: 'a', value: 'b' });
    assert.throws(() => machine.apply([{ index: 1, term: 1, data: good }, { index: 2, term: 1, data: '{"v":1,"type":"nope"}' }]), /invariant violated: committed entry 2 is not a valid command/);
    assert.equal(machine.appliedIndex, 0, 'the whole batch rolled back');
    assert.equal(machine.setting('a'), null);
  });

  it('expired keys read as absent and are deleted by keyval.expire', () => {
    const machine = new StateMachine(openStoreDatabase(join(dir, 'd.db')));
    machine.apply([
      { index: 1, term: 1, data: encodeCommand({ v: 1, type: 'keyval.put', zone: 'z', key: 'short', value: 'x', expires_at: 1000 }) },
      { index: 2, term: 1, data: encodeCommand({ v: 1, type: 'keyval.put', zone: 'z', key: 'long', value: 'y', expires_at: null }) },
    ]);
    assert.equal(machine.getKeyval('z', 'short', 999)?.value, 'x');
    assert.equal(machine.getKeyval('z', 'short', 1000), null);
    assert.deepEqual(machine.listKeyval('z', { prefix: '', after: null, limit: 10, nowMs: 2000 }).map((r) => r.key), ['long']);
    const [result] = machine.apply([{ index: 3, term: 1, data: encodeCommand({ v: 1, type: 'keyval.expire', now_ms: 1500 }) }]);
    assert.deepEqual(result, { type: 'keyval.expire', deleted: 1 });
    assert.equal(machine.nextExpiryMs(), null);
  });

  it('lists keys in order with prefix and after', () => {
    const machine = new StateMachine(openStoreDatabase(join(dir, 'e.db')));
    const keys = ['b1', 'a2', 'b3', 'a1', 'b2'];
    machine.apply(keys.map((key, i) => ({ index: i + 1, term: 1, data: encodeCommand({ v: 1, type: 'keyval.put', zone: 'z', key, value: key, expires_at: null }) })));
    assert.deepEqual(machine.listKeyval('z', { prefix: 'b', after: null, limit: 2, nowMs: 0 }).map((r) => r.key), ['b1', 'b2']);
    assert.deepEqual(machine.listKeyval('z', { prefix: 'b', after: 'b2', limit: 2, nowMs: 0 }).map((r) => r.key), ['b3']);
  });
});

describe('commands are validated at propose time', () => {
  const invalid: { command: unknown; message: RegExp }[] = [
    { command: { v: 1, type: 'keyval.put', zone: 'z', key: 'bad key', value: 'v', expires_at: null }, message: /key must match pattern/ },
    { command: { v: 1, type: 'keyval.put', zone: 'z', key: 'k', value: 'x'.repeat(65 * 1024), expires_at: null }, message: /larger than 65536 bytes/ },
    { command: { v: 2, type: 'settings.put', key: 'a', value: 'b' }, message: /invalid command "settings.put"/ },
    { command: { v: 1, type: 'format.disk' }, message: /invalid command "format.disk"/ },
    { command: null, message: /invalid command null/ },
  ];
  for (const { command, message } of invalid) {
    it(`refuses ${JSON.stringify(command)?.slice(0, 60)}`, () => {
      assert.throws(() => validateCommand(command), (err: unknown) => err instanceof NeuwerkError && err.code === 'NW_ERR_COMMAND_INVALID' && message.test(err.message));
    });
  }
});
