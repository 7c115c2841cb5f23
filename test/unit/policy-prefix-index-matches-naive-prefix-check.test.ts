/**
 * The destination prefix index against a naive oracle: random prefix sets (nested, shared and
 * disjoint, IPv4 and IPv6; few distinct lengths, served by hash probes, and many, served by the
 * trie fallback) looked up with random addresses give exactly the prefixes a BigInt bit comparison
 * finds, shortest first, each prefix's values in insertion order without repeats.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { maskWords } from '../../src/policy/ip.js';
import type { IpPrefix } from '../../src/policy/ip.js';
import { MAX_HASHED_PREFIX_LENGTHS, PrefixIndex } from '../../src/policy/prefix-index.js';
import { naiveContains } from './prefix-oracle.js';

const v4Word = fc.tuple(fc.constantFrom(0x0a000000, 0x0a0a0000, 0xc0a80100, 0xffffffff, 0x80000000, 0), fc.integer({ min: 0, max: 0xffff })).map(([base, low]) => (base ^ low) >>> 0);
const v6Words = fc.tuple(fc.constantFrom(0x20010db8, 0xfd000000, 0xffffffff, 0), fc.constantFrom(0, 1, 0xffff0000), fc.nat(), fc.nat()).map(([a, b, c, d]) => [a, b, c >>> 0, (d ^ 0x80000000) >>> 0]);
const address = fc.oneof(v4Word.map((w) => ({ v6: false, words: [w] })), v6Words.map((words) => ({ v6: true, words })));

function prefixArb(lengthsV4: readonly number[], lengthsV6: readonly number[]): fc.Arbitrary<IpPrefix> {
  return address.chain((a) =>
    fc.constantFrom(...(a.v6 ? lengthsV6 : lengthsV4)).map((length) => ({ v6: a.v6, words: maskWords(a.words, length), prefixLength: length }) as IpPrefix),
  );
}

function check(prefixes: readonly IpPrefix[], values: readonly number[], addresses: readonly { v6: boolean; words: number[] }[]): void {
  const index = new PrefixIndex();
  prefixes.forEach((p, i) => index.insert(p, values[i] as number));
  index.seal();
  for (const a of addresses) {
    // Oracle: containing prefixes shortest first; per distinct prefix its values in insertion order, a value equal to the last one skipped.
    const lists = new Map<string, { length: number; first: number; values: number[] }>();
    prefixes.forEach((p, i) => {
      if (!naiveContains(p, a.words, a.v6)) return;
      const key = `${p.prefixLength}/${p.words.join(',')}`;
      const list = lists.get(key) ?? { length: p.prefixLength, first: i, values: [] };
      const value = values[i] as number;
      if (list.values[list.values.length - 1] !== value) list.values.push(value);
      lists.set(key, list);
    });
    const expected = [...lists.values()].sort((x, y) => x.length - y.length || x.first - y.first).map((l) => l.values);
    const out: number[][] = [[-1]];
    const count = index.collect(a, out, 1);
    assert.deepStrictEqual(out.slice(1, count), expected, `address ${JSON.stringify(a)}`);
  }
}

test('hashed lookups (few prefix lengths) return exactly the containing prefixes, shortest first', () => {
  const lengths = fc.uniqueArray(fc.integer({ min: 0, max: 32 }), { minLength: 1, maxLength: MAX_HASHED_PREFIX_LENGTHS });
  const lengths6 = fc.uniqueArray(fc.integer({ min: 0, max: 128 }), { minLength: 1, maxLength: MAX_HASHED_PREFIX_LENGTHS });
  fc.assert(
    fc.property(
      lengths.chain((l4) => lengths6.chain((l6) => fc.array(prefixArb(l4, l6), { maxLength: 60 }))),
      fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 60, maxLength: 60 }),
      fc.array(address, { minLength: 1, maxLength: 30 }),
      (prefixes, steps, addresses) => {
        // Ascending values with repeats, as the compiler inserts rule orders.
        let v = 0;
        const values = prefixes.map((_, i) => (v += (steps[i] as number) === 0 ? 0 : 1));
        check(prefixes, values, addresses);
      },
    ),
    { numRuns: 500 },
  );
});

test('trie fallback lookups (many prefix lengths) return exactly the containing prefixes, shortest first', () => {
  const all4 = Array.from({ length: 33 }, (_, i) => i);
  const all6 = Array.from({ length: 129 }, (_, i) => i);
  fc.assert(
    fc.property(fc.array(prefixArb(all4, all6), { minLength: 20, maxLength: 80 }), fc.array(address, { minLength: 1, maxLength: 30 }), (prefixes, addresses) => {
      check(prefixes, prefixes.map((_, i) => i), addresses);
    }),
    { numRuns: 300 },
  );
});
