/**
 * The dataplane of one node, composed: the dynamic allowlist and the findings store (always), the
 * dynamic denylist (with a `denylistSource`, checked by both proxies ahead of the policy), the
 * DNS forwarder shared by the DNS proxy and the forward proxy's resolver, the DNS proxy (when
 * `dns` is configured) and the forward proxy (when `proxy` is configured).
 *
 * Order: `start` opens the upstream client, then the DNS proxy, then the forward proxy; `stop`
 * closes them in the reverse order. Both proxies read the policy from `enforcement.active` per
 * query/flow, so a newly applied policy takes effect on the next query without any notification.
 */
import { getServers } from 'node:dns';
import { parseHostPort, type HostPort } from '../config/address.js';
import { NeuwerkError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { NodeMetrics } from '../metrics/registry.js';
import type { Clock } from '../platform/clock.js';
import { DynamicAllowlist, type AllowlistOptions, type DnsCacheEntryJson } from './allowlist.js';
import { DenylistIndex, type DenylistSource, type DenylistStats } from './denylist.js';
import { DnsProxy, type DnsProxyAddresses, type DnsProxyOptions, type DnsProxyStats, type PolicySource } from './dns-proxy.js';
import { DnsUpstreamClient, type DnsUpstreamStats } from './dns-upstream.js';
import { FindingsStore, type FindingEvent, type FindingsView } from './findings.js';
import { ForwardProxy, type ForwardProxyOptions, type ForwardProxyStats } from './forward-proxy.js';
import { UpstreamResolver, type HostnameResolver } from './resolver.js';

/** Options of a `Dataplane`. */
export interface DataplaneOptions {
  /** `PolicyEnforcement` of the node (its `active` is read per query). */
  readonly enforcement: PolicySource;
  readonly logger: Logger;
  readonly metrics?: NodeMetrics;
  /** The DNS proxy (`--dns-bind`, `--dns-upstream`); null: no DNS proxy. */
  readonly dns: { readonly bind: HostPort; readonly bindSetting?: string; readonly upstreams: readonly HostPort[] } | null;
  /**
   * The forward proxy (`--proxy-bind`); null: no forward proxy. `proxyProtocolFrom`: balancers whose
   * connections must begin with a PROXY protocol header (`--proxy-protocol-from`; absent: none).
   */
  readonly proxy: { readonly bind: HostPort; readonly bindSetting?: string; readonly proxyProtocolFrom?: readonly string[] } | null;
  /**
   * Upstreams of the forward proxy's resolver; default: `dns.upstreams`, else the system's
   * name servers (`/etc/resolv.conf`).
   */
  readonly resolverUpstreams?: readonly HostPort[];
  /** The node's listen hosts (API, metrics, cluster, join): never dialled by the proxy without an explicit rule. */
  readonly ownAddresses: readonly string[];
  readonly clock?: Clock;
  /** Per-try upstream timeout (default DNS_UPSTREAM_TRY_TIMEOUT_MS). */
  readonly upstreamTryTimeoutMs?: number;
  readonly allowlistOptions?: Omit<AllowlistOptions, 'clock'>;
  /** Tunables of the DNS proxy (timeouts, limits). */
  readonly dnsTuning?: Pick<DnsProxyOptions, 'tcpIdleTimeoutMs' | 'tcpMaxConnections' | 'tcpMaxInflightPerConnection'>;
  /** Tunables of the forward proxy (timeouts, limits, TLS ports). */
  readonly proxyTuning?: Pick<
    ForwardProxyOptions,
    'tlsPorts' | 'idleTimeoutMs' | 'headerTimeoutMs' | 'keepAliveTimeoutMs' | 'connectTimeoutMs' | 'tlsPeekTimeoutMs' | 'maxActiveFlowsPerGroup' | 'maxClientConnections'
  >;
  /** Replaces the forward proxy's resolver (tests). */
  readonly resolver?: HostnameResolver;
  /** The replicated store the dynamic denylist is read from (`StateMachine`); absent: no denylist. */
  readonly denylistSource?: DenylistSource;
}

/** Where the dataplane listens once started. */
export interface DataplaneAddresses {
  readonly dns: DnsProxyAddresses | null;
  readonly proxy: HostPort | null;
}

/** The `dataplane`, `dns` and `proxy` sections of `GET /api/v1/stats`. */
export interface DataplaneStatsSections {
  readonly dataplane: {
    readonly policy_active: boolean;
    readonly allowlist_entries: number;
    readonly allowlist_evictions: number;
    readonly findings_entries: number;
    readonly findings_recorded: number;
    readonly findings_evictions: number;
    /** The upstream client shared by the DNS proxy and the forward proxy's resolver (null: none). */
    readonly dns_upstream: DnsUpstreamStats | null;
    /** The dynamic denylist index (null: no denylist source). */
    readonly denylist: DenylistStats | null;
  };
  readonly dns: DnsProxyStats | null;
  readonly proxy: ForwardProxyStats | null;
}

/** The system's name servers as upstreams (port 53 unless given), for a proxy without `--dns-upstream`. */
export function systemDnsUpstreams(): HostPort[] {
  const out: HostPort[] = [];
  for (const server of getServers()) {
    const parsed = parseHostPort(server.includes(']:') || /^[^:]+:\d+$/.test(server) ? server : server.includes(':') ? `[${server}]:53` : `${server}:53`);
    if (!('error' in parsed)) out.push(parsed);
  }
  return out;
}

const FINDING_TYPES: readonly FindingEvent['type'][] = ['dns', 'connect', 'http'];
const FINDING_KINDS: readonly FindingEvent['finding'][] = ['deny', 'audit'];

/**
 * `neuwerk_audit_findings_total` incremented per recorded finding through its labelled children,
 * made once for every (type, finding) rather than looked up per event (prom-client hashes the
 * label set on every `inc({...})`). Each starts at 0, so a rate() alert sees 0, not "no data".
 */
function findingsCounter(metrics: NodeMetrics): (event: FindingEvent) => void {
  const children = new Map<FindingEvent['type'], Map<FindingEvent['finding'], { inc(): void }>>();
  for (const type of FINDING_TYPES) {
    const byFinding = new Map<FindingEvent['finding'], { inc(): void }>();
    for (const finding of FINDING_KINDS) {
      const child = metrics.auditFindings.labels(type, finding);
      child.inc(0);
      byFinding.set(finding, child);
    }
    children.set(type, byFinding);
  }
  return (event) => children.get(event.type)?.get(event.finding)?.inc();
}

/** The node's dataplane; see the module comment. */
export class Dataplane {
  /** The dynamic allowlist (DNS answers per source group). */
  readonly allowlist: DynamicAllowlist;
  /** The node's aggregated audit findings. */
  readonly findings: FindingsStore;
  /** The dynamic denylist (null without `denylistSource`). */
  readonly denylist: DenylistIndex | null;
  private upstream: DnsUpstreamClient | null = null;
  private dnsProxyValue: DnsProxy | null = null;
  private forwardProxyValue: ForwardProxy | null = null;
  private started = false;
  private stopped = false;

  constructor(private readonly options: DataplaneOptions) {
    this.allowlist = new DynamicAllowlist({ ...(options.allowlistOptions ?? {}), ...(options.clock ? { clock: options.clock } : {}) });
    const metrics = options.metrics;
    this.findings = new FindingsStore({
      ...(options.clock ? { clock: options.clock } : {}),
      ...(metrics ? { onRecord: findingsCounter(metrics) } : {}),
    });
    metrics?.onScrape(() => metrics.dnsAllowlistEntries.set(this.allowlist.size));
    this.denylist = options.denylistSource === undefined ? null : new DenylistIndex(options.denylistSource, options.clock ? { clock: options.clock } : {});
  }

  /** The DNS proxy once started (null when not configured). */
  get dnsProxy(): DnsProxy | null {
    return this.dnsProxyValue;
  }

  /** The forward proxy once started (null when not configured). */
  get forwardProxy(): ForwardProxy | null {
    return this.forwardProxyValue;
  }

  /**
   * Opens the configured listeners; a failure part-way closes what was opened and rethrows.
   * @throws NeuwerkError NW_ERR_ADDRESS_IN_USE / NW_ERR_LISTEN_FAILED naming `--dns-bind` or
   *   `--proxy-bind`; NW_ERR_CONFIG_INVALID when the proxy has no upstream to resolve with.
   */
  async start(): Promise<DataplaneAddresses> {
    if (this.started) throw new NeuwerkError('NW_ERR_INTERNAL', 'the dataplane was already started');
    this.started = true;
    const { dns, proxy, logger, metrics, enforcement } = this.options;
    try {
      const upstreams = dns?.upstreams ?? this.options.resolverUpstreams ?? (proxy !== null && this.options.resolver === undefined ? systemDnsUpstreams() : []);
      if (dns !== null || (proxy !== null && this.options.resolver === undefined)) {
        if (upstreams.length === 0) {
          throw new NeuwerkError('NW_ERR_CONFIG_INVALID', 'the forward proxy needs a DNS upstream to resolve hostnames and none is configured', {
            actions: ['Give --dns-upstream (with --dns-bind), or make the system resolver configuration list a name server.'],
          });
        }
        this.upstream = new DnsUpstreamClient({
          upstreams,
          ...(this.options.upstreamTryTimeoutMs !== undefined ? { tryTimeoutMs: this.options.upstreamTryTimeoutMs } : {}),
          ...(metrics ? { metrics } : {}),
        });
        await this.upstream.start();
      }
      let dnsAddresses: DnsProxyAddresses | null = null;
      if (dns !== null && this.upstream !== null) {
        this.dnsProxyValue = new DnsProxy({
          bind: dns.bind,
          ...(dns.bindSetting !== undefined ? { bindSetting: dns.bindSetting } : {}),
          upstream: this.upstream,
          enforcement,
          allowlist: this.allowlist,
          findings: this.findings,
          ...(this.denylist !== null ? { denylist: this.denylist } : {}),
          logger,
          ...(metrics ? { metrics } : {}),
          ...(this.options.dnsTuning ?? {}),
        });
        dnsAddresses = await this.dnsProxyValue.start();
      }
      let proxyAddress: HostPort | null = null;
      if (proxy !== null) {
        const resolver = this.options.resolver ?? new UpstreamResolver(this.upstream as DnsUpstreamClient, this.options.clock ? { clock: this.options.clock } : {});
        const ownAddresses = [...this.options.ownAddresses, ...(dns !== null ? [dns.bind.host] : [])];
        this.forwardProxyValue = new ForwardProxy({
          bind: proxy.bind,
          ...(proxy.bindSetting !== undefined ? { bindSetting: proxy.bindSetting } : {}),
          enforcement,
          resolver,
          allowlist: this.allowlist,
          findings: this.findings,
          ...(this.denylist !== null ? { denylist: this.denylist } : {}),
          logger,
          ownAddresses,
          ...(metrics ? { metrics } : {}),
          ...(proxy.proxyProtocolFrom !== undefined ? { proxyProtocolFrom: proxy.proxyProtocolFrom } : {}),
          ...(this.options.proxyTuning ?? {}),
        });
        proxyAddress = await this.forwardProxyValue.start();
      }
      return { dns: dnsAddresses, proxy: proxyAddress };
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /**
   * Closes the forward proxy (open tunnels and requests get up to `tunnelGraceMs` to finish), the
   * DNS proxy, the upstream client and the allowlist sweep. Idempotent.
   */
  async stop(tunnelGraceMs = 0): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all([this.forwardProxyValue?.stop(tunnelGraceMs), this.dnsProxyValue?.stop()]);
    await this.upstream?.close();
    this.allowlist.close();
  }

  /** Readiness `dns_ready` (register only when the DNS proxy is configured). */
  dnsReadiness(): { ok: boolean; detail?: string } {
    return this.dnsProxyValue?.readiness() ?? { ok: false, detail: this.options.dns === null ? 'the DNS proxy is not configured' : 'the DNS proxy is not started' };
  }

  /** Readiness `proxy_ready` (register only when the forward proxy is configured). */
  proxyReadiness(): { ok: boolean; detail?: string } {
    return this.forwardProxyValue?.readiness() ?? { ok: false, detail: this.options.proxy === null ? 'the forward proxy is not configured' : 'the forward proxy is not started' };
  }

  /** The body of `GET /api/v1/dns-cache`. */
  dnsCacheView(): { entries: DnsCacheEntryJson[] } {
    return this.allowlist.view();
  }

  /**
   * The body of `GET /api/v1/audit/findings/local` for the request's query string.
   * @throws NeuwerkError NW_ERR_VALIDATION (400) naming the bad parameter.
   */
  findingsView(query: URLSearchParams): FindingsView {
    return this.findings.view(query);
  }

  /** The `dataplane`, `dns` and `proxy` sections of `GET /api/v1/stats` (null sections: not configured). */
  statsView(): DataplaneStatsSections {
    this.options.metrics?.dnsAllowlistEntries.set(this.allowlist.size);
    return {
      dataplane: {
        policy_active: this.options.enforcement.active !== null,
        allowlist_entries: this.allowlist.size,
        allowlist_evictions: this.allowlist.evictions,
        findings_entries: this.findings.size,
        findings_recorded: this.findings.recorded,
        findings_evictions: this.findings.evictions,
        dns_upstream: this.upstream?.stats() ?? null,
        denylist: this.denylist?.stats() ?? null,
      },
      dns: this.dnsProxyValue?.stats() ?? null,
      proxy: this.forwardProxyValue?.stats() ?? null,
    };
  }
}
