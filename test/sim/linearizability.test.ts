import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import fc from 'fast-check';
import { checkKvLinearizable } from './linearizability.js';
import type { HistoryOp } from './linearizability.js';

// ---------------------------------------------------------------------------------------------
// History builders. `ret` null = pending (outcome unknown).

function put(clientId: number, key: string, value: string, call: number, ret: number | null): HistoryOp {
  return { clientId, op: { kind: 'put', key, value }, call, ret, result: ret === null ? null : { kind: 'put' } };
}
function del(clientId: number, key: string, call: number, ret: number | null): HistoryOp {
  return { clientId, op: { kind: 'delete', key }, call, ret, result: ret === null ? null : { kind: 'delete' } };
}
function get(clientId: number, key: string, value: string | null, call: number, ret: number | null): HistoryOp {
  return { clientId, op: { kind: 'get', key }, call, ret, result: ret === null ? null : { kind: 'get', value } };
}

function assertOk(history: HistoryOp[]): void {
  const res = checkKvLinearizable(history);
  assert.deepEqual(res, { ok: true });
}
function assertRejected(history: HistoryOp[], key = 'x'): string {
  const res = checkKvLinearizable(history);
  assert.equal(res.ok, false, `expected a violation, got ${JSON.stringify(res)}`);
  if (res.ok !== false) throw new Error('unreachable');
  assert.equal(res.key, key);
  assert.ok(res.reason.includes(JSON.stringify(key)), `reason should name the key: ${res.reason}`);
  return res.reason;
}

// ---------------------------------------------------------------------------------------------

describe('checkKvLinearizable: accepted histories', () => {
  it('accepts the empty history and a lone initial read of null', () => {
    assertOk([]);
    assertOk([get(1, 'x', null, 0, 1)]);
  });

  it('accepts sequential histories', () => {
    assertOk([
      get(1, 'x', null, 0, 1),
      put(1, 'x', 'a', 2, 3),
      get(2, 'x', 'a', 4, 5),
      put(2, 'x', 'b', 6, 7),
      get(1, 'x', 'b', 8, 9),
      del(3, 'x', 10, 11),
      get(1, 'x', null, 12, 13),
      put(3, 'x', 'a', 14, 15),
      get(2, 'x', 'a', 16, 17),
    ]);
  });

  it('accepts a read concurrent with a write seeing either the old or the new value', () => {
    assertOk([put(1, 'x', 'a', 0, 10), get(2, 'x', null, 1, 2), get(2, 'x', 'a', 3, 4), get(3, 'x', 'a', 11, 12)]);
    assertOk([put(1, 'x', 'a', 0, 1), put(1, 'x', 'b', 2, 10), get(2, 'x', 'a', 3, 4), get(3, 'x', 'b', 5, 6)]);
  });

  it('accepts concurrent writes ordered opposite to their call order', () => {
    assertOk([put(1, 'x', 'a', 0, 10), put(2, 'x', 'b', 1, 9), get(3, 'x', 'a', 11, 12), get(3, 'x', 'a', 13, 14)]);
    assertOk([put(1, 'x', 'a', 0, 10), put(2, 'x', 'b', 1, 9), get(3, 'x', 'b', 2, 3), get(4, 'x', 'a', 4, 5)]);
  });

  it('accepts a delete concurrent with reads on either side of it', () => {
    assertOk([put(1, 'x', 'a', 0, 1), del(2, 'x', 2, 10), get(3, 'x', 'a', 3, 4), get(3, 'x', null, 5, 6), get(4, 'x', null, 11, 12)]);
  });
});

describe('checkKvLinearizable: rejected histories', () => {
  it('rejects a stale read after a completed write', () => {
    const reason = assertRejected([put(1, 'x', 'a', 0, 1), put(1, 'x', 'b', 2, 3), get(2, 'x', 'a', 4, 5)]);
    assert.match(reason, /get -> "a"/);
  });

  it('rejects a read of null after a completed write', () => {
    assertRejected([put(1, 'x', 'a', 0, 1), get(2, 'x', null, 2, 3)]);
  });

  it('rejects a read returning a value never written', () => {
    const reason = assertRejected([put(1, 'x', 'a', 0, 1), get(2, 'x', 'zzz', 2, 3)]);
    assert.match(reason, /zzz/);
    assertRejected([get(2, 'x', 'zzz', 0, 1)]);
  });

  it('rejects two sequential reads observing new-then-old (non-monotonic)', () => {
    // The write of b is still in flight, so either value alone is fine; b then a is not.
    assertRejected([put(1, 'x', 'a', 0, 1), put(2, 'x', 'b', 2, 20), get(3, 'x', 'b', 3, 4), get(3, 'x', 'a', 5, 6)]);
    // Two different readers, sequential in real time, same verdict.
    assertRejected([put(1, 'x', 'a', 0, 1), put(2, 'x', 'b', 2, 20), get(3, 'x', 'b', 3, 4), get(4, 'x', 'a', 5, 6)]);
  });

  it("rejects a read of a deleted key's old value after the delete returned", () => {
    assertRejected([put(1, 'x', 'a', 0, 1), del(2, 'x', 2, 3), get(3, 'x', 'a', 4, 5)]);
  });

  it('rejects a lost update that becomes visible later', () => {
    // Both writes complete, b is read (so a was lost, ordered first), then a reappears.
    assertRejected([
      put(1, 'x', 'a', 0, 5),
      put(2, 'x', 'b', 1, 6),
      get(3, 'x', 'b', 7, 8),
      put(4, 'x', 'c', 9, 10),
      get(3, 'x', 'c', 11, 12),
      get(3, 'x', 'a', 13, 14),
    ]);
    // An acknowledged write that no read ever sees, then a read of the value it overwrote.
    assertRejected([put(1, 'x', 'a', 0, 1), put(2, 'x', 'b', 2, 3), get(3, 'x', 'a', 4, 5), get(3, 'x', 'b', 6, 7)]);
  });

  it('rejects a read that must precede a concurrent write but sees it, with a real-time chain', () => {
    // get(a) returns before put(a) is called.
    assertRejected([get(1, 'x', 'a', 0, 1), put(2, 'x', 'a', 2, 3)]);
  });

  it('names the ops involved in the reason', () => {
    const reason = assertRejected([put(1, 'x', 'a', 0, 1), put(7, 'x', 'b', 2, 3), get(9, 'x', 'a', 4, 5)]);
    assert.match(reason, /client 9/);
    assert.match(reason, /prefix/);
    assert.match(reason, /"b"/);
  });
});

describe('checkKvLinearizable: pending operations', () => {
  it('accepts a pending put observed by a later read', () => {
    assertOk([put(1, 'x', 'a', 0, null), get(2, 'x', 'a', 5, 6)]);
    assertOk([put(1, 'x', 'a', 0, null), get(2, 'x', null, 1, 2), get(2, 'x', 'a', 50, 51), get(3, 'x', 'a', 60, 61)]);
  });

  it('accepts a pending put that is never observed', () => {
    assertOk([put(1, 'x', 'a', 0, null), get(2, 'x', null, 5, 6), get(2, 'x', null, 7, 8)]);
    assertOk([put(1, 'x', 'a', 0, 1), put(2, 'x', 'b', 2, null), get(3, 'x', 'a', 3, 4), get(3, 'x', 'a', 100, 101)]);
  });

  it('accepts a pending delete, taken or not', () => {
    assertOk([put(1, 'x', 'a', 0, 1), del(2, 'x', 2, null), get(3, 'x', 'a', 3, 4), get(3, 'x', null, 5, 6)]);
    assertOk([put(1, 'x', 'a', 0, 1), del(2, 'x', 2, null), get(3, 'x', 'a', 3, 4), get(3, 'x', 'a', 5, 6)]);
  });

  it('ignores pending gets', () => {
    assertOk([put(1, 'x', 'a', 0, 1), get(2, 'x', null, 2, null), get(2, 'x', 'a', 3, 4)]);
  });

  it('still rejects a pending put observed before it was called', () => {
    assertRejected([get(2, 'x', 'a', 0, 1), put(1, 'x', 'a', 2, null)]);
  });

  it('uses several pending deletes of one key, each at most once', () => {
    const base = [put(1, 'x', 'a', 0, 1), del(2, 'x', 2, null), del(3, 'x', 3, null), get(4, 'x', null, 4, 5), put(4, 'x', 'b', 6, 7)];
    assertOk([...base, get(4, 'x', null, 8, 9)]);
    assertRejected([...base, get(4, 'x', null, 8, 9), put(4, 'x', 'c', 10, 11), get(4, 'x', null, 12, 13)]);
  });

  it('a pending put that was read must take effect before that read returned', () => {
    assertOk([put(1, 'x', 'a', 0, null), get(2, 'x', 'a', 5, 6), put(3, 'x', 'b', 7, 8), get(2, 'x', 'b', 9, 10)]);
    // Once b is written after the read of a, a cannot come back (the pending put was already used).
    assertRejected([put(1, 'x', 'a', 0, null), get(2, 'x', 'a', 5, 6), put(3, 'x', 'b', 7, 8), get(2, 'x', 'a', 9, 10)]);
    // With two writers of a, the second (pending) one may be the one read later.
    assertOk([put(1, 'x', 'a', 0, null), put(4, 'x', 'a', 1, null), get(2, 'x', 'a', 5, 6), put(3, 'x', 'b', 7, 8), get(2, 'x', 'a', 9, 10)]);
    // When another put also wrote a, the pending one need not take effect at all.
    assertOk([put(1, 'x', 'a', 0, 1), get(2, 'x', 'a', 0, 10), put(3, 'x', 'b', 2, 3), put(4, 'x', 'a', 4, null), get(5, 'x', 'b', 11, 12)]);
  });

  it('still rejects a pending put observed and then un-observed', () => {
    assertRejected([put(1, 'x', 'a', 0, null), get(2, 'x', 'a', 5, 6), get(2, 'x', null, 7, 8)]);
  });
});

describe('checkKvLinearizable: keys, ties, limits, input errors', () => {
  it('checks each key independently', () => {
    // As one register this would be a stale read; per key it is fine.
    assertOk([put(1, 'x', 'a', 0, 1), put(1, 'y', 'b', 2, 3), get(2, 'x', 'a', 4, 5), get(2, 'y', 'b', 6, 7), get(2, 'z', null, 8, 9)]);
    // A violation on y is reported as y, whatever x does.
    assertRejected(
      [put(1, 'x', 'a', 0, 1), get(2, 'x', 'a', 2, 3), put(1, 'y', 'a', 4, 5), put(1, 'y', 'b', 6, 7), get(2, 'y', 'a', 8, 9), get(2, 'x', 'a', 10, 11)],
      'y',
    );
  });

  it('treats a return at time t as happening before a call at time t', () => {
    assertRejected([put(1, 'x', 'a', 0, 5), get(2, 'x', null, 5, 6)]);
    assertOk([put(1, 'x', 'a', 0, 5), get(2, 'x', null, 4, 6)]);
    assertOk([put(1, 'x', 'a', 0, 5), get(2, 'x', 'a', 5, 6)]);
  });

  it("returns 'unknown' when the search exceeds maxStates", () => {
    // Eight concurrent writes and a read of a value never written: exhaustive search needed.
    const history: HistoryOp[] = [];
    for (let c = 0; c < 8; c++) history.push(put(c, 'x', `v${c}`, c, 100 + c));
    history.push(get(9, 'x', 'nope', 200, 201));
    const res = checkKvLinearizable(history, { maxStates: 10 });
    assert.equal(res.ok, 'unknown');
    if (res.ok === 'unknown') assert.match(res.reason, /maxStates=10/);
    // With the default budget the same history gets a definite answer.
    assert.equal(checkKvLinearizable(history).ok, false);
  });

  it('reports a definite violation on one key even if another key is unknown', () => {
    const history: HistoryOp[] = [];
    for (let c = 0; c < 8; c++) history.push(put(c, 'a', `v${c}`, c, 100 + c));
    history.push(get(9, 'a', 'nope', 200, 201));
    history.push(put(1, 'b', 'x', 0, 1), get(2, 'b', null, 2, 3));
    const res = checkKvLinearizable(history, { maxStates: 10 });
    assert.equal(res.ok, false);
    if (res.ok === false) assert.equal(res.key, 'b');
  });

  it('throws on malformed histories', () => {
    assert.throws(() => checkKvLinearizable([put(1, 'x', 'a', 5, 5)]), RangeError);
    assert.throws(() => checkKvLinearizable([put(1, 'x', 'a', 5, 4)]), RangeError);
    assert.throws(() => checkKvLinearizable([{ clientId: 1, op: { kind: 'get', key: 'x' }, call: 0, ret: 1, result: null }]), TypeError);
    assert.throws(() => checkKvLinearizable([{ clientId: 1, op: { kind: 'put', key: 'x', value: 'a' }, call: 0, ret: 1, result: { kind: 'get', value: 'a' } }]), TypeError);
  });
});

// ---------------------------------------------------------------------------------------------
// Generated histories

interface GenStep {
  key: string;
  kind: 'put' | 'get' | 'delete';
  value: string;
  before: number;
  after: number;
  pendingRoll: number;
  applied: boolean;
}

/**
 * Runs a sequential in-memory KV: step i takes effect at time 100*i + 50, and its recorded interval
 * [call, ret] strictly contains that point. Pending steps (ret null) take effect or not per `applied`.
 * Such a history is linearizable by construction.
 */
function runSequential(steps: GenStep[], clients: number, pendingPercent: number): HistoryOp[] {
  const store = new Map<string, string>();
  return steps.map((s, i) => {
    const at = 100 * i + 50;
    const call = at - 1 - s.before;
    const pending = s.pendingRoll < pendingPercent;
    const ret = pending ? null : at + 1 + s.after;
    const clientId = i % clients;
    const takesEffect = !pending || s.applied;
    if (s.kind === 'put') {
      if (takesEffect) store.set(s.key, s.value);
      return put(clientId, s.key, s.value, call, ret);
    }
    if (s.kind === 'delete') {
      if (takesEffect) store.delete(s.key);
      return del(clientId, s.key, call, ret);
    }
    return get(clientId, s.key, store.get(s.key) ?? null, call, ret);
  });
}

const stepArb = (maxSpread: number): fc.Arbitrary<GenStep> =>
  fc.record({
    key: fc.constantFrom('k1', 'k2', 'k3'),
    kind: fc.constantFrom<'put' | 'get' | 'delete'>('put', 'get', 'get', 'delete'),
    value: fc.constantFrom('a', 'b', 'c'),
    before: fc.integer({ min: 0, max: maxSpread }),
    after: fc.integer({ min: 0, max: maxSpread }),
    pendingRoll: fc.integer({ min: 0, max: 99 }),
    applied: fc.boolean(),
  });

/** Reference checker: plain backtracking over orders that respect real time (tiny histories only). */
function bruteForce(history: HistoryOp[]): boolean {
  const byKey = new Map<string, HistoryOp[]>();
  for (const h of history) byKey.set(h.op.key, [...(byKey.get(h.op.key) ?? []), h]);
  for (const ops of byKey.values()) {
    const used = ops.map(() => false);
    const search = (value: string | null): boolean => {
      if (ops.every((o, i) => used[i] || o.ret === null)) return true;
      for (let i = 0; i < ops.length; i++) {
        const o = ops[i] as HistoryOp;
        if (used[i]) continue;
        // o can go next only if no remaining completed op returned at or before o's call.
        if (ops.some((p, j) => !used[j] && j !== i && p.ret !== null && p.ret <= o.call)) continue;
        let next = value;
        if (o.op.kind === 'put') next = o.op.value;
        else if (o.op.kind === 'delete') next = null;
        else if (o.ret !== null && o.result?.kind === 'get' && o.result.value !== value) continue;
        used[i] = true;
        const found = search(next);
        used[i] = false;
        if (found) return true;
      }
      return false;
    };
    if (!search(null)) return false;
  }
  return true;
}

describe('checkKvLinearizable: properties', () => {
  it('accepts every history produced by a sequential KV with intervals around the true point', () => {
    fc.assert(
      fc.property(fc.array(stepArb(400), { minLength: 1, maxLength: 80 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 30 }), (steps, clients, pendingPercent) => {
        const history = runSequential(steps, clients, pendingPercent);
        assert.deepEqual(checkKvLinearizable(history), { ok: true });
      }),
      { numRuns: 300 },
    );
  });

  it('rejects such a history once one completed read is changed to a value never written', () => {
    fc.assert(
      fc.property(
        fc.array(stepArb(400), { minLength: 1, maxLength: 80 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 0, max: 30 }),
        fc.nat(),
        (steps, clients, pendingPercent, pick) => {
          const history = runSequential(steps, clients, pendingPercent);
          const reads = history.flatMap((h, i) => (h.op.kind === 'get' && h.ret !== null ? [i] : []));
          fc.pre(reads.length > 0);
          const victim = reads[pick % reads.length] as number;
          const h = history[victim] as HistoryOp;
          history[victim] = { ...h, result: { kind: 'get', value: 'never-written' } };
          const res = checkKvLinearizable(history);
          assert.equal(res.ok, false, JSON.stringify(res));
          if (res.ok === false) assert.equal(res.key, h.op.key);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('agrees with a brute-force checker on small random histories (ties, pending ops, repeated values)', () => {
    const opArb = fc.record({
      key: fc.constantFrom('x', 'y'),
      kind: fc.constantFrom<'put' | 'get' | 'delete'>('put', 'get', 'get', 'delete'),
      value: fc.constantFrom('a', 'b', 'c'),
      read: fc.constantFrom<string | null>(null, 'a', 'b', 'c'),
      call: fc.integer({ min: 0, max: 12 }),
      duration: fc.integer({ min: 1, max: 6 }),
      pending: fc.integer({ min: 0, max: 3 }),
    });
    let accepted = 0;
    let rejected = 0;
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 8 }), (specs) => {
        const history = specs.map((s, i): HistoryOp => {
          const ret = s.pending === 0 ? null : s.call + s.duration;
          if (s.kind === 'put') return put(i, s.key, s.value, s.call, ret);
          if (s.kind === 'delete') return del(i, s.key, s.call, ret);
          return get(i, s.key, s.read, s.call, ret);
        });
        const expected = bruteForce(history);
        const res = checkKvLinearizable(history);
        assert.notEqual(res.ok, 'unknown');
        assert.equal(res.ok, expected, JSON.stringify({ history, res }));
        if (expected) accepted++;
        else rejected++;
      }),
      { numRuns: 3000 },
    );
    // The generator must exercise both verdicts for the comparison to mean anything.
    assert.ok(accepted > 100 && rejected > 100, `accepted ${accepted}, rejected ${rejected}`);
  });
});

describe('checkKvLinearizable: performance', () => {
  /** Eight clients, each with at most one op in flight, over five keys; linearizable by construction. */
  function bigHistory(count: number, seed: number): HistoryOp[] {
    let s = seed >>> 0 || 1;
    const rnd = (k: number): number => {
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      return s % k;
    };
    const keys = ['k0', 'k1', 'k2', 'k3', 'k4'];
    const store = new Map<string, string>();
    const clients = 8;
    const freeAt = new Array<number>(clients).fill(0);
    const history: HistoryOp[] = [];
    let t = 0;
    for (let i = 0; i < count; i++) {
      t += 1 + rnd(3);
      const c = rnd(clients);
      const at = Math.max(t, (freeAt[c] as number) + 2);
      t = at;
      const call = at - 1 - rnd(Math.max(1, at - (freeAt[c] as number) - 1));
      const ret = at + 1 + rnd(30);
      freeAt[c] = ret;
      const key = keys[rnd(keys.length)] as string;
      const r = rnd(10);
      const pending = rnd(50) === 0;
      if (r < 4) {
        const value = `v${i}`;
        if (!pending || rnd(2) === 0) store.set(key, value);
        history.push(put(c, key, value, call, pending ? null : ret));
      } else if (r < 5) {
        if (!pending || rnd(2) === 0) store.delete(key);
        history.push(del(c, key, call, pending ? null : ret));
      } else {
        history.push(get(c, key, store.get(key) ?? null, call, pending ? null : ret));
      }
    }
    return history;
  }

  it('checks a few thousand ops over five keys and eight clients in milliseconds', () => {
    for (const count of [300, 3000]) {
      const history = bigHistory(count, 12345 + count);
      const t0 = performance.now();
      const res = checkKvLinearizable(history);
      const ms = performance.now() - t0;
      assert.deepEqual(res, { ok: true });
      console.log(`  linearizable history of ${count} ops checked in ${ms.toFixed(1)} ms`);
      assert.ok(ms < 2000, `took ${ms} ms`);

      // Same history with a late stale read injected: a definite violation, still quick.
      const last = history[history.length - 1] as HistoryOp;
      const bad = [...history, put(99, 'k0', 'fresh', last.call + 100, last.call + 101), get(98, 'k0', null, last.call + 102, last.call + 103)];
      const t1 = performance.now();
      const res2 = checkKvLinearizable(bad);
      const ms2 = performance.now() - t1;
      assert.equal(res2.ok, false);
      console.log(`  violating history of ${bad.length} ops rejected in ${ms2.toFixed(1)} ms`);
      assert.ok(ms2 < 5000, `took ${ms2} ms`);
    }
  });
});
