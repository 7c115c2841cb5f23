/**
 * The dynamic denylist (issue item 5): the replicated keyval zone `denylist` names client IPs and
 * destination hostnames that are refused ahead of the policy, on every node.
 *
 * - A key that is an IP address (v4 or v6; an IPv4-mapped IPv6 key means the IPv4 address)
 *   denies that **client**: every DNS query and every proxied flow it sends.
 * - A key that is a hostname denies that **destination** and every name below it: key
 *   `example.com` denies `example.com` and `a.b.example.com`, not `badexample.com`. There is no
 *   wildcard syntax (keyval keys cannot hold `*`); a trailing dot and case are ignored.
 * - Any other key (not an IP, not a valid hostname) is ignored and counted as `invalid_keys`.
 * - The value is free text (a note on why), shown as-is nowhere in the dataplane; `expires_at`
 *   is honoured per lookup, so an expired key stops denying at once, before the leader's
 *   `keyval.expire` removes it.
 *
 * The index is rebuilt from the local replica (`listKeyval`, paged by DENYLIST_PAGE_SIZE) when an
 * applied batch put or deleted a key of the zone, ran an expiry sweep, or installed a snapshot
 * (writes to other zones do not trigger it): the rebuild is scheduled for the next turn
 * of the event loop (bursts coalesce) and forced by a lookup that comes first, so a committed key
 * is enforced by the very next query on that node. At most DENYLIST_MAX_ENTRIES keys are indexed
 * (in key order); beyond it the rest is ignored and counted as `truncated`.
 */
import { normalizeHostname, MAX_HOSTNAME_CHARS, MAX_LABEL_CHARS } from '../policy/hostname.js';
import { systemClock, type Clock } from '../platform/clock.js';
import { canonicalIp } from './allowlist.js';
import { keyvalZoneChange } from '../store/state-machine.js';

/** The keyval zone holding the denylist. */
export const DENYLIST_ZONE = 'denylist';
/** Keys read per `listKeyval` page while rebuilding. */
export const DENYLIST_PAGE_SIZE = 1_000;
/** Upper bound on indexed denylist keys; the rest (in key order) is ignored and reported. */
export const DENYLIST_MAX_ENTRIES = 100_000;
/** The reason text of a denylist deny begins with this word (403 body/header, DNS EDE, findings). */
export const DENYLIST_REASON = 'denylisted';
/**
 * Applied batches that can change the zone: a put or delete in it, an expiry sweep (which may
 * remove its keys), a snapshot install. Puts and deletes in other zones do not rebuild the index.
 */
const REBUILD_TRIGGERS: readonly string[] = [keyvalZoneChange(DENYLIST_ZONE), 'keyval.expire', 'snapshot'];

/** One keyval record as the index reads it (`KeyvalRecord` satisfies it). */
export interface DenylistRecord {
  readonly key: string;
  /** Epoch ms, or null for no expiry. */
  readonly expires_at: number | null;
}

/** Where the denylist comes from (`StateMachine` satisfies it). */
export interface DenylistSource {
  listKeyval(zone: string, options: { prefix: string; after: string | null; limit: number; nowMs: number }): DenylistRecord[];
  onApplied(listener: (types: ReadonlySet<string>) => void): void;
}

/** A denylist hit: which key matched and the reason text to report. */
export interface DenylistHit {
  /** The matching key (the client IP, or the hostname key the destination is at or below). */
  readonly key: string;
  readonly kind: 'client' | 'hostname';
  /** `denylisted: ...`, one line. */
  readonly reason: string;
}

/** The `denylist` part of the dataplane stats. */
export interface DenylistStats {
  readonly client_ips: number;
  readonly hostnames: number;
  readonly invalid_keys: number;
  /** True when the zone held more than DENYLIST_MAX_ENTRIES keys. */
  readonly truncated: boolean;
  readonly rebuilds: number;
  /** Denies by kind since start. */
  readonly denies: { readonly client: number; readonly hostname: number };
}

/** Options of a `DenylistIndex`. */
export interface DenylistIndexOptions {
  readonly clock?: Clock;
  readonly maxEntries?: number;
  readonly pageSize?: number;
  /** Schedules the coalesced rebuild (default: setImmediate). */
  readonly schedule?: (callback: () => void) => void;
}

/** True when `text` is a hostname the index accepts as a key (LDH labels, 1..63 chars each). */
export function isDenylistHostname(text: string): boolean {
  if (text.length === 0 || text.length > MAX_HOSTNAME_CHARS) return false;
  for (const label of text.split('.')) {
    if (label.length === 0 || label.length > MAX_LABEL_CHARS) return false;
    if (!/^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$/.test(label)) return false;
  }
  return true;
}

/**
 * The node's denylist index over a `DenylistSource`; see the module comment. Lookups are
 * synchronous: a client check is one Set lookup, a hostname check one Map lookup per label.
 */
export class DenylistIndex {
  private clients = new Map<string, number | null>();
  private hostnames = new Map<string, number | null>();
  private invalidKeys = 0;
  private truncatedValue = false;
  private rebuildCount = 0;
  private dirty = true;
  private scheduled = false;
  private readonly clock: Clock;
  private readonly maxEntries: number;
  private readonly pageSize: number;
  private readonly schedule: (callback: () => void) => void;
  private readonly denies = { client: 0, hostname: 0 };

  constructor(
    private readonly source: DenylistSource,
    options: DenylistIndexOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.maxEntries = options.maxEntries ?? DENYLIST_MAX_ENTRIES;
    this.pageSize = options.pageSize ?? DENYLIST_PAGE_SIZE;
    this.schedule = options.schedule ?? ((callback) => void setImmediate(callback));
    source.onApplied((types) => {
      if (!REBUILD_TRIGGERS.some((t) => types.has(t))) return;
      this.dirty = true;
      if (this.scheduled) return;
      this.scheduled = true;
      this.schedule(() => {
        this.scheduled = false;
        this.refresh();
      });
    });
    this.refresh();
  }

  /** Rebuilds the index if a relevant change was applied since the last build. */
  refresh(): void {
    if (!this.dirty) return;
    this.dirty = false;
    const clients = new Map<string, number | null>();
    const hostnames = new Map<string, number | null>();
    let invalid = 0;
    let seen = 0;
    let truncated = false;
    const nowMs = this.clock.wallMs();
    let after: string | null = null;
    for (;;) {
      const page = this.source.listKeyval(DENYLIST_ZONE, { prefix: '', after, limit: this.pageSize, nowMs });
      for (const record of page) {
        if (seen >= this.maxEntries) {
          truncated = true;
          break;
        }
        seen++;
        const ip = canonicalIp(record.key);
        if (ip !== null) {
          clients.set(ip, record.expires_at);
          continue;
        }
        const name = normalizeHostname(record.key);
        if (isDenylistHostname(name)) hostnames.set(name, record.expires_at);
        else invalid++;
      }
      if (truncated || page.length < this.pageSize) break;
      after = (page[page.length - 1] as DenylistRecord).key;
    }
    this.clients = clients;
    this.hostnames = hostnames;
    this.invalidKeys = invalid;
    this.truncatedValue = truncated;
    this.rebuildCount++;
  }

  private live(expiresAt: number | null | undefined): boolean {
    return expiresAt !== undefined && (expiresAt === null || expiresAt > this.clock.wallMs());
  }

  /** The hit when `clientIp` is denylisted, else null (counts the hit). */
  checkClient(clientIp: string): DenylistHit | null {
    this.refresh();
    if (this.clients.size === 0) return null;
    const ip = canonicalIp(clientIp);
    if (ip === null || !this.live(this.clients.get(ip))) return null;
    this.denies.client++;
    return { key: ip, kind: 'client', reason: `${DENYLIST_REASON}: client ${ip} is on the denylist` };
  }

  /** The hit when `hostname` or a parent domain of it is denylisted, else null (counts the hit). */
  checkHostname(hostname: string | null): DenylistHit | null {
    this.refresh();
    if (hostname === null || this.hostnames.size === 0) return null;
    let name = normalizeHostname(hostname);
    for (;;) {
      if (this.live(this.hostnames.get(name))) {
        this.denies.hostname++;
        return { key: name, kind: 'hostname', reason: `${DENYLIST_REASON}: ${name === normalizeHostname(hostname) ? name : `${normalizeHostname(hostname)} is below ${name}, which`} is on the denylist` };
      }
      const dot = name.indexOf('.');
      if (dot < 0) return null;
      name = name.slice(dot + 1);
    }
  }

  /** The client check, then the destination check: the first hit, or null. */
  check(clientIp: string, hostname: string | null): DenylistHit | null {
    return this.checkClient(clientIp) ?? this.checkHostname(hostname);
  }

  /** Counters for the stats endpoint. */
  stats(): DenylistStats {
    this.refresh();
    return {
      client_ips: this.clients.size,
      hostnames: this.hostnames.size,
      invalid_keys: this.invalidKeys,
      truncated: this.truncatedValue,
      rebuilds: this.rebuildCount,
      denies: { ...this.denies },
    };
  }
}
