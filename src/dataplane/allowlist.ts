/**
 * The dynamic allowlist (DESIGN §8): the A/AAAA answers the DNS proxy forwarded to clients, kept
 * per (source group, hostname) so that the forward proxy can check "this hostname resolved to this
 * IP for this group" without a fresh lookup, and so that `GET /api/v1/dns-cache` can show them.
 *
 * Expiry: an address stays valid until `max(record TTL, ALLOWLIST_TTL_FLOOR_SECONDS)` after the
 * last answer that carried it (capped at ALLOWLIST_TTL_CEILING_SECONDS), and an entry is dropped
 * when it has been neither answered nor used (looked up by the proxy) for
 * ALLOWLIST_IDLE_EXPIRY_SECONDS — whichever comes first. The floor keeps a client that obeys a
 * tiny TTL (or caches a bit longer than it should) from racing the expiry; the idle expiry bounds
 * how long a long-TTL answer nobody uses keeps an address open.
 *
 * Bounds: at most ALLOWLIST_MAX_ENTRIES (group, hostname) entries, least recently seen evicted
 * first, and ALLOWLIST_MAX_IPS_PER_ENTRY addresses per entry (the soonest to expire evicted).
 * Expired data is removed lazily on lookup and by a periodic sweep every ALLOWLIST_GC_INTERVAL_MS.
 */
import { normalizeHostname } from '../policy/hostname.js';
import { formatIp, parseInputIp, parseIpv4Word } from '../policy/ip.js';
import { systemClock, type Clock } from '../platform/clock.js';
import type { TimerHandle, Timers } from '../platform/timers.js';
import { RecencyList, type RecencyLinks } from './recency-list.js';

/** An answer is kept at least this long, whatever its TTL. */
export const ALLOWLIST_TTL_FLOOR_SECONDS = 60;
/** An answer is kept at most this long after it was last seen, whatever its TTL. */
export const ALLOWLIST_TTL_CEILING_SECONDS = 86_400;
/** An entry neither answered nor used for this long is dropped. */
export const ALLOWLIST_IDLE_EXPIRY_SECONDS = 900;
/** Upper bound on (source group, hostname) entries; the least recently seen is evicted beyond it. */
export const ALLOWLIST_MAX_ENTRIES = 65_536;
/** Upper bound on addresses kept per entry; the one expiring soonest is evicted beyond it. */
export const ALLOWLIST_MAX_IPS_PER_ENTRY = 64;
/** How often expired addresses and idle entries are swept. */
export const ALLOWLIST_GC_INTERVAL_MS = 10_000;

/** One address of an answer: its text form and the record's TTL. */
export interface AllowlistAddress {
  readonly ip: string;
  readonly ttlSeconds: number;
}

/** One entry of `GET /api/v1/dns-cache` (DESIGN §6). */
export interface DnsCacheEntryJson {
  readonly hostname: string;
  readonly source_group: string;
  readonly ips: string[];
  /** When the entry was last answered or used (RFC 3339). */
  readonly last_seen: string;
}

/** Tunables; every field has a production default (the constants above). */
export interface AllowlistOptions {
  readonly clock?: Clock;
  /** Schedules the periodic sweep; default: Node timers that do not keep the process alive. */
  readonly timers?: Timers;
  readonly ttlFloorSeconds?: number;
  readonly ttlCeilingSeconds?: number;
  readonly idleExpirySeconds?: number;
  readonly maxEntries?: number;
  readonly maxIpsPerEntry?: number;
  readonly gcIntervalMs?: number;
}

/** Monotonic ms at which an address expires (a mutable holder: refreshing it allocates nothing). */
interface Expiry {
  atMs: number;
}

/**
 * An address as the allowlist keys it: IPv4 as its 32-bit word folded into a signed 32-bit integer
 * (a small integer to V8: nothing to hash or to compare byte by byte on a refresh), IPv6 as its
 * canonical text.
 */
type IpKey = number | string;

/** The key of an address given as text (see `canonicalIp`), or null if it is not one. */
function ipKey(text: string): IpKey | null {
  const word = parseIpv4Word(text);
  if (word >= 0) return word | 0;
  const canonical = canonicalIp(text);
  if (canonical === null) return null;
  const mapped = parseIpv4Word(canonical);
  return mapped >= 0 ? mapped | 0 : canonical;
}

/** The canonical text of a key. */
function ipText(key: IpKey): string {
  if (typeof key === 'string') return key;
  const word = key >>> 0;
  return `${word >>> 24}.${(word >>> 16) & 0xff}.${(word >>> 8) & 0xff}.${word & 0xff}`;
}

interface Entry extends RecencyLinks<Entry> {
  readonly group: string;
  readonly hostname: string;
  /** Address (`IpKey`) -> when it expires; the holder is updated in place on each answer. */
  readonly ips: Map<IpKey, Expiry>;
  /** When it was last answered or used; `view` shows it as wall-clock time (no wall clock read per answer). */
  lastSeenMonotonicMs: number;
}

/** Node timers that never keep the process alive (the sweep is housekeeping, not work). */
const unrefTimers: Timers = {
  every(intervalMs, callback) {
    const handle = setInterval(callback, intervalMs);
    handle.unref();
    return { cancel: () => clearInterval(handle) };
  },
  after(delayMs, callback) {
    const handle = setTimeout(callback, delayMs);
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
  soon(callback) {
    setImmediate(callback);
  },
};

/** Canonical text of an address (IPv4-mapped IPv6 as IPv4, IPv6 compressed), or null if not one. */
export function canonicalIp(text: string): string | null {
  // A dotted quad that parses strictly (no leading zeros, octets <= 255) is already canonical.
  if (parseIpv4Word(text) >= 0) return text;
  const parsed = parseInputIp(text);
  return parsed === null ? null : formatIp(parsed);
}

/**
 * The per-node dynamic allowlist. Not replicated: each node learns from the answers its own DNS
 * proxy forwarded. All methods are synchronous and bounded by the constants above.
 */
export class DynamicAllowlist {
  /** Source group -> hostname -> entry (two levels: no composite key string per lookup). */
  private readonly groups = new Map<string, Map<string, Entry>>();
  private entryCount = 0;
  /** Recency list through the entries: least recently seen (answered or used) first. */
  private readonly recency = new RecencyList<Entry>();
  private readonly clock: Clock;
  private readonly ttlFloorMs: number;
  private readonly ttlCeilingMs: number;
  private readonly idleMs: number;
  private readonly maxEntries: number;
  private readonly maxIpsPerEntry: number;
  private readonly gcTimer: TimerHandle;
  private evictedEntries = 0;

  constructor(options: AllowlistOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.ttlFloorMs = (options.ttlFloorSeconds ?? ALLOWLIST_TTL_FLOOR_SECONDS) * 1000;
    this.ttlCeilingMs = (options.ttlCeilingSeconds ?? ALLOWLIST_TTL_CEILING_SECONDS) * 1000;
    this.idleMs = (options.idleExpirySeconds ?? ALLOWLIST_IDLE_EXPIRY_SECONDS) * 1000;
    this.maxEntries = options.maxEntries ?? ALLOWLIST_MAX_ENTRIES;
    this.maxIpsPerEntry = options.maxIpsPerEntry ?? ALLOWLIST_MAX_IPS_PER_ENTRY;
    this.gcTimer = (options.timers ?? unrefTimers).every(options.gcIntervalMs ?? ALLOWLIST_GC_INTERVAL_MS, () => this.sweep());
  }

  /**
   * Records the addresses of one answer for `group` and `hostname` (the name the client asked
   * for). Addresses that do not parse are ignored. Refreshes the entry's last-seen time.
   */
  insert(group: string, hostname: string, addresses: readonly AllowlistAddress[]): void {
    if (addresses.length === 0) return;
    const name = normalizeHostname(hostname);
    const now = this.clock.monotonicMs();
    let entry = this.groups.get(group)?.get(name);
    if (entry === undefined) {
      while (this.entryCount >= this.maxEntries && this.recency.oldest !== null) {
        this.remove(this.recency.oldest);
        this.evictedEntries++;
      }
      entry = { group, hostname: name, ips: new Map(), lastSeenMonotonicMs: now, older: null, newer: null };
      let byName = this.groups.get(group);
      if (byName === undefined) {
        byName = new Map();
        this.groups.set(group, byName);
      }
      byName.set(name, entry);
      this.entryCount++;
      this.recency.pushNewest(entry);
    } else {
      this.recency.moveToNewest(entry);
    }
    entry.lastSeenMonotonicMs = now;
    for (const { ip, ttlSeconds } of addresses) {
      const canonical = ipKey(ip);
      if (canonical === null) continue;
      const ttlMs = Math.min(Math.max(Math.max(0, ttlSeconds) * 1000, this.ttlFloorMs), this.ttlCeilingMs);
      const expires = now + ttlMs;
      const previous = entry.ips.get(canonical);
      if (previous !== undefined) {
        previous.atMs = Math.max(previous.atMs, expires);
        continue;
      }
      if (entry.ips.size >= this.maxIpsPerEntry) this.evictSoonestIp(entry);
      entry.ips.set(canonical, { atMs: expires });
    }
  }

  /** Whether `ip` is a live answer for `hostname` in `group`; a hit counts as use (idle expiry). */
  has(group: string, hostname: string, ip: string): boolean {
    const entry = this.liveEntry(group, hostname);
    if (entry === null) return false;
    const key = ipKey(ip);
    if (key === null) return false;
    const expires = entry.ips.get(key);
    const now = this.clock.monotonicMs();
    if (expires === undefined || expires.atMs <= now) return false;
    this.touch(entry, now);
    return true;
  }

  /** The live addresses answered for `hostname` in `group` (IPv4 first); a non-empty result counts as use. */
  ipsFor(group: string, hostname: string): string[] {
    const entry = this.liveEntry(group, hostname);
    if (entry === null) return [];
    const now = this.clock.monotonicMs();
    const v4: string[] = [];
    const v6: string[] = [];
    for (const [key, expires] of entry.ips) {
      if (expires.atMs > now) (typeof key === 'string' ? v6 : v4).push(ipText(key));
    }
    if (v4.length + v6.length > 0) this.touch(entry, now);
    return v6.length === 0 ? v4 : [...v4, ...v6];
  }

  /** Number of (group, hostname) entries currently held (expired ones until the next sweep). */
  get size(): number {
    return this.entryCount;
  }

  /** Entries evicted because the table was full, since start. */
  get evictions(): number {
    return this.evictedEntries;
  }

  /** Removes expired addresses and idle or empty entries. Runs periodically; callable directly. */
  sweep(): void {
    const now = this.clock.monotonicMs();
    for (let entry = this.recency.oldest; entry !== null; ) {
      const newer: Entry | null = entry.newer;
      if (now - entry.lastSeenMonotonicMs >= this.idleMs) {
        this.remove(entry);
      } else {
        for (const [key, expires] of entry.ips) if (expires.atMs <= now) entry.ips.delete(key);
        if (entry.ips.size === 0) this.remove(entry);
      }
      entry = newer;
    }
  }

  /** The body of `GET /api/v1/dns-cache`: live entries, most recently seen first. */
  view(): { entries: DnsCacheEntryJson[] } {
    const now = this.clock.monotonicMs();
    const wallNow = this.clock.wallMs();
    const out: DnsCacheEntryJson[] = [];
    for (let entry = this.recency.newest; entry !== null; entry = entry.older) {
      if (now - entry.lastSeenMonotonicMs >= this.idleMs) continue;
      const ips = [...entry.ips].filter(([, expires]) => expires.atMs > now).map(([key]) => ipText(key));
      if (ips.length === 0) continue;
      out.push({ hostname: entry.hostname, source_group: entry.group, ips, last_seen: new Date(wallNow - (now - entry.lastSeenMonotonicMs)).toISOString() });
    }
    return { entries: out };
  }

  /** Stops the periodic sweep; the data stays readable. Idempotent. */
  close(): void {
    this.gcTimer.cancel();
  }

  private liveEntry(group: string, hostname: string): Entry | null {
    const entry = this.groups.get(group)?.get(normalizeHostname(hostname));
    if (entry === undefined) return null;
    if (this.clock.monotonicMs() - entry.lastSeenMonotonicMs >= this.idleMs) {
      this.remove(entry);
      return null;
    }
    return entry;
  }

  private touch(entry: Entry, now: number): void {
    entry.lastSeenMonotonicMs = now;
    this.recency.moveToNewest(entry);
  }

  /** Drops an entry from both levels of the table and the recency list. */
  private remove(entry: Entry): void {
    this.recency.remove(entry);
    const byName = this.groups.get(entry.group);
    if (byName !== undefined && byName.get(entry.hostname) === entry) {
      byName.delete(entry.hostname);
      if (byName.size === 0) this.groups.delete(entry.group);
    }
    this.entryCount--;
  }

  private evictSoonestIp(entry: Entry): void {
    let soonestIp: IpKey | null = null;
    let soonest = Infinity;
    for (const [key, expires] of entry.ips) {
      if (expires.atMs < soonest) {
        soonest = expires.atMs;
        soonestIp = key;
      }
    }
    if (soonestIp !== null) entry.ips.delete(soonestIp);
  }
}
