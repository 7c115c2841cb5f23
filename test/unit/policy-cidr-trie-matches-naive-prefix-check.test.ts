/**
 * The CIDR trie and the IP parser against naive oracles: random prefix sets (nested, shared and
 * disjoint, IPv4 and IPv6) looked up with random addresses give exactly the prefixes a BigInt
 * bit comparison finds, in shortest-first order; the parser agrees with `node:net`.
 */
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import { CidrTrie } from '../../src/policy/cidr-trie.js';
import { formatIp, maskWords, parseDocumentCidr, parseInputIp, parseIp } from '../../src/policy/ip.js';
import type { IpPrefix } from '../../src/policy/ip.js';
import { naiveContains } from './prefix-oracle.js';

/** Addresses drawn near a few bases so that prefixes nest and collide often. */
const v4Word = fc.tuple(fc.constantFrom(0x0a000000, 0x0a0a0000, 0xc0a80100, 0xffffffff, 0), fc.integer({ min: 0, max: 0xffff })).map(([base, low]) => (base ^ low) >>> 0);
const v6Words = fc.tuple(fc.constantFrom(0x20010db8, 0xfd000000, 0), fc.constantFrom(0, 1, 0xffff0000), fc.nat(), fc.nat()).map(([a, b, c, d]) => [a, b, c >>> 0, d >>> 0]);
const address = fc.oneof(v4Word.map((w) => ({ v6: false, words: [w] })), v6Words.map((words) => ({ v6: true, words })));
const prefix = address.chain((a) =>
  fc.integer({ min: 0, max: a.v6 ? 128 : 32 }).map((length) => ({ v6: a.v6, words: maskWords(a.words, length), prefixLength: length }) as IpPrefix),
);

test('trie lookups return exactly the containing prefixes, shortest first', () => {
  fc.assert(
    fc.property(fc.array(prefix, { maxLength: 60 }), fc.array(address, { minLength: 1, maxLength: 30 }), (prefixes, addresses) => {
      const trie = new CidrTrie<number>();
      prefixes.forEach((p, i) => trie.insert(p, i));
      for (const a of addresses) {
        const expected = prefixes
          .map((p, i) => ({ p, i }))
          .filter(({ p }) => naiveContains(p, a.words, a.v6))
          .sort((x, y) => x.p.prefixLength - y.p.prefixLength || x.i - y.i)
          .map(({ i }) => i);
        const lists: number[][] = [[-1]];
        const count = trie.collect(a, lists, 1);
        assert.deepStrictEqual(lists.slice(1, count).flat(), expected);
        assert.equal(trie.contains(a), expected.length > 0);
      }
    }),
    { numRuns: 400 },
  );
});

test('an accumulated trie answers every containing prefix with one longest match', () => {
  fc.assert(
    fc.property(fc.array(prefix, { maxLength: 40 }), fc.array(address, { minLength: 1, maxLength: 30 }), (prefixes, addresses) => {
      const trie = new CidrTrie<number>();
      prefixes.forEach((p, i) => trie.insert(p, i));
      trie.accumulate((outer, own) => [...new Set([...outer, ...own])].sort((x, y) => x - y));
      for (const a of addresses) {
        const expected = [...new Set(prefixes.map((p, i) => (naiveContains(p, a.words, a.v6) ? i : -1)).filter((i) => i >= 0))];
        assert.deepStrictEqual([...(trie.longestMatch(a) ?? [])], expected);
      }
    }),
    { numRuns: 300 },
  );
});

test('the IP parser accepts what node:net accepts and formats back to an equal address', () => {
  const text = fc.oneof(fc.ipV4(), fc.ipV6(), fc.ipV4Extended(), fc.string({ unit: fc.constantFrom(...'0123456789abcdef:.'.split('')), maxLength: 20 }));
  fc.assert(
    fc.property(text, (t) => {
      const parsed = parseIp(t);
      const zoneless = !t.includes('%');
      if (zoneless) assert.equal(parsed !== null, isIP(t) !== 0, `disagreement on ${t}`);
      if (parsed !== null) assert.deepStrictEqual(parseIp(formatIp(parsed)), parsed, t);
    }),
    { numRuns: 3000 },
  );
});

test('decision inputs accept brackets, zone ids and IPv4-mapped IPv6', () => {
  assert.deepStrictEqual(parseInputIp('::ffff:10.1.2.3'), { v6: false, words: [0x0a010203] });
  assert.deepStrictEqual(parseInputIp('[2001:db8::1]'), parseIp('2001:db8::1'));
  assert.deepStrictEqual(parseInputIp('fe80::1%eth0'), parseIp('fe80::1'));
  assert.equal(parseInputIp('10.1.2.3%eth0'), null);
  assert.equal(parseInputIp(''), null);
});

test('IPv6 formatting compresses the longest zero run', () => {
  const rows: [string, string][] = [
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['1:0:2:3:4:5:6:7', '1:0:2:3:4:5:6:7'],
  ];
  for (const [input, output] of rows) assert.equal(formatIp(parseIp(input) ?? assert.fail(input)), output);
});

test('document CIDRs: host bits and mapped prefixes are refused with a suggestion', () => {
  const bad = parseDocumentCidr('10.1.0.0/8');
  assert.equal(bad.ok, false);
  assert.match(bad.ok ? '' : bad.reason, /did you mean 10\.0\.0\.0\/8/);
  const mapped = parseDocumentCidr('::ffff:10.0.0.0/104');
  assert.match(mapped.ok ? '' : mapped.reason, /write it as IPv4 \(10\.0\.0\.0\/8\)/);
  assert.ok(parseDocumentCidr('::/0').ok);
  assert.ok(parseDocumentCidr('0.0.0.0/0').ok);
});
