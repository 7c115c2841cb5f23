/**
 * SSRF guard of the forward proxy: addresses the proxy never dials unless the deciding policy rule
 * names them explicitly in `dst_ips` or `dst_cidrs` — loopback, link-local (cloud metadata
 * included), unspecified, multicast/broadcast, and the appliance's own addresses. A default
 * allow, a group `default_action`, or a rule that matched on hostname or port alone is not enough:
 * an operator must have written the address down.
 */
import { networkInterfaces } from 'node:os';
import type { CompiledPolicy, Decision } from '../policy/index.js';
import { parseInputIp, type IpAddress } from '../policy/ip.js';
import { canonicalIp } from './allowlist.js';

interface SpecialRange {
  readonly v6: boolean;
  /** Words of the prefix (already masked). */
  readonly words: readonly number[];
  readonly prefixLength: number;
  readonly label: string;
}

function v4(a: number, b: number, c: number, d: number): number {
  return ((a << 24) >>> 0) + (b << 16) + (c << 8) + d;
}

/** Ranges the proxy refuses without an explicit rule, with the name shown in the 403 reason. */
const SPECIAL_RANGES: readonly SpecialRange[] = [
  { v6: false, words: [v4(0, 0, 0, 0)], prefixLength: 8, label: 'an unspecified ("this network") address' },
  { v6: false, words: [v4(127, 0, 0, 0)], prefixLength: 8, label: 'a loopback address' },
  { v6: false, words: [v4(169, 254, 0, 0)], prefixLength: 16, label: 'a link-local address (cloud metadata lives here)' },
  { v6: false, words: [v4(224, 0, 0, 0)], prefixLength: 4, label: 'a multicast address' },
  { v6: false, words: [v4(255, 255, 255, 255)], prefixLength: 32, label: 'the broadcast address' },
  // ::/96 holds the unspecified address ::, loopback ::1 and the deprecated IPv4-compatible block.
  { v6: true, words: [0, 0, 0, 0], prefixLength: 96, label: 'an unspecified, loopback or IPv4-compatible IPv6 address' },
  { v6: true, words: [0xfe800000, 0, 0, 0], prefixLength: 10, label: 'a link-local address' },
  { v6: true, words: [0xff000000, 0, 0, 0], prefixLength: 8, label: 'a multicast address' },
  { v6: true, words: [0xfd000ec2, 0, 0, 0x254], prefixLength: 128, label: 'the cloud metadata address' },
];

function inRange(address: IpAddress, range: SpecialRange): boolean {
  if (address.v6 !== range.v6) return false;
  let remaining = range.prefixLength;
  for (let i = 0; remaining > 0; i++, remaining -= 32) {
    const a = address.words[i] as number;
    const p = range.words[i] as number;
    if (remaining >= 32) {
      if (a !== p) return false;
    } else if (((a ^ p) & ~(0xffffffff >>> remaining)) !== 0) {
      return false;
    }
  }
  return true;
}

/**
 * The addresses a host answers on for the given bind hosts: each address itself, and every
 * interface address for an unspecified bind (`0.0.0.0`, `::`). Hostnames are ignored (the node's
 * binds are addresses in practice; a name would need a lookup the guard must not depend on).
 */
export function expandOwnAddresses(bindHosts: readonly string[]): Set<string> {
  const own = new Set<string>();
  let everyInterface = false;
  for (const host of bindHosts) {
    const canonical = canonicalIp(host);
    if (canonical === null) continue;
    if (canonical === '0.0.0.0' || canonical === '::') everyInterface = true;
    else own.add(canonical);
  }
  if (everyInterface) {
    for (const list of Object.values(networkInterfaces())) {
      for (const info of list ?? []) {
        const canonical = canonicalIp(info.address);
        if (canonical !== null) own.add(canonical);
      }
    }
  }
  return own;
}

/** Per compiled policy: each rule's decision object -> whether that rule has `dst_ips` or `dst_cidrs`. */
const explicitByPolicy = new WeakMap<CompiledPolicy, Map<Decision, boolean>>();

/**
 * Whether `decision` came from a rule of `policy` that names destinations by `dst_ips` or
 * `dst_cidrs`. Since the rule matched the flow, its address selectors cover the destination.
 * Decisions of group fallbacks and `default_policy` name nothing.
 */
export function ruleNamesDestination(policy: CompiledPolicy, decision: Decision): boolean {
  if (decision.ruleId === null) return false;
  let table = explicitByPolicy.get(policy);
  if (table === undefined) {
    table = new Map();
    for (const group of policy.groups) for (const rule of group.rules) table.set(rule.decision, rule.dstIps !== null || rule.dstCidrs !== null);
    explicitByPolicy.set(policy, table);
  }
  return table.get(decision) ?? false;
}

/** Classifies destination addresses for the SSRF guard. */
export class DestinationGuard {
  private readonly own: Set<string>;

  /** `ownBindHosts`: the node's listen addresses (API, metrics, cluster, DNS, proxy). */
  constructor(ownBindHosts: readonly string[]) {
    this.own = expandOwnAddresses(ownBindHosts);
  }

  /**
   * Why `ip` needs an explicit rule ("a loopback address", ...), or null for an ordinary
   * destination. An unparseable address is special too (it can never be dialled safely).
   */
  specialReason(ip: string): string | null {
    const address = parseInputIp(ip);
    if (address === null) return 'not an IP address';
    for (const range of SPECIAL_RANGES) if (inRange(address, range)) return range.label;
    const canonical = canonicalIp(ip);
    if (canonical !== null && this.own.has(canonical)) return "one of this appliance's own addresses";
    return null;
  }
}
