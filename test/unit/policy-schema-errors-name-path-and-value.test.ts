/**
 * Validation of the policy document: every error names the failing path and the bad value, all
 * errors are reported at once, unknown keys are refused, and the YAML form round-trips.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Ajv } from 'ajv';
import { ERROR_CATALOGUE, NeuwerkError } from '../../src/errors.js';
import { PolicyValidationError } from '../../src/policy/errors.js';
import { POLICY_JSON_SCHEMA, parsePolicy, parsePolicyYaml, policyToYaml, validatePolicy } from '../../src/policy/schema.js';

const G = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ id: 'g', sources: { cidrs: ['10.0.0.0/8'] }, ...extra });
const withRule = (rule: Record<string, unknown>): unknown => ({
  default_policy: 'deny',
  source_groups: [G({ rules: [{ id: 'r', action: 'allow', match: {}, ...rule }] })],
});
const withMatch = (match: Record<string, unknown>): unknown => withRule({ match });

function messageOf(input: unknown): string {
  try {
    parsePolicy(input);
  } catch (err) {
    assert.ok(err instanceof PolicyValidationError, String(err));
    return err.message;
  }
  assert.fail('the document was accepted');
}

describe('bad documents are refused with the path and the value', () => {
  const rows: { name: string; doc: unknown; fragments: string[] }[] = [
    { name: 'not an object', doc: 'deny', fragments: ['the policy must be an object, got "deny"'] },
    { name: 'missing default_policy', doc: {}, fragments: ['default_policy: is required'] },
    { name: 'bad default_policy', doc: { default_policy: 'permit' }, fragments: ['default_policy: "permit" must be one of allow, deny'] },
    { name: 'unknown top-level key', doc: { default_policy: 'deny', groups: [] }, fragments: ['groups: is not a known property (allowed: default_policy, source_groups)'] },
    { name: 'source_groups not a list', doc: { default_policy: 'deny', source_groups: {} }, fragments: ['source_groups: {} must be a list'] },
    { name: 'group without id', doc: { default_policy: 'deny', source_groups: [{ sources: {} }] }, fragments: ['source_groups[0].id: is required'] },
    { name: 'group without sources', doc: { default_policy: 'deny', source_groups: [{ id: 'g' }] }, fragments: ['source_groups[0].sources: is required'] },
    {
      name: 'bad group id',
      doc: { default_policy: 'deny', source_groups: [G({ id: 'branch office' })] },
      fragments: ['source_groups[0].id: "branch office" is not a valid id'],
    },
    {
      name: 'id longer than 128 characters',
      doc: { default_policy: 'deny', source_groups: [G({ id: 'x'.repeat(129) })] },
      fragments: ['source_groups[0].id: "xxxx', 'is not a valid id'],
    },
    {
      name: 'duplicate group ids',
      doc: { default_policy: 'deny', source_groups: [G(), G({ id: 'h' }), G()] },
      fragments: ['source_groups[2].id: "g" duplicates source_groups[0].id'],
    },
    { name: 'bad group mode', doc: { default_policy: 'deny', source_groups: [G({ mode: 'dry-run' })] }, fragments: ['source_groups[0].mode: "dry-run" must be one of enforce, audit'] },
    { name: 'fractional priority', doc: { default_policy: 'deny', source_groups: [G({ priority: 1.5 })] }, fragments: ['source_groups[0].priority: 1.5 must be an integer'] },
    { name: 'priority as string', doc: { default_policy: 'deny', source_groups: [G({ priority: '1' })] }, fragments: ['source_groups[0].priority: "1" must be an integer'] },
    {
      name: 'unknown source key',
      doc: { default_policy: 'deny', source_groups: [G({ sources: { cidr: ['10.0.0.0/8'] } })] },
      fragments: ['source_groups[0].sources.cidr: is not a known property (allowed: cidrs, ips)'],
    },
    {
      name: 'CIDR with host bits',
      doc: { default_policy: 'deny', source_groups: [G({ sources: { cidrs: ['10.10.1.0/16'] } })] },
      fragments: ['source_groups[0].sources.cidrs[0]: "10.10.1.0/16" has host bits set (did you mean 10.10.0.0/16?)'],
    },
    {
      name: 'CIDR prefix too long',
      doc: { default_policy: 'deny', source_groups: [G({ sources: { cidrs: ['10.0.0.0/33'] } })] },
      fragments: ['source_groups[0].sources.cidrs[0]: "10.0.0.0/33" is not a valid CIDR (prefix length above 32)'],
    },
    {
      name: 'IPv6 CIDR with host bits',
      doc: { default_policy: 'deny', source_groups: [G({ sources: { cidrs: ['2001:db8::1/32'] } })] },
      fragments: ['"2001:db8::1/32" has host bits set (did you mean 2001:db8::/32?)'],
    },
    {
      name: 'bad IP',
      doc: { default_policy: 'deny', source_groups: [G({ sources: { ips: ['10.0.0.256'] } })] },
      fragments: ['source_groups[0].sources.ips[0]: "10.0.0.256" is not a valid IPv4 or IPv6 address'],
    },
    {
      name: 'IPv4 with leading zeros',
      doc: { default_policy: 'deny', source_groups: [G({ sources: { ips: ['010.0.0.1'] } })] },
      fragments: ['source_groups[0].sources.ips[0]: "010.0.0.1" is not a valid IPv4 or IPv6 address'],
    },
    {
      name: 'IPv4-mapped IPv6',
      doc: { default_policy: 'deny', source_groups: [G({ sources: { ips: ['::ffff:10.0.0.1'] } })] },
      fragments: ['"::ffff:10.0.0.1" is an IPv4-mapped IPv6 address; write it as IPv4 (10.0.0.1)'],
    },
    { name: 'rule without id', doc: withRule({ id: undefined }), fragments: ['source_groups[0].rules[0].id: is required'] },
    { name: 'rule without action', doc: withRule({ action: undefined }), fragments: ['source_groups[0].rules[0].action: is required'] },
    { name: 'rule without match', doc: withRule({ match: undefined }), fragments: ['source_groups[0].rules[0].match: is required'] },
    { name: 'bad action', doc: withRule({ action: 'block' }), fragments: ['source_groups[0].rules[0].action: "block" must be one of allow, deny'] },
    { name: 'bad rule mode', doc: withRule({ mode: 'audited' }), fragments: ['source_groups[0].rules[0].mode: "audited" must be one of enforce, audit'] },
    {
      name: 'duplicate rule ids in a group',
      doc: { default_policy: 'deny', source_groups: [G({ rules: [{ id: 'r', action: 'allow', match: {} }, { id: 'r', action: 'deny', match: {} }] })] },
      fragments: ['source_groups[0].rules[1].id: "r" duplicates source_groups[0].rules[0].id'],
    },
    {
      name: 'unknown selector',
      doc: withMatch({ dst_port: [443] }),
      fragments: ['source_groups[0].rules[0].match.dst_port: is not a known property (allowed: dns_hostname, dst_cidrs, dst_ips, proto, dst_ports, tls, http)'],
    },
    { name: 'reversed port range', doc: withMatch({ dst_ports: [443, '80-70'] }), fragments: ['source_groups[0].rules[0].match.dst_ports[1]: "80-70" is not a valid port range'] },
    { name: 'port above 65535', doc: withMatch({ dst_ports: [70000] }), fragments: ['source_groups[0].rules[0].match.dst_ports[0]: 70000 is not a valid port (1-65535)'] },
    { name: 'port 0', doc: withMatch({ dst_ports: [0] }), fragments: ['match.dst_ports[0]: 0 is not a valid port (1-65535)'] },
    { name: 'port as word', doc: withMatch({ dst_ports: ['https'] }), fragments: ['match.dst_ports[0]: "https" is not a valid port range'] },
    { name: 'port as boolean', doc: withMatch({ dst_ports: [true] }), fragments: ['match.dst_ports[0]: true must be an integer or a string'] },
    { name: 'empty port list', doc: withMatch({ dst_ports: [] }), fragments: ['source_groups[0].rules[0].match.dst_ports: must not be empty'] },
    { name: 'bad proto', doc: withMatch({ proto: 'icmp' }), fragments: ['match.proto: "icmp" must be one of tcp, udp, any'] },
    { name: 'bad dst CIDR', doc: withMatch({ dst_cidrs: ['140.82.112.0/20', 'github'] }), fragments: ['match.dst_cidrs[1]: "github" is not a valid CIDR'] },
    { name: 'bad dst IP', doc: withMatch({ dst_ips: ['1.2.3'] }), fragments: ['match.dst_ips[0]: "1.2.3" is not a valid IPv4 or IPv6 address'] },
    { name: 'dns_hostname of a wrong type', doc: withMatch({ dns_hostname: 5 }), fragments: ['match.dns_hostname: 5 must be a string or an object'] },
    { name: 'empty dns_hostname regex', doc: withMatch({ dns_hostname: '' }), fragments: ['match.dns_hostname: "" must not be empty'] },
    { name: 'empty dns_hostname object', doc: withMatch({ dns_hostname: {} }), fragments: ['match.dns_hostname: {} must set at least one of exact, suffix, glob, regex'] },
    {
      name: 'unknown dns_hostname form',
      doc: withMatch({ dns_hostname: { wildcard: ['*.x.com'] } }),
      fragments: ['match.dns_hostname.wildcard: is not a known property (allowed: exact, suffix, glob, regex)'],
    },
    { name: 'bad exact hostname', doc: withMatch({ dns_hostname: { exact: ['exa mple.com'] } }), fragments: ['match.dns_hostname.exact[0]: "exa mple.com" is not a valid hostname'] },
    { name: 'wildcard in a suffix', doc: withMatch({ dns_hostname: { suffix: ['*.github.com'] } }), fragments: ['match.dns_hostname.suffix[0]: "*.github.com" is not a valid hostname'] },
    { name: 'bad glob', doc: withMatch({ dns_hostname: { glob: ['a..b'] } }), fragments: ['match.dns_hostname.glob[0]: "a..b" is not a valid hostname glob'] },
    { name: 'tls without sni', doc: withMatch({ tls: {} }), fragments: ['match.tls.sni: is required'] },
    { name: 'empty sni', doc: withMatch({ tls: { sni: {} } }), fragments: ['match.tls.sni: {} must set at least one of exact, suffix, regex'] },
    { name: 'glob is not an SNI form', doc: withMatch({ tls: { sni: { glob: ['*.x'] } } }), fragments: ['match.tls.sni.glob: is not a known property'] },
    { name: 'bad HTTP method', doc: withMatch({ http: { methods: ['GET POST'] } }), fragments: ['match.http.methods[0]: "GET POST" is not a valid HTTP method'] },
    { name: 'relative HTTP path', doc: withMatch({ http: { path: { prefix: ['api'] } } }), fragments: ['match.http.path.prefix[0]: "api" is not a valid HTTP path (must start with "/")'] },
    { name: 'empty http', doc: withMatch({ http: {} }), fragments: ['match.http: {} must set at least one of methods, host, path'] },
  ];
  for (const row of rows) {
    test(row.name, () => {
      const message = messageOf(row.doc);
      for (const fragment of row.fragments) assert.ok(message.includes(fragment), `expected ${JSON.stringify(fragment)} in: ${message}`);
    });
  }
});

test('all problems are reported at once, in document order', () => {
  const issues = validatePolicy({
    default_policy: 'nope',
    source_groups: [
      G({ rules: [{ id: 'r', action: 'allow', match: { dst_ports: ['9-1'] } }] }),
      G({ id: 'b', sources: { cidrs: ['300.0.0.0/8'] } }),
    ],
  });
  assert.deepStrictEqual(
    issues.map((i) => i.path),
    ['default_policy', 'source_groups[0].rules[0].match.dst_ports[0]', 'source_groups[1].sources.cidrs[0]'],
  );
});

test('the error is a NeuwerkError with HTTP 400, a stable code and the issues as detail', () => {
  let caught: unknown;
  try {
    parsePolicy({ default_policy: 'deny', source_groups: [G({ priority: 'x' })] });
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof PolicyValidationError);
  assert.ok(caught instanceof NeuwerkError);
  assert.equal(caught.httpStatus, 400);
  assert.ok(caught.code in ERROR_CATALOGUE);
  assert.deepStrictEqual(caught.issues, [{ path: 'source_groups[0].priority', message: '"x" must be an integer' }]);
  assert.deepStrictEqual(caught.toJSON(), { error: caught.message, code: caught.code });
  assert.equal(caught.message, 'invalid policy: source_groups[0].priority: "x" must be an integer');
});

test('long bad values are cut in messages', () => {
  const message = messageOf(withMatch({ dst_ips: ['x'.repeat(500)] }));
  assert.ok(message.length < 300, message);
});

test('valid documents are returned as copies without defaults filled in', () => {
  const input = { default_policy: 'allow', source_groups: [G({ rules: [{ id: 'r', action: 'deny', match: { dns_hostname: { suffix: ['example.com'] } } }] })] };
  const doc = parsePolicy(input);
  assert.deepStrictEqual(doc, input);
  assert.notEqual(doc, input);
  assert.equal((doc.source_groups?.[0] as { mode?: string }).mode, undefined);
});

test('a minimal document is valid', () => {
  assert.deepStrictEqual(parsePolicy({ default_policy: 'deny' }), { default_policy: 'deny' });
});

test('the exported JSON schema is plain JSON and validates on its own', () => {
  const schema = JSON.parse(JSON.stringify(POLICY_JSON_SCHEMA)) as Record<string, unknown>;
  const ajv = new Ajv({ allowUnionTypes: true, validateFormats: false });
  const validate = ajv.compile(schema);
  assert.equal(validate({ default_policy: 'deny', source_groups: [G()] }), true);
  assert.equal(validate({ default_policy: 'deny', extra: true }), false);
});

describe('YAML', () => {
  const text = [
    'default_policy: deny',
    'source_groups:',
    '  - id: branch-office',
    '    priority: 10',
    '    sources: { cidrs: [10.10.0.0/16], ips: [10.10.1.20] }',
    '    rules:',
    '      - id: allow-github',
    '        action: allow',
    '        match:',
    "          dns_hostname: '^(.*\\.)?github\\.com$'",
    '          dst_ports: [443, 8000-8100]',
    '',
  ].join('\n');

  test('parses the YAML form, keeping port ranges as strings and regexes verbatim', () => {
    const doc = parsePolicyYaml(text);
    const rule = doc.source_groups?.[0]?.rules?.[0];
    assert.deepStrictEqual(rule?.match.dst_ports, [443, '8000-8100']);
    assert.equal(rule?.match.dns_hostname, '^(.*\\.)?github\\.com$');
  });

  test('round-trips through policyToYaml', () => {
    const doc = parsePolicyYaml(text);
    assert.deepStrictEqual(parsePolicyYaml(policyToYaml(doc)), doc);
  });

  test('YAML syntax errors name the line and column', () => {
    assert.throws(() => parsePolicyYaml('default_policy: deny\nsource_groups: [\n'), (err: unknown) => {
      assert.ok(err instanceof PolicyValidationError);
      assert.match(err.message, /^invalid policy YAML: YAML line \d+, column \d+: /);
      return true;
    });
  });

  test('duplicate keys are refused', () => {
    assert.throws(() => parsePolicyYaml('default_policy: deny\ndefault_policy: allow\n'), /line 2, column 1: Map keys must be unique/);
  });

  test('schema errors in YAML name the path and value', () => {
    assert.throws(() => parsePolicyYaml('default_policy: no\n'), /default_policy: "no" must be one of allow, deny/);
  });
});
