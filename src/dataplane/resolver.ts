/**
 * The forward proxy's resolver: A and AAAA lookups through the same upstreams as the DNS proxy
 * (never the system resolver, so the proxy and its clients see the same answers), over UDP with
 * EDNS and over TCP when a reply is truncated. Answers are cached for their TTL, capped at
 * RESOLVER_CACHE_MAX_TTL_SECONDS; concurrent lookups of one name share one query pair.
 *
 * The cache only saves upstream round trips: the proxy still checks every address it would dial
 * against the policy, and dials exactly the address it checked.
 */
import dnsPacket from 'dns-packet';
import type { Question } from 'dns-packet';
import { normalizeHostname } from '../policy/hostname.js';
import { systemClock, type Clock } from '../platform/clock.js';
import { DNS_EDNS_UDP_PAYLOAD_BYTES, RCODE, replyAddresses } from './dns-messages.js';
import type { DnsUpstreamClient } from './dns-upstream.js';

/** Upper bound on cached names; the oldest entry is evicted beyond it. */
export const RESOLVER_CACHE_MAX_ENTRIES = 10_000;
/** Answers are cached at most this long, whatever their TTL. */
export const RESOLVER_CACHE_MAX_TTL_SECONDS = 60;
/** A name that does not exist (or has no address) is remembered this long. */
export const RESOLVER_NEGATIVE_TTL_SECONDS = 5;
/** Addresses kept per name (IPv4 first). */
export const RESOLVER_MAX_ADDRESSES = 16;

/** Outcome of a lookup: addresses (IPv4 first, possibly empty for NXDOMAIN/no data), or why it failed. */
export type ResolveOutcome =
  | { readonly ok: true; readonly addresses: readonly string[] }
  | { readonly ok: false; readonly reason: string };

/** What the forward proxy needs from a resolver (tests substitute their own). */
export interface HostnameResolver {
  resolve(hostname: string): Promise<ResolveOutcome>;
  /**
   * The addresses `resolve` would answer at once from its cache (possibly none: a cached negative
   * answer), or null when it would have to look the name up. Optional; without it every lookup
   * goes through `resolve`.
   */
  cached?(hostname: string): readonly string[] | null;
}

interface CacheEntry {
  readonly addresses: readonly string[];
  readonly expiresMonotonicMs: number;
}

type FamilyOutcome = { ok: true; addresses: { ip: string; ttlSeconds: number }[] } | { ok: false; reason: string };

/** Resolves hostnames through a `DnsUpstreamClient`; see the module comment. */
export class UpstreamResolver implements HostnameResolver {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inflight = new Map<string, Promise<ResolveOutcome>>();
  private readonly clock: Clock;

  constructor(
    private readonly client: DnsUpstreamClient,
    options: { readonly clock?: Clock } = {},
  ) {
    this.clock = options.clock ?? systemClock;
  }

  /** Looks `hostname` up (A and AAAA); never rejects. */
  resolve(hostname: string): Promise<ResolveOutcome> {
    const name = normalizeHostname(hostname);
    const cached = this.cache.get(name);
    if (cached !== undefined) {
      if (cached.expiresMonotonicMs > this.clock.monotonicMs()) return Promise.resolve({ ok: true, addresses: cached.addresses });
      this.cache.delete(name);
    }
    let running = this.inflight.get(name);
    if (running === undefined) {
      running = this.lookup(name).finally(() => this.inflight.delete(name));
      this.inflight.set(name, running);
    }
    return running;
  }

  /** The fresh cached answer for `hostname`, or null (see `HostnameResolver.cached`). */
  cached(hostname: string): readonly string[] | null {
    const cached = this.cache.get(normalizeHostname(hostname));
    return cached !== undefined && cached.expiresMonotonicMs > this.clock.monotonicMs() ? cached.addresses : null;
  }

  /** Names cached now. */
  get size(): number {
    return this.cache.size;
  }

  private async lookup(name: string): Promise<ResolveOutcome> {
    const [v4, v6] = await Promise.all([this.query(name, 'A'), this.query(name, 'AAAA')]);
    if (!v4.ok && !v6.ok) return { ok: false, reason: v4.reason };
    const all = [...(v4.ok ? v4.addresses : []), ...(v6.ok ? v6.addresses : [])];
    const addresses = [...new Set(all.map((a) => a.ip))].slice(0, RESOLVER_MAX_ADDRESSES);
    // Cache only complete answers: a failed family must be asked again next time.
    if (v4.ok && v6.ok) {
      const ttlSeconds = addresses.length === 0 ? RESOLVER_NEGATIVE_TTL_SECONDS : Math.min(RESOLVER_CACHE_MAX_TTL_SECONDS, ...all.map((a) => a.ttlSeconds));
      if (ttlSeconds > 0) {
        while (this.cache.size >= RESOLVER_CACHE_MAX_ENTRIES) {
          const oldest = this.cache.keys().next();
          if (oldest.done === true) break;
          this.cache.delete(oldest.value);
        }
        this.cache.set(name, { addresses, expiresMonotonicMs: this.clock.monotonicMs() + ttlSeconds * 1000 });
      }
    }
    return { ok: true, addresses };
  }

  private async query(name: string, type: 'A' | 'AAAA'): Promise<FamilyOutcome> {
    const question: Question = { type, name, class: 'IN' };
    const message = dnsPacket.encode({
      type: 'query',
      id: 0,
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [question],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: DNS_EDNS_UDP_PAYLOAD_BYTES, flags: 0, options: [] } as unknown as dnsPacket.Answer],
    });
    let outcome = await this.client.exchange(message, 'udp');
    if (outcome.ok && outcome.truncated) outcome = await this.client.exchange(message, 'tcp');
    if (!outcome.ok) return { ok: false, reason: outcome.reason };
    const { rcode } = outcome;
    if (rcode === RCODE.NXDOMAIN) return { ok: true, addresses: [] };
    if (rcode !== RCODE.NOERROR) return { ok: false, reason: `upstream ${outcome.upstream} answered rcode ${rcode} for ${type} ${name}` };
    return { ok: true, addresses: replyAddresses(outcome.reply, name).filter((a) => (type === 'A') === !a.ip.includes(':')) };
  }
}
