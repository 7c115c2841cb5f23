import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { changesMembership, MembershipView } from '../../src/api/membership-view.js';
import { encodeCommand, type Command } from '../../src/store/commands.js';
import { openStoreDatabase } from '../../src/store/database.js';
import { StateMachine } from '../../src/store/state-machine.js';

const AT = '2026-01-01T00:00:00.000Z';

function fixture(dir: string, name: string): { view: MembershipView; machine: StateMachine; apply: (command: Command) => void; reads: () => number } {
  const machine = new StateMachine(openStoreDatabase(join(dir, name)));
  let index = 0;
  let reads = 0;
  const counted = {
    member: (id: string) => {
      reads += 1;
      return machine.member(id);
    },
    isRemoved: (id: string) => {
      reads += 1;
      return machine.isRemoved(id);
    },
    onApplied: machine.onApplied.bind(machine),
  };
  return {
    view: new MembershipView(counted),
    machine,
    apply: (command) => {
      index += 1;
      machine.apply([{ index, term: 1, data: encodeCommand(command) }]);
    },
    reads: () => reads,
  };
}

const upsert = (nodeId: string, httpAddr: string): Command => ({ v: 1, type: 'member.upsert', node_id: nodeId, cluster_addr: '127.0.0.1:1', http_addr: httpAddr, role: 'voter', joined_at: AT });

describe('the membership view of the forwarding path', () => {
  const dir = mkdtempSync(join(tmpdir(), 'neuwerk-members-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('answers repeated lookups from memory and follows each applied membership change at once', () => {
    const { view, apply, reads } = fixture(dir, 'a.db');
    assert.equal(view.leaderAddress(null), null);
    assert.equal(view.leaderAddress('n1'), null, 'no record yet');
    apply(upsert('n1', '127.0.0.1:8443'));
    assert.deepEqual(view.leaderAddress('n1'), { nodeId: 'n1', address: '127.0.0.1:8443' }, 'the new record is seen after its apply');
    assert.equal(view.isMember('n1'), true);
    const remembered = reads();
    for (let i = 0; i < 5; i += 1) {
      assert.deepEqual(view.leaderAddress('n1'), { nodeId: 'n1', address: '127.0.0.1:8443' });
      assert.equal(view.isMember('n1'), true);
    }
    assert.equal(reads(), remembered, 'no table read for remembered lookups');
    apply({ v: 1, type: 'keyval.put', zone: 'z', key: 'k', value: 'v', expires_at: null });
    view.isMember('n1');
    assert.equal(reads(), remembered, 'a keyval write changes no membership');
    apply(upsert('n1', '127.0.0.1:9443'));
    assert.deepEqual(view.leaderAddress('n1'), { nodeId: 'n1', address: '127.0.0.1:9443' }, 'a changed address is seen after its apply');
    apply({ v: 1, type: 'member.tombstone', node_id: 'n1', removed_at: AT });
    assert.equal(view.isMember('n1'), false, 'a removed member may no longer forward');
    assert.equal(view.leaderAddress('n1'), null);
    apply(upsert('n2', '127.0.0.1:7443'));
    assert.equal(view.isMember('n2'), true);
    apply({ v: 1, type: 'member.remove', node_id: 'n2' });
    assert.equal(view.isMember('n2'), false);
  });

  it('a snapshot install forgets everything remembered', () => {
    const { view, machine, apply, reads } = fixture(dir, 'b.db');
    apply(upsert('n1', '127.0.0.1:8443'));
    assert.equal(view.isMember('n1'), true);
    const before = reads();
    machine.reload();
    assert.equal(view.isMember('n1'), true);
    assert.equal(reads(), before + 2, 'both tables are read again after a snapshot install');
  });

  it('tells membership changes from others', () => {
    for (const type of ['snapshot', 'member.upsert', 'member.remove', 'member.tombstone']) assert.equal(changesMembership(new Set(['keyval.put', type])), true, type);
    assert.equal(changesMembership(new Set(['keyval.put', 'keyval.zone:member.upsert', 'auth.key.add', 'policy.set', 'settings.put', 'ca.envelope.put'])), false);
  });
});
