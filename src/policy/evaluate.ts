/**
 * Decisions against a `CompiledPolicy` (DESIGN §8). Synchronous, allocation-free on the hot path
 * (decisions are the compiler's frozen objects; scratch lists are reused), and independent of the
 * number of rules: candidates come from the indexes, never from a scan of all rules.
 *
 * ## Evaluation order (both kinds of decision)
 * 1. The source groups that contain the client IP, ordered by `priority` ascending, groups with a
 *    priority before groups without one, ties and priority-less groups in list order.
 * 2. Within a group, rules in the same order (priority ascending, then without priority, list
 *    order as tie-break). The first rule that matches decides, with its effective mode
 *    (`rule.mode ?? group.mode ?? enforce`).
 *
 * ## Connections (`decideConnection`)
 * | situation in the current group              | outcome                                         |
 * |---------------------------------------------|-------------------------------------------------|
 * | a rule matches                              | that rule decides                               |
 * | no rule matches, `default_action` is set    | `default_action` decides, with the group's mode |
 * | no rule matches, no `default_action`        | go on to the next group                         |
 * | no group left (or the source is in none)    | `default_policy` decides, always enforced       |
 *
 * A rule matches when every selector it has matches: `dns_hostname` against the requested
 * hostname (an IP-literal connection has no hostname, so it never matches a hostname rule),
 * `dst_ips` and `dst_cidrs` against the destination IP (both must hold when both are given),
 * `proto` (`any` = no constraint), `dst_ports`, `tls.sni` only when an SNI is given, `http` only
 * for plain-HTTP requests. A rule with an empty `match` matches every connection.
 *
 * ## DNS queries (`decideDns`) — stricter
 * Only rules with `dns_hostname` take part, and only that selector is checked against the qname.
 * | situation                                   | outcome                                          |
 * |---------------------------------------------|--------------------------------------------------|
 * | the source is in no group                   | deny, enforced (`sourceGroup: null`)             |
 * | a DNS rule of the current group matches     | that rule decides (effective mode)               |
 * | none matches, the group has `default_action`| deny, with the group's mode (the walk stops here |
 * |                                             | as it would for a connection; DNS never falls    |
 * |                                             | back to an allow)                                |
 * | none matches, no `default_action`           | go on to the next group                          |
 * | no group left                               | deny attributed to the FIRST group that claimed  |
 * |                                             | the source, with that group's mode               |
 * `default_policy` never applies to DNS. Attributing the final deny to a group keeps audit mode
 * useful for DNS: an audit group's unlisted names resolve and leave a finding.
 *
 * ## Audit
 * In audit mode a deny is `enforced: allow` with `finding: 'audit'`; an enforced deny has
 * `finding: 'deny'`; allows have no finding.
 *
 * ## Inputs
 * Hostnames, qnames and SNIs are compared lowercased (ASCII) without one trailing dot. A name
 * longer than 253 characters cannot exist in DNS; it matches no hostname or SNI selector (a
 * connection treats it as absent, a query falls through to the DNS deny), which also bounds the
 * cost of every hostname regex. Client and
 * destination IPs may be IPv4, IPv6, bracketed, with a zone id, or IPv4-mapped IPv6 (treated as
 * IPv4). An unparseable client IP belongs to no group; an unparseable destination IP matches no
 * IP selector. HTTP methods are compared uppercase, the Host's `:port` is ignored, the path ends at
 * the first `?` or `#`.
 */
import {
  PROTO_TCP,
  PROTO_UDP,
  RULE_HAS_DST_CIDRS,
  RULE_HAS_DST_IPS,
  RULE_HAS_HOST,
  RULE_HAS_HTTP,
  RULE_HAS_PORTS,
  RULE_HAS_SNI,
  RULE_PORTS_BY_MATCHER,
  RULE_PROTO_SHIFT,
  RULE_RECORD_INTS,
} from './compiler.js';
import type { CompiledGroup, CompiledPolicy, CompiledRule, NormalizedHttp } from './compiler.js';
import { MAX_HOSTNAME_CHARS, NameProbe, globMatches, normalizeHostname } from './hostname.js';
import type { IpAddress } from './ip.js';
import { ipv4Scratch, parseInputIp, parseInputIpReusing } from './ip.js';
import type { ConnectionFlow, Decision, DnsQuery, HttpRequestInfo } from './types.js';

interface NormalizedFlow {
  hostname: string | null;
  dst: IpAddress | null;
  port: number;
  proto: 'tcp' | 'udp';
  sni: string | null;
  http: NormalizedHttp | null;
}

/** Selectors a hit list can prove (the index entry alone decides them), as bits of a proof mask. */
const PROVES_HOST = 1;
const PROVES_SNI = 2;
const PROVES_PORTS = 4;
/**
 * The rule's address selector it is filed under in the destination index matches: `dst_ips` when
 * the rule has one, else `dst_cidrs` (a rule's entries in that index come from exactly that one).
 */
const PROVES_DST = 8;
/** Selectors checked by the rule's own matchers (not by its record). */
const MATCHER_SELECTORS = RULE_HAS_HOST | RULE_HAS_DST_IPS | RULE_HAS_DST_CIDRS | RULE_HAS_SNI | RULE_HAS_HTTP;

// Scratch state reused by every decision; decisions are synchronous and never re-entrant.
// Only the first `count` entries of `ruleHits` and `hitProofs` are live; the rest are stale.
const ruleHits: number[][] = [];
/** Per hit list, the selectors its entries prove (`PROVES_*` bits). */
const hitProofs: number[] = [];
const positions: number[] = [];
/** The proof bits of the lists that held the candidate `nextCandidate` returned last. */
let candidateProof = 0;
const NO_GROUPS: readonly number[] = Object.freeze([]);
let candidatesExamined = 0;
const hostnameProbe = new NameProbe();
const sniProbe = new NameProbe();
const httpHostProbe = new NameProbe();
const srcScratch = ipv4Scratch();
const dstScratch = ipv4Scratch();
const flowScratch: NormalizedFlow = { hostname: null, dst: null, port: 0, proto: 'tcp', sni: null, http: null };

/**
 * How many candidate rules decisions have examined since the process started (a rule an index
 * alone proves counts too). A benchmark reads it before and after a run to report candidates per
 * decision, which grows with the rule count only if an index falls back to a scan.
 */
export function candidatesExaminedTotal(): number {
  return candidatesExamined;
}

/** Ranks of the groups containing `src`, ascending (the source trie holds them accumulated). */
function groupsOf(policy: CompiledPolicy, src: IpAddress): readonly number[] {
  return policy.sourceTrie.longestMatch(src) ?? NO_GROUPS;
}

/**
 * The next smallest rule order over the first `count` hit lists (each ascending), advancing every
 * list past it and setting `candidateProof` to the union of their proofs; -1 when all are
 * exhausted. A k-way merge with k = number of lists (a handful).
 */
function nextCandidate(count: number): number {
  let best = -1;
  for (let i = 0; i < count; i++) {
    const list = ruleHits[i] as number[];
    const p = positions[i] as number;
    if (p < list.length) {
      const order = list[p] as number;
      if (best < 0 || order < best) best = order;
    }
  }
  if (best < 0) return -1;
  let proof = 0;
  for (let i = 0; i < count; i++) {
    const list = ruleHits[i] as number[];
    const p = positions[i] as number;
    if (p < list.length && list[p] === best) {
      positions[i] = p + 1;
      proof |= hitProofs[i] as number;
    }
  }
  candidateProof = proof;
  return best;
}

function resetPositions(count: number): void {
  for (let i = 0; i < count; i++) positions[i] = 0;
}

/**
 * Whether the `dns_hostname` of the group's rule `order` matches `hostname`: a rule with only
 * globs is checked against its globs in the group's glob text, others by their matcher.
 */
function hostMatches(group: CompiledGroup, order: number, hostname: string): boolean {
  const spans = group.hostGlobSpans;
  const start = spans[2 * order] as number;
  if (start < 0) return ((group.rules[order] as CompiledRule).host as NonNullable<CompiledRule['host']>).matches(hostname);
  const end = spans[2 * order + 1] as number;
  const text = group.hostGlobText;
  for (let from = start; from < end; ) {
    let to = text.indexOf(',', from);
    if (to < 0 || to > end) to = end;
    if (globMatches(text, from, to, hostname)) return true;
    from = to + 1;
  }
  return false;
}

/** The decision of the group's first DNS rule matching the probed name, or null. */
function firstDnsDecision(group: CompiledGroup, probe: NameProbe): Decision | null {
  let count = group.hostIndex.collect(probe, ruleHits, hitProofs, 0, PROVES_HOST);
  if (group.dnsUnindexed.length > 0) {
    ruleHits[count] = group.dnsUnindexed as number[];
    hitProofs[count++] = 0;
  }
  if (count === 0) return null;
  if (count === 1 && hitProofs[0] === PROVES_HOST) {
    candidatesExamined++;
    return group.decisions[(ruleHits[0] as number[])[0] as number] as Decision;
  }
  resetPositions(count);
  for (let order = nextCandidate(count); order >= 0; order = nextCandidate(count)) {
    candidatesExamined++;
    if ((candidateProof & PROVES_HOST) !== 0) return group.decisions[order] as Decision;
    if (hostMatches(group, order, probe.name)) return group.decisions[order] as Decision;
  }
  return null;
}

/**
 * Whether the group's rule `order` matches `flow`, skipping the selectors in `proof` that an index
 * already proved. Proto and inline ports come from the rule's record; the rule object (its
 * matchers) is loaded only when a selector is left that no index proved.
 */
function ruleMatchesConnection(group: CompiledGroup, order: number, flow: NormalizedFlow, proof: number): boolean {
  const records = group.ruleRecords;
  const at = order * RULE_RECORD_INTS;
  const head = records[at] as number;
  const proto = head >>> RULE_PROTO_SHIFT;
  if (proto !== 0 && proto !== (flow.proto === 'tcp' ? PROTO_TCP : PROTO_UDP)) return false;
  if ((head & RULE_HAS_PORTS) !== 0 && (proof & PROVES_PORTS) === 0 && (head & RULE_PORTS_BY_MATCHER) === 0) {
    const port = flow.port;
    const end = at + 2 + 2 * (records[at + 1] as number);
    let inRange = false;
    for (let i = at + 2; i < end; i += 2) {
      if (port >= (records[i] as number) && port <= (records[i + 1] as number)) {
        inRange = true;
        break;
      }
    }
    if (!inRange) return false;
  }
  let left = head & MATCHER_SELECTORS;
  if ((proof & PROVES_HOST) !== 0) left &= ~RULE_HAS_HOST;
  if ((proof & PROVES_SNI) !== 0) left &= ~RULE_HAS_SNI;
  if ((proof & PROVES_DST) !== 0) left &= (left & RULE_HAS_DST_IPS) !== 0 ? ~RULE_HAS_DST_IPS : ~RULE_HAS_DST_CIDRS;
  if ((left & RULE_HAS_HOST) !== 0) {
    if (flow.hostname === null || !hostMatches(group, order, flow.hostname)) return false;
    left &= ~RULE_HAS_HOST;
  }
  const byMatcher = (head & RULE_PORTS_BY_MATCHER) !== 0 && (proof & PROVES_PORTS) === 0;
  if (left === 0 && !byMatcher) return true;
  const rule = group.rules[order] as CompiledRule;
  if (byMatcher && !(rule.ports as NonNullable<CompiledRule['ports']>).matches(flow.port)) return false;
  if ((left & RULE_HAS_DST_IPS) !== 0 && (flow.dst === null || !(rule.dstIps as NonNullable<CompiledRule['dstIps']>).matches(flow.dst))) return false;
  if ((left & RULE_HAS_DST_CIDRS) !== 0 && (flow.dst === null || !(rule.dstCidrs as NonNullable<CompiledRule['dstCidrs']>).matches(flow.dst))) return false;
  if ((left & RULE_HAS_SNI) !== 0 && (flow.sni === null || !(rule.sni as NonNullable<CompiledRule['sni']>).matches(flow.sni))) return false;
  if ((left & RULE_HAS_HTTP) !== 0 && (flow.http === null || !(rule.http as NonNullable<CompiledRule['http']>).matches(flow.http))) return false;
  return true;
}

/** The decision of the group's first rule matching `flow`, or null. */
function firstConnectionDecision(group: CompiledGroup, flow: NormalizedFlow): Decision | null {
  let count = 0;
  if (flow.hostname !== null) count = group.hostIndex.collect(hostnameProbe, ruleHits, hitProofs, count, PROVES_HOST);
  if (flow.dst !== null) {
    const before = count;
    count = group.dstIndex.collect(flow.dst, ruleHits, count);
    for (let i = before; i < count; i++) hitProofs[i] = PROVES_DST;
  }
  if (flow.sni !== null) count = group.sniIndex.collect(sniProbe, ruleHits, hitProofs, count, PROVES_SNI);
  // Document Host entries are valid hostnames (at most MAX_HOSTNAME_CHARS), so a longer Host hits none.
  if (flow.http !== null && flow.http.host.length <= MAX_HOSTNAME_CHARS) {
    count = group.httpHostIndex.collect(httpHostProbe, ruleHits, hitProofs, count, 0);
  }
  const portHits = group.portIndex.get(flow.port);
  if (portHits !== undefined) {
    ruleHits[count] = portHits;
    hitProofs[count++] = PROVES_PORTS;
  }
  if (group.connectionUnindexed.length > 0) {
    ruleHits[count] = group.connectionUnindexed as number[];
    hitProofs[count++] = 0;
  }
  if (count === 0) return null;
  resetPositions(count);
  for (let order = nextCandidate(count); order >= 0; order = nextCandidate(count)) {
    candidatesExamined++;
    if (ruleMatchesConnection(group, order, flow, candidateProof)) return group.decisions[order] as Decision;
  }
  return null;
}

/** Decides a DNS query; see the module comment for the exact semantics. */
export function decideDns(policy: CompiledPolicy, query: DnsQuery): Decision {
  const src = parseInputIpReusing(query.srcIp, srcScratch);
  if (src === null) return policy.dnsNoGroupDecision;
  const ranks = groupsOf(policy, src);
  if (ranks.length === 0) return policy.dnsNoGroupDecision;
  const qname = normalizeHostname(query.qname);
  const matchable = qname.length <= MAX_HOSTNAME_CHARS;
  if (matchable) hostnameProbe.set(qname);
  const firstRank = ranks[0] as number;
  for (const rank of ranks) {
    const group = policy.groups[rank] as CompiledGroup;
    const decision = matchable ? firstDnsDecision(group, hostnameProbe) : null;
    if (decision !== null) return decision;
    if (group.defaultDecision !== null) return group.dnsFallbackDecision;
  }
  return (policy.groups[firstRank] as CompiledGroup).dnsFallbackDecision;
}

function normalizeConnectionHostname(hostname: string | undefined): string | null {
  if (hostname === undefined || hostname === '') return null;
  const name = normalizeHostname(hostname);
  if (name === '' || name.length > MAX_HOSTNAME_CHARS || parseInputIp(name) !== null) return null;
  return name;
}

function normalizeSni(sni: string | undefined): string | null {
  if (sni === undefined || sni === '') return null;
  const name = normalizeHostname(sni);
  return name.length > MAX_HOSTNAME_CHARS ? null : name;
}

function hostWithoutPort(host: string): string {
  if (host.startsWith('[')) {
    const close = host.indexOf(']');
    return close < 0 ? host : host.slice(0, close + 1);
  }
  const colon = host.indexOf(':');
  return colon >= 0 && host.indexOf(':', colon + 1) < 0 ? host.slice(0, colon) : host;
}

function normalizeHttp(http: HttpRequestInfo): NormalizedHttp {
  let path = http.path;
  const query = path.indexOf('?');
  if (query >= 0) path = path.slice(0, query);
  const fragment = path.indexOf('#');
  if (fragment >= 0) path = path.slice(0, fragment);
  return { method: http.method.toUpperCase(), host: normalizeHostname(hostWithoutPort(http.host)), path };
}

/** Decides a proxied connection or plain-HTTP request; see the module comment for the exact semantics. */
export function decideConnection(policy: CompiledPolicy, flow: ConnectionFlow): Decision {
  const src = parseInputIpReusing(flow.srcIp, srcScratch);
  if (src === null) return policy.defaultDecision;
  const ranks = groupsOf(policy, src);
  if (ranks.length === 0) return policy.defaultDecision;
  const normalized = flowScratch;
  normalized.hostname = normalizeConnectionHostname(flow.hostname);
  normalized.dst = parseInputIpReusing(flow.dstIp, dstScratch);
  normalized.port = flow.dstPort;
  normalized.proto = flow.proto;
  normalized.sni = normalizeSni(flow.sni);
  normalized.http = flow.http === undefined ? null : normalizeHttp(flow.http);
  if (normalized.hostname !== null) hostnameProbe.set(normalized.hostname);
  if (normalized.sni !== null) sniProbe.set(normalized.sni);
  if (normalized.http !== null && normalized.http.host.length <= MAX_HOSTNAME_CHARS) httpHostProbe.set(normalized.http.host);
  for (const rank of ranks) {
    const group = policy.groups[rank] as CompiledGroup;
    const decision = firstConnectionDecision(group, normalized);
    if (decision !== null) return decision;
    if (group.defaultDecision !== null) return group.defaultDecision;
  }
  return policy.defaultDecision;
}
