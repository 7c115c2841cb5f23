/**
 * A hostname regex that is a literal name (`api\.github\.com`) or `(.*\.)?` before one
 * (`^(.*\.)?github\.com$`) is indexed as a proven exact or label-suffix key: a decision on a name
 * it matches runs no regex. The suffix form is proven only for names without a line terminator
 * (which `.` does not match); for others the regex itself decides.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compilePolicy, literalHostRegex } from '../../src/policy/compiler.js';
import { decideDns } from '../../src/policy/evaluate.js';
import type { PolicyDocument } from '../../src/policy/types.js';

const doc: PolicyDocument = {
  default_policy: 'deny',
  source_groups: [
    {
      id: 'g',
      sources: { cidrs: ['10.0.0.0/8'] },
      rules: [
        { id: 'sub', action: 'allow', match: { dns_hostname: '^(.*\\.)?GitHub\\.com$' } },
        { id: 'lit', action: 'allow', match: { dns_hostname: 'api\\.example\\.org' } },
      ],
    },
  ],
};

/** Runs `fn` counting calls of RegExp.prototype.exec and .test on the rules' regexes (not on others, such as name normalisation's). */
function countRegexRuns(fn: () => void): number {
  const { exec, test: testFn } = RegExp.prototype;
  let runs = 0;
  const isRule = (r: RegExp): boolean => r.source.toLowerCase().includes('github') || r.source.includes('example');
  RegExp.prototype.exec = function (this: RegExp, s: string) {
    if (isRule(this)) runs++;
    return exec.call(this, s);
  };
  RegExp.prototype.test = function (this: RegExp, s: string) {
    if (isRule(this)) runs++;
    return testFn.call(this, s);
  };
  try {
    fn();
  } finally {
    RegExp.prototype.exec = exec;
    RegExp.prototype.test = testFn;
  }
  return runs;
}

test('literal-name and (.*\\.)?name regexes are recognised exactly', () => {
  assert.deepEqual(literalHostRegex('^(.*\\.)?GitHub\\.com$'), { name: 'github.com', subdomains: true });
  assert.deepEqual(literalHostRegex('(?:.*\\.)?a-b_c'), { name: 'a-b_c', subdomains: true });
  assert.deepEqual(literalHostRegex('api\\.example\\.org'), { name: 'api.example.org', subdomains: false });
  for (const other of ['.*\\.github\\.com', '(.*\\.)github\\.com', '(.*\\.)?git.hub\\.com', '(.*.)?github\\.com', '(.*\\.)?a|b', 'x?github\\.com', '(.*\\.)+a', 'a\\.\\.b']) {
    assert.equal(literalHostRegex(other), null, other);
  }
});

test('names such regexes match are decided without running a regex', () => {
  const policy = compilePolicy(doc);
  const decide = (qname: string) => decideDns(policy, { srcIp: '10.0.0.1', qname });
  decide('warm.up');
  let ids: (string | null)[] = [];
  const runs = countRegexRuns(() => {
    ids = ['github.com', 'a.b.GITHUB.com', 'api.example.org'].map((q) => decide(q).ruleId);
  });
  assert.deepEqual(ids, ['sub', 'sub', 'lit']);
  assert.equal(runs, 0);
});

test('a name with a line terminator before the suffix is left to the regex, which does not match it', () => {
  const policy = compilePolicy(doc);
  for (const qname of ['a\nb.github.com', 'x\u2028.github.com', 'y\r.github.com']) {
    assert.equal(decideDns(policy, { srcIp: '10.0.0.1', qname }).ruleId, null, JSON.stringify(qname));
  }
  assert.equal(decideDns(policy, { srcIp: '10.0.0.1', qname: 'a.b\u00e9.github.com' }).ruleId, 'sub');
});
