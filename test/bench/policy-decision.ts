/**
 * Policy-scale micro-benchmark (DESIGN §10 "Policy scale: decision time and memory at 10, 1k, 10k
 * and 100k rules"). Not a test: `npm run bench` calls `benchPolicyDecision()`; running this file
 * directly prints the table.
 *
 * Each size gets a seeded, realistic document: four source groups (three branch /16s with
 * priorities and a catch-all /8 with `default_action: deny`) sharing the rules, which are a mix of
 * exact (40 %), suffix (20 %), glob (8 %) and regex (5 %) hostname rules, destination CIDR rules
 * with port ranges (17 %), destination IP rules (8 %) and SNI rules (2 %), plus per group a
 * regex without a literal tail (indexed only by its literal head `host`), one indexed only under its
 * top-level labels, and a port-only rule. The workload alternates DNS queries and
 * connections; about 60 % of names and destinations hit a rule, the rest miss and fall through
 * to the group defaults (the slow path, since every hit list is exhausted).
 *
 * Inputs are measured two ways, in alternating rounds. `decisionNsMedian`: every name, SNI and
 * address of the workload is a fresh string, made after the document — as in the product, where
 * the DNS proxy decodes the qname from each packet and the forward proxy reads the host from each
 * request line. `decisionNsSharedInputsMedian`: the workload reuses the document's own strings
 * (the strings the rules were built from, scattered over the compiled policy's heap), which adds
 * cache misses no real query has; it was the only figure before 2026-11-23 and is kept for
 * comparison.
 */
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { compilePolicy } from '../../src/policy/compiler.js';
import type { CompiledPolicy } from '../../src/policy/compiler.js';
import { candidatesExaminedTotal, decideConnection, decideDns } from '../../src/policy/evaluate.js';
import type { ConnectionFlow, DnsQuery, PolicyDocument, PolicyRule, SourceGroup } from '../../src/policy/types.js';

export interface PolicyDecisionBenchRow {
  rules: number;
  /** Median ns per decision with fresh input strings (as the proxies decide). */
  decisionNsMedian: number;
  /** Median ns per decision when the inputs are the document's own strings (the earlier method). */
  decisionNsSharedInputsMedian: number;
  /** CPU time of the measured rounds per decision (steadier than wall time on a shared machine). */
  cpuNsPerDecision: number;
  decisionsPerSec: number;
  /** Candidate rules examined per decision (rules an index alone proves included). */
  candidatesPerDecision: number;
  heapMiB: number;
  /**
   * Memory of the compiled policy's typed arrays (ArrayBuffer backing stores), which `heapMiB`
   * (V8's heapUsed) does not count: the hash tables and rule records live there.
   */
  arrayBuffersMiB: number;
  compileMs: number;
}

export const BENCH_RULE_COUNTS = [10, 1_000, 10_000, 100_000] as const;
const SEED = 0x5eed;
const WORKLOAD_DECISIONS = 8_192;
const MEASURE_ROUNDS = 15;
const FIXED_RULES_PER_GROUP = 3;

/** mulberry32: a small deterministic PRNG so every run measures the same documents. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Targets {
  names: string[];
  dsts: string[];
  snis: string[];
}

function makeRule(i: number, random: () => number, targets: Targets): PolicyRule {
  const action = random() < 0.85 ? 'allow' : 'deny';
  const priority = random() < 0.1 ? { priority: Math.floor(random() * 100) } : {};
  const id = `rule-${i}`;
  const a = 11 + (i % 200);
  const b = Math.floor(i / 200) % 256;
  const c = Math.floor(i / 51_200) % 256;
  const kind = random();
  if (kind < 0.4) {
    const name = `svc${i}.example${i % 500}.com`;
    targets.names.push(name);
    return { id, action, ...priority, match: { dns_hostname: { exact: [name] }, dst_ports: [443] } };
  }
  if (kind < 0.6) {
    targets.names.push(`api.tenant${i}.saas.net`);
    return { id, action, ...priority, match: { dns_hostname: { suffix: [`tenant${i}.saas.net`] } } };
  }
  if (kind < 0.68) {
    targets.names.push(`edge-7.cdn${i}.example.org`);
    return { id, action, ...priority, match: { dns_hostname: { glob: [`edge-*.cdn${i}.example.org`] } } };
  }
  if (kind < 0.73) {
    targets.names.push(`eu.api${i}.example.io`);
    return { id, action, ...priority, match: { dns_hostname: `^(.*\\.)?api${i}\\.example\\.io$`, proto: 'tcp' } };
  }
  if (kind < 0.9) {
    targets.dsts.push(`${a}.${b}.${c}.77`);
    return { id, action, ...priority, match: { dst_cidrs: [`${a}.${b}.${c}.0/24`], proto: 'tcp', dst_ports: [443, '8000-8100'] } };
  }
  if (kind < 0.98) {
    targets.dsts.push(`${a}.${b}.${c}.9`);
    return { id, action, ...priority, match: { dst_ips: [`${a}.${b}.${c}.9`], dst_ports: [22, 443] } };
  }
  targets.snis.push(`login${i}.example.net`);
  return { id, action, ...priority, match: { tls: { sni: { exact: [`login${i}.example.net`] } } } };
}

/** A seeded document with exactly `ruleCount` rules, and the names/destinations its rules target. */
export function benchPolicyDocument(ruleCount: number): { doc: PolicyDocument; targets: Targets } {
  const random = prng(SEED ^ ruleCount);
  const targets: Targets = { names: [], dsts: [], snis: [] };
  const groups: { id: string; priority: number; cidr: string; defaultAction?: 'deny'; rules: PolicyRule[] }[] = [
    { id: 'branch-1', priority: 1, cidr: '10.1.0.0/16', rules: [] },
    { id: 'branch-2', priority: 2, cidr: '10.2.0.0/16', rules: [] },
    { id: 'branch-3', priority: 3, cidr: '10.3.0.0/16', rules: [] },
    { id: 'all-clients', priority: 100, cidr: '10.0.0.0/8', defaultAction: 'deny', rules: [] },
  ];
  const fixed = ruleCount >= groups.length * FIXED_RULES_PER_GROUP * 4 ? FIXED_RULES_PER_GROUP : 0;
  const generated = ruleCount - fixed * groups.length;
  for (let i = 0; i < generated; i++) (groups[i % groups.length] as (typeof groups)[number]).rules.push(makeRule(i, random, targets));
  if (fixed > 0) {
    for (const g of groups) {
      g.rules.push(
        { id: `${g.id}-internal`, action: 'deny', match: { dns_hostname: '[a-z]+-internal\\.(corp|lan)' } },
        { id: `${g.id}-numbered`, action: 'allow', match: { dns_hostname: 'host[0-9]+\\..+' } },
        { id: `${g.id}-smtp`, action: 'deny', match: { dst_ports: [25, 465, 587] } },
      );
    }
  }
  const sourceGroups: SourceGroup[] = groups.map((g) => ({
    id: g.id,
    priority: g.priority,
    sources: { cidrs: [g.cidr] },
    ...(g.defaultAction === undefined ? {} : { default_action: g.defaultAction }),
    rules: g.rules,
  }));
  return { doc: { default_policy: 'deny', source_groups: sourceGroups }, targets };
}

type Work = { dns: DnsQuery } | { connection: ConnectionFlow };

function makeWorkload(targets: Targets, random: () => number): Work[] {
  const pick = <T>(list: readonly T[], fallback: T): T => (list.length === 0 ? fallback : (list[Math.floor(random() * list.length)] as T));
  const work: Work[] = [];
  for (let i = 0; i < WORKLOAD_DECISIONS; i++) {
    const srcIp = `10.${1 + Math.floor(random() * 4)}.${Math.floor(random() * 256)}.${1 + Math.floor(random() * 250)}`;
    const hit = random() < 0.6;
    const name = hit ? pick(targets.names, 'miss.example.com') : `miss${Math.floor(random() * 1e6)}.example.com`;
    if (i % 2 === 0) {
      work.push({ dns: { srcIp, qname: name } });
      continue;
    }
    const style = random();
    if (style < 0.5) {
      work.push({ connection: { srcIp, hostname: name, dstIp: '198.51.100.20', dstPort: 443, proto: 'tcp' } });
    } else if (style < 0.85) {
      const dstIp = hit ? pick(targets.dsts, '203.0.113.1') : `203.0.${Math.floor(random() * 256)}.${Math.floor(random() * 256)}`;
      work.push({ connection: { srcIp, dstIp, dstPort: random() < 0.8 ? 443 : 8080, proto: 'tcp' } });
    } else {
      const sni = hit ? pick(targets.snis, 'miss.example.net') : 'miss.example.net';
      work.push({ connection: { srcIp, hostname: sni, dstIp: '198.51.100.21', dstPort: 443, proto: 'tcp', sni } });
    }
  }
  return work;
}

/** A copy of `text` in a new string (not a slice or a reference to the original). */
function freshString(text: string): string {
  return Buffer.from(text, 'utf8').toString('utf8');
}

/** The same workload with every string freshly allocated, as the proxies' parsers produce them. */
function freshWorkload(work: readonly Work[]): Work[] {
  return work.map((item): Work => {
    if ('dns' in item) return { dns: { srcIp: freshString(item.dns.srcIp), qname: freshString(item.dns.qname) } };
    const c = item.connection;
    return {
      connection: {
        ...c,
        srcIp: freshString(c.srcIp),
        dstIp: freshString(c.dstIp),
        ...(c.hostname === undefined ? {} : { hostname: freshString(c.hostname) }),
        ...(c.sni === undefined ? {} : { sni: freshString(c.sni) }),
      },
    };
  });
}

function runWorkload(policy: CompiledPolicy, work: readonly Work[]): number {
  let allowed = 0;
  for (const item of work) {
    const decision = 'dns' in item ? decideDns(policy, item.dns) : decideConnection(policy, item.connection);
    if (decision.enforced === 'allow') allowed++;
  }
  return allowed;
}

/** A full garbage collection, if the runtime lets us trigger one. */
function collectGarbage(): void {
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    gc();
    gc();
  } catch {
    // No gc: heap figures include garbage.
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

/** Measures decision time (median ns over rounds of the mixed workload), compiled heap and compile time per size. */
export async function benchPolicyDecision(): Promise<PolicyDecisionBenchRow[]> {
  const rows: PolicyDecisionBenchRow[] = [];
  for (const ruleCount of BENCH_RULE_COUNTS) {
    const { doc, targets } = benchPolicyDocument(ruleCount);
    const work = makeWorkload(targets, prng(SEED + ruleCount));
    collectGarbage();
    const memoryBefore = process.memoryUsage();
    const heapBefore = memoryBefore.heapUsed;
    const compileStart = process.hrtime.bigint();
    let policy: CompiledPolicy | null = compilePolicy(doc);
    const compileMs = Number(process.hrtime.bigint() - compileStart) / 1e6;
    collectGarbage();
    const memoryAfter = process.memoryUsage();
    const heapMiB = Math.max(0, memoryAfter.heapUsed - heapBefore) / (1024 * 1024);
    const arrayBuffersMiB = Math.max(0, memoryAfter.arrayBuffers - memoryBefore.arrayBuffers) / (1024 * 1024);

    const candidatesBefore = candidatesExaminedTotal();
    runWorkload(policy, work); // warm-up: JIT and caches
    const candidatesPerDecision = (candidatesExaminedTotal() - candidatesBefore) / work.length;
    const fresh = freshWorkload(work);
    runWorkload(policy, fresh);
    const perDecisionNs: number[] = [];
    const sharedNs: number[] = [];
    let cpuMicros = 0;
    for (let round = 0; round < MEASURE_ROUNDS; round++) {
      const cpuStart = process.cpuUsage();
      const start = process.hrtime.bigint();
      runWorkload(policy, fresh);
      perDecisionNs.push(Number(process.hrtime.bigint() - start) / work.length);
      const cpu = process.cpuUsage(cpuStart);
      cpuMicros += cpu.user + cpu.system;
      await new Promise((resolve) => setImmediate(resolve)); // stay friendly to a shared event loop
      const sharedStart = process.hrtime.bigint();
      runWorkload(policy, work);
      sharedNs.push(Number(process.hrtime.bigint() - sharedStart) / work.length);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const decisionNsMedian = median(perDecisionNs);
    rows.push({
      rules: ruleCount,
      decisionNsMedian: Math.round(decisionNsMedian),
      decisionNsSharedInputsMedian: Math.round(median(sharedNs)),
      cpuNsPerDecision: Math.round((cpuMicros * 1000) / (MEASURE_ROUNDS * work.length)),
      decisionsPerSec: Math.round(1e9 / decisionNsMedian),
      candidatesPerDecision: Math.round(candidatesPerDecision * 100) / 100,
      heapMiB: Math.round(heapMiB * 10) / 10,
      arrayBuffersMiB: Math.round(arrayBuffersMiB * 10) / 10,
      compileMs: Math.round(compileMs * 10) / 10,
    });
    policy = null;
  }
  return rows;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await benchPolicyDecision();
  console.table(rows);
}
