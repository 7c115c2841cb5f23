/**
 * Local audit findings (DESIGN §8): every enforced deny and every audit-mode would-be deny of the
 * DNS and forward proxies, aggregated by (type, source group, hostname, destination, port) with a
 * count and first/last seen. `GET /api/v1/audit/findings/local` reads them through
 * `FindingsStore.view`; the cluster-wide endpoint merges the nodes' answers by the same key.
 *
 * Bounded: at most FINDINGS_MAX_ENTRIES aggregates; beyond it the least recently seen is evicted
 * (and counted), so a client spraying random names cannot grow memory.
 */
import { checkQueryNames } from '../api/validate.js';
import { NeuwerkError } from '../errors.js';
import { systemClock, type Clock } from '../platform/clock.js';
import { RecencyList, type RecencyLinks } from './recency-list.js';

/** Upper bound on aggregated findings held by a node. */
export const FINDINGS_MAX_ENTRIES = 20_000;
/** Default number of findings a query returns. */
export const FINDINGS_QUERY_LIMIT_DEFAULT = 500;
/** Largest `limit` a query accepts. */
export const FINDINGS_QUERY_LIMIT_MAX = 10_000;
/** Longest reason text kept per finding. */
export const FINDINGS_REASON_MAX_CHARS = 300;

/** What was refused: a DNS query, a CONNECT tunnel or a plain-HTTP request. */
export type FindingType = 'dns' | 'connect' | 'http';

const FINDING_TYPES: readonly FindingType[] = ['dns', 'connect', 'http'];

/** One deny or audit-mode would-be deny, as the proxies report it. */
export interface FindingEvent {
  readonly type: FindingType;
  /** The deciding source group; null when no group decided (`default_policy`, or no group claimed the client). */
  readonly sourceGroup: string | null;
  /** The queried or requested hostname; null for an IP-literal connection. */
  readonly hostname: string | null;
  /** The destination IP checked; null for DNS queries. */
  readonly destination: string | null;
  /** The destination port; null for DNS queries. */
  readonly port: number | null;
  /** `deny`: enforced; `audit`: audit mode let it through. */
  readonly finding: 'deny' | 'audit';
  readonly ruleId: string | null;
  readonly reason: string;
  readonly clientIp: string;
}

/** One aggregated finding as the API shows it. */
export interface FindingJson {
  readonly type: FindingType;
  readonly source_group: string | null;
  readonly hostname: string | null;
  readonly destination: string | null;
  readonly port: number | null;
  readonly count: number;
  /** RFC 3339. */
  readonly first_seen: string;
  readonly last_seen: string;
  /** Of the most recent occurrence: `deny` or `audit`, the rule, the reason and the client. */
  readonly finding: 'deny' | 'audit';
  readonly rule_id: string | null;
  readonly reason: string;
  readonly last_client_ip: string;
}

/** A validated query of the findings. */
export interface FindingsFilter {
  readonly sourceGroup?: string;
  readonly type?: FindingType;
  /** Epoch ms: only findings last seen at or after it. */
  readonly sinceMs?: number;
  /** Epoch ms: only findings first seen at or before it. */
  readonly untilMs?: number;
  readonly limit: number;
}

/** The body of `GET /api/v1/audit/findings/local`. */
export interface FindingsView {
  /** Most recently seen first, at most `limit`. */
  readonly findings: FindingJson[];
  /** How many findings matched the filters before `limit` applied. */
  readonly total: number;
  readonly truncated: boolean;
}

interface Aggregate extends RecencyLinks<Aggregate> {
  readonly type: FindingType;
  readonly sourceGroup: string | null;
  readonly hostname: string | null;
  readonly destination: string | null;
  readonly port: number | null;
  count: number;
  readonly firstSeenMs: number;
  lastSeenMs: number;
  finding: 'deny' | 'audit';
  ruleId: string | null;
  reason: string;
  clientIp: string;
  /** The aggregate's key within its `GroupAggregates` map (`byName` or `byFlow`, see `flowKey`). */
  readonly key: string;
  /** The map holding it: its group's `byName` when it has neither destination nor port, else `byFlow`. */
  readonly map: Map<string, Aggregate>;
}

/**
 * The aggregates of one (type, source group). Findings without destination and port (every DNS
 * finding) are keyed by their hostname alone, so the common deny costs no key string building;
 * the others by `flowKey`.
 */
interface GroupAggregates {
  readonly byName: Map<string, Aggregate>;
  readonly byFlow: Map<string, Aggregate>;
}

/** RFC 3339 date-time with a mandatory zone (`Z` or `±hh:mm`), fractional seconds optional. */
const RFC3339_PATTERN = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
/** Longest accepted `source_group` filter (group ids are short identifiers). */
const SOURCE_GROUP_FILTER_MAX_CHARS = 256;

function parseTime(name: string, text: string): number {
  const ms = RFC3339_PATTERN.test(text) ? Date.parse(text) : NaN;
  if (!Number.isFinite(ms)) {
    throw new NeuwerkError('NW_ERR_VALIDATION', `${name}: ${JSON.stringify(text.slice(0, 80))} is not an RFC 3339 timestamp (e.g. 2026-11-23T10:00:00Z)`);
  }
  return ms;
}

const FINDINGS_QUERY_NAMES: ReadonlySet<string> = new Set(['source_group', 'finding_type', 'since', 'until', 'limit']);

/**
 * Validates the query string of `GET /api/v1/audit/findings/local` (and of the cluster-wide
 * endpoint): `source_group`, `finding_type` (dns|connect|http), `since`, `until` (RFC 3339),
 * `limit` (integer 1..FINDINGS_QUERY_LIMIT_MAX, default FINDINGS_QUERY_LIMIT_DEFAULT).
 * @throws NeuwerkError NW_ERR_VALIDATION (HTTP 400) naming the parameter and the value.
 */
export function parseFindingsQuery(query: URLSearchParams): FindingsFilter {
  checkQueryNames(query, FINDINGS_QUERY_NAMES);
  for (const name of FINDINGS_QUERY_NAMES) {
    if (query.getAll(name).length > 1) throw new NeuwerkError('NW_ERR_VALIDATION', `${name}: given more than once`);
  }
  const limitText = query.get('limit');
  const limit = limitText === null ? FINDINGS_QUERY_LIMIT_DEFAULT : /^\d{1,6}$/.test(limitText) ? Number(limitText) : NaN;
  if (!Number.isInteger(limit) || limit < 1 || limit > FINDINGS_QUERY_LIMIT_MAX) {
    throw new NeuwerkError('NW_ERR_VALIDATION', `limit: ${JSON.stringify(limitText?.slice(0, 80))} must be an integer from 1 to ${FINDINGS_QUERY_LIMIT_MAX}`);
  }
  const typeText = query.get('finding_type');
  if (typeText !== null && !(FINDING_TYPES as readonly string[]).includes(typeText)) {
    throw new NeuwerkError('NW_ERR_VALIDATION', `finding_type: ${JSON.stringify(typeText.slice(0, 80))} is not one of ${FINDING_TYPES.join(', ')}`);
  }
  const group = query.get('source_group');
  if (group !== null && (group.length === 0 || group.length > SOURCE_GROUP_FILTER_MAX_CHARS)) {
    throw new NeuwerkError('NW_ERR_VALIDATION', `source_group: must be 1 to ${SOURCE_GROUP_FILTER_MAX_CHARS} characters`);
  }
  const sinceText = query.get('since');
  const untilText = query.get('until');
  const sinceMs = sinceText === null ? undefined : parseTime('since', sinceText);
  const untilMs = untilText === null ? undefined : parseTime('until', untilText);
  if (sinceMs !== undefined && untilMs !== undefined && sinceMs > untilMs) {
    throw new NeuwerkError('NW_ERR_VALIDATION', `since: ${sinceText} is after until (${untilText})`);
  }
  return {
    limit,
    ...(group !== null ? { sourceGroup: group } : {}),
    ...(typeText !== null ? { type: typeText as FindingType } : {}),
    ...(sinceMs !== undefined ? { sinceMs } : {}),
    ...(untilMs !== undefined ? { untilMs } : {}),
  };
}

/**
 * The key of an event with a destination or a port within its (type, source group). A null
 * hostname, destination or port keys like the empty string, as in `byName` (a null hostname there
 * is the empty name).
 */
function flowKey(event: FindingEvent): string {
  return `${event.hostname ?? ''}\u0000${event.destination ?? ''}\u0000${event.port ?? ''}`;
}

function toJson(a: Aggregate): FindingJson {
  return {
    type: a.type,
    source_group: a.sourceGroup,
    hostname: a.hostname,
    destination: a.destination,
    port: a.port,
    count: a.count,
    first_seen: new Date(a.firstSeenMs).toISOString(),
    last_seen: new Date(a.lastSeenMs).toISOString(),
    finding: a.finding,
    rule_id: a.ruleId,
    reason: a.reason,
    last_client_ip: a.clientIp,
  };
}

/** Options of a `FindingsStore`. */
export interface FindingsStoreOptions {
  readonly clock?: Clock;
  readonly maxEntries?: number;
  /** Called once per recorded event (for the node's findings counter). */
  readonly onRecord?: (event: FindingEvent) => void;
}

/**
 * The node's aggregated findings. Synchronous; `record` is O(1): Map lookups by type, by source
 * group, then by hostname (or by `flowKey` when the event has a destination or port) — no key
 * string is built for a DNS finding — and an intrusive recency list instead of deleting and
 * re-inserting the Map entry (which left a hole per event and made V8 compact the table every
 * few thousand events).
 */
export class FindingsStore {
  /** By type, then by source group (null: no group decided). */
  private readonly groups = new Map<FindingType, Map<string | null, GroupAggregates>>();
  private entries = 0;
  /** Recency list through the aggregates: least recently seen first. */
  private readonly recency = new RecencyList<Aggregate>();
  private readonly clock: Clock;
  private readonly maxEntries: number;
  private readonly onRecord: ((event: FindingEvent) => void) | undefined;
  private evictedEntries = 0;
  private recordedEvents = 0;
  /** The (type, source group) `groupOf` found last. */
  private lastGroup: { readonly type: FindingType; readonly sourceGroup: string | null; readonly aggregates: GroupAggregates } | null = null;

  constructor(options: FindingsStoreOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.maxEntries = options.maxEntries ?? FINDINGS_MAX_ENTRIES;
    this.onRecord = options.onRecord;
  }

  /** Adds one event to its aggregate (created on first sight). */
  record(event: FindingEvent): void {
    const now = this.clock.wallMs();
    const reason = event.reason.length > FINDINGS_REASON_MAX_CHARS ? event.reason.slice(0, FINDINGS_REASON_MAX_CHARS) : event.reason;
    const group = this.groupOf(event.type, event.sourceGroup);
    const byName = event.destination === null && event.port === null;
    const map = byName ? group.byName : group.byFlow;
    const key = byName ? (event.hostname ?? '') : flowKey(event);
    let aggregate = map.get(key);
    if (aggregate === undefined) {
      while (this.entries >= this.maxEntries && this.recency.oldest !== null) {
        const evicted = this.recency.oldest;
        this.recency.remove(evicted);
        evicted.map.delete(evicted.key);
        this.entries--;
        this.evictedEntries++;
      }
      aggregate = {
        type: event.type,
        sourceGroup: event.sourceGroup,
        hostname: event.hostname,
        destination: event.destination,
        port: event.port,
        count: 0,
        firstSeenMs: now,
        lastSeenMs: now,
        finding: event.finding,
        ruleId: event.ruleId,
        reason,
        clientIp: event.clientIp,
        key,
        map,
        older: null,
        newer: null,
      };
      map.set(key, aggregate);
      this.entries++;
      this.recency.pushNewest(aggregate);
    } else {
      this.recency.moveToNewest(aggregate);
    }
    aggregate.count++;
    aggregate.lastSeenMs = Math.max(aggregate.lastSeenMs, now);
    aggregate.finding = event.finding;
    aggregate.ruleId = event.ruleId;
    aggregate.reason = reason;
    aggregate.clientIp = event.clientIp;
    this.recordedEvents++;
    this.onRecord?.(event);
  }

  /**
   * The aggregates of (type, source group), created on first sight (kept when emptied: a policy has
   * few groups). The last one found is remembered: findings come in runs of the same type and group.
   */
  private groupOf(type: FindingType, sourceGroup: string | null): GroupAggregates {
    const last = this.lastGroup;
    if (last !== null && last.type === type && last.sourceGroup === sourceGroup) return last.aggregates;
    const aggregates = this.findGroup(type, sourceGroup);
    this.lastGroup = { type, sourceGroup, aggregates };
    return aggregates;
  }

  private findGroup(type: FindingType, sourceGroup: string | null): GroupAggregates {
    let byGroup = this.groups.get(type);
    if (byGroup === undefined) {
      byGroup = new Map();
      this.groups.set(type, byGroup);
    }
    let group = byGroup.get(sourceGroup);
    if (group === undefined) {
      group = { byName: new Map(), byFlow: new Map() };
      byGroup.set(sourceGroup, group);
    }
    return group;
  }

  /** Findings matching `filter`, most recently seen first. */
  query(filter: FindingsFilter): FindingsView {
    const findings: FindingJson[] = [];
    let total = 0;
    for (let a = this.recency.newest; a !== null; a = a.older) {
      if (filter.type !== undefined && a.type !== filter.type) continue;
      if (filter.sourceGroup !== undefined && a.sourceGroup !== filter.sourceGroup) continue;
      if (filter.sinceMs !== undefined && a.lastSeenMs < filter.sinceMs) continue;
      if (filter.untilMs !== undefined && a.firstSeenMs > filter.untilMs) continue;
      total++;
      if (findings.length < filter.limit) findings.push(toJson(a));
    }
    return { findings, total, truncated: total > findings.length };
  }

  /**
   * The body of `GET /api/v1/audit/findings/local` for a raw query string.
   * @throws NeuwerkError NW_ERR_VALIDATION (400) for a bad parameter (see `parseFindingsQuery`).
   */
  view(query: URLSearchParams): FindingsView {
    return this.query(parseFindingsQuery(query));
  }

  /** Aggregates currently held. */
  get size(): number {
    return this.entries;
  }

  /** Aggregates evicted because the store was full, since start. */
  get evictions(): number {
    return this.evictedEntries;
  }

  /** Events recorded since start. */
  get recorded(): number {
    return this.recordedEvents;
  }
}
