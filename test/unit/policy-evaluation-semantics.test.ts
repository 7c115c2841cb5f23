/**
 * The decision semantics of DESIGN §8 as table tests: group and rule ordering, first match,
 * audit and enforce, rule mode overrides, default_action vs default_policy, DNS strictness,
 * IP-literal vs hostname rules, SNI, HTTP, ports, protocols and IPv6. Each row is checked
 * against both the compiled evaluator and the naive reference, so the table also pins the
 * reference to the spec.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compilePolicy } from '../../src/policy/compiler.js';
import { decideConnection, decideDns } from '../../src/policy/evaluate.js';
import { parsePolicy } from '../../src/policy/schema.js';
import type { ConnectionFlow, Decision, DnsQuery, PolicyDocument } from '../../src/policy/types.js';
import { referenceDecideConnection, referenceDecideDns } from './policy-reference.js';

type Expect = Partial<Decision>;

function connection(doc: unknown, flow: Partial<ConnectionFlow>): Decision {
  const full: ConnectionFlow = { srcIp: '10.0.0.5', dstIp: '203.0.113.10', dstPort: 443, proto: 'tcp', ...flow };
  const parsed = parsePolicy(doc);
  const decision = decideConnection(compilePolicy(parsed), full);
  assert.deepStrictEqual({ ...decision }, referenceDecideConnection(parsed, full), 'compiled and reference disagree');
  return decision;
}

function dns(doc: unknown, query: Partial<DnsQuery>): Decision {
  const full: DnsQuery = { srcIp: '10.0.0.5', qname: 'example.com', ...query };
  const parsed = parsePolicy(doc);
  const decision = decideDns(compilePolicy(parsed), full);
  assert.deepStrictEqual({ ...decision }, referenceDecideDns(parsed, full), 'compiled and reference disagree');
  return decision;
}

function expectDecision(actual: Decision, expected: Expect): void {
  const picked = Object.fromEntries(Object.keys(expected).map((k) => [k, actual[k as keyof Decision]]));
  assert.deepStrictEqual(picked, expected);
}

const CLIENTS = { cidrs: ['10.0.0.0/8'] };

/** Two groups both containing 10.0.0.5, each allowing or denying everything with one rule. */
function twoGroups(a: Record<string, unknown>, b: Record<string, unknown>): PolicyDocument {
  return {
    default_policy: 'deny',
    source_groups: [
      { id: 'a', sources: CLIENTS, rules: [{ id: 'ra', action: 'allow', match: {} }], ...a },
      { id: 'b', sources: CLIENTS, rules: [{ id: 'rb', action: 'deny', match: {} }], ...b },
    ],
  } as PolicyDocument;
}

describe('group order', () => {
  const rows: { name: string; a: Record<string, unknown>; b: Record<string, unknown>; group: string }[] = [
    { name: 'list order when neither has a priority', a: {}, b: {}, group: 'a' },
    { name: 'lower priority first', a: { priority: 5 }, b: { priority: 1 }, group: 'b' },
    { name: 'negative priorities sort first', a: { priority: 0 }, b: { priority: -3 }, group: 'b' },
    { name: 'list order breaks priority ties', a: { priority: 2 }, b: { priority: 2 }, group: 'a' },
    { name: 'a group with a priority comes before one without', a: {}, b: { priority: 100 }, group: 'b' },
  ];
  for (const row of rows) {
    test(row.name, () => {
      expectDecision(connection(twoGroups(row.a, row.b), {}), { sourceGroup: row.group, ruleId: `r${row.group}` });
    });
  }

  test('only groups containing the client take part', () => {
    const doc = twoGroups({ sources: { cidrs: ['192.168.0.0/16'] } }, {});
    expectDecision(connection(doc, {}), { sourceGroup: 'b' });
    expectDecision(connection(doc, { srcIp: '192.168.1.1' }), { sourceGroup: 'a' });
  });

  test('a group claims clients through its ips list as well as its cidrs', () => {
    const doc = twoGroups({ sources: { ips: ['10.0.0.5'] } }, { sources: { cidrs: ['172.16.0.0/12'] } });
    expectDecision(connection(doc, {}), { sourceGroup: 'a' });
    expectDecision(connection(doc, { srcIp: '10.0.0.6' }), { sourceGroup: null, action: 'deny' });
  });
});

describe('rule order and first match', () => {
  const rules = (list: unknown[]): PolicyDocument =>
    ({ default_policy: 'deny', source_groups: [{ id: 'g', sources: CLIENTS, rules: list }] }) as PolicyDocument;
  const rows: { name: string; rules: unknown[]; rule: string }[] = [
    {
      name: 'the first matching rule in list order decides',
      rules: [
        { id: 'miss', action: 'deny', match: { dst_ports: [80] } },
        { id: 'first', action: 'allow', match: { dst_ports: [443] } },
        { id: 'second', action: 'deny', match: { dst_ports: [443] } },
      ],
      rule: 'first',
    },
    {
      name: 'lower rule priority wins over list order',
      rules: [
        { id: 'late', action: 'allow', priority: 9, match: {} },
        { id: 'early', action: 'deny', priority: 1, match: {} },
      ],
      rule: 'early',
    },
    {
      name: 'rules with a priority come before rules without',
      rules: [
        { id: 'none', action: 'allow', match: {} },
        { id: 'prio', action: 'deny', priority: 1000, match: {} },
      ],
      rule: 'prio',
    },
    {
      name: 'a specific hostname rule after a catch-all CIDR rule does not win',
      rules: [
        { id: 'all', action: 'deny', match: { dst_cidrs: ['0.0.0.0/0'] } },
        { id: 'gh', action: 'allow', match: { dns_hostname: { exact: ['github.com'] } } },
      ],
      rule: 'all',
    },
    {
      name: 'an earlier hostname rule beats a later CIDR rule',
      rules: [
        { id: 'gh', action: 'allow', match: { dns_hostname: { suffix: ['github.com'] } } },
        { id: 'all', action: 'deny', match: { dst_cidrs: ['0.0.0.0/0'] } },
      ],
      rule: 'gh',
    },
  ];
  for (const row of rows) {
    test(row.name, () => {
      expectDecision(connection(rules(row.rules), { hostname: 'github.com' }), { ruleId: row.rule });
    });
  }
});

describe('audit and enforce', () => {
  const doc = (groupMode: string | undefined, ruleMode: string | undefined, action: string): PolicyDocument =>
    ({
      default_policy: 'deny',
      source_groups: [
        {
          id: 'g',
          sources: CLIENTS,
          ...(groupMode === undefined ? {} : { mode: groupMode }),
          rules: [{ id: 'r', action, ...(ruleMode === undefined ? {} : { mode: ruleMode }), match: {} }],
        },
      ],
    }) as PolicyDocument;
  const rows: { groupMode?: string; ruleMode?: string; action: string; expect: Expect }[] = [
    { action: 'deny', expect: { action: 'deny', enforced: 'deny', mode: 'enforce', finding: 'deny' } },
    { groupMode: 'audit', action: 'deny', expect: { action: 'deny', enforced: 'allow', mode: 'audit', finding: 'audit' } },
    { groupMode: 'audit', action: 'allow', expect: { action: 'allow', enforced: 'allow', mode: 'audit', finding: null } },
    { groupMode: 'audit', ruleMode: 'enforce', action: 'deny', expect: { enforced: 'deny', mode: 'enforce', finding: 'deny' } },
    { groupMode: 'enforce', ruleMode: 'audit', action: 'deny', expect: { enforced: 'allow', mode: 'audit', finding: 'audit' } },
    { ruleMode: 'audit', action: 'deny', expect: { enforced: 'allow', mode: 'audit' } },
  ];
  for (const row of rows) {
    test(`group mode ${row.groupMode ?? '(default)'}, rule mode ${row.ruleMode ?? '(inherit)'}, ${row.action}`, () => {
      expectDecision(connection(doc(row.groupMode, row.ruleMode, row.action), {}), row.expect);
    });
  }

  test('reasons are one line naming the rule and group, and say when audit let a deny through', () => {
    assert.equal(connection(doc(undefined, undefined, 'deny'), {}).reason, 'denied by rule r in group g');
    assert.equal(connection(doc(undefined, undefined, 'allow'), {}).reason, 'allowed by rule r in group g');
    assert.equal(connection(doc('audit', undefined, 'deny'), {}).reason, 'would be denied by rule r in group g (audit mode: allowed)');
  });
});

describe('fallbacks: default_action, next group, default_policy', () => {
  const noMatch = [{ id: 'only-80', action: 'allow', match: { dst_ports: [80] } }];
  const rows: { name: string; doc: unknown; expect: Expect }[] = [
    {
      name: "no rule matches: the group's default_action decides",
      doc: { default_policy: 'allow', source_groups: [{ id: 'g', sources: CLIENTS, default_action: 'deny', rules: noMatch }] },
      expect: { action: 'deny', sourceGroup: 'g', ruleId: null, reason: 'denied by default_action of group g' },
    },
    {
      name: "default_action takes the group's audit mode",
      doc: { default_policy: 'allow', source_groups: [{ id: 'g', mode: 'audit', sources: CLIENTS, default_action: 'deny' }] },
      expect: { action: 'deny', enforced: 'allow', finding: 'audit', sourceGroup: 'g' },
    },
    {
      name: 'no rule and no default_action: the next group decides',
      doc: {
        default_policy: 'deny',
        source_groups: [
          { id: 'g1', sources: CLIENTS, rules: noMatch },
          { id: 'g2', sources: CLIENTS, default_action: 'allow' },
        ],
      },
      expect: { action: 'allow', sourceGroup: 'g2', ruleId: null },
    },
    {
      name: 'a default_action stops the walk before later groups',
      doc: {
        default_policy: 'allow',
        source_groups: [
          { id: 'g1', sources: CLIENTS, default_action: 'deny' },
          { id: 'g2', sources: CLIENTS, rules: [{ id: 'all', action: 'allow', match: {} }] },
        ],
      },
      expect: { action: 'deny', sourceGroup: 'g1' },
    },
    {
      name: 'no group decides: default_policy, enforced even when groups are in audit mode',
      doc: { default_policy: 'deny', source_groups: [{ id: 'g', mode: 'audit', sources: CLIENTS, rules: noMatch }] },
      expect: {
        action: 'deny',
        enforced: 'deny',
        mode: 'enforce',
        sourceGroup: null,
        ruleId: null,
        finding: 'deny',
        reason: 'denied by default_policy (no source group decided)',
      },
    },
    {
      name: 'a client in no group gets default_policy',
      doc: { default_policy: 'allow', source_groups: [{ id: 'g', sources: { cidrs: ['192.0.2.0/24'] }, default_action: 'deny' }] },
      expect: { action: 'allow', sourceGroup: null, reason: 'allowed by default_policy (no source group decided)' },
    },
    {
      name: 'no groups at all: default_policy',
      doc: { default_policy: 'deny' },
      expect: { action: 'deny', sourceGroup: null },
    },
  ];
  for (const row of rows) test(row.name, () => expectDecision(connection(row.doc, {}), row.expect));
});

describe('DNS is stricter', () => {
  const rows: { name: string; doc: unknown; query?: Partial<DnsQuery>; expect: Expect }[] = [
    {
      name: 'a client in no group is denied DNS even with default_policy allow',
      doc: { default_policy: 'allow', source_groups: [{ id: 'g', sources: { cidrs: ['192.0.2.0/24'] } }] },
      expect: { action: 'deny', enforced: 'deny', sourceGroup: null, reason: 'denied: the source is in no source group' },
    },
    {
      name: 'a matching DNS rule decides',
      doc: {
        default_policy: 'deny',
        source_groups: [{ id: 'g', sources: CLIENTS, rules: [{ id: 'ex', action: 'allow', match: { dns_hostname: { exact: ['example.com'] } } }] }],
      },
      expect: { action: 'allow', ruleId: 'ex', sourceGroup: 'g' },
    },
    {
      name: 'no DNS rule matches: deny, even with default_action allow and default_policy allow',
      doc: { default_policy: 'allow', source_groups: [{ id: 'g', sources: CLIENTS, default_action: 'allow' }] },
      expect: { action: 'deny', sourceGroup: 'g', ruleId: null, reason: 'denied: no DNS rule matched in group g' },
    },
    {
      name: 'rules without dns_hostname never match a query (an empty match included)',
      doc: {
        default_policy: 'allow',
        source_groups: [
          {
            id: 'g',
            sources: CLIENTS,
            rules: [
              { id: 'any', action: 'allow', match: {} },
              { id: 'ip', action: 'allow', match: { dst_cidrs: ['0.0.0.0/0'] } },
              { id: 'sni', action: 'allow', match: { tls: { sni: { exact: ['example.com'] } } } },
            ],
          },
        ],
      },
      expect: { action: 'deny', ruleId: null },
    },
    {
      name: 'only dns_hostname is checked for a query: a DNS rule with ports and CIDRs still matches',
      doc: {
        default_policy: 'deny',
        source_groups: [
          {
            id: 'g',
            sources: CLIENTS,
            rules: [{ id: 'r', action: 'allow', match: { dns_hostname: { suffix: ['example.com'] }, dst_ports: [8443], dst_cidrs: ['198.51.100.0/24'], proto: 'udp' } }],
          },
        ],
      },
      expect: { action: 'allow', ruleId: 'r' },
    },
    {
      name: 'a group without default_action passes the query on to the next group',
      doc: {
        default_policy: 'deny',
        source_groups: [
          { id: 'g1', sources: CLIENTS, rules: [{ id: 'other', action: 'allow', match: { dns_hostname: { exact: ['other.net'] } } }] },
          { id: 'g2', sources: CLIENTS, rules: [{ id: 'ex', action: 'allow', match: { dns_hostname: { exact: ['example.com'] } } }] },
        ],
      },
      expect: { action: 'allow', sourceGroup: 'g2', ruleId: 'ex' },
    },
    {
      name: 'a group with default_action ends the walk with a deny, like it ends a connection walk',
      doc: {
        default_policy: 'deny',
        source_groups: [
          { id: 'g1', sources: CLIENTS, default_action: 'allow' },
          { id: 'g2', sources: CLIENTS, rules: [{ id: 'ex', action: 'allow', match: { dns_hostname: { exact: ['example.com'] } } }] },
        ],
      },
      expect: { action: 'deny', sourceGroup: 'g1', ruleId: null },
    },
    {
      name: 'nothing matched in any group: deny attributed to the first claiming group, with its audit mode',
      doc: {
        default_policy: 'deny',
        source_groups: [
          { id: 'later', priority: 2, sources: CLIENTS },
          { id: 'first', priority: 1, mode: 'audit', sources: CLIENTS },
        ],
      },
      expect: {
        action: 'deny',
        enforced: 'allow',
        mode: 'audit',
        finding: 'audit',
        sourceGroup: 'first',
        reason: 'would be denied: no DNS rule matched in group first (audit mode: allowed)',
      },
    },
    {
      name: 'an audit-mode DNS deny rule lets the query through with a finding',
      doc: {
        default_policy: 'deny',
        source_groups: [{ id: 'g', sources: CLIENTS, rules: [{ id: 'block', action: 'deny', mode: 'audit', match: { dns_hostname: 'example\\.com' } }] }],
      },
      expect: { action: 'deny', enforced: 'allow', finding: 'audit', ruleId: 'block' },
    },
    {
      name: 'a qname longer than 253 characters matches no rule',
      doc: { default_policy: 'allow', source_groups: [{ id: 'g', sources: CLIENTS, rules: [{ id: 'all', action: 'allow', match: { dns_hostname: '.*' } }] }] },
      query: { qname: `${'a.'.repeat(127)}com` },
      expect: { action: 'deny', ruleId: null },
    },
    {
      name: 'qnames are compared case-insensitively without the trailing dot',
      doc: {
        default_policy: 'deny',
        source_groups: [{ id: 'g', sources: CLIENTS, rules: [{ id: 'r', action: 'allow', match: { dns_hostname: { exact: ['Example.COM.'] } } }] }],
      },
      query: { qname: 'EXAMPLE.com.' },
      expect: { action: 'allow', ruleId: 'r' },
    },
  ];
  for (const row of rows) test(row.name, () => expectDecision(dns(row.doc, row.query ?? {}), row.expect));
});

describe('selectors of a connection', () => {
  const one = (match: unknown): PolicyDocument =>
    ({ default_policy: 'deny', source_groups: [{ id: 'g', sources: { cidrs: ['10.0.0.0/8', '2001:db8::/32'] }, rules: [{ id: 'r', action: 'allow', match }] }] }) as PolicyDocument;
  const rows: { name: string; match: unknown; flow: Partial<ConnectionFlow>; matches: boolean }[] = [
    { name: 'hostname rule matches the requested hostname', match: { dns_hostname: { exact: ['api.github.com'] } }, flow: { hostname: 'API.github.com.' }, matches: true },
    { name: 'hostname rule cannot match an IP-literal connection', match: { dns_hostname: '.*' }, flow: {}, matches: false },
    { name: 'an IP literal given as hostname is no hostname', match: { dns_hostname: '.*' }, flow: { hostname: '203.0.113.10' }, matches: false },
    { name: 'a bracketed IPv6 literal given as hostname is no hostname', match: { dns_hostname: '.*' }, flow: { hostname: '[2001:db8::1]' }, matches: false },
    { name: 'dst_ips rule matches an IP-literal connection', match: { dst_ips: ['203.0.113.10'] }, flow: {}, matches: true },
    { name: 'regex is anchored to the whole hostname', match: { dns_hostname: 'github\\.com' }, flow: { hostname: 'github.com.evil.net' }, matches: false },
    { name: 'regex is case-insensitive', match: { dns_hostname: 'GitHub\\.com' }, flow: { hostname: 'github.com' }, matches: true },
    { name: 'suffix matches the domain itself', match: { dns_hostname: { suffix: ['github.com'] } }, flow: { hostname: 'github.com' }, matches: true },
    { name: 'suffix matches subdomains', match: { dns_hostname: { suffix: ['github.com'] } }, flow: { hostname: 'a.b.github.com' }, matches: true },
    { name: 'suffix respects label boundaries', match: { dns_hostname: { suffix: ['github.com'] } }, flow: { hostname: 'xgithub.com' }, matches: false },
    { name: 'glob * matches within one label', match: { dns_hostname: { glob: ['*.github.com'] } }, flow: { hostname: 'api.github.com' }, matches: true },
    { name: 'glob * does not cross labels', match: { dns_hostname: { glob: ['*.github.com'] } }, flow: { hostname: 'a.b.github.com' }, matches: false },
    { name: 'glob * inside a label', match: { dns_hostname: { glob: ['api-*.example.com'] } }, flow: { hostname: 'api-eu1.example.com' }, matches: true },
    { name: 'dst_cidrs contains the destination', match: { dst_cidrs: ['203.0.113.0/24'] }, flow: {}, matches: true },
    { name: 'dst_cidrs does not contain the destination', match: { dst_cidrs: ['203.0.114.0/24'] }, flow: {}, matches: false },
    { name: 'dst_ips and dst_cidrs must both match', match: { dst_cidrs: ['203.0.113.0/24'], dst_ips: ['203.0.113.99'] }, flow: {}, matches: false },
    { name: 'single port', match: { dst_ports: [443] }, flow: { dstPort: 443 }, matches: true },
    { name: 'port outside the list', match: { dst_ports: [443, 80] }, flow: { dstPort: 8443 }, matches: false },
    { name: 'port range includes its low end', match: { dst_ports: ['8000-8100'] }, flow: { dstPort: 8000 }, matches: true },
    { name: 'port range includes its high end', match: { dst_ports: ['8000-8100'] }, flow: { dstPort: 8100 }, matches: true },
    { name: 'port just above the range', match: { dst_ports: ['8000-8100'] }, flow: { dstPort: 8101 }, matches: false },
    { name: 'wide port range', match: { dst_ports: ['1024-65535'] }, flow: { dstPort: 50000 }, matches: true },
    { name: 'proto tcp does not match udp', match: { proto: 'tcp' }, flow: { proto: 'udp' }, matches: false },
    { name: 'proto any matches udp', match: { proto: 'any' }, flow: { proto: 'udp' }, matches: true },
    { name: 'SNI rule needs an SNI', match: { tls: { sni: { exact: ['api.github.com'] } } }, flow: { hostname: 'api.github.com' }, matches: false },
    { name: 'SNI exact', match: { tls: { sni: { exact: ['api.github.com'] } } }, flow: { sni: 'API.GITHUB.COM' }, matches: true },
    { name: 'SNI suffix', match: { tls: { sni: { suffix: ['github.com'] } } }, flow: { sni: 'codeload.github.com' }, matches: true },
    { name: 'SNI regex is anchored', match: { tls: { sni: { regex: '.*\\.github\\.com' } } }, flow: { sni: 'api.github.com.evil.net' }, matches: false },
    { name: 'HTTP rule needs a plain-HTTP request', match: { http: { methods: ['GET'] } }, flow: { dstPort: 80 }, matches: false },
    {
      name: 'HTTP method, host (port ignored) and path prefix',
      match: { http: { methods: ['get'], host: ['example.com'], path: { prefix: ['/api'] } } },
      flow: { http: { method: 'GET', host: 'Example.com:8080', path: '/api/v1?x=1' } },
      matches: true,
    },
    { name: 'HTTP method mismatch', match: { http: { methods: ['GET'] } }, flow: { http: { method: 'POST', host: 'example.com', path: '/' } }, matches: false },
    {
      name: 'HTTP path exact ignores the query string',
      match: { http: { path: { exact: ['/health'] } } },
      flow: { http: { method: 'GET', host: 'example.com', path: '/health?verbose' } },
      matches: true,
    },
    {
      name: 'HTTP path regex is case-sensitive and anchored',
      match: { http: { path: { regex: '/v[0-9]+/items' } } },
      flow: { http: { method: 'GET', host: 'example.com', path: '/V2/items' } },
      matches: false,
    },
    { name: 'IPv6 destination in an IPv6 CIDR', match: { dst_cidrs: ['2606:4700::/32'] }, flow: { srcIp: '2001:db8::7', dstIp: '2606:4700::1111' }, matches: true },
    { name: 'IPv4 destination never in an IPv6 CIDR', match: { dst_cidrs: ['::/0'] }, flow: {}, matches: false },
    { name: 'IPv4-mapped destination counts as IPv4', match: { dst_ips: ['203.0.113.10'] }, flow: { dstIp: '::ffff:203.0.113.10' }, matches: true },
    { name: 'IPv6 dst_ips in another notation', match: { dst_ips: ['2606:4700:0:0:0:0:0:1111'] }, flow: { srcIp: '2001:db8::7', dstIp: '2606:4700::1111' }, matches: true },
    { name: 'an empty match matches every connection', match: {}, flow: { proto: 'udp', dstPort: 9 }, matches: true },
    { name: 'a hostname longer than 253 characters matches no hostname rule', match: { dns_hostname: '.*' }, flow: { hostname: `${'a.'.repeat(127)}com` }, matches: false },
    { name: 'an SNI longer than 253 characters matches no SNI rule', match: { tls: { sni: { regex: '.*' } } }, flow: { sni: `${'a'.repeat(254)}` }, matches: false },
    {
      name: 'every selector must match (hostname matches, port does not)',
      match: { dns_hostname: { exact: ['github.com'] }, dst_ports: [443] },
      flow: { hostname: 'github.com', dstPort: 22 },
      matches: false,
    },
  ];
  for (const row of rows) {
    test(row.name, () => {
      const d = connection(one(row.match), row.flow);
      assert.equal(d.ruleId, row.matches ? 'r' : null, d.reason);
    });
  }
});

describe('client addresses', () => {
  const doc = {
    default_policy: 'deny',
    source_groups: [
      { id: 'v4', sources: { cidrs: ['10.0.0.0/8'] }, default_action: 'allow' },
      { id: 'v6', sources: { cidrs: ['2001:db8::/32'], ips: ['fe80::1'] }, default_action: 'allow' },
    ],
  };
  const rows: { srcIp: string; group: string | null }[] = [
    { srcIp: '10.1.2.3', group: 'v4' },
    { srcIp: '::ffff:10.1.2.3', group: 'v4' },
    { srcIp: '2001:db8:ffff::1', group: 'v6' },
    { srcIp: '[2001:db8::1]', group: 'v6' },
    { srcIp: 'fe80::1%eth0', group: 'v6' },
    { srcIp: '2001:db9::1', group: null },
    { srcIp: '11.0.0.1', group: null },
    { srcIp: 'garbage', group: null },
  ];
  for (const row of rows) {
    test(`client ${row.srcIp} belongs to ${row.group ?? 'no group'}`, () => {
      assert.equal(connection(doc, { srcIp: row.srcIp }).sourceGroup, row.group);
    });
  }
});

test('decisions are frozen and shared: deciding allocates no decision objects', () => {
  const policy = compilePolicy(parsePolicy({ default_policy: 'deny', source_groups: [{ id: 'g', sources: CLIENTS, default_action: 'allow' }] }));
  const flow: ConnectionFlow = { srcIp: '10.0.0.1', dstIp: '192.0.2.1', dstPort: 443, proto: 'tcp' };
  const first = decideConnection(policy, flow);
  assert.equal(decideConnection(policy, flow), first);
  assert.ok(Object.isFrozen(first));
});

test('the example policy of DESIGN §8 compiles and decides as written', () => {
  const doc = {
    default_policy: 'deny',
    source_groups: [
      {
        id: 'branch-office',
        mode: 'enforce',
        priority: 10,
        sources: { cidrs: ['10.10.0.0/16'], ips: ['10.10.1.20'] },
        default_action: 'deny',
        rules: [
          {
            id: 'allow-github',
            priority: 1,
            action: 'allow',
            mode: 'enforce',
            match: {
              dns_hostname: '^(.*\\.)?github\\.com$',
              dst_cidrs: ['140.82.112.0/20'],
              dst_ips: ['140.82.121.4'],
              proto: 'tcp',
              dst_ports: [443, '8000-8100'],
              tls: { sni: { exact: ['api.github.com'], regex: '.*\\.github\\.com' } },
            },
          },
        ],
      },
    ],
  };
  const base = { srcIp: '10.10.1.20', hostname: 'api.github.com', dstIp: '140.82.121.4', dstPort: 443, sni: 'api.github.com' };
  expectDecision(connection(doc, base), { action: 'allow', ruleId: 'allow-github' });
  expectDecision(connection(doc, { ...base, sni: 'evil.example' }), { action: 'deny', ruleId: null, sourceGroup: 'branch-office' });
  expectDecision(dns(doc, { srcIp: '10.10.1.20', qname: 'github.com' }), { action: 'allow', ruleId: 'allow-github' });
  expectDecision(dns(doc, { srcIp: '10.10.1.20', qname: 'gitlab.com' }), { action: 'deny', ruleId: null });
  expectDecision(dns(doc, { srcIp: '10.11.0.1', qname: 'github.com' }), { action: 'deny', sourceGroup: null });
});
