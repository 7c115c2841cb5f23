import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ALLOWLIST_TTL_FLOOR_SECONDS, DynamicAllowlist } from '../../src/dataplane/allowlist.js';
import { ManualTimers } from '../../src/platform/timers.js';

function make(options: ConstructorParameters<typeof DynamicAllowlist>[0] = {}): { list: DynamicAllowlist; time: ManualTimers } {
  const time = new ManualTimers();
  time.advance(1_000_000); // wall clock far from the epoch
  return { list: new DynamicAllowlist({ clock: time, timers: time, ...options }), time };
}

describe('dynamic allowlist', () => {
  it('is scoped by source group and hostname, case-insensitively and without a trailing dot', () => {
    const { list } = make();
    list.insert('office', 'API.GitHub.com.', [{ ip: '140.82.121.4', ttlSeconds: 300 }]);
    assert.equal(list.has('office', 'api.github.com', '140.82.121.4'), true);
    assert.equal(list.has('lab', 'api.github.com', '140.82.121.4'), false, 'another group did not resolve it');
    assert.equal(list.has('office', 'github.com', '140.82.121.4'), false, 'another name');
    assert.equal(list.has('office', 'api.github.com', '140.82.121.5'), false, 'another address');
    assert.deepEqual(list.ipsFor('office', 'api.github.com.'), ['140.82.121.4']);
  });

  it('stores canonical addresses: IPv4-mapped IPv6 is IPv4, IPv6 compressed; IPv4 listed first', () => {
    const { list } = make();
    list.insert('g', 'h.test', [
      { ip: '2001:DB8:0:0:0:0:0:1', ttlSeconds: 60 },
      { ip: '::ffff:192.0.2.1', ttlSeconds: 60 },
      { ip: 'not-an-ip', ttlSeconds: 60 },
    ]);
    assert.deepEqual(list.ipsFor('g', 'h.test'), ['192.0.2.1', '2001:db8::1']);
    assert.equal(list.has('g', 'h.test', '[2001:db8::1]'), true);
  });

  it('keeps an answer for max(TTL, floor): a 5 s TTL lives for the floor, a 600 s TTL for 600 s', () => {
    const { list, time } = make({ idleExpirySeconds: 10_000 });
    list.insert('g', 'short.test', [{ ip: '192.0.2.1', ttlSeconds: 5 }]);
    list.insert('g', 'long.test', [{ ip: '192.0.2.2', ttlSeconds: 600 }]);
    time.advance(6_000);
    assert.equal(list.has('g', 'short.test', '192.0.2.1'), true, 'floor keeps it past its TTL');
    time.advance(ALLOWLIST_TTL_FLOOR_SECONDS * 1000);
    assert.equal(list.has('g', 'short.test', '192.0.2.1'), false, 'gone after the floor');
    assert.equal(list.has('g', 'long.test', '192.0.2.2'), true);
    time.advance(600_000);
    assert.equal(list.has('g', 'long.test', '192.0.2.2'), false);
  });

  it('a new answer extends an address; an address missing from later answers expires on its own', () => {
    const { list, time } = make({ idleExpirySeconds: 10_000, ttlFloorSeconds: 1 });
    list.insert('g', 'h.test', [{ ip: '192.0.2.1', ttlSeconds: 10 }, { ip: '192.0.2.2', ttlSeconds: 10 }]);
    time.advance(8_000);
    list.insert('g', 'h.test', [{ ip: '192.0.2.1', ttlSeconds: 10 }]);
    time.advance(5_000);
    assert.deepEqual(list.ipsFor('g', 'h.test'), ['192.0.2.1']);
  });

  it('drops an entry that is neither answered nor used for the idle time; use keeps it alive', () => {
    const { list, time } = make({ idleExpirySeconds: 100, ttlCeilingSeconds: 100_000 });
    list.insert('g', 'used.test', [{ ip: '192.0.2.1', ttlSeconds: 86_400 }]);
    list.insert('g', 'idle.test', [{ ip: '192.0.2.2', ttlSeconds: 86_400 }]);
    for (let i = 0; i < 5; i++) {
      time.advance(60_000);
      assert.equal(list.has('g', 'used.test', '192.0.2.1'), true);
    }
    assert.equal(list.has('g', 'idle.test', '192.0.2.2'), false);
  });

  it('the periodic sweep removes expired data; close stops it', () => {
    const { list, time } = make({ ttlFloorSeconds: 1, gcIntervalMs: 1_000 });
    list.insert('g', 'a.test', [{ ip: '192.0.2.1', ttlSeconds: 1 }]);
    assert.equal(list.size, 1);
    time.advance(2_500);
    assert.equal(list.size, 0);
    list.close();
    list.insert('g', 'b.test', [{ ip: '192.0.2.1', ttlSeconds: 1 }]);
    time.advance(5_000);
    assert.equal(list.size, 1, 'no sweep after close');
  });

  it('is bounded: the least recently seen entry is evicted, and addresses per entry are capped', () => {
    const { list } = make({ maxEntries: 3, maxIpsPerEntry: 2 });
    list.insert('g', 'a.test', [{ ip: '192.0.2.1', ttlSeconds: 60 }]);
    list.insert('g', 'b.test', [{ ip: '192.0.2.1', ttlSeconds: 60 }]);
    list.insert('g', 'c.test', [{ ip: '192.0.2.1', ttlSeconds: 60 }]);
    assert.equal(list.has('g', 'a.test', '192.0.2.1'), true); // a is now the most recently seen
    list.insert('g', 'd.test', [{ ip: '192.0.2.1', ttlSeconds: 60 }]);
    assert.equal(list.size, 3);
    assert.equal(list.evictions, 1);
    assert.deepEqual(list.ipsFor('g', 'b.test'), [], 'b was the least recently seen');
    list.insert('g', 'a.test', [
      { ip: '192.0.2.2', ttlSeconds: 600 },
      { ip: '192.0.2.3', ttlSeconds: 900 },
    ]);
    assert.deepEqual(list.ipsFor('g', 'a.test'), ['192.0.2.2', '192.0.2.3'], 'the address expiring soonest made room');
  });

  it('view() lists live entries most recently seen first with RFC 3339 last_seen', () => {
    const { list, time } = make();
    list.insert('office', 'one.test', [{ ip: '192.0.2.1', ttlSeconds: 60 }]);
    time.advance(1_000);
    list.insert('lab', 'two.test', [{ ip: '2001:db8::2', ttlSeconds: 60 }]);
    const view = list.view();
    assert.deepEqual(
      view.entries.map((e) => [e.hostname, e.source_group, e.ips]),
      [
        ['two.test', 'lab', ['2001:db8::2']],
        ['one.test', 'office', ['192.0.2.1']],
      ],
    );
    assert.equal(view.entries[0]?.last_seen, new Date(time.wallMs()).toISOString());
  });
});
