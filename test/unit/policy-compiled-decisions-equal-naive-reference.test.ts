/**
 * Property: for random policies and random flows and queries, the compiled, indexed evaluator
 * decides exactly like the naive linear reference (`policy-reference.ts`) — same action, mode,
 * group, rule, finding and reason. Small universes of addresses, hostnames and ports make hits,
 * overlaps and priority ties frequent. fast-check prints the seed of any failure; reproduce with
 * `fc.assert(..., { seed, path })`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { compilePolicy } from '../../src/policy/compiler.js';
import { PolicyCompileError } from '../../src/policy/errors.js';
import { decideConnection, decideDns } from '../../src/policy/evaluate.js';
import { parsePolicy, parsePolicyYaml, policyToYaml } from '../../src/policy/schema.js';
import type { ConnectionFlow, DnsQuery, PolicyDocument, PolicyRule, RuleMatch, SourceGroup } from '../../src/policy/types.js';
import { referenceDecideConnection, referenceDecideDns } from './policy-reference.js';

const CLIENT_IPS = [
  '10.0.0.1',
  '10.0.0.2',
  '10.0.1.7',
  '10.1.2.3',
  '192.168.1.10',
  '8.8.8.8',
  '2001:db8::1',
  '2001:db8::2',
  '2001:db8:1::5',
  'fd00::1',
  '::ffff:10.0.0.1',
  '[2001:db8::1]',
  'not-an-ip',
];
const SOURCE_CIDRS = ['10.0.0.0/8', '10.0.0.0/16', '10.0.0.0/24', '10.0.0.0/31', '0.0.0.0/0', '192.168.0.0/16', '2001:db8::/32', '2001:db8::/64', '::/0', 'fd00::/8'];
const SOURCE_IPS = ['10.0.0.1', '10.0.1.7', '192.168.1.10', '2001:db8::1', 'fd00::1', '2001:db8:0:0::2'];
const DST_IPS = ['140.82.121.4', '140.82.112.1', '1.1.1.1', '10.0.0.1', '2606:4700::1111', '2001:db8::2'];
const DST_CIDRS = ['140.82.112.0/20', '140.82.121.0/24', '1.0.0.0/8', '0.0.0.0/0', '10.0.0.0/8', '2606:4700::/32', '::/0', '140.82.121.4/32'];
const CONTAINING_CIDR: Record<string, string> = {
  '140.82.121.4': '140.82.121.0/24',
  '140.82.112.1': '140.82.112.0/20',
  '1.1.1.1': '1.0.0.0/8',
  '10.0.0.1': '10.0.0.0/8',
  '2606:4700::1111': '2606:4700::/32',
  '2001:db8::2': '::/0',
};
const FLOW_DSTS = [...DST_IPS, '140.82.127.255', '1.2.3.4', '2606:4700:1::1', '::ffff:1.1.1.1', 'bogus'];
const NAMES = ['github.com', 'api.github.com', 'a.b.github.com', 'xgithub.com', 'example.com', 'www.example.com', 'example.org', 'cdn.example.org', 'localhost', 'a.com', 'b.a.com', 'ab.a.com'];
// Names with a line terminator, which a regex `.` does not match: `(.*\.)?github\.com` must not match them.
const QUERY_NAMES = [
  ...NAMES,
  'API.GitHub.COM',
  'example.com.',
  'WWW.EXAMPLE.COM.',
  'com',
  '',
  '.',
  '1.1.1.1',
  '[2001:db8::2]',
  'x.y.z.example.org',
  'a\nb.github.com',
  'x\u2028.example.org',
  'www\r.example.com',
];
const SUFFIXES = ['github.com', 'example.com', 'example.org', 'a.com', 'com', 'org', 'GitHub.com.'];
const GLOBS = ['*.github.com', '*.example.com', '*', '*.com', 'api.*', 'a*.github.com', '*b*.a.com', 'www.example.com', '*.*.github.com', 'cdn.example.*'];
const REGEXES = [
  '^(.*\\.)?github\\.com$',
  '(?:.*\\.)?Example\\.ORG',
  'api\\.github\\.com',
  '.*\\.example\\.(com|org)',
  '[a-z]+\\.com',
  'api\\..*',
  'localhost',
  '(www|cdn)\\.example\\.(com|org)',
  'A\\.COM',
  '.*',
  '[^.]+\\.a\\.com',
  'x?github\\.com',
];
const PORTS: (number | string)[] = [80, 443, 8080, '8000-8100', '443', '1-1024', '20-90', 53, '440-450'];
const FLOW_PORTS = [80, 443, 8080, 8050, 22, 1024, 5353, 53, 8100, 8101, 445, 451];
const METHODS = ['GET', 'POST', 'get'];
const HTTP_HOSTS = ['example.com', 'github.com', 'Example.COM'];
const PATH_PREFIXES = ['/api', '/', '/v'];
const PATH_EXACT = ['/health', '/'];
const PATH_REGEXES = ['/v[0-9]+/.*', '/HEALTH', '/api/[a-z]+'];

const opt = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(arb, { nil: undefined, freq: 2 });
/** Absent three times out of four: rules with few selectors match often. */
const rare = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> =>
  fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, { arbitrary: arb, weight: 1 });
const sub = <T>(values: readonly T[], min = 1): fc.Arbitrary<T[]> => fc.subarray([...values], { minLength: min, maxLength: Math.min(3, values.length) });
const priority = opt(fc.constantFrom(-1, 0, 1, 2));
const mode = opt(fc.constantFrom('enforce' as const, 'audit' as const));
const action = fc.constantFrom('allow' as const, 'deny' as const);

const hostnameSelector = fc.oneof(
  fc.constantFrom(...REGEXES),
  fc
    .record(
      { exact: opt(sub(NAMES)), suffix: opt(sub(SUFFIXES)), glob: opt(sub(GLOBS)), regex: opt(fc.constantFrom(...REGEXES)) },
      { requiredKeys: [] },
    )
    .filter((o) => Object.values(o).some((v) => v !== undefined)),
);

const sniSelector = fc
  .record({ exact: opt(sub(NAMES)), suffix: opt(sub(SUFFIXES)), regex: opt(fc.constantFrom(...REGEXES)) }, { requiredKeys: [] })
  .filter((o) => Object.values(o).some((v) => v !== undefined));

const httpSelector = fc
  .record(
    {
      methods: opt(sub(METHODS)),
      host: opt(sub(HTTP_HOSTS)),
      path: opt(
        fc
          .record({ prefix: opt(sub(PATH_PREFIXES)), exact: opt(sub(PATH_EXACT)), regex: opt(fc.constantFrom(...PATH_REGEXES)) }, { requiredKeys: [] })
          .filter((o) => Object.values(o).some((v) => v !== undefined)),
      ),
    },
    { requiredKeys: [] },
  )
  .filter((o) => Object.values(o).some((v) => v !== undefined));

const matchArb: fc.Arbitrary<RuleMatch> = fc
  .record(
    {
      dns_hostname: opt(hostnameSelector),
      dst_cidrs: rare(sub(DST_CIDRS)),
      dst_ips: rare(sub(DST_IPS)),
      proto: rare(fc.constantFrom('tcp' as const, 'udp' as const, 'any' as const)),
      // Up to five entries: more than the three port ranges a compiled rule keeps inline.
      dst_ports: rare(fc.subarray([...PORTS], { minLength: 1, maxLength: 5 })),
      layer: fc.constantFrom('none', 'none', 'none', 'none', 'tls', 'http'),
      tls: sniSelector,
      http: httpSelector,
    },
    { requiredKeys: ['layer', 'tls', 'http'] },
  )
  .map(({ layer, tls, http, ...rest }) => {
    const m: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(rest)) if (v !== undefined) m[k] = v;
    if (layer === 'tls') m.tls = { sni: tls };
    if (layer === 'http') m.http = http;
    if (layer !== 'none' && m.proto === 'udp') m.proto = 'tcp';
    // dst_ips and dst_cidrs must both match; keep such rules satisfiable.
    if (Array.isArray(m.dst_ips) && Array.isArray(m.dst_cidrs)) {
      m.dst_cidrs = [...new Set([...(m.dst_cidrs as string[]), CONTAINING_CIDR[(m.dst_ips as string[])[0] as string] as string])];
    }
    return m as RuleMatch;
  });

function policyArb(maxGroups: number, maxRules: number): fc.Arbitrary<PolicyDocument> {
  const rule = fc.record({ priority, action, mode, match: matchArb }, { requiredKeys: ['action', 'match'] });
  const group = fc.record(
    {
      priority,
      mode,
      default_action: opt(action),
      sources: fc.record(
        {
          cidrs: fc.oneof({ arbitrary: sub(SOURCE_CIDRS), weight: 6 }, { arbitrary: fc.constantFrom(undefined, []), weight: 1 }),
          ips: rare(sub(SOURCE_IPS, 0)),
        },
        { requiredKeys: [] },
      ),
      rules: fc.array(rule, { maxLength: maxRules }),
    },
    { requiredKeys: ['sources', 'rules'] },
  );
  return fc
    .record({ default_policy: action, source_groups: fc.array(group, { minLength: 1, maxLength: maxGroups }) })
    .map(({ default_policy, source_groups }) => ({
      default_policy,
      source_groups: source_groups.map((g, gi) => {
        const out = { id: `g${gi}`, ...stripUndefined(g) } as Record<string, unknown>;
        out.sources = stripUndefined(g.sources);
        out.rules = g.rules.map((r, ri) => ({ id: `r${ri}`, ...stripUndefined(r) }) as PolicyRule);
        return out as unknown as SourceGroup;
      }),
    }));
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

const flowArb: fc.Arbitrary<ConnectionFlow> = fc
  .record(
    {
      srcIp: fc.constantFrom(...CLIENT_IPS),
      hostname: fc.option(fc.constantFrom(...QUERY_NAMES), { nil: undefined, freq: 5 }),
      dstIp: fc.constantFrom(...FLOW_DSTS),
      dstPort: fc.constantFrom(...FLOW_PORTS),
      proto: fc.constantFrom('tcp' as const, 'tcp' as const, 'udp' as const),
      sni: opt(fc.constantFrom(...NAMES, 'API.GITHUB.COM.')),
      http: opt(
        fc.record({
          method: fc.constantFrom('GET', 'POST', 'put', 'get'),
          host: fc.constantFrom('example.com', 'EXAMPLE.com:8080', 'github.com', '[::1]:80', 'github.com.'),
          path: fc.constantFrom('/api/x', '/health', '/health?x=1', '/v2/items', '/', '/other#frag', '/HEALTH', '/api/ab?q'),
        }),
      ),
    },
    { requiredKeys: ['srcIp', 'dstIp', 'dstPort', 'proto'] },
  )
  .map((f) => stripUndefined(f) as ConnectionFlow);

const queryArb: fc.Arbitrary<DnsQuery> = fc.record({ srcIp: fc.constantFrom(...CLIENT_IPS), qname: fc.constantFrom(...QUERY_NAMES) });

interface Counts {
  compiled: number;
  refused: number;
  byRule: number;
  byGroupDefault: number;
  byDefaultPolicy: number;
  audited: number;
  dnsByRule: number;
}

function checkAgainstReference(maxGroups: number, maxRules: number, numRuns: number, seed?: number): Counts {
  const counts: Counts = { compiled: 0, refused: 0, byRule: 0, byGroupDefault: 0, byDefaultPolicy: 0, audited: 0, dnsByRule: 0 };
  fc.assert(
    fc.property(policyArb(maxGroups, maxRules), fc.array(flowArb, { minLength: 1, maxLength: 25 }), fc.array(queryArb, { minLength: 1, maxLength: 25 }), (raw, flows, queries) => {
      const doc = parsePolicy(raw);
      let policy;
      try {
        policy = compilePolicy(doc);
      } catch (err) {
        assert.ok(err instanceof PolicyCompileError, String(err));
        counts.refused++;
        throw err;
      }
      counts.compiled++;
      for (const flow of flows) {
        const decision = decideConnection(policy, flow);
        assert.deepStrictEqual({ ...decision }, referenceDecideConnection(doc, flow), `connection ${JSON.stringify(flow)}`);
        if (decision.ruleId !== null) counts.byRule++;
        else if (decision.sourceGroup !== null) counts.byGroupDefault++;
        else counts.byDefaultPolicy++;
        if (decision.finding === 'audit') counts.audited++;
      }
      for (const query of queries) {
        const decision = decideDns(policy, query);
        assert.deepStrictEqual({ ...decision }, referenceDecideDns(doc, query), `dns ${JSON.stringify(query)}`);
        if (decision.ruleId !== null) counts.dnsByRule++;
      }
    }),
    { numRuns, ...(seed === undefined ? {} : { seed }) },
  );
  return counts;
}

test('compiled decisions equal the naive reference on small random policies', () => {
  const counts = checkAgainstReference(4, 6, 2500);
  // The generators must reach every kind of outcome often, or equality proves little.
  assert.equal(counts.refused, 0, JSON.stringify(counts));
  for (const key of ['byRule', 'byGroupDefault', 'byDefaultPolicy', 'audited', 'dnsByRule'] as const) {
    assert.ok(counts[key] > 400, `${key} too rare: ${JSON.stringify(counts)}`);
  }
});

test('compiled decisions equal the naive reference on policies with many overlapping rules', () => {
  const counts = checkAgainstReference(3, 40, 250);
  assert.ok(counts.byRule > 300 && counts.dnsByRule > 150, JSON.stringify(counts));
});

test('random valid documents survive a YAML round trip unchanged', () => {
  fc.assert(
    fc.property(policyArb(3, 5), (raw) => {
      const doc = parsePolicy(raw);
      assert.deepStrictEqual(parsePolicyYaml(policyToYaml(doc)), doc);
    }),
    { numRuns: 300 },
  );
});
