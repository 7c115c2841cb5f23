/**
 * The compiler refuses regular expressions prone to catastrophic backtracking (and other
 * documents that cannot compile), naming the rule by path and id; accepted expressions stay fast
 * on adversarial input; the literal suffixes used as index keys are sound.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { NeuwerkError } from '../../src/errors.js';
import { compilePolicy } from '../../src/policy/compiler.js';
import { PolicyCompileError } from '../../src/policy/errors.js';
import { MAX_REGEX_LENGTH_CHARS, analyzeRegex } from '../../src/policy/regex-safety.js';
import { parsePolicy } from '../../src/policy/schema.js';

function docWithMatch(match: Record<string, unknown>, ruleIndex = 1): unknown {
  const filler = Array.from({ length: ruleIndex }, (_, i) => ({ id: `ok-${i}`, action: 'allow', match: { dst_ports: [443] } }));
  return {
    default_policy: 'deny',
    source_groups: [
      { id: 'first', sources: { cidrs: ['192.0.2.0/24'] } },
      { id: 'branch', sources: { cidrs: ['10.0.0.0/8'] }, rules: [...filler, { id: 'bad-rule', action: 'allow', match }] },
    ],
  };
}

function compileError(doc: unknown): PolicyCompileError {
  const parsed = parsePolicy(doc);
  try {
    compilePolicy(parsed);
  } catch (err) {
    assert.ok(err instanceof PolicyCompileError, String(err));
    return err;
  }
  assert.fail('the document compiled');
}

describe('catastrophic regexes are refused, naming the rule', () => {
  const rows: { regex: string; why: string }[] = [
    { regex: '(a+)+', why: 'nested quantifiers' },
    { regex: '(a*)*b', why: 'nested quantifiers' },
    { regex: '([a-z]+\\.)+com', why: 'nested quantifiers' },
    { regex: '(x+x+)+y', why: 'nested quantifiers' },
    { regex: '(a|a)*', why: 'branches can start with the same character' },
    { regex: '(a|ab)+c', why: 'branches can start with the same character' },
    { regex: '(|a)+', why: 'can match the empty string' },
    { regex: '(a?){20}', why: 'nested quantifiers' },
    { regex: '.*a.*b.*c', why: 'unbounded repetitions overlap' },
    { regex: '[a-z]*[a-z0-9]*x', why: 'unbounded repetitions overlap' },
    { regex: '\\w*\\w*x\\w*x', why: 'unbounded repetitions overlap' },
    { regex: 'a?a?a?a?a?a?a?a?a?a?aaaaaaaaaa', why: 'ambiguous combinations' },
    { regex: '(a)\\1', why: 'backreferences' },
    { regex: '(?<n>a)\\k<n>', why: 'backreferences' },
    { regex: '(?<=a)b', why: 'lookbehind' },
    { regex: '(?<!a)b', why: 'lookbehind' },
    { regex: '(?=a)a', why: 'lookahead' },
    { regex: `${'a'.repeat(MAX_REGEX_LENGTH_CHARS)}b`, why: `longer than ${MAX_REGEX_LENGTH_CHARS} characters` },
    { regex: 'a{1,5000}', why: 'repetition count above' },
    { regex: '(unclosed', why: 'not a valid regular expression' },
    { regex: 'x{2', why: 'must be escaped' },
  ];
  for (const row of rows) {
    test(`dns_hostname ${JSON.stringify(row.regex.length > 40 ? `${row.regex.slice(0, 40)}…` : row.regex)}: ${row.why}`, () => {
      const err = compileError(docWithMatch({ dns_hostname: row.regex }));
      assert.equal(err.issues.length, 1);
      const issue = err.issues[0];
      assert.equal(issue?.path, 'source_groups[1].rules[1]');
      assert.match(issue?.message ?? '', /^rule "bad-rule" in group "branch": match\.dns_hostname regex /);
      assert.ok(issue?.message.includes(row.why), issue?.message);
      assert.ok(err.message.startsWith('policy cannot be compiled: source_groups[1].rules[1]: rule "bad-rule"'), err.message);
    });
  }

  test('HTTP path regexes allow no ambiguous unbounded repetition, as paths have no length bound', () => {
    assert.match(compileError(docWithMatch({ http: { path: { regex: '/api/.*/items' } } })).message, /at most 0 allowed here/);
    const ok = compilePolicy(parsePolicy(docWithMatch({ http: { path: { regex: '/api/[^/]*/items/.*' } } })));
    assert.equal(ok.stats.regexes, 1);
  });

  test('the same check guards the object form, SNI and HTTP path regexes', () => {
    assert.match(compileError(docWithMatch({ dns_hostname: { regex: '(a+)+' } })).message, /match\.dns_hostname regex "\(a\+\)\+" is refused/);
    assert.match(compileError(docWithMatch({ tls: { sni: { regex: '(a+)+' } } })).message, /match\.tls\.sni regex/);
    assert.match(compileError(docWithMatch({ http: { path: { regex: '(/a+)+' } } })).message, /match\.http\.path regex/);
  });

  test('the rule is named by its position in the document, not its evaluation order', () => {
    const doc = {
      default_policy: 'deny',
      source_groups: [
        {
          id: 'g',
          sources: {},
          rules: [
            { id: 'late', priority: 9, action: 'allow', match: { dns_hostname: '(a+)+' } },
            { id: 'early', priority: 1, action: 'allow', match: {} },
          ],
        },
      ],
    };
    assert.equal(compileError(doc).issues[0]?.path, 'source_groups[0].rules[0]');
  });

  test('every failing rule is listed', () => {
    const doc = {
      default_policy: 'deny',
      source_groups: [
        {
          id: 'g',
          sources: {},
          rules: [
            { id: 'one', action: 'allow', match: { dns_hostname: '(a+)+' } },
            { id: 'fine', action: 'allow', match: { dns_hostname: 'ok\\.com' } },
            { id: 'two', action: 'allow', match: { tls: { sni: { regex: '(?=x)x' } } } },
          ],
        },
      ],
    };
    assert.deepStrictEqual(
      compileError(doc).issues.map((i) => i.path),
      ['source_groups[0].rules[0]', 'source_groups[0].rules[2]'],
    );
  });

  test('the error is a NeuwerkError with HTTP 400', () => {
    const err = compileError(docWithMatch({ dns_hostname: '(a+)+' }));
    assert.ok(err instanceof NeuwerkError);
    assert.equal(err.httpStatus, 400);
  });
});

describe('rules whose selectors can never match together are refused', () => {
  const rows: { match: Record<string, unknown>; fragment: string }[] = [
    { match: { tls: { sni: { exact: ['a.com'] } }, http: { methods: ['GET'] } }, fragment: 'match.tls and match.http can never both match' },
    { match: { proto: 'udp', tls: { sni: { exact: ['a.com'] } } }, fragment: 'match.proto udp can never match' },
    { match: { dst_ips: ['192.0.2.1'], dst_cidrs: ['198.51.100.0/24'] }, fragment: 'no address of match.dst_ips lies in match.dst_cidrs' },
  ];
  for (const row of rows) {
    test(row.fragment, () => {
      const err = compileError(docWithMatch(row.match, 0));
      assert.equal(err.issues[0]?.path, 'source_groups[1].rules[0]');
      assert.ok(err.message.includes(row.fragment), err.message);
    });
  }
});

describe('safe regexes are accepted', () => {
  const accepted = [
    '^(.*\\.)?github\\.com$',
    '.*\\.github\\.com',
    '[a-z0-9-]+\\.example\\.com',
    '^api-[0-9]+\\.[a-z]+\\.example\\.com$',
    '(www|cdn)\\.example\\.(com|org)',
    '(com|net)+',
    '[^.]+\\.[^.]+\\.example\\.com',
    '.*',
    'x?github\\.com',
    '(?<sub>[a-z]+)\\.example\\.com',
  ];
  for (const regex of accepted) {
    test(`${JSON.stringify(regex)} compiles and stays fast on adversarial hostnames`, () => {
      const policy = compilePolicy(parsePolicy(docWithMatch({ dns_hostname: regex })));
      assert.equal(policy.stats.regexes, 1);
      const analysis = analyzeRegex(regex, { caseInsensitive: true });
      assert.ok(analysis.ok);
      const subjects = ['.'.repeat(252) + '!', 'a'.repeat(252) + '!', 'a.'.repeat(126) + '!', `${'a-'.repeat(120)}.example.co`, 'www.'.repeat(60) + 'x'];
      const start = process.hrtime.bigint();
      for (const subject of subjects) analysis.regex.test(subject);
      const elapsedMs = Number(process.hrtime.bigint() - start) / 1e6;
      assert.ok(elapsedMs < 200, `${elapsedMs} ms`);
    });
  }
});

describe('literal tails used as index keys are sound', () => {
  const alphabet = ['a', 'b', '.', 'c'];
  const atom = fc.oneof(
    fc.constantFrom('a', 'b', 'c', '\\.', '.', '[ab]', '[^.]', 'A'),
    fc.constantFrom('(a|b)', '(?:ab|c)', '(a\\.)', '(b|)'),
  );
  const piece = fc.tuple(atom, fc.constantFrom('', '', '', '*', '+', '?', '{1,2}')).map(([a, q]) => a + q);
  const regexArb = fc.tuple(fc.array(piece, { minLength: 1, maxLength: 6 }), fc.option(fc.array(piece, { minLength: 1, maxLength: 4 })), fc.boolean(), fc.boolean())
    .map(([left, right, caret, dollar]) => `${caret ? '^' : ''}${left.join('')}${right === null ? '' : `|${right.join('')}`}${dollar ? '$' : ''}`);
  const subjectArb = fc.array(fc.constantFrom(...alphabet), { maxLength: 6 }).map((parts) => parts.join(''));

  test('every string an accepted regex matches ends with one of its literal tails, at a label start when so marked', () => {
    let indexed = 0;
    let matched = 0;
    fc.assert(
      fc.property(regexArb, fc.array(subjectArb, { minLength: 60, maxLength: 80 }), (source, subjects) => {
        const analysis = analyzeRegex(source, { caseInsensitive: true });
        if (!analysis.ok || analysis.literalTails === null) return;
        indexed++;
        const tails = analysis.literalTails;
        for (const subject of subjects) {
          if (!analysis.regex.test(subject)) continue;
          matched++;
          const fits = tails.some((t) => subject.endsWith(t.text) && (!t.labelStart || subject === t.text || subject.endsWith(`.${t.text}`)));
          assert.ok(fits, `${source} matched ${JSON.stringify(subject)} but its tails are ${JSON.stringify(tails)}`);
        }
      }),
      { numRuns: 4000 },
    );
    assert.ok(indexed > 250 && matched > 500, `only ${indexed} indexable regexes and ${matched} matches generated`);
  });

  test('every string an accepted regex matches starts with one of its literal heads', () => {
    let indexed = 0;
    let matched = 0;
    fc.assert(
      fc.property(regexArb, fc.array(subjectArb, { minLength: 60, maxLength: 80 }), (source, subjects) => {
        const analysis = analyzeRegex(source, { caseInsensitive: true });
        if (!analysis.ok || analysis.literalHeads === null) return;
        indexed++;
        const heads = analysis.literalHeads;
        for (const subject of subjects) {
          if (!analysis.regex.test(subject)) continue;
          matched++;
          assert.ok(
            heads.some((h) => subject.startsWith(h)),
            `${source} matched ${JSON.stringify(subject)} but its heads are ${JSON.stringify(heads)}`,
          );
        }
      }),
      { numRuns: 4000 },
    );
    assert.ok(indexed > 250 && matched > 500, `only ${indexed} regexes with literal heads and ${matched} matches generated`);
  });

  test('the analyser never throws on arbitrary input and agrees with the JS parser about validity', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'ab.()[]{}|*+?^$\\-,0123dDwWsSbBk<>=!:'.split('')), maxLength: 16 }), (source) => {
        const analysis = analyzeRegex(source, { caseInsensitive: false });
        if (analysis.ok) assert.doesNotThrow(() => new RegExp(source));
      }),
      { numRuns: 3000 },
    );
  });
});
