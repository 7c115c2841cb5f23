import { randomUUID } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { parseHostPort, type HostPort } from '../config/address.js';
import type { NodeConfig } from '../config/load.js';
import { NeuwerkError, describeError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { LogThrottle } from '../log/throttle.js';
import type { NodeMetrics } from '../metrics/registry.js';
import { bindError, checkListenersFree, closeServer, listen, type PlannedListener } from '../net/listen.js';
import type { Message } from '../raft/index.js';
import type { SqliteDatabase } from '../store/database.js';
import { currentToken, loadBootstrapTokens } from './bootstrap-token.js';
import { createClusterCa, type KeyAndCert } from './ca.js';
import { openCaKey, sealCaKey, type CaKeyEnvelope } from './crypto.js';
import { clusterTlsPaths, issueWithCa, loadClusterTls, loadJoinPeers, saveClusterTls, saveJoinPeers, saveManagementTls } from './identity.js';
import { advertisedListener } from './advertise.js';
import { joinCluster } from './join-client.js';
import { createJoinServer, JoinService, parseAdmission, type Admission } from './join-service.js';
import { raftMessageProblem } from './raft-message.js';
import { openRaftReplicator, type RaftReplicator } from './raft-host.js';
import { ClusterTransport, DROP_REASONS, type ClusterTls } from './transport.js';

/** How often the leader looks for caught-up learners to promote. */
export const PROMOTION_INTERVAL_MS = 300;
/** A learner is promoted once its log is within this many entries of the leader's. */
export const PROMOTION_LAG_ENTRIES = 0;
/** A peer whose log is further behind than this is reported `lagging`. */
export const LAGGING_ENTRIES = 64;
/** A peer silent for this many heartbeat intervals is reported `unreachable`. */
export const UNREACHABLE_HEARTBEATS = 3;
/** On a graceful stop the leader waits at most this long for a successor to take over. */
export const TRANSFER_WAIT_MS = 3_000;
/** How often a follower refreshes the leader's view of peer health (followers only hear the leader). */
export const LEADER_VIEW_REFRESH_MS = 1_000;
/** A cached leader view older than this is not used. */
export const LEADER_VIEW_MAX_AGE_MS = 5_000;
/** The leader warns about a learner unreachable for this long since it was added (a joiner that failed after its token was accepted). */
export const STUCK_LEARNER_AFTER_MS = 60_000;
/** ... at most this often per learner. */
export const STUCK_LEARNER_LOG_INTERVAL_MS = 5 * 60_000;

/**
 * The learners that have been unreachable for at least `afterMs` since they were added, as far
 * as the leader knows (`since`: when it first saw each as a learner, updated here for new ones
 * and pruned of the ones that left).
 */
export function stuckLearners(peers: readonly Pick<PeerStatus, 'node_id' | 'role' | 'status'>[], since: Map<string, number>, nowMs: number, afterMs: number): { node_id: string; learnerForMs: number }[] {
  const learners = new Set(peers.filter((p) => p.role === 'learner').map((p) => p.node_id));
  for (const id of [...since.keys()]) if (!learners.has(id)) since.delete(id);
  const stuck: { node_id: string; learnerForMs: number }[] = [];
  for (const peer of peers) {
    if (peer.role !== 'learner') continue;
    const first = since.get(peer.node_id) ?? nowMs;
    since.set(peer.node_id, first);
    if (peer.status === 'unreachable' && nowMs - first >= afterMs) stuck.push({ node_id: peer.node_id, learnerForMs: nowMs - first });
  }
  return stuck;
}

/** Marker file in the cluster data dir of a node that was removed: it never rejoins by itself. */
export const REMOVED_MARKER = 'removed';
/** Every listener `neuwerk start` opens for this configuration (checked before a join). */
function plannedListeners(config: NodeConfig): PlannedListener[] {
  const cluster = config.cluster as NonNullable<NodeConfig['cluster']>;
  const settings = config.bindSettings;
  return [
    { address: cluster.bind, setting: settings.cluster },
    { address: cluster.joinBind, setting: settings.clusterJoin },
    { address: config.http.bind, setting: settings.http },
    { address: config.metrics.bind, setting: settings.metrics },
    ...(config.proxy === null ? [] : [{ address: config.proxy.bind, setting: settings.proxy }]),
    ...(config.dns === null ? [] : [{ address: config.dns.bind, setting: settings.dns, udp: true }]),
  ];
}

/** How often a joining node looks for a change of its join stage (learner added, voter). */
const JOIN_STAGE_POLL_MS = 100;
/** How often a joining node reports its progress while it catches up as a learner. */
const JOIN_PROGRESS_INTERVAL_MS = 1_000;

export type PeerHealth = 'healthy' | 'lagging' | 'unreachable';

export interface PeerStatus {
  readonly node_id: string;
  readonly role: 'leader' | 'follower' | 'learner' | 'candidate';
  readonly status: PeerHealth;
  readonly match_index: number | null;
  readonly lag: number | null;
  readonly last_contact_ms: number | null;
}

export interface ClusterStatus {
  readonly cluster_enabled: true;
  readonly cluster_id: string | null;
  readonly node_id: string;
  readonly role: 'leader' | 'follower' | 'learner' | 'candidate';
  readonly leader_id: string | null;
  readonly term: number;
  readonly commit_index: number;
  readonly applied_index: number;
  /** First log index still held (entries before it live only in the snapshot). */
  readonly log_first_index: number;
  readonly snapshot_index: number;
  readonly voters: number;
  readonly healthy_voters: number;
  readonly tolerates: number;
  readonly peers: PeerStatus[];
}

/** How the node came up in cluster mode. */
export type ClusterStart = 'seed-first-start' | 'joined' | 'restart';

/**
 * Everything cluster mode adds around the Raft host: identity (seed CA or join), the mTLS
 * transport, the join listener, admission and promotion of learners, peer health, and graceful
 * leadership transfer. Single-node mode never creates one.
 */
export class ClusterRuntime {
  private transport!: ClusterTransport;
  private joinServer: Server | null = null;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly addressHints = new Map<string, string>();
  private readonly lastContactMs = new Map<string, number>();
  /** Peer and field of each malformed Raft message already logged (`deliver`). */
  private readonly malformedLogged = new Set<string>();
  private caCache: KeyAndCert | null;
  private promoting = false;
  /** Leader: when it first saw each current learner (see `stuckLearners`). */
  private readonly learnerSince = new Map<string, number>();
  private readonly stuckLearnerLog = new LogThrottle(STUCK_LEARNER_LOG_INTERVAL_MS);
  private leaderView: { atMs: number; peers: PeerStatus[] } | null = null;
  /** Set when this node learned it was removed (persisted as a marker file). */
  private removedBy: string | null = null;
  replicator!: RaftReplicator;
  clusterAddress!: HostPort;
  joinAddress!: HostPort;
  /** A joined node's log already said it was added as a learner (the join answer listed it so). */
  private learnerSaid = false;

  private constructor(
    private readonly config: NodeConfig,
    private readonly nodeId: string,
    private readonly logger: Logger,
    readonly tls: ClusterTls,
    readonly start: ClusterStart,
    caKeyPem: string | null,
  ) {
    this.caCache = caKeyPem === null ? null : { keyPem: caKeyPem, certPem: tls.caPem };
  }

  private get settings(): NonNullable<NodeConfig['cluster']> {
    return this.config.cluster as NonNullable<NodeConfig['cluster']>;
  }

  /**
   * Establishes this node's cluster identity before the store opens: reuse the persisted one
   * (restart), create the cluster CA (a seed's first start), or join through `--join`. A node
   * that already holds Raft state never joins again and never seeds a second cluster.
   */
  static async prepare(options: { config: NodeConfig; nodeId: string; db: SqliteDatabase; logger: Logger }): Promise<ClusterRuntime> {
    const { config, nodeId, logger } = options;
    const settings = config.cluster as NonNullable<NodeConfig['cluster']>;
    const existing = loadClusterTls(config.clusterDataDir);
    if (existsSync(join(config.clusterDataDir, REMOVED_MARKER))) {
      throw new NeuwerkError('NW_ERR_NODE_REMOVED', `this node was removed from its cluster (${join(config.clusterDataDir, REMOVED_MARKER)}); it cannot rejoin with its old identity`, {
        actions: ['Move the data dir aside and join with a bootstrap token to return as a new node.'],
      });
    }
    if (existing !== null) {
      logger.info({ tls_dir: clusterTlsPaths(config.clusterDataDir).dir }, 'cluster identity found; rejoining cluster traffic without a token');
      const runtime = new ClusterRuntime(config, nodeId, logger, existing, 'restart', null);
      // A joined node that stopped before its store held the membership (e.g. a listener failed
      // after the join) finds its peers where the join answer named them.
      for (const peer of loadJoinPeers(config.clusterDataDir)) runtime.addressHints.set(peer.node_id, peer.cluster_addr);
      return runtime;
    }
    const hasRaftState = options.db.prepare("SELECT 1 FROM raft_meta WHERE key = 'hard_state'").get() !== undefined;
    // The token is needed either way: a seed seals its CA key with it, a joiner authenticates with it.
    const tokens = loadBootstrapTokens(settings.bootstrapTokenPath);
    if (settings.join !== null) {
      if (hasRaftState) {
        throw new NeuwerkError('NW_ERR_USAGE', `this node already has a store (${config.clusterDataDir}) but no cluster identity; it cannot join another cluster`, {
          actions: ['Move the data dir aside (or pass an empty --data-dir) to join as a new node.'],
        });
      }
      // Joining makes this node a member; nothing after it may fail for a reason known now.
      await checkListenersFree(plannedListeners(config));
      const result = await joinCluster({
        seed: settings.join,
        nodeId,
        tokenPath: settings.bootstrapTokenPath,
        clusterAdvertise: settings.advertise,
        httpAdvertise: config.http.advertise,
        proxyAdvertise: config.proxy === null || config.proxy.bind.port === 0 ? null : advertisedListener(config.proxy.bind, config.http.advertise.host),
        dnsAdvertise: config.dns === null || config.dns.bind.port === 0 ? null : advertisedListener(config.dns.bind, config.http.advertise.host),
        logger,
      });
      saveJoinPeers(
        config.clusterDataDir,
        result.grant.members.flatMap((m) => (m.cluster_addr === null || m.node_id === nodeId ? [] : [{ node_id: m.node_id, cluster_addr: m.cluster_addr }])),
      );
      saveClusterTls(config.clusterDataDir, result.cluster);
      if (config.http.certPath === null) saveManagementTls(config.http.tlsDir, result.management);
      const runtime = new ClusterRuntime(config, nodeId, logger, result.cluster, 'joined', null);
      for (const member of result.grant.members) if (member.cluster_addr !== null) runtime.addressHints.set(member.node_id, member.cluster_addr);
      runtime.learnerSaid = result.addedAsLearner;
      return runtime;
    }
    if (currentToken(tokens) === null) throw new NeuwerkError('NW_ERR_BOOTSTRAP_TOKEN', `bootstrap token file ${settings.bootstrapTokenPath}: no token is valid now`);
    const ca = createClusterCa(randomUUID().slice(0, 8));
    const node = issueWithCa(ca, nodeId, settings.advertise.host);
    const tls: ClusterTls = { keyPem: node.keyPem, certPem: node.certPem, caPem: ca.certPem };
    if (config.http.certPath === null) {
      const management = issueWithCa(ca, nodeId, config.http.advertise.host);
      saveManagementTls(config.http.tlsDir, { ...management, caPem: ca.certPem });
    }
    saveClusterTls(config.clusterDataDir, tls);
    logger.info({ tls_dir: clusterTlsPaths(config.clusterDataDir).dir }, 'seed: created the cluster CA and this node\'s certificate');
    return new ClusterRuntime(config, nodeId, logger, tls, 'seed-first-start', ca.keyPem);
  }

  /** Opens the Raft host, the transport and the join listener. */
  async open(options: { db: SqliteDatabase; dbPath: string; snapshotsDir: string; metrics: NodeMetrics; onFatal: (err: Error) => void }): Promise<RaftReplicator> {
    const settings = this.settings;
    this.transport = new ClusterTransport({
      nodeId: this.nodeId,
      tls: this.tls,
      logger: this.logger,
      resolveAddress: (id) => this.addressOf(id),
      isRefused: (id) => this.replicator?.stateMachine.isRemoved(id) ?? false,
      onDropped: (_peer, reason) => options.metrics.raftMessagesDropped.inc({ reason }),
    });
    this.transport.on('raft', (from: string, message: unknown) => this.deliver(from, message, options.metrics));
    // Every drop reason has a sample from the start (0), so a rate() alert sees 0, not "no data".
    for (const reason of [...DROP_REASONS, 'malformed']) options.metrics.raftMessagesDropped.inc({ reason }, 0);
    this.replicator = await openRaftReplicator({
      db: options.db,
      dbPath: options.dbPath,
      nodeId: this.nodeId,
      snapshotsDir: options.snapshotsDir,
      raft: this.config.raft,
      bootstrapVoters: this.start === 'seed-first-start' ? [this.nodeId] : null,
      send: (messages) => this.transport.sendRaftBatch(messages),
      logger: this.logger,
      metrics: options.metrics,
      onFatal: options.onFatal,
    });
    this.transport.handle('join.admit', async (from, body) => {
      const admission = parseAdmission(body);
      this.logger.info({ from, joiner: admission.node_id }, 'join forwarded by a member');
      await this.admit(admission);
      return { ok: true };
    });
    this.clusterAddress = await listenTransport(this.transport, settings.bind, this.config.bindSettings.cluster);
    const service = new JoinService({
      nodeId: this.nodeId,
      tokenPath: settings.bootstrapTokenPath,
      logger: this.logger,
      ca: () => this.caKey(),
      clusterId: () => this.replicator.stateMachine.clusterCa()?.cluster_id ?? 'pending',
      members: () => this.replicator.stateMachine.members(),
      isRemoved: (id) => this.replicator.stateMachine.isRemoved(id),
      admit: (admission) => this.admitOnLeader(admission),
    });
    this.joinServer = createJoinServer(service, this.logger);
    this.joinAddress = await listen(this.joinServer, settings.joinBind, this.config.bindSettings.clusterJoin);
    this.transport.handle('cluster.removed', async (from) => {
      if (!this.mayAnnounceRemoval(from)) throw new NeuwerkError('NW_ERR_AUTH_FORBIDDEN', 'only a voter may announce a removal');
      this.markRemoved(from);
      return { ok: true };
    });
    // A node removed while it was down hears it when a member refuses its connection.
    this.transport.on('refused', (from: string, reason: string) => {
      if (reason === 'removed' && this.mayAnnounceRemoval(from)) this.markRemoved(from);
    });
    this.transport.handle('cluster.peers', async () => {
      if (this.replicator.status().role !== 'leader') throw new NeuwerkError('NW_ERR_NOT_LEADER', 'not the leader');
      return this.status().peers;
    });
    this.every(PROMOTION_INTERVAL_MS, () => void this.promoteCaughtUpLearners());
    this.every(LEADER_VIEW_REFRESH_MS, () => {
      this.warnAboutStuckLearners();
      void this.refreshLeaderView();
    });
    if (this.start === 'joined') this.watchOwnJoin(this.learnerSaid);
    return this.replicator;
  }

  /** Seed first start: record the CA certificate and this node's CA-key envelope. */
  async initialiseSeed(): Promise<void> {
    if (this.start !== 'seed-first-start' || this.caCache === null) return;
    const token = currentToken(loadBootstrapTokens(this.settings.bootstrapTokenPath));
    if (token === null) throw new NeuwerkError('NW_ERR_BOOTSTRAP_TOKEN', 'no valid bootstrap token to seal the CA key');
    await this.replicator.propose({ v: 1, type: 'ca.set', cluster_id: randomUUID(), cert_pem: this.tls.caPem });
    await this.replicator.propose({ v: 1, type: 'ca.envelope.put', node_id: this.nodeId, envelope: { ...sealCaKey(this.caCache.keyPem, token) } });
  }

  private every(intervalMs: number, action: () => void): void {
    const timer = setInterval(action, intervalMs);
    timer.unref();
    this.timers.push(timer);
  }

  private addressOf(nodeId: string): { host: string; port: number } | null {
    const member = this.replicator?.stateMachine.member(nodeId);
    const text = member?.cluster_addr ?? this.addressHints.get(nodeId) ?? null;
    if (text === null) return null;
    const parsed = parseHostPort(text);
    return 'error' in parsed ? null : parsed;
  }

  /** Hands a peer's Raft message to the core after checking it speaks for its own certificate. */
  private deliver(from: string, raw: unknown, metrics: NodeMetrics): void {
    const problem = raftMessageProblem(raw);
    if (problem !== null) {
      metrics.raftMessagesDropped.inc({ reason: 'malformed' });
      // Once per peer and problem: a peer with a bug sends the same bad message many times a second.
      const key = `${from}\u0000${problem.slice(0, problem.indexOf(' '))}`;
      if (!this.malformedLogged.has(key)) {
        this.malformedLogged.add(key);
        this.logger.warn({ from, problem }, 'dropped a malformed Raft message (logged once per peer and field)');
      }
      return;
    }
    const message = raw as Message;
    if (message.from !== from || message.to !== this.nodeId) {
      this.logger.warn({ from, claimed: message.from, to: message.to }, 'dropped a Raft message whose sender does not match its certificate');
      return;
    }
    this.lastContactMs.set(from, Date.now());
    this.replicator.step(message);
  }

  /** The CA key, opened from this node's envelope with its bootstrap token. */
  private caKey(): KeyAndCert {
    if (this.caCache !== null) return this.caCache;
    const envelope = this.replicator.stateMachine.caEnvelope(this.nodeId) as CaKeyEnvelope | null;
    const ca = this.replicator.stateMachine.clusterCa();
    if (envelope === null || ca === null) {
      throw new NeuwerkError('NW_ERR_NOT_LEADER', 'this member has not received its CA key envelope yet; retry shortly');
    }
    const token = loadBootstrapTokens(this.settings.bootstrapTokenPath).find((t) => t.kid === envelope.kid);
    if (token === undefined) throw new NeuwerkError('NW_ERR_JOIN_REFUSED', `this member's CA key is sealed with token ${envelope.kid}, which is no longer in its token file`);
    this.caCache = { keyPem: openCaKey(envelope, token.secret), certPem: ca.cert_pem };
    return this.caCache;
  }

  /** Admission runs on the leader; a follower forwards it over cluster RPC. */
  private async admitOnLeader(admission: Admission): Promise<void> {
    this.addressHints.set(admission.node_id, admission.cluster_addr);
    const status = this.replicator.status();
    if (status.role === 'leader') {
      await this.admit(admission);
      return;
    }
    if (status.leaderId === null) throw new NeuwerkError('NW_ERR_NO_LEADER', 'no cluster leader to admit the node; retry shortly');
    await this.transport.call(status.leaderId, 'join.admit', admission, 10_000);
  }

  /** Leader: records the member and its envelope, then adds it as a learner (it is promoted once caught up). */
  private async admit(admission: Admission): Promise<void> {
    this.addressHints.set(admission.node_id, admission.cluster_addr);
    const machine = this.replicator.stateMachine;
    if (machine.isRemoved(admission.node_id)) throw new NeuwerkError('NW_ERR_JOIN_REFUSED', `node id ${admission.node_id} was removed`);
    await this.replicator.propose({ v: 1, type: 'ca.envelope.put', node_id: admission.node_id, envelope: admission.envelope });
    await this.replicator.propose({
      v: 1,
      type: 'member.upsert',
      node_id: admission.node_id,
      cluster_addr: admission.cluster_addr,
      http_addr: admission.http_addr,
      proxy_addr: admission.proxy_addr ?? null,
      dns_addr: admission.dns_addr ?? null,
      role: 'learner',
      joined_at: new Date().toISOString(),
    });
    const conf = this.replicator.raftStatus().conf;
    if (!conf.voters.includes(admission.node_id) && !conf.learners.includes(admission.node_id)) {
      await this.replicator.proposeConfChange({ type: 'add-learner', nodeId: admission.node_id });
    }
    this.logger.info({ joiner: admission.node_id }, 'membership: added learner');
  }

  /** Leader: promotes learners whose log has caught up, one change at a time. */
  private async promoteCaughtUpLearners(): Promise<void> {
    if (this.promoting || this.replicator.status().role !== 'leader') return;
    const status = this.replicator.raftStatus();
    const ready = status.conf.learners.find((id) => {
      const progress = status.progress?.[id];
      return progress !== undefined && progress.match >= status.lastIndex - PROMOTION_LAG_ENTRIES && !this.replicator.stateMachine.isRemoved(id);
    });
    if (ready === undefined) return;
    this.promoting = true;
    try {
      await this.replicator.proposeConfChange({ type: 'promote', nodeId: ready });
      const member = this.replicator.stateMachine.member(ready);
      if (member !== undefined) await this.replicator.propose({ v: 1, type: 'member.upsert', node_id: member.node_id, cluster_addr: member.cluster_addr, http_addr: member.http_addr, role: 'voter', joined_at: member.joined_at });
      this.logger.info({ node: ready }, 'membership: promoted learner to voter');
    } catch (err) {
      this.logger.debug({ node: ready, err: describeError(err) }, 'promotion deferred');
    } finally {
      this.promoting = false;
    }
  }

  /**
   * Leader: a learner that stays unreachable (a joiner whose start failed after its token was
   * accepted) would otherwise only show as `learner unreachable` in `neuwerk status`; say what it
   * is and what to do, once per `STUCK_LEARNER_LOG_INTERVAL_MS` per learner.
   */
  private warnAboutStuckLearners(): void {
    if (this.replicator.status().role !== 'leader') {
      this.learnerSince.clear();
      return;
    }
    for (const { node_id: id, learnerForMs } of stuckLearners(this.status().peers, this.learnerSince, Date.now(), STUCK_LEARNER_AFTER_MS)) {
      if (this.stuckLearnerLog.admit(id, Date.now()) === null) continue;
      this.logger.warn(
        { node: id, learner_for_s: Math.round(learnerForMs / 1000) },
        `membership: learner ${id} has been unreachable since it was added ${Math.round(learnerForMs / 1000)} s ago; start it again (a joiner that failed after its token was accepted finds its peers in join-peers.json) or remove it: neuwerk cluster members remove ${id}`,
      );
    }
  }

  /** Followers hear only the leader, so they borrow its view of the other peers' health. */
  private async refreshLeaderView(): Promise<void> {
    const status = this.replicator.status();
    if (status.role === 'leader' || status.leaderId === null) return;
    try {
      const peers = await this.transport.call<PeerStatus[]>(status.leaderId, 'cluster.peers', {}, LEADER_VIEW_REFRESH_MS);
      this.leaderView = { atMs: Date.now(), peers };
    } catch {
      // Keep the old view; it ages out.
    }
  }

  /**
   * A joining node says where it stands until it is a voter: the learner stage (unless the join
   * answer already said so), its progress while it catches up (applied / commit index, once it
   * has heard the leader's commit index and then every `JOIN_PROGRESS_INTERVAL_MS`), and the
   * promotion.
   */
  private watchOwnJoin(learnerSaid: boolean): void {
    let saidLearner = learnerSaid;
    let progressSaidAtMs: number | null = null;
    const timer = setInterval(() => {
      const status = this.replicator.raftStatus();
      const applied = this.replicator.stateMachine.appliedIndex;
      if (status.conf.voters.includes(this.nodeId)) {
        this.logger.info({ stage: 'voter', applied }, `join: promoted to voter at index ${applied}; join complete`);
        clearInterval(timer);
        return;
      }
      if (!status.conf.learners.includes(this.nodeId)) return;
      if (!saidLearner) this.logger.info({ stage: 'added as learner' }, 'join: added as learner');
      saidLearner = true;
      const nowMs = Date.now();
      if (status.commit > 0 && (progressSaidAtMs === null || nowMs - progressSaidAtMs >= JOIN_PROGRESS_INTERVAL_MS)) {
        progressSaidAtMs = nowMs;
        this.logger.info({ stage: 'catching up', applied, commit: status.commit }, `join: catching up ${applied}/${status.commit}`);
      }
    }, JOIN_STAGE_POLL_MS);
    timer.unref();
    this.timers.push(timer);
  }

  /** Cluster status as `/api/v1/cluster/status` shows it (DESIGN §6). */
  status(): ClusterStatus {
    const raft = this.replicator.raftStatus();
    const own = this.replicator.status();
    const heartbeatMs = this.config.raft.tickMs * this.config.raft.heartbeatTicks;
    const now = Date.now();
    const members = new Set([...raft.conf.voters, ...raft.conf.learners]);
    const peers: PeerStatus[] = [];
    for (const id of [...members].sort()) {
      const isLearner = raft.conf.learners.includes(id);
      const role: PeerStatus['role'] = id === raft.leader ? 'leader' : isLearner ? 'learner' : 'follower';
      if (id === this.nodeId) {
        peers.push({ node_id: id, role: own.role === 'pre-candidate' ? 'candidate' : own.role, status: 'healthy', match_index: raft.lastIndex, lag: own.role === 'leader' ? 0 : Math.max(0, raft.commit - own.appliedIndex), last_contact_ms: 0 });
        continue;
      }
      const borrowed = own.role !== 'leader' && id !== raft.leader && this.leaderView !== null && now - this.leaderView.atMs <= LEADER_VIEW_MAX_AGE_MS
        ? this.leaderView.peers.find((p) => p.node_id === id)
        : undefined;
      if (borrowed !== undefined) {
        peers.push({ ...borrowed, role });
        continue;
      }
      const contact = this.lastContactMs.get(id);
      const lastContact = contact === undefined ? null : now - contact;
      const progress = raft.progress?.[id];
      const unreachable = lastContact === null || lastContact > UNREACHABLE_HEARTBEATS * heartbeatMs * (own.role === 'leader' ? 1 : this.config.raft.electionTimeoutTicks);
      // A leader starts every peer's match at 0; one it has not heard from since shows unknown
      // (null), not a lag of the whole log.
      const match = progress === undefined || (progress.match === 0 && unreachable) ? null : progress.match;
      const lag = match === null ? null : Math.max(0, raft.lastIndex - match);
      const health: PeerHealth = unreachable ? 'unreachable' : lag !== null && lag > LAGGING_ENTRIES ? 'lagging' : 'healthy';
      peers.push({ node_id: id, role, status: health, match_index: match, lag, last_contact_ms: lastContact });
    }
    const voters = raft.conf.voters.length;
    const healthyVoters = peers.filter((p) => raft.conf.voters.includes(p.node_id) && p.status !== 'unreachable').length;
    const quorum = Math.floor(voters / 2) + 1;
    return {
      cluster_enabled: true,
      cluster_id: this.replicator.stateMachine.clusterCa()?.cluster_id ?? null,
      node_id: this.nodeId,
      role: own.role === 'pre-candidate' ? 'candidate' : own.role,
      leader_id: raft.leader,
      term: raft.term,
      commit_index: raft.commit,
      applied_index: own.appliedIndex,
      log_first_index: raft.firstIndex,
      snapshot_index: raft.snapshotIndex,
      voters,
      healthy_voters: healthyVoters,
      tolerates: Math.max(0, healthyVoters - quorum),
      peers,
    };
  }

  /** Readiness `cluster`: a leader is known (the core forgets a leader it stops hearing from). */
  readiness(): { ok: boolean; detail?: string } {
    const raft = this.replicator.raftStatus();
    if (this.removedBy !== null || this.replicator.stateMachine.isRemoved(this.nodeId)) {
      return { ok: false, detail: `this node was removed from the cluster${this.removedBy === null ? '' : ` (by ${this.removedBy})`}; it no longer serves cluster traffic` };
    }
    if (raft.leader === null) return { ok: false, detail: 'no cluster leader known' };
    if (!raft.conf.voters.includes(this.nodeId) && !raft.conf.learners.includes(this.nodeId)) return { ok: false, detail: 'not a member of the cluster configuration yet' };
    const view = this.status();
    return { ok: true, detail: `leader ${raft.leader}; ${view.voters} voters, ${view.healthy_voters} healthy, tolerates ${view.tolerates}` };
  }

  /** Leader, after removing `nodeId`: tells it (best effort) so it stops and says so. */
  async notifyRemoved(nodeId: string): Promise<void> {
    try {
      await this.transport.call(nodeId, 'cluster.removed', {}, 2_000);
    } catch {
      // An unreachable node learns it when it next connects: members refuse it with a `refused` frame.
    }
  }

  /** Only the leader or a voter of this node's own configuration is believed about a removal. */
  private mayAnnounceRemoval(from: string): boolean {
    return from === this.replicator.status().leaderId || this.replicator.raftStatus().conf.voters.includes(from);
  }

  private markRemoved(by: string): void {
    if (this.removedBy !== null) return;
    this.removedBy = by;
    writeFileSync(join(this.config.clusterDataDir, REMOVED_MARKER), `${new Date().toISOString()} removed by ${by}\n`, { mode: 0o600 });
    this.logger.error({ removed_by: by }, 'this node was removed from the cluster; it no longer serves cluster traffic (wipe its data dir and join again to return as a new node)');
    void this.replicator.close();
  }

  /** Graceful stop: a leader first hands leadership to the most caught-up voter. */
  async transferLeadershipIfLeader(): Promise<void> {
    const raft = this.replicator.raftStatus();
    if (raft.role !== 'leader') return;
    const candidates = raft.conf.voters.filter((id) => id !== this.nodeId);
    if (candidates.length === 0) return;
    candidates.sort((a, b) => (raft.progress?.[b]?.match ?? 0) - (raft.progress?.[a]?.match ?? 0));
    const target = candidates[0] as string;
    const outcome = this.replicator.transferLeadership(target);
    if (!outcome.ok) return;
    this.logger.info({ to: target }, 'transferring leadership before stopping');
    const deadline = Date.now() + TRANSFER_WAIT_MS;
    while (Date.now() < deadline && this.replicator.raftStatus().role === 'leader') await new Promise((r) => setTimeout(r, 20));
  }

  /** The transport, for cluster RPCs of other subsystems. */
  get rpc(): ClusterTransport {
    return this.transport;
  }

  /**
   * Stops everything the runtime started, the Raft host included (also when `open` failed half
   * way, e.g. on a cluster port in use, so the process can exit instead of ticking on).
   */
  async close(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    if (this.joinServer !== null) await closeServer(this.joinServer, 500);
    await this.replicator?.close();
    await this.transport?.close();
  }
}

async function listenTransport(transport: ClusterTransport, bind: HostPort, setting: string): Promise<HostPort> {
  try {
    return await transport.listen(bind.host, bind.port);
  } catch (err) {
    throw bindError(err as NodeJS.ErrnoException, bind, setting, '');
  }
}
