import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LogThrottle } from '../../src/log/throttle.js';

describe('LogThrottle', () => {
  it('admits a key once per interval and reports how many it held back', () => {
    const throttle = new LogThrottle(1_000);
    assert.equal(throttle.admit('a', 0), 0);
    assert.equal(throttle.admit('a', 10), null);
    assert.equal(throttle.admit('a', 999), null);
    assert.equal(throttle.admit('b', 999), 0, 'another key is independent');
    assert.equal(throttle.admit('a', 1_000), 2);
    assert.equal(throttle.admit('a', 1_500), null);
    assert.equal(throttle.admit('a', 5_000), 1);
  });

  it('remembers at most maxKeys keys, forgetting the longest-unlogged first', () => {
    const throttle = new LogThrottle(60_000, 3);
    for (const key of ['a', 'b', 'c']) assert.equal(throttle.admit(key, 0), 0);
    assert.equal(throttle.admit('d', 1), 0, 'a new key is logged; the oldest key is forgotten');
    assert.equal(throttle.admit('b', 2), null, 'b is still remembered');
    assert.equal(throttle.admit('a', 3), 0, 'a was forgotten, so it logs again');
    assert.equal(throttle.admit('d', 4), null);
  });
});
