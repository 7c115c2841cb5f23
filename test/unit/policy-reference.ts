/**
 * The naive reference evaluator: DESIGN §8 read literally and implemented as obviously as
 * possible — linear scans over groups and rules, string and BigInt comparisons. It shares no
 * matching code with `src/policy` (its own IP parsing via `node:net` and BigInt bit comparison,
 * its own hostname, glob, port and HTTP checks) so that the property test comparing the two finds
 * index and matcher bugs rather than repeating them.
 *
 * It assumes a document that `compilePolicy` accepted.
 */
import { isIP } from 'node:net';
import type {
  ConnectionFlow,
  Decision,
  DnsQuery,
  HostnameMatch,
  PolicyAction,
  PolicyDocument,
  PolicyMode,
  PolicyRule,
  SourceGroup,
} from '../../src/policy/types.js';

interface Ip {
  v6: boolean;
  value: bigint;
}

function expandIpv6(text: string): bigint {
  let t = text;
  const lastColon = t.lastIndexOf(':');
  const lastPart = t.slice(lastColon + 1);
  if (lastPart.includes('.')) {
    const [a, b, c, d] = lastPart.split('.').map(Number) as [number, number, number, number];
    t = `${t.slice(0, lastColon + 1)}${(a * 256 + b).toString(16)}:${(c * 256 + d).toString(16)}`;
  }
  const parse = (part: string): bigint[] => (part === '' ? [] : part.split(':').map((g) => BigInt(parseInt(g, 16))));
  let groups: bigint[];
  if (t.includes('::')) {
    const [head, rest] = t.split('::') as [string, string];
    const h = parse(head);
    const r = parse(rest);
    groups = [...h, ...Array<bigint>(8 - h.length - r.length).fill(0n), ...r];
  } else {
    groups = parse(t);
  }
  return groups.reduce((acc, g) => (acc << 16n) | g, 0n);
}

/** Parses an address the way the evaluator documents: brackets, zone ids, IPv4-mapped. */
export function referenceParseIp(text: string): Ip | null {
  let t = text;
  if (t.startsWith('[') && t.endsWith(']')) t = t.slice(1, -1);
  if (t.includes(':') && t.includes('%')) t = t.slice(0, t.indexOf('%'));
  const kind = isIP(t);
  if (kind === 4) {
    const value = t.split('.').reduce((acc, octet) => (acc << 8n) | BigInt(Number(octet)), 0n);
    return { v6: false, value };
  }
  if (kind === 6) {
    const value = expandIpv6(t);
    if (value >> 32n === 0xffffn) return { v6: false, value: value & 0xffffffffn };
    return { v6: true, value };
  }
  return null;
}

function inCidr(ip: Ip, cidr: string): boolean {
  const [addressText, lengthText] = cidr.split('/') as [string, string];
  const network = referenceParseIp(addressText);
  if (network === null || network.v6 !== ip.v6) return false;
  const shift = BigInt((ip.v6 ? 128 : 32) - Number(lengthText));
  return ip.value >> shift === network.value >> shift;
}

function sameIp(ip: Ip, text: string): boolean {
  const other = referenceParseIp(text);
  return other !== null && other.v6 === ip.v6 && other.value === ip.value;
}

function normalize(name: string): string {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  return trimmed.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

function fullMatch(pattern: string, subject: string, caseInsensitive: boolean): boolean {
  return new RegExp(`^(?:${pattern})$`, caseInsensitive ? 'i' : '').test(subject);
}

/** `*` = any run of characters other than `.`; everything else literal. */
function globMatches(glob: string, name: string, i = 0, j = 0): boolean {
  if (i === glob.length) return j === name.length;
  if (glob[i] === '*') {
    for (let k = j; ; k++) {
      if (globMatches(glob, name, i + 1, k)) return true;
      if (k >= name.length || name[k] === '.') return false;
    }
  }
  return j < name.length && glob[i] === name[j] && globMatches(glob, name, i + 1, j + 1);
}

function isDomainOrSubdomain(name: string, domain: string): boolean {
  const d = normalize(domain);
  return name === d || name.endsWith(`.${d}`);
}

function hostnameMatches(selector: HostnameMatch, name: string): boolean {
  if (typeof selector === 'string') return fullMatch(selector, name, true);
  return (
    (selector.exact ?? []).some((e) => normalize(e) === name) ||
    (selector.suffix ?? []).some((s) => isDomainOrSubdomain(name, s)) ||
    (selector.glob ?? []).some((g) => globMatches(normalize(g), name)) ||
    (selector.regex !== undefined && fullMatch(selector.regex, name, true))
  );
}

function portMatches(entries: readonly (number | string)[], port: number): boolean {
  return entries.some((entry) => {
    if (typeof entry === 'number') return entry === port;
    const [lo, hi] = entry.includes('-') ? entry.split('-').map(Number) : [Number(entry), Number(entry)];
    return port >= (lo as number) && port <= (hi as number);
  });
}

function ruleMatchesConnection(rule: PolicyRule, flow: ConnectionFlow): boolean {
  const m = rule.match;
  if (m.dns_hostname !== undefined) {
    if (flow.hostname === undefined || flow.hostname === '') return false;
    const name = normalize(flow.hostname);
    if (name === '' || referenceParseIp(name) !== null) return false; // an IP literal has no hostname
    if (name.length > 253) return false; // no such name in DNS
    if (!hostnameMatches(m.dns_hostname, name)) return false;
  }
  const dst = referenceParseIp(flow.dstIp);
  if (m.dst_cidrs !== undefined && (dst === null || !m.dst_cidrs.some((c) => inCidr(dst, c)))) return false;
  if (m.dst_ips !== undefined && (dst === null || !m.dst_ips.some((i) => sameIp(dst, i)))) return false;
  if (m.proto !== undefined && m.proto !== 'any' && m.proto !== flow.proto) return false;
  if (m.dst_ports !== undefined && !portMatches(m.dst_ports, flow.dstPort)) return false;
  if (m.tls !== undefined) {
    if (flow.sni === undefined || flow.sni === '') return false;
    const sni = normalize(flow.sni);
    if (sni.length > 253) return false;
    const s = m.tls.sni;
    const ok =
      (s.exact ?? []).some((e) => normalize(e) === sni) ||
      (s.suffix ?? []).some((d) => isDomainOrSubdomain(sni, d)) ||
      (s.regex !== undefined && fullMatch(s.regex, sni, true));
    if (!ok) return false;
  }
  if (m.http !== undefined) {
    if (flow.http === undefined) return false;
    const h = m.http;
    if (h.methods !== undefined && !h.methods.some((x) => x.toUpperCase() === flow.http?.method.toUpperCase())) return false;
    if (h.host !== undefined) {
      let host = flow.http.host;
      if (!host.startsWith('[') && host.split(':').length === 2) host = host.split(':')[0] as string;
      if (host.startsWith('[') && host.includes(']')) host = host.slice(0, host.indexOf(']') + 1);
      if (!h.host.some((x) => normalize(x) === normalize(host))) return false;
    }
    if (h.path !== undefined) {
      const path = flow.http.path.split('?')[0]?.split('#')[0] ?? '';
      const p = h.path;
      const ok =
        (p.exact ?? []).includes(path) ||
        (p.prefix ?? []).some((x) => path.startsWith(x)) ||
        (p.regex !== undefined && fullMatch(p.regex, path, false));
      if (!ok) return false;
    }
  }
  return true;
}

/** Priority ascending; items without priority after those with; list order breaks ties. */
function byPriority<T extends { priority?: number }>(items: readonly T[]): T[] {
  const indexed = items.map((item, index) => ({ item, index }));
  indexed.sort((a, b) => {
    const pa = a.item.priority ?? Number.POSITIVE_INFINITY;
    const pb = b.item.priority ?? Number.POSITIVE_INFINITY;
    if (pa !== pb) return pa < pb ? -1 : 1;
    return a.index - b.index;
  });
  return indexed.map((x) => x.item);
}

function groupsContaining(doc: PolicyDocument, srcIp: string): SourceGroup[] {
  const src = referenceParseIp(srcIp);
  if (src === null) return [];
  const containing = (doc.source_groups ?? []).filter(
    (g) => (g.sources.cidrs ?? []).some((c) => inCidr(src, c)) || (g.sources.ips ?? []).some((i) => sameIp(src, i)),
  );
  return byPriority(containing);
}

function make(action: PolicyAction, mode: PolicyMode, group: string | null, rule: string | null, by: string): Decision {
  const wouldDeny = action === 'deny' && mode === 'audit';
  let reason: string;
  if (action === 'allow') reason = `allowed${by}`;
  else if (wouldDeny) reason = `would be denied${by} (audit mode: allowed)`;
  else reason = `denied${by}`;
  return {
    action,
    enforced: wouldDeny ? 'allow' : action,
    mode,
    sourceGroup: group,
    ruleId: rule,
    finding: action === 'allow' ? null : wouldDeny ? 'audit' : 'deny',
    reason,
  };
}

function fromRule(group: SourceGroup, rule: PolicyRule): Decision {
  return make(rule.action, rule.mode ?? group.mode ?? 'enforce', group.id, rule.id, ` by rule ${rule.id} in group ${group.id}`);
}

/** Reference of `decideConnection`. */
export function referenceDecideConnection(doc: PolicyDocument, flow: ConnectionFlow): Decision {
  for (const group of groupsContaining(doc, flow.srcIp)) {
    for (const rule of byPriority(group.rules ?? [])) {
      if (ruleMatchesConnection(rule, flow)) return fromRule(group, rule);
    }
    if (group.default_action !== undefined) {
      return make(group.default_action, group.mode ?? 'enforce', group.id, null, ` by default_action of group ${group.id}`);
    }
  }
  return make(doc.default_policy, 'enforce', null, null, ' by default_policy (no source group decided)');
}

/** Reference of `decideDns`. */
export function referenceDecideDns(doc: PolicyDocument, query: DnsQuery): Decision {
  const groups = groupsContaining(doc, query.srcIp);
  const first = groups[0];
  if (first === undefined) return make('deny', 'enforce', null, null, ': the source is in no source group');
  const qname = normalize(query.qname);
  const noRule = (g: SourceGroup): Decision => make('deny', g.mode ?? 'enforce', g.id, null, `: no DNS rule matched in group ${g.id}`);
  for (const group of groups) {
    for (const rule of byPriority(group.rules ?? [])) {
      if (rule.match.dns_hostname !== undefined && qname.length <= 253 && hostnameMatches(rule.match.dns_hostname, qname)) {
        return fromRule(group, rule);
      }
    }
    if (group.default_action !== undefined) return noRule(group);
  }
  return noRule(first);
}
