import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { JSON_MAX_DEPTH, jsonNestsDeeperThan } from '../../src/api/json-depth.js';

/** The nesting depth of a parsed JSON value, computed on the value (the reference). */
function depthOf(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0;
  const children = Array.isArray(value) ? value : Object.values(value);
  return 1 + children.reduce<number>((max, child) => Math.max(max, depthOf(child)), 0);
}

describe('the JSON nesting pre-scan', () => {
  it('counts arrays and objects, not brackets inside strings or after escapes', () => {
    assert.equal(jsonNestsDeeperThan('{"a":[1,{"b":[]}]}', 4), false);
    assert.equal(jsonNestsDeeperThan('{"a":[1,{"b":[]}]}', 3), true);
    assert.equal(jsonNestsDeeperThan('{"a":"[[[[[[[[[[{{{{{{{{"}', 1), false);
    assert.equal(jsonNestsDeeperThan('["\\"[[[[", "\\\\", [[]]]', 3), false);
    assert.equal(jsonNestsDeeperThan('["\\\\", [[[]]]]', 3), true, 'an escaped backslash ends before the quote that closes the string');
    assert.equal(jsonNestsDeeperThan('['.repeat(JSON_MAX_DEPTH) + ']'.repeat(JSON_MAX_DEPTH)), false);
    assert.equal(jsonNestsDeeperThan('['.repeat(JSON_MAX_DEPTH + 1) + ']'.repeat(JSON_MAX_DEPTH + 1)), true);
    assert.equal(jsonNestsDeeperThan('['.repeat(2_000_000)), true, 'unbalanced: stops at the first level too deep');
  });

  it('agrees with the depth of the parsed value for any JSON document', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 8 }), fc.integer({ min: 0, max: 9 }), (value, limit) => {
        const text = JSON.stringify(value);
        assert.equal(jsonNestsDeeperThan(text, limit), depthOf(value) > limit, text);
      }),
      { numRuns: 500 },
    );
  });
});
