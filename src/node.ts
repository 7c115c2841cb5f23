import type { Server } from 'node:net';
import { join } from 'node:path';
import { addAuthRoutes, AUTH_SCHEMAS } from './api/routes/auth.js';
import { addKeyvalRoutes, KEYVAL_SCHEMAS } from './api/routes/keyval.js';
import { addPolicyRoutes, POLICY_SCHEMAS } from './api/routes/policy.js';
import { addSupportRoutes, SUPPORT_SCHEMAS } from './api/routes/support.js';
import { addDataplaneRoutes, DATAPLANE_SCHEMAS } from './dataplane/api-routes.js';
import { addClusterFindingsRoutes, FINDINGS_SCHEMAS } from './api/routes/findings.js';
import { addStatsRoutes, STATS_SCHEMAS } from './api/routes/stats.js';
import { Dataplane, systemDnsUpstreams } from './dataplane/dataplane.js';
import { defaultPolicyDocument, PolicyEnforcement } from './dataplane/policy-state.js';
import { addSystemRoutes, SYSTEM_SCHEMAS } from './api/routes/system.js';
import { Authenticator } from './auth/authenticator.js';
import { LoginLimiter } from './auth/login-limiter.js';
import { AuthService } from './auth/service.js';
import { Router } from './api/router.js';
import { createApiServer, createForwardedRequestHandler, type ApiServerOptions } from './api/server.js';
import { FORWARD_RPC_METHOD } from './api/forwarded-request.js';
import { ensureHttpTls } from './api/tls.js';
import type { Replicator } from './cluster/replicator.js';
import { openRaftReplicator } from './cluster/raft-host.js';
import { ClusterRuntime } from './cluster/runtime.js';
import { advertisedListener, registerAdvertiseRpc, SelfAdvertiser } from './cluster/advertise.js';
import { addClusterRoutes, CLUSTER_SCHEMAS } from './api/routes/cluster.js';
import { LeaderProxy, type ClusterRpcCall } from './api/leader-proxy.js';
import { MembershipView } from './api/membership-view.js';
import { formatHostPort, type HostPort } from './config/address.js';
import type { NodeConfig } from './config/load.js';
import { describeError, NeuwerkError } from './errors.js';
import type { Logger, LogRing } from './log/logger.js';
import { NodeMetrics } from './metrics/registry.js';
import { createMetricsServer } from './metrics/server.js';
import { closeServer, listen } from './net/listen.js';
import { ensureDataDir, loadOrCreateNodeId } from './node-id.js';
import { Readiness } from './readiness.js';
import { openStoreDatabase, STORE_FILE_NAME, type SqliteDatabase } from './store/database.js';
import { NEUWERK_VERSION } from './version.js';

import { registerNodeSysdumpRpc } from './sysdump/cluster-sysdump.js';
/** A graceful stop must finish within this budget (DESIGN §7: within 10 s). */
export const STOP_BUDGET_MS = 8_000;
/**
 * A node with a dataplane keeps serving this long after a graceful stop begins, with /ready
 * answering 503, so a load balancer checking every second (fall 2) stops sending it new
 * connections first. Fits the 10 s stop budget with leadership transfer and listener close.
 */
export const DRAIN_DELAY_MS = 2_500;
/** How often the leader checks for expired keyval keys to delete everywhere. */
export const KEYVAL_EXPIRY_INTERVAL_MS = 1_000;
/** In-flight API requests get this long to finish when the node stops. */
const API_CLOSE_GRACE_MS = 2_000;

export interface RunningNode {
  readonly nodeId: string;
  readonly config: NodeConfig;
  /** The certificate a client verifies the management API with (`--ca`). */
  readonly caPath: string;
  /** The command that mints a first admin token on this node. */
  readonly bootstrapCommand: string;
  readonly httpAddress: HostPort;
  readonly metricsAddress: HostPort;
  /** Bound DNS proxy address (UDP and TCP), or null without --dns-bind. */
  readonly dnsAddress: HostPort | null;
  readonly proxyAddress: HostPort | null;
  readonly readiness: Readiness;
  readonly replicator: Replicator;
  /** Drains, closes listeners and the store; idempotent. */
  stop(reason: string): Promise<void>;
}

/**
 * Starts one node: data dir, identity, store, TLS, metrics, API — in that order, so each step can
 * rely on the ones before it. A failure part-way releases what was already opened.
 */
export async function startNode(config: NodeConfig, rootLogger: Logger, ring?: LogRing): Promise<RunningNode> {
  // Once the node id is known every line carries it, so a cluster's logs collected in one place
  // say which node wrote each line.
  let logger = rootLogger;
  const opened: (() => Promise<void> | void)[] = [];
  const releaseAll = async (): Promise<void> => {
    for (const release of opened.reverse()) {
      try {
        await release();
      } catch (err) {
        logger.warn({ err: describeError(err) }, 'release during shutdown failed');
      }
    }
  };

  try {
    ensureDataDir(config.dataDir);
    const { nodeId, created } = loadOrCreateNodeId(config.nodeIdPath);
    logger = rootLogger.child({ node_id: nodeId });
    if (created) logger.info({ path: config.nodeIdPath }, 'created node id');

    const storePath = join(config.clusterDataDir, STORE_FILE_NAME);
    const db: SqliteDatabase = openStoreDatabase(storePath);
    opened.push(() => {
      db.close();
    });
    const metrics = new NodeMetrics(nodeId);
    let fatal: ((err: Error) => void) | null = null;
    const snapshotsDir = join(config.clusterDataDir, 'snapshots');
    const onFatal = (err: Error): void => fatal?.(err);
    let cluster: ClusterRuntime | null = null;
    let replicator: Replicator;
    if (config.cluster !== null) {
      const runtime = await ClusterRuntime.prepare({ config, nodeId, db, logger });
      cluster = runtime;
      opened.push(() => runtime.close());
      replicator = await runtime.open({ db, dbPath: storePath, snapshotsDir, metrics, onFatal });
      logger.info({ cluster_bind: formatHostPort(runtime.clusterAddress), join_bind: formatHostPort(runtime.joinAddress), start: runtime.start }, 'cluster mode');
    } else {
      replicator = await openRaftReplicator({ db, dbPath: storePath, nodeId, snapshotsDir, raft: config.raft, bootstrapVoters: [nodeId], send: () => undefined, logger, metrics, onFatal });
    }
    opened.push(() => replicator.close());
    // Seed first start: the CA certificate and this node's CA-key envelope go into the store.
    if (cluster !== null) await cluster.initialiseSeed();
    const isLeader = (): boolean => replicator.status().role === 'leader';
    logger.info({ path: storePath, applied_index: replicator.status().appliedIndex }, 'store opened');

    metrics.onScrape(() => {
      const status = replicator.status();
      metrics.raftTerm.set(status.term);
      metrics.raftCommitIndex.set(status.commitIndex);
      metrics.raftAppliedIndex.set(status.appliedIndex);
      metrics.raftIsLeader.set(status.role === 'leader' ? 1 : 0);
      const view = cluster?.status() ?? { voters: 1, healthy_voters: 1, tolerates: 0 };
      metrics.clusterVoters.set(view.voters);
      metrics.clusterHealthyVoters.set(view.healthy_voters);
      metrics.clusterTolerates.set(view.tolerates);
    });

    const readiness = new Readiness();
    metrics.onScrape(() => {
      const report = readiness.evaluate();
      metrics.ready.set(report.ready ? 1 : 0);
      // Only the checks that exist now (`draining` appears once a stop began).
      metrics.readinessChecks.reset();
      for (const check of report.checks) metrics.readinessChecks.set({ check: check.name }, check.ok ? 1 : 0);
    });
    readiness.register('store', () => {
      const status = replicator.status();
      if (status.stoppedBy !== null) return { ok: false, detail: status.stoppedBy };
      return status.caughtUpAtStart
        ? { ok: true }
        : { ok: false, detail: `applying committed entries (applied ${status.appliedIndex} of ${status.commitIndex})` };
    });

    const tls = ensureHttpTls({
      dir: config.http.tlsDir,
      certPath: config.http.certPath,
      keyPath: config.http.keyPath,
      commonName: nodeId,
      hosts: [config.http.bind.host, config.http.advertise.host],
    });
    if (tls.generated) logger.info({ dir: config.http.tlsDir }, 'generated self-signed management TLS certificate');

    const auth = new AuthService(replicator, logger);
    if (isLeader()) await auth.ensureSigningKey(`node:${nodeId}`);
    const authenticator = new Authenticator(replicator.stateMachine);
    if (cluster !== null) registerClusterAuthRpcs(cluster, auth, isLeader, logger);

    const enforcement = new PolicyEnforcement(replicator.stateMachine, logger, (seconds) => metrics.policyCompile.observe(seconds));
    readiness.register('policy_ready', () => enforcement.readiness());
    if (cluster !== null) {
      const clusterRuntime = cluster;
      readiness.register('cluster', () => clusterRuntime.readiness());
      readiness.register('policy_replication', () => {
        const stored = replicator.stateMachine.policyVersion();
        if (!replicator.status().caughtUpAtStart) return { ok: false, detail: 'still applying the replicated log' };
        return enforcement.version === stored && stored > 0 ? { ok: true } : { ok: false, detail: `local policy version ${enforcement.version}, replicated ${stored}` };
      });
    }
    if (replicator.stateMachine.policy() === null && isLeader()) {
      await replicator.propose({
        v: 1,
        type: 'policy.set',
        document: defaultPolicyDocument(config.policy.defaultPolicy) as unknown as Record<string, unknown>,
        set_by: `node:${nodeId} (--default-policy)`,
        set_at: new Date().toISOString(),
      });
    }

    const router = new Router();
    addSystemRoutes(router, readiness, () => ({ ...SYSTEM_SCHEMAS, ...AUTH_SCHEMAS, ...KEYVAL_SCHEMAS, ...POLICY_SCHEMAS, ...CLUSTER_SCHEMAS, ...SUPPORT_SCHEMAS, ...DATAPLANE_SCHEMAS, ...STATS_SCHEMAS, ...FINDINGS_SCHEMAS }), NEUWERK_VERSION);
    // The cluster RPC as the API layer calls it (forwarding to the leader, asking members for their own views).
    const clusterForRpc = cluster;
    const clusterCall: ClusterRpcCall | null = clusterForRpc === null ? null : (to, method, body, timeoutMs) => clusterForRpc.rpc.call(to, method, body, timeoutMs);
    addClusterRoutes(router, {
      cluster,
      replicator,
      logger,
      policyVersion: () => enforcement.version,
      rpc: clusterCall,
    });
    addAuthRoutes(router, { auth, authenticator, limiter: new LoginLimiter() });
    addKeyvalRoutes(router, replicator, logger);
    addPolicyRoutes(router, replicator, enforcement, logger);
    const nodeSysdump = { nodeId, config, db, stateMachine: replicator.stateMachine, readiness, metrics, ring, replicationStatus: () => replicator.status() };
    if (cluster !== null) registerNodeSysdumpRpc(cluster, nodeSysdump, logger);
    addSupportRoutes(router, { ring, nodeId, config, sysdump: { node: nodeSysdump, cluster, members: () => replicator.stateMachine.members(), logger } });

    // Enforcement is local: the proxies decide with this node's compiled policy, leader or not.
    const dataplane = new Dataplane({
      enforcement,
      logger,
      metrics,
      dns: config.dns === null ? null : { bind: config.dns.bind, bindSetting: config.bindSettings.dns, upstreams: config.dns.upstreams.length > 0 ? config.dns.upstreams : systemDnsUpstreams() },
      proxy: config.proxy === null ? null : { ...config.proxy, bindSetting: config.bindSettings.proxy },
      ownAddresses: [
        config.http.bind.host,
        config.metrics.bind.host,
        ...(config.cluster === null ? [] : [config.cluster.bind.host, config.cluster.joinBind.host]),
      ],
      denylistSource: replicator.stateMachine,
    });
    const dataplaneAddresses = await dataplane.start();
    opened.push(() => dataplane.stop());
    if (config.dns !== null) readiness.register('dns_ready', () => dataplane.dnsReadiness());
    if (config.proxy !== null) readiness.register('proxy_ready', () => dataplane.proxyReadiness());
    addDataplaneRoutes(router, dataplane);
    addStatsRoutes(router, { dataplane, cluster, replicator });
    opened.push(
      addClusterFindingsRoutes(router, {
        nodeId,
        dataplane,
        logger,
        caPem: cluster?.tls.caPem ?? null,
        rpc: clusterCall,
        members: cluster === null ? null : () => replicator.stateMachine.members(),
      }),
    );

    const metricsServer = createMetricsServer(metrics);
    const metricsAddress = await listen(metricsServer, config.metrics.bind, config.bindSettings.metrics);
    opened.push(() => closeServer(metricsServer, 500));

    const clusterForProxy = cluster;
    // Leader address and peer membership for request forwarding, without a SQLite query per request.
    const membership = new MembershipView(replicator.stateMachine);
    const proxy =
      clusterForProxy === null
        ? null
        : new LeaderProxy(
            nodeId,
            clusterForProxy.tls.caPem,
            () => membership.leaderAddress(replicator.status().leaderId),
            logger,
            clusterCall,
            (path) => metrics.apiForwarded.inc({ via: path.via, reason: path.via === 'rpc' ? 'none' : path.reason }),
          );
    if (proxy !== null) opened.push(() => proxy.close());
    const apiOptions: ApiServerOptions = {
      tls,
      router,
      logger,
      metrics,
      nodeId,
      authenticate: (token) => authenticator.authenticate(token),
      onAuthenticated: (identity) => auth.noteUse(identity),
      ...(proxy !== null ? { routing: { isLeader, proxy, isMember: (id: string) => membership.isMember(id), stoppedBy: () => replicator.failure() } } : {}),
    };
    const apiServer = createApiServer(apiOptions);
    if (cluster !== null) {
      // A follower's forwarded requests run here through the same router and auth as HTTPS ones.
      cluster.rpc.handle(
        FORWARD_RPC_METHOD,
        createForwardedRequestHandler(apiOptions, {
          isMember: (id) => membership.isMember(id),
          isLeader,
        }),
      );
    }
    const httpAddress = await listen(apiServer as unknown as Server, config.http.bind, config.bindSettings.http);
    opened.push(() => closeServer(apiServer as unknown as Server, API_CLOSE_GRACE_MS));

    const advertiseHost = config.http.advertise.host;
    const advertiser = new SelfAdvertiser({
      nodeId,
      replicator,
      cluster,
      clusterAddr: config.cluster ? formatHostPort(config.cluster.advertise) : null,
      addresses: {
        http_addr: formatHostPort({ host: advertiseHost, port: config.http.advertise.port === 0 ? httpAddress.port : config.http.advertise.port }),
        proxy_addr: dataplaneAddresses.proxy === null ? null : advertisedListener(dataplaneAddresses.proxy, advertiseHost),
        dns_addr: dataplaneAddresses.dns === null ? null : advertisedListener(dataplaneAddresses.dns.udp, advertiseHost),
      },
      logger,
    });
    if (cluster !== null) registerAdvertiseRpc(cluster, replicator);
    await advertiser.start();
    opened.push(() => advertiser.stop());

    // Expired keys already read as absent everywhere; the leader also deletes them from every
    // replica with one command whose cut-off time it fixes.
    const expiryTimer = setInterval(() => {
      const next = replicator.stateMachine.nextExpiryMs();
      const nowMs = Date.now();
      if (next === null || next > nowMs || replicator.status().role !== 'leader') return;
      replicator.propose({ v: 1, type: 'keyval.expire', now_ms: nowMs }).catch((err: unknown) => logger.debug({ err: describeError(err) }, 'keyval expiry deferred'));
    }, KEYVAL_EXPIRY_INTERVAL_MS);
    expiryTimer.unref();
    opened.push(() => clearInterval(expiryTimer));

    // With the config file named, `auth` finds the node's files where its keys put them.
    const bootstrapCommand = `neuwerk auth bootstrap --data-dir ${config.dataDir}${config.configPath === null ? '' : ` --config ${config.configPath}`}`;
    logger.info(
      {
        version: NEUWERK_VERSION,
        data_dir: config.dataDir,
        listeners: {
          http: `https://${formatHostPort(httpAddress)}`,
          metrics: `http://${formatHostPort(metricsAddress)}/metrics`,
          ...(dataplaneAddresses.dns === null ? {} : { dns: formatHostPort(dataplaneAddresses.dns.udp) }),
          ...(dataplaneAddresses.proxy === null ? {} : { proxy: formatHostPort(dataplaneAddresses.proxy) }),
        },
        ca_cert: tls.caPath,
        admin_token: bootstrapCommand,
      },
      'neuwerk node started',
    );

    let stopping: Promise<void> | null = null;
    // A failure of the Raft loop that is not the disk's (a committed entry that cannot be applied
    // is a bug) stops the process loudly rather than diverge. A store the disk will not let it
    // write stops replication only (`RaftReplicator.fail`): the node stays up, enforcing the policy
    // it last applied, `/ready` fails with the reason and writes answer 503.
    fatal = (err) => {
      logger.fatal({ err: describeError(err) }, 'replicated state machine stopped on a fatal error; exiting');
      process.exit(70);
    };
    return {
      nodeId,
      config,
      caPath: tls.caPath,
      bootstrapCommand,
      httpAddress,
      metricsAddress,
      dnsAddress: dataplaneAddresses.dns?.udp ?? null,
      proxyAddress: dataplaneAddresses.proxy,
      readiness,
      replicator,
      stop(reason: string): Promise<void> {
        stopping ??= (async () => {
          logger.info({ reason }, 'stopping node');
          readiness.drain(`node is stopping (${reason})`);
          // Behind a load balancer: keep serving with /ready answering 503 long enough for the
          // balancer's health checks to take this node out, then close the listeners.
          if (dataplaneAddresses.proxy !== null || dataplaneAddresses.dns !== null) {
            logger.info({ drain_ms: DRAIN_DELAY_MS }, 'draining: /ready answers 503 while the listeners still serve');
            await new Promise((resolve) => setTimeout(resolve, DRAIN_DELAY_MS));
          }
          // New proxy connections stop now; open tunnels get the grace period while leadership moves.
          const transfer = async (): Promise<void> => {
            if (cluster === null) return;
            try {
              await cluster.transferLeadershipIfLeader();
            } catch (err) {
              logger.warn({ err: describeError(err) }, 'leadership transfer failed; stopping anyway');
            }
          };
          await Promise.all([dataplane.stop(config.proxy?.tunnelGraceMs ?? 0), transfer()]);
          await releaseAll();
          logger.info('node stopped');
        })();
        return stopping;
      },
    };
  } catch (err) {
    await releaseAll();
    throw err;
  }
}

/** Largest lifetime `auth token mint` may ask for over cluster RPC. */
const RPC_MINT_TTL_MAX_MS = 366 * 86_400_000;

/**
 * Cluster-mode auth for operators on a node (`neuwerk auth ... --data-dir`, `--cluster-addr`): the
 * caller proves itself with a member's mTLS identity (only the cluster CA's certificates reach these
 * handlers). Minting and listing use this node's replica of the keyset; key changes are writes and
 * run on the leader (a follower forwards them).
 */
function registerClusterAuthRpcs(cluster: ClusterRuntime, auth: AuthService, isLeader: () => boolean, logger: Logger): void {
  const onLeader = async <T>(method: string, body: unknown, action: () => Promise<T>): Promise<T> => {
    if (isLeader()) return action();
    const leader = cluster.replicator.status().leaderId;
    if (leader === null) throw new NeuwerkError('NW_ERR_NO_LEADER', 'no cluster leader');
    return cluster.rpc.call<T>(leader, method, body, 10_000);
  };
  cluster.rpc.handle('auth.mint', async (from, body) => {
    const request = body as { sub?: unknown; roles?: unknown; ttlMs?: unknown; kid?: unknown } | null;
    const roles = request?.roles;
    if (typeof request?.sub !== 'string' || request.sub.length === 0 || request.sub.length > 256) throw new NeuwerkError('NW_ERR_VALIDATION', 'sub must be 1-256 characters');
    if (!Array.isArray(roles) || roles.length === 0 || !roles.every((r) => r === 'admin' || r === 'readonly')) throw new NeuwerkError('NW_ERR_VALIDATION', 'roles must be admin and/or readonly');
    if (typeof request.ttlMs !== 'number' || request.ttlMs < 1000 || request.ttlMs > RPC_MINT_TTL_MAX_MS) throw new NeuwerkError('NW_ERR_VALIDATION', 'ttl out of range');
    const minted = await auth.mint({ sub: request.sub, roles: roles as ('admin' | 'readonly')[], ttlMs: request.ttlMs, ...(typeof request.kid === 'string' ? { kid: request.kid } : {}) });
    logger.info({ audit: true, actor: `node:${from}`, action: 'auth.token.mint', sub: request.sub, roles, kid: minted.kid, jti: minted.jti }, 'audit: auth.token.mint');
    return { token: minted.token };
  });
  cluster.rpc.handle('auth.keys.list', async () => auth.listKeys());
  cluster.rpc.handle('auth.keys.rotate', async (from, body) => onLeader('auth.keys.rotate', body, () => auth.rotateKey(`node:${from}`)));
  cluster.rpc.handle('auth.keys.retire', async (from, body) => {
    const kid = (body as { kid?: unknown } | null)?.kid;
    if (typeof kid !== 'string') throw new NeuwerkError('NW_ERR_VALIDATION', 'kid is required');
    return onLeader('auth.keys.retire', body, () => auth.retireKey(`node:${from}`, kid));
  });
}
