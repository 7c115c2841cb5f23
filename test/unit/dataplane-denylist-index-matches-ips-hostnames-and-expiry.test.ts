import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DENYLIST_ZONE, DenylistIndex, isDenylistHostname } from '../../src/dataplane/denylist.js';
import { ManualTimers } from '../../src/platform/timers.js';
import { encodeCommand } from '../../src/store/commands.js';
import { openStoreDatabase } from '../../src/store/database.js';
import { StateMachine } from '../../src/store/state-machine.js';

const NOW = 1_000_000_000;

describe('dynamic denylist index', () => {
  const dir = mkdtempSync(join(tmpdir(), 'neuwerk-denylist-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let dbCount = 0;

  function setup(options: { maxEntries?: number; pageSize?: number } = {}): {
    machine: StateMachine;
    index: DenylistIndex;
    time: ManualTimers;
    scheduled: (() => void)[];
    put: (key: string, expiresAt?: number | null, zone?: string) => void;
    del: (key: string) => void;
  } {
    const machine = new StateMachine(openStoreDatabase(join(dir, `${dbCount++}.db`)));
    const time = new ManualTimers();
    time.advance(NOW);
    const scheduled: (() => void)[] = [];
    const index = new DenylistIndex(machine, { clock: time, schedule: (cb) => scheduled.push(cb), ...options });
    let raftIndex = 0;
    return {
      machine,
      index,
      time,
      scheduled,
      put: (key, expiresAt = null, zone = DENYLIST_ZONE) => {
        raftIndex++;
        machine.apply([{ index: raftIndex, term: 1, data: encodeCommand({ v: 1, type: 'keyval.put', zone, key, value: 'note', expires_at: expiresAt }) }]);
      },
      del: (key) => {
        raftIndex++;
        machine.apply([{ index: raftIndex, term: 1, data: encodeCommand({ v: 1, type: 'keyval.delete', zone: DENYLIST_ZONE, key }) }]);
      },
    };
  }

  it('an IP key denies that client (v4, v6 canonicalised, v4-mapped v6 as v4); nothing else', () => {
    const { index, put } = setup();
    assert.equal(index.checkClient('192.0.2.7'), null);
    put('192.0.2.7');
    put('2001:DB8:0:0:0:0:0:1');
    const hit = index.checkClient('192.0.2.7');
    assert.equal(hit?.kind, 'client');
    assert.match(hit?.reason ?? '', /^denylisted: client 192\.0\.2\.7/);
    assert.equal(index.checkClient('::ffff:192.0.2.7')?.key, '192.0.2.7');
    assert.equal(index.checkClient('2001:db8::1')?.key, '2001:db8::1');
    assert.equal(index.checkClient('192.0.2.8'), null);
    assert.equal(index.checkHostname('192.0.2.7'), null, 'an IP key is about clients, not destinations');
  });

  it('a hostname key denies the name and names below it, case and trailing dot ignored; not look-alikes', () => {
    const { index, put } = setup();
    put('Example.COM');
    assert.equal(index.checkHostname('example.com')?.key, 'example.com');
    assert.equal(index.checkHostname('EXAMPLE.com.')?.key, 'example.com');
    assert.equal(index.checkHostname('a.b.example.com')?.key, 'example.com');
    assert.match(index.checkHostname('a.b.example.com')?.reason ?? '', /^denylisted: a\.b\.example\.com is below example\.com/);
    assert.equal(index.checkHostname('badexample.com'), null);
    assert.equal(index.checkHostname('example.com.evil.test'), null);
    assert.equal(index.checkHostname('com'), null, 'a parent of the key is not denied');
    assert.equal(index.checkHostname(null), null);
    assert.equal(index.check('10.0.0.1', 'x.example.com')?.kind, 'hostname');
  });

  it('a committed put is enforced by the very next lookup, a delete lifts it; other zones do not count', () => {
    const { index, put, del, scheduled } = setup();
    put('blocked.test');
    assert.equal(scheduled.length, 1, 'a rebuild was scheduled');
    assert.ok(index.checkHostname('blocked.test'), 'the lookup forces the pending rebuild');
    const rebuilds = index.stats().rebuilds;
    scheduled.splice(0).forEach((cb) => cb());
    assert.equal(index.stats().rebuilds, rebuilds, 'the scheduled rebuild found nothing left to do');
    del('blocked.test');
    assert.equal(index.checkHostname('blocked.test'), null);
    assert.equal(index.checkHostname('blocked.test'), null);
    scheduled.splice(0).forEach((cb) => cb());
    const before = index.stats().rebuilds;
    put('other-zone.test', null, 'not-the-denylist');
    assert.equal(scheduled.length, 0, 'a put in another zone schedules no rebuild');
    assert.equal(index.checkHostname('other-zone.test'), null);
    assert.equal(index.stats().rebuilds, before, 'a put in another zone rebuilds nothing');
  });

  it('expires_at is honoured per lookup, before the expiry command removes the key', () => {
    const { index, put, time } = setup();
    put('198.51.100.1', NOW + 5_000);
    put('temp.test', NOW + 5_000);
    assert.ok(index.checkClient('198.51.100.1'));
    assert.ok(index.checkHostname('temp.test'));
    time.advance(5_000);
    assert.equal(index.checkClient('198.51.100.1'), null);
    assert.equal(index.checkHostname('temp.test'), null);
  });

  it('a snapshot install rebuilds; keys are read page by page; invalid keys are ignored and counted', () => {
    const { machine, index, put } = setup({ pageSize: 2 });
    for (const key of ['a.test', 'b.test', 'c.test', 'd.test', 'e.test', 'bad..name', '-leading.test']) put(key);
    assert.ok(index.checkHostname('e.test'), 'beyond the first page');
    const stats = index.stats();
    assert.equal(stats.hostnames, 5);
    assert.equal(stats.invalid_keys, 2);
    machine.reload(); // what a snapshot install calls
    assert.ok(index.stats().rebuilds > stats.rebuilds);
  });

  it('is bounded: beyond maxEntries keys (in key order) are ignored and reported', () => {
    const { index, put } = setup({ maxEntries: 3, pageSize: 2 });
    for (const key of ['a.test', 'b.test', 'c.test', 'd.test']) put(key);
    assert.ok(index.checkHostname('c.test'));
    assert.equal(index.checkHostname('d.test'), null);
    assert.equal(index.stats().truncated, true);
  });

  it('counts denies by kind', () => {
    const { index, put } = setup();
    put('203.0.113.9');
    put('deny.test');
    index.check('203.0.113.9', 'fine.test');
    index.check('10.0.0.1', 'deny.test');
    index.check('10.0.0.1', 'fine.test');
    assert.deepEqual(index.stats().denies, { client: 1, hostname: 1 });
  });

  it('hostname keys are LDH labels', () => {
    assert.equal(isDenylistHostname('a-b.c_d.test'), true);
    assert.equal(isDenylistHostname('a..b'), false);
    assert.equal(isDenylistHostname('-a.test'), false);
    assert.equal(isDenylistHostname(`${'a'.repeat(64)}.test`), false);
  });
});
