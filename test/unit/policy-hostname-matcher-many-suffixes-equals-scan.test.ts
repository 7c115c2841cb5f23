/**
 * A hostname selector with more than MAX_LINEAR_SUFFIXES `suffix` entries looks the name and its
 * parents up in a Set instead of comparing every entry; property: it matches exactly the names
 * the entry-by-entry label-suffix comparison matches, with few and with many entries.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { hasLabelSuffix, HostnameMatcher, MAX_LINEAR_SUFFIXES } from '../../src/policy/hostname.js';

const LABELS = ['a', 'b', 'com', 'example', 'github', 'api', 'x-y', '', 'xgithub'];
const name = fc.array(fc.constantFrom(...LABELS), { minLength: 1, maxLength: 5 }).map((labels) => labels.join('.'));
const suffix = fc.array(fc.constantFrom(...LABELS.filter((l) => l !== '')), { minLength: 1, maxLength: 3 }).map((labels) => labels.join('.'));

test('many suffix entries match exactly like comparing each entry', () => {
  fc.assert(
    fc.property(fc.uniqueArray(suffix, { minLength: 1, maxLength: 3 * MAX_LINEAR_SUFFIXES }), fc.array(name, { maxLength: 20 }), (suffixes, names) => {
      const matcher = new HostnameMatcher(null, suffixes, null, null);
      for (const hostname of [...names, ...suffixes, ...suffixes.map((s) => `z.${s}`), ...suffixes.map((s) => `z${s}`)]) {
        assert.equal(matcher.matches(hostname), suffixes.some((s) => hasLabelSuffix(hostname, s)), `${hostname} against ${suffixes.length} suffixes`);
      }
    }),
    { numRuns: 2_000 },
  );
});

test('a deny list of 10,000 domains matches names below them and nothing else', () => {
  const domains = Array.from({ length: 10_000 }, (_, i) => `d${i}.bench.example`);
  const matcher = new HostnameMatcher(null, domains, null, null);
  assert.equal(matcher.matches('d42.bench.example'), true);
  assert.equal(matcher.matches('www.d9999.bench.example'), true);
  assert.equal(matcher.matches('xd42.bench.example'), false);
  assert.equal(matcher.matches('bench.example'), false);
  assert.equal(matcher.matches('d10000.bench.example'), false);
});
