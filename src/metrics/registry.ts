import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The metrics of one node. One registry per node (not the global one), so tests that start
 * several nodes in a process never share counters.
 */
export class NodeMetrics {
  readonly registry = new Registry();
  readonly apiRequests: Counter<'route' | 'method' | 'status'>;
  readonly apiLatency: Histogram<'route' | 'method'>;
  /**
   * Requests a follower forwarded to the leader, counted once by the path that brought the answer
   * back (`rpc`: cluster RPC `api.forward`; `https`: re-sent over HTTPS) and why HTTPS (`route`,
   * `body-undeclared`, `body-large`, `rpc-busy`, `answer-too-large`, `leader-without-rpc`; `none`
   * for the RPC). A forward that failed (503) is not counted here.
   */
  readonly apiForwarded: Counter<'via' | 'reason'>;
  readonly raftTerm: Gauge;
  readonly raftCommitIndex: Gauge;
  readonly raftAppliedIndex: Gauge;
  readonly raftLeaderChanges: Counter;
  readonly raftMessagesDropped: Counter;
  readonly raftIsLeader: Gauge;
  /** Snapshots this node created and compacted its log to (not the ones installed from the leader). */
  readonly raftSnapshots: Counter;
  readonly applyLatency: Histogram;
  readonly appendLatency: Histogram;
  readonly policyCompile: Histogram;
  readonly clusterVoters: Gauge;
  readonly clusterHealthyVoters: Gauge;
  readonly clusterTolerates: Gauge;
  /** DNS proxy queries by final result: allowed, audit, denied, servfail, malformed, unsupported. */
  readonly dnsQueries: Counter<'result'>;
  /** DNS proxy time from receiving a query to answering it, by the same result. */
  readonly dnsQueryLatency: Histogram<'result'>;
  /** Upstream tries that timed out, per upstream `host:port`. */
  readonly dnsUpstreamTimeouts: Counter<'upstream'>;
  /** Upstream replies dropped: unexpected ID, wrong source, wrong question, undecodable. */
  readonly dnsUpstreamRepliesDropped: Counter;
  /** (source group, hostname) entries in the dynamic allowlist (refreshed by the dataplane). */
  readonly dnsAllowlistEntries: Gauge;
  /** Forward proxy decisions by kind (connect, http) and result (allowed, audit, denied, limited, error). */
  readonly proxyDecisions: Counter<'kind' | 'result'>;
  /** Forward proxy flows (tunnels and in-flight plain-HTTP requests) currently admitted. */
  readonly proxyActiveFlows: Gauge;
  /** Bytes carried by CONNECT tunnels, by direction (client_to_upstream, upstream_to_client). */
  readonly proxyTunnelBytes: Counter<'direction'>;
  /**
   * Forward proxy connections from `proxy.proxy_protocol_from` peers by result: proxied (the PROXY
   * header named the client), local (a header without an address), refused (closed: no valid header).
   */
  readonly proxyProtocolConnections: Counter<'result'>;
  /** Audit findings recorded, by type (dns, connect, http) and finding (deny, audit). */
  readonly auditFindings: Counter<'type' | 'finding'>;
  /** 1 when `/ready` passes (refreshed at each scrape). */
  readonly ready: Gauge;
  /** Each `/ready` check by name: 1 passing, 0 failing (refreshed at each scrape). */
  readonly readinessChecks: Gauge<'check'>;
  private readonly scrapeHooks: (() => void)[] = [];

  constructor(nodeId: string) {
    this.registry.setDefaultLabels({ node_id: nodeId });
    collectDefaultMetrics({ register: this.registry, prefix: 'neuwerk_' });
    const registers = [this.registry];
    this.apiRequests = new Counter({
      name: 'neuwerk_api_requests_total',
      help: 'Management API requests by route template, method and status code.',
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.apiForwarded = new Counter({
      name: 'neuwerk_api_forwarded_total',
      help: 'Management API requests this follower forwarded to the leader and got an answer for, by path (rpc, https) and the reason for https.',
      labelNames: ['via', 'reason'],
      registers,
    });
    this.apiLatency = new Histogram({
      name: 'neuwerk_api_request_duration_seconds',
      help: 'Management API request latency.',
      labelNames: ['route', 'method'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.raftTerm = new Gauge({ name: 'neuwerk_raft_term', help: 'Current Raft term.', registers });
    this.raftCommitIndex = new Gauge({ name: 'neuwerk_raft_commit_index', help: 'Highest log index known committed.', registers });
    this.raftAppliedIndex = new Gauge({ name: 'neuwerk_raft_applied_index', help: 'Highest log index applied to the state machine.', registers });
    this.raftLeaderChanges = new Counter({ name: 'neuwerk_raft_leader_changes_total', help: 'Times this node saw the leader change.', registers });
    this.raftMessagesDropped = new Counter({
      name: 'neuwerk_cluster_raft_messages_dropped_total',
      help: 'Raft messages dropped (Raft sends again what matters): not sent because the peer connection held too many unsent bytes (backlog), its reconnect queue was full (reconnect-queue) or they waited in that queue too long (stale); or received malformed (malformed).',
      labelNames: ['reason'],
      registers,
    });
    this.raftIsLeader = new Gauge({ name: 'neuwerk_raft_is_leader', help: '1 when this node is the Raft leader.', registers });
    this.raftSnapshots = new Counter({ name: 'neuwerk_raft_snapshots_created_total', help: 'Snapshots this node created, compacting its log.', registers });
    this.appendLatency = new Histogram({
      name: 'neuwerk_raft_append_duration_seconds',
      help: 'Time to durably append a batch of log entries and hard state (one SQLite transaction).',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers,
    });
    this.clusterVoters = new Gauge({ name: 'neuwerk_cluster_voters', help: 'Voters in the Raft configuration (1 on a single node).', registers });
    this.clusterHealthyVoters = new Gauge({ name: 'neuwerk_cluster_healthy_voters', help: 'Voters this node (best: the leader) sees as reachable.', registers });
    this.clusterTolerates = new Gauge({ name: 'neuwerk_cluster_tolerates', help: 'How many more voters may fail before quorum is lost.', registers });
    this.policyCompile = new Histogram({
      name: 'neuwerk_policy_compile_duration_seconds',
      help: 'Time to compile an applied policy document into local enforcement state.',
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10],
      registers,
    });
    this.applyLatency = new Histogram({
      name: 'neuwerk_raft_apply_duration_seconds',
      help: 'Time to apply a batch of committed entries to the state machine.',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers,
    });
    this.dnsQueries = new Counter({ name: 'neuwerk_dns_queries_total', help: 'DNS proxy queries by result.', labelNames: ['result'], registers });
    this.dnsQueryLatency = new Histogram({
      name: 'neuwerk_dns_query_duration_seconds',
      help: 'DNS proxy latency from query to answer, by result.',
      labelNames: ['result'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.dnsUpstreamTimeouts = new Counter({ name: 'neuwerk_dns_upstream_timeouts_total', help: 'DNS upstream tries that timed out.', labelNames: ['upstream'], registers });
    this.dnsUpstreamRepliesDropped = new Counter({
      name: 'neuwerk_dns_upstream_replies_dropped_total',
      help: 'DNS upstream replies dropped by validation (ID, source, question).',
      registers,
    });
    this.dnsAllowlistEntries = new Gauge({ name: 'neuwerk_dns_allowlist_entries', help: 'Entries in the dynamic allowlist.', registers });
    this.proxyDecisions = new Counter({ name: 'neuwerk_proxy_decisions_total', help: 'Forward proxy decisions by kind and result.', labelNames: ['kind', 'result'], registers });
    this.proxyActiveFlows = new Gauge({ name: 'neuwerk_proxy_active_flows', help: 'Forward proxy flows currently admitted.', registers });
    this.proxyTunnelBytes = new Counter({ name: 'neuwerk_proxy_tunnel_bytes_total', help: 'Bytes carried by CONNECT tunnels.', labelNames: ['direction'], registers });
    this.proxyProtocolConnections = new Counter({
      name: 'neuwerk_proxy_protocol_connections_total',
      help: 'Forward proxy connections from PROXY protocol peers by result (proxied, local, refused).',
      labelNames: ['result'],
      registers,
    });
    this.auditFindings = new Counter({ name: 'neuwerk_audit_findings_total', help: 'Audit findings recorded by type and finding.', labelNames: ['type', 'finding'], registers });
    this.ready = new Gauge({ name: 'neuwerk_ready', help: '1 when the node is ready (GET /ready answers 200).', registers });
    this.readinessChecks = new Gauge({ name: 'neuwerk_readiness_check', help: 'Each readiness check of GET /ready by name: 1 passing, 0 failing.', labelNames: ['check'], registers });
  }

  /** Registers a function that refreshes gauges right before each scrape. */
  onScrape(hook: () => void): void {
    this.scrapeHooks.push(hook);
  }

  /** The Prometheus text exposition, after running the scrape hooks. */
  async render(): Promise<string> {
    for (const hook of this.scrapeHooks) hook();
    return this.registry.metrics();
  }
}
