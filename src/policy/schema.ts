/**
 * The policy document's JSON schema (DESIGN §8), its validation with readable errors, and the
 * YAML form.
 *
 * Validation is ajv (all errors at once) with a few neuwerk formats for values JSON Schema cannot
 * express (IP addresses, CIDRs, port ranges, DNS names and globs), plus id uniqueness. Every issue
 * names the failing path and the bad value: `source_groups[2].rules[0].match.dst_ports[1]: "80-70"
 * is not a valid port range`. Regex safety is the compiler's job (`compiler.ts`).
 */
import { Ajv } from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { LineCounter, parseDocument, stringify } from 'yaml';
import { PolicyValidationError } from './errors.js';
import { isValidHostname, isValidHostnameGlob } from './hostname.js';
import { parseDocumentCidr, parseDocumentIp } from './ip.js';
import type { PolicyDocument, PolicyIssue } from './types.js';

export const ID_PATTERN = '^[A-Za-z0-9._-]{1,128}$';
export const HTTP_METHOD_PATTERN = '^[A-Za-z]{1,32}$';
export const HTTP_PATH_PATTERN = '^/';
export const MIN_PRIORITY = -2147483648;
export const MAX_PRIORITY = 2147483647;
export const MAX_SOURCE_GROUPS = 10_000;
export const MAX_RULES_PER_GROUP = 1_000_000;
/** Entries in one list (cidrs, ips, hostnames, ports, ...). */
export const MAX_LIST_ENTRIES = 100_000;
export const MAX_HTTP_PATH_CHARS = 2048;
/** Longest regex source the schema takes; the compiler's safety bound is tighter. */
export const MAX_PATTERN_SCHEMA_CHARS = 4096;
/** Bad values longer than this are cut in messages. */
export const MAX_VALUE_IN_MESSAGE_CHARS = 80;

const PORT_RANGE_TEXT = /^([0-9]{1,5})(?:-([0-9]{1,5}))?$/;

/** Parses a port entry (`443`, `"443"`, `"8000-8100"`) into an inclusive range, or null. */
export function parsePortEntry(entry: number | string): { lo: number; hi: number } | null {
  if (typeof entry === 'number') return Number.isInteger(entry) && entry >= 1 && entry <= 65535 ? { lo: entry, hi: entry } : null;
  const m = PORT_RANGE_TEXT.exec(entry);
  if (m === null) return null;
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (lo < 1 || hi > 65535 || lo > hi) return null;
  return { lo, hi };
}

const list = (format: string | null, description: string, minItems = 1): Record<string, unknown> => ({
  type: 'array',
  description,
  minItems,
  maxItems: MAX_LIST_ENTRIES,
  items: format === null ? { type: 'string' } : { type: 'string', format },
});

const ACTION = { type: 'string', enum: ['allow', 'deny'] };
const MODE = { type: 'string', enum: ['enforce', 'audit'] };
const PRIORITY = {
  type: 'integer',
  minimum: MIN_PRIORITY,
  maximum: MAX_PRIORITY,
  description: 'Lower first; entries without a priority come after all entries with one, in list order.',
};
const REGEX = {
  type: 'string',
  minLength: 1,
  maxLength: MAX_PATTERN_SCHEMA_CHARS,
  description: 'Regular expression matched against the whole value (implicitly ^(?:...)$); see the regex safety rules.',
};

/**
 * The JSON schema of the policy document (draft 2020-12 / OpenAPI 3.1 compatible; the custom
 * `format`s are `ip-address`, `ip-cidr`, `port-range`, `dns-name`, `dns-name-glob`). Unknown keys
 * are rejected everywhere.
 */
export const POLICY_JSON_SCHEMA = {
  title: 'neuwerk policy',
  type: 'object',
  additionalProperties: false,
  required: ['default_policy'],
  properties: {
    default_policy: { ...ACTION, description: 'Applies when no source group decides.' },
    source_groups: {
      type: 'array',
      maxItems: MAX_SOURCE_GROUPS,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'sources'],
        properties: {
          id: { type: 'string', title: 'id', pattern: ID_PATTERN, description: 'Unique among source groups.' },
          mode: { ...MODE, default: 'enforce', description: 'audit turns denies into allow plus a finding.' },
          priority: PRIORITY,
          sources: {
            type: 'object',
            additionalProperties: false,
            properties: {
              cidrs: list('ip-cidr', 'Client networks (IPv4 or IPv6).', 0),
              ips: list('ip-address', 'Client addresses (IPv4 or IPv6).', 0),
            },
          },
          default_action: { ...ACTION, description: 'Decides when no rule of the group matches.' },
          rules: {
            type: 'array',
            maxItems: MAX_RULES_PER_GROUP,
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['id', 'action', 'match'],
              properties: {
                id: { type: 'string', title: 'id', pattern: ID_PATTERN, description: 'Unique within the group.' },
                priority: PRIORITY,
                action: ACTION,
                mode: { ...MODE, description: "Overrides the group's mode for this rule." },
                match: {
                  type: 'object',
                  additionalProperties: false,
                  description: 'Every given selector must match; an empty match matches every connection and no DNS query.',
                  properties: {
                    dns_hostname: {
                      type: ['string', 'object'],
                      description:
                        'A string is a regex on the whole hostname; the object form lists exact names, suffixes ' +
                        '(the domain and its subdomains), globs (* within one label) and/or a regex; any entry may match.',
                      minLength: 1,
                      maxLength: MAX_PATTERN_SCHEMA_CHARS,
                      additionalProperties: false,
                      minProperties: 1,
                      properties: {
                        exact: list('dns-name', 'Hostnames matched exactly.'),
                        suffix: list('dns-name', 'Domains matched with all their subdomains.'),
                        glob: list('dns-name-glob', 'Hostname globs; * matches within one label.'),
                        regex: REGEX,
                      },
                    },
                    dst_cidrs: list('ip-cidr', 'Destination networks.'),
                    dst_ips: list('ip-address', 'Destination addresses.'),
                    proto: { type: 'string', enum: ['tcp', 'udp', 'any'] },
                    dst_ports: {
                      type: 'array',
                      minItems: 1,
                      maxItems: MAX_LIST_ENTRIES,
                      items: {
                        type: ['integer', 'string'],
                        title: 'port',
                        minimum: 1,
                        maximum: 65535,
                        format: 'port-range',
                        description: 'A port (1-65535) or an inclusive range "lo-hi".',
                      },
                    },
                    tls: {
                      type: 'object',
                      additionalProperties: false,
                      required: ['sni'],
                      properties: {
                        sni: {
                          type: 'object',
                          additionalProperties: false,
                          minProperties: 1,
                          description: 'Matches only TLS tunnels with an SNI; any entry may match.',
                          properties: {
                            exact: list('dns-name', 'Server names matched exactly.'),
                            suffix: list('dns-name', 'Domains matched with all their subdomains.'),
                            regex: REGEX,
                          },
                        },
                      },
                    },
                    http: {
                      type: 'object',
                      additionalProperties: false,
                      minProperties: 1,
                      description: 'Matches only plain-HTTP requests; every given field must match.',
                      properties: {
                        methods: {
                          type: 'array',
                          minItems: 1,
                          maxItems: MAX_LIST_ENTRIES,
                          items: { type: 'string', title: 'HTTP method', pattern: HTTP_METHOD_PATTERN },
                        },
                        host: list('dns-name', 'Host header values (the port is ignored).'),
                        path: {
                          type: 'object',
                          additionalProperties: false,
                          minProperties: 1,
                          properties: {
                            prefix: {
                              type: 'array',
                              minItems: 1,
                              maxItems: MAX_LIST_ENTRIES,
                              items: { type: 'string', title: 'HTTP path', pattern: HTTP_PATH_PATTERN, maxLength: MAX_HTTP_PATH_CHARS },
                            },
                            exact: {
                              type: 'array',
                              minItems: 1,
                              maxItems: MAX_LIST_ENTRIES,
                              items: { type: 'string', title: 'HTTP path', pattern: HTTP_PATH_PATTERN, maxLength: MAX_HTTP_PATH_CHARS },
                            },
                            regex: REGEX,
                          },
                        },
                      },
                    },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
} as const;

let validator: ValidateFunction | null = null;

function getValidator(): ValidateFunction {
  if (validator === null) {
    const ajv = new Ajv({ allErrors: true, allowUnionTypes: true, strict: true, verbose: true });
    ajv.addFormat('ip-address', (v: string) => parseDocumentIp(v).ok);
    ajv.addFormat('ip-cidr', (v: string) => parseDocumentCidr(v).ok);
    ajv.addFormat('port-range', (v: string) => parsePortEntry(v) !== null);
    ajv.addFormat('dns-name', isValidHostname);
    ajv.addFormat('dns-name-glob', isValidHostnameGlob);
    validator = ajv.compile(POLICY_JSON_SCHEMA);
  }
  return validator;
}

/** `/source_groups/2/rules/0` -> `source_groups[2].rules[0]`. */
function pointerToPath(pointer: string): string {
  if (pointer === '') return '';
  let path = '';
  for (const raw of pointer.slice(1).split('/')) {
    const token = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^[0-9]+$/.test(token)) path += `[${token}]`;
    else path += path === '' ? token : `.${token}`;
  }
  return path;
}

function childPath(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/** A value as shown in messages: JSON, cut to a bounded length. */
export function showValue(value: unknown): string {
  let text: string;
  try {
    text = value === undefined ? 'undefined' : JSON.stringify(value);
  } catch {
    text = String(value);
  }
  if (text === undefined) text = String(value);
  return text.length > MAX_VALUE_IN_MESSAGE_CHARS ? `${text.slice(0, MAX_VALUE_IN_MESSAGE_CHARS - 1)}…` : text;
}

const TYPE_NAMES: Record<string, string> = {
  object: 'an object',
  array: 'a list',
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'a boolean',
};

function describeTypes(types: unknown): string {
  const names = (Array.isArray(types) ? types : String(types).split(',')).map((t) => TYPE_NAMES[String(t)] ?? String(t));
  return names.join(' or ');
}

function formatMessage(format: string, value: unknown): string {
  const shown = showValue(value);
  switch (format) {
    case 'ip-address': {
      const parsed = typeof value === 'string' ? parseDocumentIp(value) : null;
      return `${shown} ${parsed !== null && !parsed.ok ? parsed.reason : 'is not a valid IP address'}`;
    }
    case 'ip-cidr': {
      const parsed = typeof value === 'string' ? parseDocumentCidr(value) : null;
      return `${shown} ${parsed !== null && !parsed.ok ? parsed.reason : 'is not a valid CIDR'}`;
    }
    case 'port-range':
      return `${shown} is not a valid port range (a port 1-65535 or "lo-hi" with lo <= hi)`;
    case 'dns-name':
      return `${shown} is not a valid hostname (dot-separated labels of A-Z a-z 0-9 - _)`;
    case 'dns-name-glob':
      return `${shown} is not a valid hostname glob (labels of A-Z a-z 0-9 - _ and *)`;
    default:
      return `${shown} does not match format ${format}`;
  }
}

function renderAjvError(error: ErrorObject): PolicyIssue {
  const path = pointerToPath(error.instancePath);
  const value: unknown = error.data;
  const shown = showValue(value);
  const parent = error.parentSchema as { title?: string; properties?: Record<string, unknown> } | undefined;
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'required':
      return { path: childPath(path, String(params.missingProperty)), message: 'is required' };
    case 'additionalProperties': {
      const allowed = Object.keys(parent?.properties ?? {}).join(', ');
      return { path: childPath(path, String(params.additionalProperty)), message: `is not a known property (allowed: ${allowed})` };
    }
    case 'type':
      return { path, message: `${shown} must be ${describeTypes(params.type)}` };
    case 'enum':
      return { path, message: `${shown} must be one of ${(params.allowedValues as unknown[]).join(', ')}` };
    case 'format':
      return { path, message: formatMessage(String(params.format), value) };
    case 'pattern':
      if (parent?.title === 'id') return { path, message: `${shown} is not a valid id (1-128 characters of A-Z a-z 0-9 . _ -)` };
      if (parent?.title === 'HTTP method') return { path, message: `${shown} is not a valid HTTP method (letters only)` };
      if (parent?.title === 'HTTP path') return { path, message: `${shown} is not a valid HTTP path (must start with "/")` };
      return { path, message: `${shown} must match ${String(params.pattern)}` };
    case 'minimum':
    case 'maximum':
      if (parent?.title === 'port') return { path, message: `${shown} is not a valid port (1-65535)` };
      return { path, message: `${shown} must be ${String(params.comparison)} ${String(params.limit)}` };
    case 'minItems':
      return { path, message: Number(params.limit) === 1 ? 'must not be empty' : `must have at least ${String(params.limit)} entries` };
    case 'maxItems':
      return {
        path,
        message: `has ${Array.isArray(value) ? value.length : '?'} entries; at most ${String(params.limit)} are allowed`,
      };
    case 'minLength':
      return { path, message: `${shown} must not be empty` };
    case 'maxLength':
      return { path, message: `${shown} is longer than ${String(params.limit)} characters` };
    case 'minProperties':
      return { path, message: `${shown} must set at least one of ${Object.keys(parent?.properties ?? {}).join(', ')}` };
    default:
      return { path, message: `${shown} ${error.message ?? 'is invalid'}` };
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Checks JSON Schema cannot: unique group ids and unique rule ids per group. Tolerates any shape. */
function checkIds(input: unknown): PolicyIssue[] {
  const issues: PolicyIssue[] = [];
  if (!isRecord(input) || !Array.isArray(input.source_groups)) return issues;
  const groupIds = new Map<string, number>();
  input.source_groups.forEach((group: unknown, g: number) => {
    if (!isRecord(group)) return;
    if (typeof group.id === 'string') {
      const first = groupIds.get(group.id);
      if (first === undefined) groupIds.set(group.id, g);
      else issues.push({ path: `source_groups[${g}].id`, message: `${showValue(group.id)} duplicates source_groups[${first}].id` });
    }
    if (!Array.isArray(group.rules)) return;
    const ruleIds = new Map<string, number>();
    group.rules.forEach((rule: unknown, r: number) => {
      if (!isRecord(rule) || typeof rule.id !== 'string') return;
      const first = ruleIds.get(rule.id);
      if (first === undefined) ruleIds.set(rule.id, r);
      else {
        issues.push({
          path: `source_groups[${g}].rules[${r}].id`,
          message: `${showValue(rule.id)} duplicates source_groups[${g}].rules[${first}].id`,
        });
      }
    });
  });
  return issues;
}

function pathTokens(path: string): (string | number)[] {
  return path.split(/[.[\]]+/).filter((t) => t !== '').map((t) => (/^[0-9]+$/.test(t) ? Number(t) : t));
}

/** Document order: by path, numerically for indexes. */
function comparePaths(a: string, b: string): number {
  const ta = pathTokens(a);
  const tb = pathTokens(b);
  for (let i = 0; i < Math.min(ta.length, tb.length); i++) {
    const x = ta[i] as string | number;
    const y = tb[i] as string | number;
    if (x === y) continue;
    if (typeof x === 'number' && typeof y === 'number') return x - y;
    return String(x) < String(y) ? -1 : 1;
  }
  return ta.length - tb.length;
}

/** All problems of `input` as a policy document, in document order; empty when valid. */
export function validatePolicy(input: unknown): PolicyIssue[] {
  if (!isRecord(input)) return [{ path: '', message: `the policy must be an object, got ${showValue(input)}` }];
  const validate = getValidator();
  const issues: PolicyIssue[] = [];
  if (!validate(input)) for (const error of validate.errors ?? []) issues.push(renderAjvError(error));
  issues.push(...checkIds(input));
  const seen = new Set<string>();
  const unique = issues.filter((i) => {
    const key = `${i.path}\u0000${i.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return unique.map((issue, index) => ({ issue, index }))
    .sort((a, b) => comparePaths(a.issue.path, b.issue.path) || a.index - b.index)
    .map((x) => x.issue);
}

/**
 * Validates a parsed JSON value as a policy document and returns a deep copy typed as one.
 * Defaults are not filled in (what was given is what is stored and shown).
 * @throws PolicyValidationError naming every failing path and value.
 */
export function parsePolicy(input: unknown): PolicyDocument {
  let issues: PolicyIssue[];
  try {
    issues = validatePolicy(input);
  } catch (err) {
    if (err instanceof RangeError) throw new PolicyValidationError([{ path: '', message: 'the document nests too deeply to check' }]);
    throw err;
  }
  if (issues.length > 0) throw new PolicyValidationError(issues);
  // A JSON round trip: a deep copy the caller cannot mutate behind our back, and plain JSON data.
  return JSON.parse(JSON.stringify(input)) as PolicyDocument;
}

/**
 * Parses and validates the YAML form (YAML 1.2 core schema: `no` stays a string, `8000-8100` is a
 * string, duplicate keys are errors).
 * @throws PolicyValidationError for YAML syntax errors (with line and column) or schema problems.
 */
export function parsePolicyYaml(text: string): PolicyDocument {
  const lineCounter = new LineCounter();
  let value: unknown;
  try {
    // logLevel 'error': the parser's warnings stay in doc.warnings instead of process warnings on stderr.
    const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter, logLevel: 'error' });
    if (doc.errors.length > 0) {
      const issues = doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        const where = `line ${pos.line}, column ${pos.col}: `;
        return { path: '', message: `YAML ${where}${e.message.split('\n')[0] ?? ''}` };
      });
      throw new PolicyValidationError(issues, 'invalid policy YAML');
    }
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    if (err instanceof PolicyValidationError) throw err;
    // toJS refuses alias expansion beyond maxAliasCount ("billion laughs"); deep nesting can
    // exhaust the stack. Either way the document is refused, not the server.
    const reason = err instanceof RangeError ? 'nested too deeply' : (err as Error).message.split('\n')[0] ?? 'unreadable';
    throw new PolicyValidationError([{ path: '', message: `YAML: ${reason}` }], 'invalid policy YAML');
  }
  return parsePolicy(value);
}

/** The YAML form of a document, keys in the document's order, no line folding. */
export function policyToYaml(doc: PolicyDocument): string {
  return stringify(doc, { lineWidth: 0 });
}
