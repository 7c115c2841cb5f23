import { formatHostPort, parseHostPort, type HostPort } from '../config/address.js';
import { describeError, NeuwerkError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { MemberRecord } from '../store/state-machine.js';
import type { Replicator } from './replicator.js';
import type { ClusterRuntime } from './runtime.js';

/**
 * Every node records where clients reach it — management API, forward proxy, DNS proxy — in its
 * own replicated member record, so `cluster members list` and `neuwerk lb haproxy` know every
 * node's listeners. The record is created by the join (or, on a seed, here); a node whose
 * addresses differ from the record (first start, a restart on other ports) asks for an update:
 * the leader proposes it directly, a follower through the leader's `member.advertise` RPC. The
 * leader accepts an update only for the calling node's own, existing record (the caller is the
 * node id of its mTLS certificate).
 */
export interface AdvertisedAddresses {
  readonly http_addr: string;
  readonly proxy_addr: string | null;
  readonly dns_addr: string | null;
}

/** How often a node compares its record with its listeners (a local read; a write only on change). */
export const ADVERTISE_INTERVAL_MS = 1_000;
const ADVERTISE_RPC = 'member.advertise';
const ADVERTISE_RPC_TIMEOUT_MS = 5_000;

/**
 * The address clients use for a listener bound at `bound`: a wildcard bind (0.0.0.0, ::) is
 * reached at the management API's advertised host.
 */
export function advertisedListener(bound: HostPort, advertiseHost: string): string {
  const wildcard = bound.host === '0.0.0.0' || bound.host === '::' || bound.host === '';
  return formatHostPort({ host: wildcard ? advertiseHost : bound.host, port: bound.port });
}

function differs(record: MemberRecord | undefined, wanted: AdvertisedAddresses): boolean {
  return record === undefined || record.http_addr !== wanted.http_addr || record.proxy_addr !== wanted.proxy_addr || record.dns_addr !== wanted.dns_addr;
}

/** The upsert that gives `nodeId`'s record `addresses`, keeping its cluster address, role and join time. */
function upsertFor(nodeId: string, existing: MemberRecord | undefined, addresses: AdvertisedAddresses, clusterAddr: string | null) {
  return {
    v: 1 as const,
    type: 'member.upsert' as const,
    node_id: nodeId,
    cluster_addr: existing?.cluster_addr ?? clusterAddr,
    http_addr: addresses.http_addr,
    proxy_addr: addresses.proxy_addr,
    dns_addr: addresses.dns_addr,
    role: existing?.role ?? ('voter' as const),
    joined_at: existing?.joined_at ?? new Date().toISOString(),
  };
}

function validAddresses(body: unknown): AdvertisedAddresses {
  const candidate = body as Partial<Record<keyof AdvertisedAddresses, unknown>> | null;
  const check = (field: keyof AdvertisedAddresses, nullable: boolean): string | null => {
    const value = candidate?.[field];
    if (value === null && nullable) return null;
    if (typeof value !== 'string' || 'error' in parseHostPort(value)) throw new NeuwerkError('NW_ERR_VALIDATION', `${field}: ${JSON.stringify(value)} is not host:port`);
    return value;
  };
  return { http_addr: check('http_addr', false) as string, proxy_addr: check('proxy_addr', true), dns_addr: check('dns_addr', true) };
}

/** Leader side of `member.advertise`: updates the caller's own record. */
export function registerAdvertiseRpc(cluster: ClusterRuntime, replicator: Replicator): void {
  cluster.rpc.handle(ADVERTISE_RPC, async (from, body) => {
    const addresses = validAddresses(body);
    if (replicator.status().role !== 'leader') throw new NeuwerkError('NW_ERR_NOT_LEADER', 'not the leader');
    const existing = replicator.stateMachine.member(from);
    if (existing === undefined) throw new NeuwerkError('NW_ERR_VALIDATION', `node ${from} is not a member`);
    if (differs(existing, addresses)) await replicator.propose(upsertFor(from, existing, addresses, null));
    return { ok: true };
  });
}

export interface SelfAdvertiserOptions {
  readonly nodeId: string;
  readonly replicator: Replicator;
  readonly cluster: ClusterRuntime | null;
  readonly clusterAddr: string | null;
  readonly addresses: AdvertisedAddresses;
  readonly logger: Logger;
}

/** Keeps this node's member record equal to its listeners; checks every second, writes on change. */
export class SelfAdvertiser {
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private lastFailure: string | null = null;

  constructor(private readonly options: SelfAdvertiserOptions) {}

  /**
   * One check now — awaited on the leader, so a seed or single node has recorded itself before it
   * reports started; a follower's RPC to the leader is not waited for — then every interval.
   */
  async start(): Promise<void> {
    if (this.options.replicator.status().role === 'leader') await this.check();
    else void this.check();
    this.timer = setInterval(() => void this.check(), ADVERTISE_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private async check(): Promise<void> {
    const { nodeId, replicator, cluster, addresses, logger } = this.options;
    if (this.busy) return;
    const existing = replicator.stateMachine.member(nodeId);
    if (!differs(existing, addresses)) return;
    const status = replicator.status();
    // A joiner's record comes with its admission; until then there is nothing to update.
    if (existing === undefined && status.role !== 'leader') return;
    this.busy = true;
    try {
      if (status.role === 'leader') await replicator.propose(upsertFor(nodeId, existing, addresses, this.options.clusterAddr));
      else if (cluster !== null && status.leaderId !== null) await cluster.rpc.call(status.leaderId, ADVERTISE_RPC, addresses, ADVERTISE_RPC_TIMEOUT_MS);
      else return;
      logger.info({ ...addresses }, 'membership: recorded this node\'s listener addresses');
      this.lastFailure = null;
    } catch (err) {
      const reason = describeError(err);
      const text = JSON.stringify(reason);
      // Retried every interval; say it once per distinct reason, not every second.
      if (text !== this.lastFailure) logger.debug({ err: reason }, 'membership: recording listener addresses deferred');
      this.lastFailure = text;
    } finally {
      this.busy = false;
    }
  }
}
