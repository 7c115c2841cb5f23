/**
 * Compiles a validated policy document into indexed matchers (DESIGN §8) so that a decision costs
 * about the same with 10 rules or 100 000.
 *
 * Layout of a `CompiledPolicy`:
 * - one CIDR trie from client prefixes to source groups (by rank = evaluation order);
 * - per group, rules sorted into evaluation order (their `order`), and indexes from flow features
 *   to ascending lists of rule orders: the hostname index (exact and label-suffix hash tables, and
 *   literal suffixes of regexes), a destination prefix index (`dst_ips` and `dst_cidrs`), an SNI
 *   index, an HTTP Host index and a port table, plus a short list of rules no index can hold;
 * - per group, a 32-byte record per rule (selector flags, proto, port ranges) and the text of the
 *   rules that have only globs, so that checking a candidate rarely loads the rule's matchers.
 *
 * Each rule is filed under ONE selector — the first indexable of dns_hostname, dst_ips,
 * dst_cidrs, tls.sni, http.host, dst_ports — because a rule matches only if all its selectors do,
 * so a rule that matches a flow is always among the candidates of that selector. The evaluator
 * merges the hit lists in rule order and checks candidates fully; the first that matches is the
 * same rule a linear first-match scan would find.
 *
 * Every decision a rule, group fallback or default can produce is built here once and frozen, so
 * deciding allocates nothing.
 */
import { createHash } from 'node:crypto';
import { CidrTrie } from './cidr-trie.js';
import { PolicyCompileError } from './errors.js';
import { PrefixIndex } from './prefix-index.js';
import { HostnameGlob, HostnameIndex, HostnameMatcher, normalizeHostname } from './hostname.js';
import { parseDocumentCidr, parseDocumentIp } from './ip.js';
import type { IpAddress, IpPrefix } from './ip.js';
import { MAX_AMBIGUOUS_UNBOUNDED_REPEATS_PATH, analyzeRegex } from './regex-safety.js';
import type { LiteralTail } from './regex-safety.js';
import { parsePortEntry, showValue } from './schema.js';
import type { Decision, PolicyAction, PolicyDocument, PolicyIssue, PolicyMode, PolicyRule, RuleMatch, SourceGroup } from './types.js';

/** Up to this many prefixes a rule checks its own address list linearly; above, it builds a trie. */
export const MAX_LINEAR_PREFIXES = 8;
/** Port ranges up to this wide are expanded into the port table; wider ones are unindexed. */
export const MAX_INDEXED_PORT_RANGE = 64;

function prefixContains(prefix: IpPrefix, address: IpAddress): boolean {
  if (prefix.v6 !== address.v6) return false;
  let remaining = prefix.prefixLength;
  for (let i = 0; remaining > 0; i++, remaining -= 32) {
    const a = address.words[i] as number;
    const p = prefix.words[i] as number;
    if (remaining >= 32) {
      if (a !== p) return false;
    } else if (((a ^ p) & ~(0xffffffff >>> remaining)) !== 0) {
      return false;
    }
  }
  return true;
}

/** A rule's own check of `dst_ips` or `dst_cidrs`. */
export class AddressMatcher {
  private readonly trie: CidrTrie<true> | null = null;

  constructor(private readonly prefixes: readonly IpPrefix[]) {
    if (prefixes.length > MAX_LINEAR_PREFIXES) {
      const trie = new CidrTrie<true>();
      for (const p of prefixes) trie.insert(p, true);
      this.trie = trie;
    }
  }

  matches(address: IpAddress): boolean {
    if (this.trie !== null) return this.trie.contains(address);
    for (const p of this.prefixes) if (prefixContains(p, address)) return true;
    return false;
  }
}

/** Up to this many single ports a rule scans a plain array; above, it uses a Set. */
export const MAX_LINEAR_PORTS = 8;

/** A rule's own check of `dst_ports`. */
export class PortMatcher {
  private readonly singleList: readonly number[];
  private readonly singleSet: ReadonlySet<number> | null;
  /** Inclusive ranges as flat [lo, hi, lo, hi, ...]. */
  private readonly ranges: readonly number[];

  constructor(entries: readonly { lo: number; hi: number }[]) {
    const singles: number[] = [];
    const ranges: number[] = [];
    for (const { lo, hi } of entries) {
      if (lo === hi) singles.push(lo);
      else ranges.push(lo, hi);
    }
    this.singleSet = singles.length > MAX_LINEAR_PORTS ? new Set(singles) : null;
    this.singleList = this.singleSet === null ? singles : [];
    this.ranges = ranges;
  }

  matches(port: number): boolean {
    if (this.singleSet !== null) {
      if (this.singleSet.has(port)) return true;
    } else {
      for (const single of this.singleList) if (single === port) return true;
    }
    const ranges = this.ranges;
    for (let i = 0; i < ranges.length; i += 2) if (port >= (ranges[i] as number) && port <= (ranges[i + 1] as number)) return true;
    return false;
  }
}

/** The normalised plain-HTTP fields of a flow. */
export interface NormalizedHttp {
  readonly method: string;
  readonly host: string;
  readonly path: string;
}

/** A rule's own check of `http`. */
export class HttpMatcher {
  constructor(
    private readonly methods: ReadonlySet<string> | null,
    private readonly hosts: ReadonlySet<string> | null,
    private readonly pathPrefixes: readonly string[] | null,
    private readonly pathExact: ReadonlySet<string> | null,
    private readonly pathRegex: RegExp | null,
    private readonly hasPath: boolean,
  ) {}

  matches(http: NormalizedHttp): boolean {
    if (this.methods !== null && !this.methods.has(http.method)) return false;
    if (this.hosts !== null && !this.hosts.has(http.host)) return false;
    if (!this.hasPath) return true;
    const path = http.path;
    if (this.pathExact !== null && this.pathExact.has(path)) return true;
    if (this.pathPrefixes !== null) for (const prefix of this.pathPrefixes) if (path.startsWith(prefix)) return true;
    return this.pathRegex !== null && this.pathRegex.test(path);
  }
}

export interface CompiledRule {
  readonly id: string;
  /** Position in the group's evaluation order. */
  readonly order: number;
  readonly host: HostnameMatcher | null;
  readonly dstIps: AddressMatcher | null;
  readonly dstCidrs: AddressMatcher | null;
  readonly proto: 'tcp' | 'udp' | null;
  readonly ports: PortMatcher | null;
  readonly sni: HostnameMatcher | null;
  readonly http: HttpMatcher | null;
  readonly decision: Decision;
}

/** Ints per rule in `CompiledGroup.ruleRecords` (32 bytes: a candidate's check touches one record). */
export const RULE_RECORD_INTS = 8;
/** Port ranges kept inline in a rule record; a rule with more is checked by its `PortMatcher`. */
export const MAX_INLINE_PORT_RANGES = 3;
/** Bits of a rule record's first int: the selectors the rule has, and its proto in bits 8–9. */
export const RULE_HAS_HOST = 1;
export const RULE_HAS_DST_IPS = 2;
export const RULE_HAS_DST_CIDRS = 4;
export const RULE_HAS_SNI = 8;
export const RULE_HAS_HTTP = 16;
export const RULE_HAS_PORTS = 32;
/** The rule's ports are not inline: check them with `rule.ports`. */
export const RULE_PORTS_BY_MATCHER = 64;
export const RULE_PROTO_SHIFT = 8;
/** Proto codes in a rule record (0: no constraint). */
export const PROTO_TCP = 1;
export const PROTO_UDP = 2;

/**
 * Writes a rule's flags, proto and (up to `MAX_INLINE_PORT_RANGES`) port ranges as one record at
 * `records[at]`: `[flags | proto << 8, inline range count, lo0, hi0, lo1, hi1, lo2, hi2]`.
 */
function writeRuleRecord(records: Int32Array, at: number, rule: CompiledRule, portRanges: readonly { lo: number; hi: number }[] | null): void {
  let flags = 0;
  if (rule.host !== null) flags |= RULE_HAS_HOST;
  if (rule.dstIps !== null) flags |= RULE_HAS_DST_IPS;
  if (rule.dstCidrs !== null) flags |= RULE_HAS_DST_CIDRS;
  if (rule.sni !== null) flags |= RULE_HAS_SNI;
  if (rule.http !== null) flags |= RULE_HAS_HTTP;
  if (portRanges !== null) {
    flags |= RULE_HAS_PORTS;
    if (portRanges.length > MAX_INLINE_PORT_RANGES) {
      flags |= RULE_PORTS_BY_MATCHER;
    } else {
      records[at + 1] = portRanges.length;
      for (let i = 0; i < portRanges.length; i++) {
        const range = portRanges[i] as { lo: number; hi: number };
        records[at + 2 + 2 * i] = range.lo;
        records[at + 3 + 2 * i] = range.hi;
      }
    }
  }
  const proto = rule.proto === 'tcp' ? PROTO_TCP : rule.proto === 'udp' ? PROTO_UDP : 0;
  records[at] = flags | (proto << RULE_PROTO_SHIFT);
}

export interface CompiledGroup {
  readonly id: string;
  /** Position in the evaluation order of groups. */
  readonly rank: number;
  readonly rules: readonly CompiledRule[];
  /**
   * Per rule order, `RULE_RECORD_INTS` ints (see `writeRuleRecord`): the evaluator checks a
   * candidate's proto and ports, and learns which selectors remain, from this compact record,
   * and loads the rule's matchers only for selectors no index proved.
   */
  readonly ruleRecords: Int32Array;
  /**
   * Per rule order, `[start, end)` in `hostGlobText` of the rule's globs (joined by `,`) when its
   * `dns_hostname` has only globs, else `[-1, -1]`: checking such a candidate reads this pair and
   * the characters, not the rule's matcher objects.
   */
  readonly hostGlobSpans: Int32Array;
  readonly hostGlobText: string;
  /** `rules[order].decision` by order: a rule an index alone proves is decided without loading the rule. */
  readonly decisions: readonly Decision[];
  /** Rules with an indexable `dns_hostname`; serves DNS and connection decisions. */
  readonly hostIndex: HostnameIndex;
  /** Rules with a `dns_hostname` no index holds: checked on every DNS query of the group. */
  readonly dnsUnindexed: readonly number[];
  /** Rules filed under `dst_ips` / `dst_cidrs`, by prefix. */
  readonly dstIndex: PrefixIndex;
  readonly sniIndex: HostnameIndex;
  readonly httpHostIndex: HostnameIndex;
  readonly portIndex: ReadonlyMap<number, number[]>;
  /** Rules no connection index holds: checked on every connection of the group. */
  readonly connectionUnindexed: readonly number[];
  /** The group's `default_action` decision, or null to pass to the next group. */
  readonly defaultDecision: Decision | null;
  /** The DNS deny when no DNS rule of the group matches. */
  readonly dnsFallbackDecision: Decision;
}

export interface CompileStats {
  readonly sourceGroups: number;
  readonly rules: number;
  readonly regexes: number;
  /** Rules checked on every DNS query / connection of their group (not held by an index). */
  readonly dnsUnindexedRules: number;
  readonly connectionUnindexedRules: number;
}

/** The product of `compilePolicy`; immutable, safe to share between the DNS and forward proxies. */
export interface CompiledPolicy {
  readonly document: PolicyDocument;
  /**
   * sha256 of the canonical JSON of the document: equal documents have equal fingerprints.
   * Computed on first read (about half a second for 100k rules).
   */
  readonly fingerprint: string;
  readonly groups: readonly CompiledGroup[];
  /** Client prefixes to the ranks of ALL groups containing them (accumulated: use `longestMatch`). */
  readonly sourceTrie: CidrTrie<number>;
  readonly defaultDecision: Decision;
  readonly dnsNoGroupDecision: Decision;
  readonly stats: CompileStats;
}

function decision(
  action: PolicyAction,
  mode: PolicyMode,
  sourceGroup: string | null,
  ruleId: string | null,
  by: string,
): Decision {
  const audited = action === 'deny' && mode === 'audit';
  const verb = action === 'allow' ? 'allowed' : audited ? 'would be denied' : 'denied';
  return Object.freeze({
    action,
    enforced: audited ? 'allow' : action,
    mode,
    sourceGroup,
    ruleId,
    finding: action === 'allow' ? null : audited ? 'audit' : 'deny',
    reason: `${verb}${by}${audited ? ' (audit mode: allowed)' : ''}`,
  });
}

/** The decision of a matching rule. */
export function ruleDecision(groupId: string, ruleId: string, action: PolicyAction, mode: PolicyMode): Decision {
  return decision(action, mode, groupId, ruleId, ` by rule ${ruleId} in group ${groupId}`);
}

/**
 * Sort key for priority ordering: entries with a priority first (ascending), then entries without,
 * each in list order.
 */
export function evaluationOrder<T extends { readonly priority?: number }>(items: readonly T[]): number[] {
  return items
    .map((item, index) => ({ index, priority: item.priority }))
    .sort((a, b) => {
      if (a.priority !== undefined && b.priority !== undefined && a.priority !== b.priority) return a.priority - b.priority;
      if (a.priority === undefined && b.priority !== undefined) return 1;
      if (a.priority !== undefined && b.priority === undefined) return -1;
      return a.index - b.index;
    })
    .map((x) => x.index);
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** sha256 (hex) of the document's canonical JSON (keys sorted): a version fingerprint. */
export function policyFingerprint(doc: PolicyDocument): string {
  return createHash('sha256').update(canonicalJson(doc)).digest('hex');
}

/** Where index keys of a hostname-like selector go; null when one entry cannot be indexed. */
interface HostKeys {
  /** Names the selector matches exactly (`exact`, globs without `*`): a hit proves a match. */
  exact: string[];
  /** Domains the selector matches with their subdomains (`suffix`): a hit proves a match. */
  labelSuffix: string[];
  /**
   * Domains whose subdomains without a line terminator, and no other names, the selector
   * matches (regexes `(.*\.)?domain`): a hit proves a match for such a name.
   */
  plainLabelSuffix: string[];
  /** Domains every match lies in (globs, regex tails): a hit makes the rule a candidate. */
  labelSuffixCandidates: string[];
  /** Characters every match of some entry ends with (regex tails off label boundaries). */
  stringSuffix: string[];
  /** Characters every match of some entry starts with (regex heads, when it has no tail). */
  stringPrefix: string[];
}

function addHostKeys(index: HostnameIndex, keys: HostKeys, order: number): void {
  for (const k of keys.exact) index.addExact(k, order);
  for (const k of keys.labelSuffix) index.addLabelSuffix(k, order);
  for (const k of keys.plainLabelSuffix) index.addPlainLabelSuffix(k, order);
  for (const k of keys.labelSuffixCandidates) index.addLabelSuffixCandidate(k, order);
  for (const k of keys.stringSuffix) index.addStringSuffix(k, order);
  for (const k of keys.stringPrefix) index.addStringPrefix(k, order);
}

interface RuleContext {
  readonly groupIndex: number;
  readonly ruleIndex: number;
  readonly groupId: string;
  readonly ruleId: string;
  readonly issues: PolicyIssue[];
  regexes: number;
}

function refuse(ctx: RuleContext, message: string): void {
  ctx.issues.push({
    path: `source_groups[${ctx.groupIndex}].rules[${ctx.ruleIndex}]`,
    message: `rule ${showValue(ctx.ruleId)} in group ${showValue(ctx.groupId)}: ${message}`,
  });
}

interface RegexKeys {
  readonly labelSuffix: string[];
  readonly stringSuffix: string[];
  readonly stringPrefix: string[];
}

/**
 * Index keys for a regex from its literal tails. Label-aligned keys go to the label-suffix table,
 * which a lookup probes once per label anyway: a tail `.github.com` or a label-aligned tail
 * `github.com` (as in `(.*\.)?github\.com`) is the key `github.com`; a tail `-internal.corp`
 * falls back to its whole labels (`corp`). Only a dot-less, unaligned tail needs the string-suffix
 * table, which costs one probe per distinct key length. A regex without literal tails is keyed by
 * its literal heads (`host[0-9]+\..+` -> `host`) in the string-prefix table, one probe per
 * distinct head length; with neither it is unindexed (tried on every lookup of its group).
 */
function regexKeys(tails: readonly LiteralTail[] | null, heads: readonly string[] | null): RegexKeys | null {
  if (tails === null) return heads === null ? null : { labelSuffix: [], stringSuffix: [], stringPrefix: [...heads] };
  const labelSuffix: string[] = [];
  const stringSuffix: string[] = [];
  for (const { text, labelStart } of tails) {
    const dot = text.indexOf('.');
    if (dot === 0 && text.length > 1) labelSuffix.push(text.slice(1));
    else if (labelStart) labelSuffix.push(text);
    else if (dot > 0 && dot < text.length - 1) labelSuffix.push(text.slice(dot + 1));
    else stringSuffix.push(text);
  }
  return { labelSuffix, stringSuffix, stringPrefix: [] };
}

/** A literal name, optionally anchored: labels `[A-Za-z0-9_-]+` separated by `\.`. */
const LITERAL_NAME_REGEX = /^\^?((?:[A-Za-z0-9_-]+\\\.)*[A-Za-z0-9_-]+)\$?$/;
/** `(.*\.)?` or `(?:.*\.)?` before a literal name, optionally anchored. */
const LITERAL_SUBDOMAINS_REGEX = /^\^?\((?:\?:)?\.\*\\\.\)\?((?:[A-Za-z0-9_-]+\\\.)*[A-Za-z0-9_-]+)\$?$/;

/**
 * The name a hostname regex (compiled as `^(?:source)$`, case-insensitive) matches when the
 * source is a literal name, or is `(.*\.)?` before a literal name (`subdomains`), else null.
 * Such a regex needs no execution: a literal matches exactly the (lowercased) name, and the
 * subdomain form exactly the names that have the name as label suffix and contain no line
 * terminator (which `.` does not match). Letters are ASCII, so case-insensitive matching of a
 * normalised hostname is equality with the lowercased literal.
 */
export function literalHostRegex(source: string): { name: string; subdomains: boolean } | null {
  const subdomains = LITERAL_SUBDOMAINS_REGEX.exec(source);
  const match = subdomains ?? LITERAL_NAME_REGEX.exec(source);
  if (match === null) return null;
  const name = (match[1] as string).replaceAll('\\.', '.').toLowerCase();
  return { name, subdomains: subdomains !== null };
}

function compileRegex(
  ctx: RuleContext,
  where: string,
  source: string,
  subject: 'hostname' | 'path',
): { regex: RegExp; keys: RegexKeys | null } | null {
  ctx.regexes++;
  const analysis =
    subject === 'hostname'
      ? analyzeRegex(source, { caseInsensitive: true })
      : analyzeRegex(source, { caseInsensitive: false, maxAmbiguousUnboundedRepeats: MAX_AMBIGUOUS_UNBOUNDED_REPEATS_PATH });
  if (!analysis.ok) {
    refuse(ctx, `${where} regex ${showValue(source)} ${analysis.reason}`);
    return null;
  }
  return { regex: analysis.regex, keys: regexKeys(analysis.literalTails, analysis.literalHeads) };
}

interface CompiledHostSelector {
  readonly matcher: HostnameMatcher;
  readonly keys: HostKeys | null;
  /** The normalised globs when the selector has globs and nothing else, else null. */
  readonly globsOnly: readonly string[] | null;
}

function compileHostSelector(
  ctx: RuleContext,
  where: string,
  spec: { exact?: readonly string[]; suffix?: readonly string[]; glob?: readonly string[]; regex?: string },
): CompiledHostSelector | null {
  const keys: HostKeys = { exact: [], labelSuffix: [], plainLabelSuffix: [], labelSuffixCandidates: [], stringSuffix: [], stringPrefix: [] };
  let indexable = true;
  const exact = spec.exact === undefined ? null : new Set(spec.exact.map(normalizeHostname));
  if (exact !== null) keys.exact.push(...exact);
  const suffixes = spec.suffix === undefined ? null : [...new Set(spec.suffix.map(normalizeHostname))];
  if (suffixes !== null) keys.labelSuffix.push(...suffixes);
  let globs: HostnameGlob[] | null = null;
  if (spec.glob !== undefined) {
    globs = [];
    for (const text of spec.glob) {
      const glob = new HostnameGlob(normalizeHostname(text));
      globs.push(glob);
      const key = glob.indexKey();
      if (key === null) indexable = false;
      else if (key.kind === 'exact') keys.exact.push(key.key);
      else keys.labelSuffixCandidates.push(key.key);
    }
  }
  let regex: RegExp | null = null;
  if (spec.regex !== undefined) {
    const compiled = compileRegex(ctx, where, spec.regex, 'hostname');
    if (compiled === null) return null;
    regex = compiled.regex;
    const literal = literalHostRegex(spec.regex);
    if (literal !== null) {
      (literal.subdomains ? keys.plainLabelSuffix : keys.exact).push(literal.name);
    } else if (compiled.keys === null) {
      indexable = false;
    } else {
      keys.labelSuffixCandidates.push(...compiled.keys.labelSuffix);
      keys.stringSuffix.push(...compiled.keys.stringSuffix);
      keys.stringPrefix.push(...compiled.keys.stringPrefix);
    }
  }
  const globsOnly = globs !== null && exact === null && suffixes === null && regex === null ? globs.map((g) => g.text) : null;
  return { matcher: new HostnameMatcher(exact, suffixes, globs, regex), keys: indexable ? keys : null, globsOnly };
}

function compileAddresses(ctx: RuleContext, where: string, entries: readonly string[], cidr: boolean): IpPrefix[] | null {
  const prefixes: IpPrefix[] = [];
  for (const text of entries) {
    if (cidr) {
      const parsed = parseDocumentCidr(text);
      if (!parsed.ok) {
        refuse(ctx, `${where} ${showValue(text)} ${parsed.reason}`);
        return null;
      }
      prefixes.push(parsed.value);
    } else {
      const parsed = parseDocumentIp(text);
      if (!parsed.ok) {
        refuse(ctx, `${where} ${showValue(text)} ${parsed.reason}`);
        return null;
      }
      prefixes.push({ ...parsed.value, prefixLength: parsed.value.v6 ? 128 : 32 });
    }
  }
  return prefixes;
}

interface RulePlan {
  readonly rule: CompiledRule;
  readonly hostKeys: HostKeys | null;
  readonly hostGlobs: readonly string[] | null;
  readonly hasHost: boolean;
  readonly dstIpPrefixes: readonly IpPrefix[] | null;
  readonly dstCidrPrefixes: readonly IpPrefix[] | null;
  readonly sniKeys: HostKeys | null;
  readonly httpHosts: readonly string[] | null;
  readonly portRanges: readonly { lo: number; hi: number }[] | null;
}

function compileRule(ctx: RuleContext, groupId: string, groupMode: PolicyMode, rule: PolicyRule, order: number): RulePlan | null {
  const match: RuleMatch = rule.match;
  const issuesBefore = ctx.issues.length;

  let host: CompiledHostSelector | null = null;
  if (match.dns_hostname !== undefined) {
    const spec = typeof match.dns_hostname === 'string' ? { regex: match.dns_hostname } : match.dns_hostname;
    host = compileHostSelector(ctx, 'match.dns_hostname', spec);
  }
  const dstIpPrefixes = match.dst_ips === undefined ? null : compileAddresses(ctx, 'match.dst_ips', match.dst_ips, false);
  const dstCidrPrefixes = match.dst_cidrs === undefined ? null : compileAddresses(ctx, 'match.dst_cidrs', match.dst_cidrs, true);
  let portRanges: { lo: number; hi: number }[] | null = null;
  if (match.dst_ports !== undefined) {
    portRanges = [];
    for (const entry of match.dst_ports) {
      const range = parsePortEntry(entry);
      if (range === null) refuse(ctx, `match.dst_ports ${showValue(entry)} is not a valid port or port range`);
      else portRanges.push(range);
    }
  }
  const sni = match.tls === undefined ? null : compileHostSelector(ctx, 'match.tls.sni', match.tls.sni);
  let http: HttpMatcher | null = null;
  let httpHosts: string[] | null = null;
  if (match.http !== undefined) {
    const h = match.http;
    let pathRegex: RegExp | null = null;
    if (h.path?.regex !== undefined) pathRegex = compileRegex(ctx, 'match.http.path', h.path.regex, 'path')?.regex ?? null;
    httpHosts = h.host === undefined ? null : [...new Set(h.host.map(normalizeHostname))];
    http = new HttpMatcher(
      h.methods === undefined ? null : new Set(h.methods.map((m) => m.toUpperCase())),
      httpHosts === null ? null : new Set(httpHosts),
      h.path?.prefix ?? null,
      h.path?.exact === undefined ? null : new Set(h.path.exact),
      pathRegex,
      h.path !== undefined,
    );
  }

  // Selector combinations that can never match a flow.
  if (match.tls !== undefined && match.http !== undefined) {
    refuse(ctx, 'match.tls and match.http can never both match (tls.sni applies to TLS tunnels, http to plain-HTTP requests)');
  }
  if (match.proto === 'udp' && (match.tls !== undefined || match.http !== undefined)) {
    refuse(ctx, 'match.proto udp can never match together with tls or http selectors, which describe TCP connections');
  }
  if (dstIpPrefixes !== null && dstCidrPrefixes !== null) {
    const some = dstIpPrefixes.some((ip) => dstCidrPrefixes.some((c) => prefixContains(c, ip)));
    if (!some) refuse(ctx, 'no address of match.dst_ips lies in match.dst_cidrs, and a rule needs both to match');
  }
  if (ctx.issues.length > issuesBefore) return null;

  const mode = rule.mode ?? groupMode;
  const compiled: CompiledRule = {
    id: rule.id,
    order,
    host: host?.matcher ?? null,
    dstIps: dstIpPrefixes === null ? null : new AddressMatcher(dstIpPrefixes),
    dstCidrs: dstCidrPrefixes === null ? null : new AddressMatcher(dstCidrPrefixes),
    proto: match.proto === undefined || match.proto === 'any' ? null : match.proto,
    ports: portRanges === null ? null : new PortMatcher(portRanges),
    sni: sni?.matcher ?? null,
    http,
    decision: ruleDecision(groupId, rule.id, rule.action, mode),
  };
  return {
    rule: compiled,
    hostKeys: host?.keys ?? null,
    hostGlobs: host?.globsOnly ?? null,
    hasHost: host !== null,
    dstIpPrefixes,
    dstCidrPrefixes,
    sniKeys: sni?.keys ?? null,
    httpHosts,
    portRanges,
  };
}

function portsIndexable(ranges: readonly { lo: number; hi: number }[]): boolean {
  return ranges.every((r) => r.hi - r.lo < MAX_INDEXED_PORT_RANGE);
}

function compileGroup(group: SourceGroup, groupIndex: number, rank: number, issues: PolicyIssue[], counters: { regexes: number }): CompiledGroup {
  const groupMode: PolicyMode = group.mode ?? 'enforce';
  const rules = group.rules ?? [];
  const compiledRules: CompiledRule[] = [];
  const rulePortRanges: (readonly { lo: number; hi: number }[] | null)[] = [];
  const ruleHostGlobs: (readonly string[] | null)[] = [];
  const hostIndex = new HostnameIndex();
  const dnsUnindexed: number[] = [];
  const dstIndex = new PrefixIndex();
  const sniIndex = new HostnameIndex();
  const httpHostIndex = new HostnameIndex();
  const portIndex = new Map<number, number[]>();
  const connectionUnindexed: number[] = [];

  for (const ruleIndex of evaluationOrder(rules)) {
    const rule = rules[ruleIndex] as PolicyRule;
    const ctx: RuleContext = { groupIndex, ruleIndex, groupId: group.id, ruleId: rule.id, issues, regexes: 0 };
    const order = compiledRules.length;
    const plan = compileRule(ctx, group.id, groupMode, rule, order);
    counters.regexes += ctx.regexes;
    if (plan === null) continue;
    compiledRules.push(plan.rule);
    rulePortRanges.push(plan.portRanges);
    ruleHostGlobs.push(plan.hostGlobs);

    if (plan.hasHost && plan.hostKeys === null) dnsUnindexed.push(order);
    if (plan.hostKeys !== null) {
      addHostKeys(hostIndex, plan.hostKeys, order);
    } else if (plan.dstIpPrefixes !== null) {
      for (const p of plan.dstIpPrefixes) dstIndex.insert(p, order);
    } else if (plan.dstCidrPrefixes !== null) {
      for (const p of plan.dstCidrPrefixes) dstIndex.insert(p, order);
    } else if (plan.sniKeys !== null) {
      addHostKeys(sniIndex, plan.sniKeys, order);
    } else if (plan.httpHosts !== null) {
      for (const h of plan.httpHosts) httpHostIndex.addExact(h, order);
    } else if (plan.portRanges !== null && portsIndexable(plan.portRanges)) {
      for (const { lo, hi } of plan.portRanges) {
        for (let port = lo; port <= hi; port++) {
          const list = portIndex.get(port);
          if (list === undefined) portIndex.set(port, [order]);
          else if (list[list.length - 1] !== order) list.push(order);
        }
      }
    } else {
      connectionUnindexed.push(order);
    }
  }

  const ruleRecords = new Int32Array(compiledRules.length * RULE_RECORD_INTS);
  compiledRules.forEach((rule, order) => writeRuleRecord(ruleRecords, order * RULE_RECORD_INTS, rule, rulePortRanges[order] ?? null));
  const hostGlobSpans = new Int32Array(compiledRules.length * 2).fill(-1);
  const globParts: string[] = [];
  let globChars = 0;
  ruleHostGlobs.forEach((globs, order) => {
    // Globs are hostnames with `*` (never a `,`), checked by the schema; keep any other on its matcher.
    if (globs === null || globs.some((g) => g.includes(','))) return;
    const joined = globs.join(',');
    hostGlobSpans[2 * order] = globChars;
    hostGlobSpans[2 * order + 1] = globChars + joined.length;
    globParts.push(joined);
    globChars += joined.length + 1;
  });
  const hostGlobText = globParts.join(',');
  hostIndex.seal();
  dstIndex.seal();
  sniIndex.seal();
  httpHostIndex.seal();
  return {
    id: group.id,
    rank,
    rules: compiledRules,
    ruleRecords,
    hostGlobSpans,
    hostGlobText,
    decisions: compiledRules.map((r) => r.decision),
    hostIndex,
    dnsUnindexed,
    dstIndex,
    sniIndex,
    httpHostIndex,
    portIndex,
    connectionUnindexed,
    defaultDecision:
      group.default_action === undefined
        ? null
        : decision(group.default_action, groupMode, group.id, null, ` by default_action of group ${group.id}`),
    dnsFallbackDecision: decision('deny', groupMode, group.id, null, `: no DNS rule matched in group ${group.id}`),
  };
}

/** The sorted union of two ascending lists of group ranks. */
function mergeAscending(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = i < a.length ? (a[i] as number) : Infinity;
    const y = j < b.length ? (b[j] as number) : Infinity;
    const next = Math.min(x, y);
    if (out[out.length - 1] !== next) out.push(next);
    if (x === next) i++;
    if (y === next) j++;
  }
  return out;
}

/**
 * Compiles a document that passed `parsePolicy` into a `CompiledPolicy`. Pure and deterministic.
 * @throws PolicyCompileError listing every rule that cannot compile, each named as
 *   `source_groups[i].rules[j]` with its id and the reason (unsafe or invalid regex, selectors
 *   that can never match together).
 */
export function compilePolicy(doc: PolicyDocument): CompiledPolicy {
  const issues: PolicyIssue[] = [];
  const groupsInput = doc.source_groups ?? [];
  const sourceTrie = new CidrTrie<number>();
  const groups: CompiledGroup[] = [];
  const counters = { regexes: 0 };
  evaluationOrder(groupsInput).forEach((groupIndex, rank) => {
    const group = groupsInput[groupIndex] as SourceGroup;
    groups.push(compileGroup(group, groupIndex, rank, issues, counters));
    const path = `source_groups[${groupIndex}].sources`;
    (group.sources.cidrs ?? []).forEach((text, i) => {
      const parsed = parseDocumentCidr(text);
      if (parsed.ok) sourceTrie.insert(parsed.value, rank);
      else issues.push({ path: `${path}.cidrs[${i}]`, message: `${showValue(text)} ${parsed.reason}` });
    });
    (group.sources.ips ?? []).forEach((text, i) => {
      const parsed = parseDocumentIp(text);
      if (parsed.ok) sourceTrie.insert({ ...parsed.value, prefixLength: parsed.value.v6 ? 128 : 32 }, rank);
      else issues.push({ path: `${path}.ips[${i}]`, message: `${showValue(text)} ${parsed.reason}` });
    });
  });
  if (issues.length > 0) throw new PolicyCompileError(issues);
  sourceTrie.accumulate(mergeAscending);

  let rules = 0;
  let dnsUnindexedRules = 0;
  let connectionUnindexedRules = 0;
  for (const g of groups) {
    rules += g.rules.length;
    dnsUnindexedRules += g.dnsUnindexed.length;
    connectionUnindexedRules += g.connectionUnindexed.length;
  }
  let fingerprint: string | null = null;
  return {
    document: doc,
    get fingerprint(): string {
      fingerprint ??= policyFingerprint(doc);
      return fingerprint;
    },
    groups,
    sourceTrie,
    defaultDecision: decision(doc.default_policy, 'enforce', null, null, ' by default_policy (no source group decided)'),
    dnsNoGroupDecision: decision('deny', 'enforce', null, null, ': the source is in no source group'),
    stats: { sourceGroups: groups.length, rules, regexes: counters.regexes, dnsUnindexedRules, connectionUnindexedRules },
  };
}
