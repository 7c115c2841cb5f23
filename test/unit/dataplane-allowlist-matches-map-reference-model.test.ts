/**
 * The allowlist keeps its entries in a two-level table with an intrusive recency list; property:
 * under random inserts, lookups, clock steps and sweeps it answers, evicts and lists exactly like
 * the straightforward model below (one Map keyed by group and hostname, whose insertion order is
 * the recency order).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { canonicalIp, DynamicAllowlist } from '../../src/dataplane/allowlist.js';
import { normalizeHostname } from '../../src/policy/hostname.js';
import { ManualTimers } from '../../src/platform/timers.js';

const FLOOR_MS = 2_000;
const IDLE_MS = 10_000;
const MAX_ENTRIES = 4;
const MAX_IPS = 2;

interface ModelEntry {
  group: string;
  hostname: string;
  ips: Map<string, number>;
  seen: number;
}

/** The reference: recency is the Map's insertion order (least recently seen first). */
class Model {
  readonly entries = new Map<string, ModelEntry>();
  constructor(private readonly now: () => number) {}
  private key(group: string, hostname: string): string {
    return `${group}\u0000${normalizeHostname(hostname)}`;
  }
  insert(group: string, hostname: string, addresses: { ip: string; ttlSeconds: number }[]): void {
    if (addresses.length === 0) return;
    const key = this.key(group, hostname);
    let entry = this.entries.get(key);
    if (entry === undefined) {
      while (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value as string);
      entry = { group, hostname: normalizeHostname(hostname), ips: new Map(), seen: this.now() };
    } else {
      this.entries.delete(key);
    }
    this.entries.set(key, entry);
    entry.seen = this.now();
    for (const { ip, ttlSeconds } of addresses) {
      const canonical = canonicalIp(ip);
      if (canonical === null) continue;
      const expires = this.now() + Math.max(ttlSeconds * 1000, FLOOR_MS);
      const previous = entry.ips.get(canonical);
      if (previous === undefined && entry.ips.size >= MAX_IPS) {
        let soonest: string | null = null;
        let at = Infinity;
        for (const [k, v] of entry.ips) if (v < at) [soonest, at] = [k, v];
        if (soonest !== null) entry.ips.delete(soonest);
      }
      entry.ips.set(canonical, Math.max(previous ?? 0, expires));
    }
  }
  private live(group: string, hostname: string): ModelEntry | null {
    const key = this.key(group, hostname);
    const entry = this.entries.get(key);
    if (entry === undefined) return null;
    if (this.now() - entry.seen >= IDLE_MS) {
      this.entries.delete(key);
      return null;
    }
    return entry;
  }
  private touch(entry: ModelEntry): void {
    entry.seen = this.now();
    const key = this.key(entry.group, entry.hostname);
    this.entries.delete(key);
    this.entries.set(key, entry);
  }
  has(group: string, hostname: string, ip: string): boolean {
    const entry = this.live(group, hostname);
    const canonical = canonicalIp(ip);
    if (entry === null || canonical === null) return false;
    const expires = entry.ips.get(canonical);
    if (expires === undefined || expires <= this.now()) return false;
    this.touch(entry);
    return true;
  }
  ipsFor(group: string, hostname: string): string[] {
    const entry = this.live(group, hostname);
    if (entry === null) return [];
    const live = [...entry.ips].filter(([, e]) => e > this.now()).map(([ip]) => ip);
    const ordered = [...live.filter((ip) => !ip.includes(':')), ...live.filter((ip) => ip.includes(':'))];
    if (ordered.length > 0) this.touch(entry);
    return ordered;
  }
  sweep(): void {
    for (const [key, entry] of this.entries) {
      if (this.now() - entry.seen >= IDLE_MS) {
        this.entries.delete(key);
        continue;
      }
      for (const [ip, e] of entry.ips) if (e <= this.now()) entry.ips.delete(ip);
      if (entry.ips.size === 0) this.entries.delete(key);
    }
  }
  view(): { hostname: string; group: string; ips: string[] }[] {
    const out = [];
    for (const entry of this.entries.values()) {
      if (this.now() - entry.seen >= IDLE_MS) continue;
      const ips = [...entry.ips].filter(([, e]) => e > this.now()).map(([ip]) => ip);
      if (ips.length > 0) out.push({ hostname: entry.hostname, group: entry.group, ips });
    }
    return out.reverse();
  }
}

const group = fc.constantFrom('g1', 'g2');
const host = fc.constantFrom('a.test', 'B.test.', 'c.test', 'd.test', 'e.test', 'f.test');
const ip = fc.constantFrom('192.0.2.1', '192.0.2.2', '::ffff:192.0.2.3', '2001:db8::1', 'bad');
const op = fc.oneof(
  fc.record({ op: fc.constant('insert' as const), group, host, addresses: fc.array(fc.record({ ip, ttlSeconds: fc.integer({ min: 0, max: 20 }) }), { maxLength: 3 }) }),
  fc.record({ op: fc.constant('has' as const), group, host, ip }),
  fc.record({ op: fc.constant('ipsFor' as const), group, host }),
  fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 6_000 }) }),
  fc.record({ op: fc.constant('sweep' as const) }),
);

test('the allowlist behaves like the Map reference model', () => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const time = new ManualTimers();
      time.advance(1_000_000);
      const list = new DynamicAllowlist({ clock: time, timers: time, ttlFloorSeconds: FLOOR_MS / 1000, idleExpirySeconds: IDLE_MS / 1000, maxEntries: MAX_ENTRIES, maxIpsPerEntry: MAX_IPS, gcIntervalMs: 1e9 });
      const model = new Model(() => time.monotonicMs());
      for (const step of ops) {
        if (step.op === 'insert') {
          list.insert(step.group, step.host, step.addresses);
          model.insert(step.group, step.host, step.addresses);
        } else if (step.op === 'has') {
          assert.equal(list.has(step.group, step.host, step.ip), model.has(step.group, step.host, step.ip));
        } else if (step.op === 'ipsFor') {
          assert.deepEqual(list.ipsFor(step.group, step.host), model.ipsFor(step.group, step.host));
        } else if (step.op === 'advance') {
          time.advance(step.ms);
        } else {
          list.sweep();
          model.sweep();
        }
        assert.equal(list.size, model.entries.size);
        assert.deepEqual(
          list.view().entries.map((e) => ({ hostname: e.hostname, group: e.source_group, ips: e.ips })),
          model.view(),
        );
      }
    }),
    { numRuns: 1_000 },
  );
});
