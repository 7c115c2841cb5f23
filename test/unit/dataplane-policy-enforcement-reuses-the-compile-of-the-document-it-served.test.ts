import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PolicyEnforcement } from '../../src/dataplane/policy-state.js';
import { createLogger } from '../../src/log/logger.js';
import { compilePolicy, parsePolicy, type PolicyDocument } from '../../src/policy/index.js';
import { encodeCommand } from '../../src/store/commands.js';
import { openStoreDatabase } from '../../src/store/database.js';
import { StateMachine } from '../../src/store/state-machine.js';

const logger = createLogger({ level: 'fatal', format: 'json' });

function document(ruleId: string): PolicyDocument {
  return parsePolicy({
    default_policy: 'deny',
    source_groups: [{ id: 'lab', sources: { cidrs: ['10.0.0.0/8'] }, rules: [{ id: ruleId, action: 'allow', match: { dns_hostname: { exact: ['a.example.com'] } } }] }],
  });
}

describe('PolicyEnforcement and the document it served', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nw-enforcement-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const machine = new StateMachine(openStoreDatabase(join(dir, 'store.db')));
  const enforcement = new PolicyEnforcement(machine, logger);
  let index = 1;
  const apply = (doc: PolicyDocument): void => {
    machine.apply([{ index: index++, term: 1, data: encodeCommand({ v: 1, type: 'policy.set', document: doc as unknown as Record<string, unknown>, set_by: 't', set_at: new Date(0).toISOString() }) }]);
  };

  it('uses the compiled form it was offered when exactly that document is applied next', () => {
    const served = document('r1');
    const compiled = compilePolicy(served);
    enforcement.prepare(served, compiled, 12);
    apply(served);
    assert.equal(enforcement.active, compiled, 'the same object: no second compile');
    assert.equal(enforcement.version, index - 1);
    assert.equal(enforcement.compileMs, 12);
  });

  it('compiles what the store holds when another document is applied, and offers an offer only once', () => {
    const offered = document('r2');
    const offeredCompiled = compilePolicy(offered);
    enforcement.prepare(offered, offeredCompiled, 1);
    apply(document('r3'));
    assert.notEqual(enforcement.active, offeredCompiled);
    assert.equal(enforcement.active?.document.source_groups?.[0]?.rules?.[0]?.id, 'r3');
    // The offer was dropped at that apply: applying its document later compiles it afresh.
    apply(offered);
    assert.notEqual(enforcement.active, offeredCompiled);
    assert.equal(enforcement.active?.document.source_groups?.[0]?.rules?.[0]?.id, 'r2');
  });
});
