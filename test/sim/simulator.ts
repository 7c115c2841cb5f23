/**
 * Deterministic simulation of a neuwerk Raft cluster (TigerBeetle VOPR / FoundationDB style).
 *
 * 3-5 pure cores, each with a host loop mimicking the real one (ready() -> persist -> send ->
 * apply -> advance(), with persistence taking simulated time during which the core keeps
 * stepping), in-memory durable storage and a durable key-value state machine, run over a
 * simulated network that delays, drops, duplicates and reorders messages, partitions and heals
 * (including one-way cuts), and crashes/restarts nodes, losing whatever was not yet persisted —
 * also between persist and send, and between persist and apply. Compaction and chunked
 * InstallSnapshot run with small thresholds; an operator adds learners, promotes them, removes
 * voters and adds fresh node ids. Clients run a put/get/delete workload (gets via ReadIndex) and
 * record a history for the linearizability checker.
 *
 * ONE seeded PRNG drives every choice, so a seed replays identically (the trace digest proves it).
 * Invariants are checked continuously: election safety, vote-once per term, log matching,
 * leader completeness, committed entries never change (in memory or on disk), state-machine
 * safety (every node's state after applying index i equals the reference state at i). After the
 * chaos phase a liveness phase heals everything and requires a leader to commit a new entry and
 * every member to catch up within a budget. Any violation throws `SimulationFailure`, whose
 * message says `reproduce with seed=N`.
 */
import { RaftNode } from '../../src/raft/index.js';
import type { ConfChange, Entry, HardState, InitialState, Message, NodeId, RaftConfig, Ready, Snapshot } from '../../src/raft/index.js';
import { checkKvLinearizable } from './linearizability.js';
import type { CheckResult, HistoryOp, KvOp, KvResult } from './linearizability.js';
import { Prng, TraceDigest } from './prng.js';

/** How a run is shaped; everything not given is drawn from the seed. */
export interface SimOptions {
  seed: number;
  /** Length of the chaos phase in simulated time units (a node ticks about every 10 units). */
  steps?: number;
  /** Budget of the liveness phase in time units. */
  livenessBudgetUnits?: number;
  /** Exploration bound passed to the linearizability checker (per key). */
  maxCheckerStates?: number;
  /** Skip the linearizability check (the soak runner and tests always check). */
  skipLinearizability?: boolean;
  /** Debugging: receives one line per simulated event from time `traceFromUnits` on. */
  trace?: ((line: string) => void) | undefined;
  traceFromUnits?: number;
}

/** Counters describing what a run exercised. */
export interface SimStats {
  events: number;
  messagesSent: number;
  messagesDropped: number;
  messagesDuplicated: number;
  crashes: number;
  restarts: number;
  partitions: number;
  elections: number;
  maxTerm: number;
  committedEntries: number;
  snapshotsMade: number;
  snapshotsInstalled: number;
  confChangesCommitted: number;
  nodesCreated: number;
  readsServed: number;
  opsCompleted: number;
  opsUnknown: number;
  /** Time units from the start of the liveness phase until the marker committed. */
  livenessCommitUnits: number;
  /** Further time units until every member applied the marker. */
  catchUpUnits: number;
}

/** The outcome of a successful run. */
export interface SimResult {
  seed: number;
  digest: string;
  history: HistoryOp[];
  linearizability: CheckResult | null;
  stats: SimStats;
  /** The per-seed parameters drawn from the PRNG, for reports. */
  params: SimParams;
}

/** A safety or liveness violation (or a crash of the simulator itself) in a seeded run. */
export class SimulationFailure extends Error {
  constructor(
    readonly seed: number,
    readonly detail: string,
    readonly timeUnits: number,
  ) {
    super(`simulation failed at t=${timeUnits}: ${detail} (reproduce with seed=${seed})`);
    this.name = 'SimulationFailure';
  }
}

/** Default chaos-phase length. */
export const DEFAULT_STEPS = 20_000;
/** Default liveness budget: about 30 election timeouts. */
export const DEFAULT_LIVENESS_BUDGET_UNITS = 3000;
/** Default checker bound per key. */
export const DEFAULT_MAX_CHECKER_STATES = 200_000;

const ELECTION_TIMEOUT_TICKS = 10;
const TICK_UNITS_BASE = 10;
const CLIENT_COUNT = 4;
const KEYS = ['a', 'b', 'c'];
const OP_TIMEOUT_UNITS = 400;
const READ_RETRY_UNITS = 120;
const PROPOSE_RETRY_UNITS = 15;
const MAX_LIVE_NODES = 6;
const MAX_VOTERS = 5;
const MIN_VOTERS = 3;
const LIVENESS_KEY = 'zz-liveness';
const FULL_LOG_CHECK_INTERVAL_UNITS = 200;
const MAX_UNCOMMITTED_BACKGROUND_ENTRIES = 60;
const CATCH_UP_BUDGET_UNITS = 40_000;

/** Parameters drawn once per seed. */
export interface SimParams {
  initialVoters: number;
  dropRate: number;
  duplicateRate: number;
  delayMaxUnits: number;
  persistDelayMaxUnits: number;
  preVote: boolean;
  checkQuorum: boolean;
  heartbeatTicks: number;
  maxInflightMsgs: number;
  maxBytesPerAppend: number;
  maxSnapshotChunkBytes: number;
  compactThresholdEntries: number;
  retainEntries: number;
  faultIntervalUnits: number;
  crashInHostLoopRate: number;
  membershipIntervalUnits: number;
  /** Mean interval between background write bursts (0: none). */
  loadIntervalUnits: number;
  loadBurstMax: number;
  /** Links deliver in order (like TCP); otherwise every message has an independent delay. */
  fifoLinks: boolean;
}

function drawParams(prng: Prng): SimParams {
  return {
    initialVoters: prng.range(3, 5),
    dropRate: prng.pick([0, 0.01, 0.05, 0.1]),
    duplicateRate: prng.pick([0, 0.01, 0.05]),
    delayMaxUnits: prng.pick([2, 5, 10, 30]),
    persistDelayMaxUnits: prng.pick([0, 1, 3, 8, 25]),
    preVote: prng.chance(0.8),
    checkQuorum: prng.chance(0.8),
    heartbeatTicks: prng.pick([1, 1, 2, 3]),
    maxInflightMsgs: prng.pick([1, 2, 4, 8, 64]),
    maxBytesPerAppend: prng.pick([48, 200, 1000, 1 << 20]),
    maxSnapshotChunkBytes: prng.pick([8, 32, 100, 4096]),
    compactThresholdEntries: prng.pick([8, 20, 50, 1000]),
    retainEntries: prng.pick([0, 2, 10]),
    faultIntervalUnits: prng.pick([40, 100, 250]),
    crashInHostLoopRate: prng.pick([0, 0.002, 0.01]),
    membershipIntervalUnits: prng.pick([150, 300, 600]),
    loadIntervalUnits: prng.pick([0, 20, 60, 150]),
    loadBurstMax: prng.pick([1, 5, 20]),
    fifoLinks: prng.chance(0.7),
  };
}

/** The durable key-value state machine: the map and the index it reflects. */
interface KvState {
  map: Map<string, string>;
  appliedIndex: number;
}

function kvDigest(map: Map<string, string>): string {
  const keys = [...map.keys()].sort();
  let s = '';
  for (const k of keys) s += `${k}=${map.get(k)!};`;
  return s;
}

function encodeKv(map: Map<string, string>): Uint8Array {
  const keys = [...map.keys()].sort();
  return new TextEncoder().encode(JSON.stringify(keys.map((k) => [k, map.get(k)!])));
}

function decodeKv(data: Uint8Array): Map<string, string> {
  if (data.length === 0) return new Map();
  return new Map(JSON.parse(new TextDecoder().decode(data)) as Array<[string, string]>);
}

/** The command carried by normal entries. */
interface KvCommand {
  id: string;
  op: KvOp;
}

function parseCommand(data: string): KvCommand | null {
  if (data === '') return null;
  return JSON.parse(data) as KvCommand;
}

function applyCommand(map: Map<string, string>, cmd: KvCommand): void {
  switch (cmd.op.kind) {
    case 'put':
      map.set(cmd.op.key, cmd.op.value);
      return;
    case 'delete':
      map.delete(cmd.op.key);
      return;
    case 'get':
      return;
  }
}

/** A node's durable storage: log, hard state, snapshot and the state machine (one "transaction" per Ready). */
class SimStorage {
  hardState: HardState = { term: 0, vote: null, commit: 0 };
  snapshot: Snapshot;
  entries: Entry[] = [];
  kv: KvState = { map: new Map(), appliedIndex: 0 };

  constructor(snapshot: Snapshot) {
    this.snapshot = snapshot;
    this.kv.appliedIndex = snapshot.meta.index;
  }

  lastIndex(): number {
    return this.entries.length === 0 ? this.snapshot.meta.index : this.entries[this.entries.length - 1]!.index;
  }

  entryAt(index: number): Entry | undefined {
    if (this.entries.length === 0) return undefined;
    const base = this.entries[0]!.index;
    return index < base ? undefined : this.entries[index - base];
  }

  initialState(): InitialState {
    const meta = this.snapshot.meta;
    return {
      hardState: { ...this.hardState },
      snapshotMeta: { index: meta.index, term: meta.term, conf: { voters: [...meta.conf.voters], learners: [...meta.conf.learners] } },
      snapshotData: this.snapshot.data,
      entries: this.entries.filter((e) => e.index > meta.index),
      applied: this.kv.appliedIndex,
    };
  }
}

interface PendingProposal {
  op: ClientOp | null; // null: the liveness marker
  term: number;
}

interface PendingRead {
  op: ClientOp;
  index: number | null;
}

interface SimNode {
  id: NodeId;
  ordinal: number;
  raft: RaftNode | null;
  storage: SimStorage;
  /** A Ready handed out and not yet persisted. */
  outstanding: Ready | null;
  /** Bumped at every crash: stale persist events are ignored. */
  epoch: number;
  decommissioned: boolean;
  tickUnits: number;
  pendingProposals: Map<number, PendingProposal>;
  pendingReads: Map<string, PendingRead>;
  lastObservedLeaderTerm: number;
  /** While leading: the commit index up to which the durable-quorum check has run. */
  quorumCheckedCommit: number;
}

interface ClientOp {
  opId: string;
  clientId: number;
  op: KvOp;
  call: number;
  done: boolean;
  attempt: number;
}

interface Client {
  id: number;
  busy: ClientOp | null;
  hint: NodeId | null;
  seq: number;
}

type SimEvent =
  | { kind: 'tick'; node: NodeId }
  | { kind: 'deliver'; msg: Message }
  | { kind: 'persist'; node: NodeId; epoch: number }
  | { kind: 'restart'; node: NodeId }
  | { kind: 'client-start'; client: number }
  | { kind: 'client-attempt'; client: number; opId: string; attempt: number }
  | { kind: 'client-timeout'; client: number; opId: string }
  | { kind: 'fault' }
  | { kind: 'membership' }
  | { kind: 'load' }
  | { kind: 'liveness-probe' }
  | { kind: 'full-check' };

interface Scheduled {
  time: number;
  seq: number;
  event: SimEvent;
}

/** A binary min-heap of events ordered by (time, insertion order). */
class EventQueue {
  private heap: Scheduled[] = [];
  private seq = 0;

  push(time: number, event: SimEvent): void {
    const item: Scheduled = { time, seq: this.seq++, event };
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!EventQueue.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  pop(): Scheduled | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && EventQueue.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && EventQueue.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }

  peekTime(): number {
    return this.heap.length === 0 ? Infinity : this.heap[0]!.time;
  }

  private static less(a: Scheduled, b: Scheduled): boolean {
    return a.time < b.time || (a.time === b.time && a.seq < b.seq);
  }
}

const MESSAGE_TYPE_CODES: Record<Message['type'], number> = {
  append: 1,
  'append-resp': 2,
  vote: 3,
  'vote-resp': 4,
  'pre-vote': 5,
  'pre-vote-resp': 6,
  heartbeat: 7,
  'heartbeat-resp': 8,
  snapshot: 9,
  'snapshot-resp': 10,
  'timeout-now': 11,
  'read-index': 12,
  'read-index-resp': 13,
};

/** One seeded simulation run. Use `runSimulation`. */
class Simulation {
  private readonly prng: Prng;
  private readonly params: SimParams;
  private readonly queue = new EventQueue();
  private readonly digest = new TraceDigest();
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly clients: Client[] = [];
  private readonly history: HistoryOp[] = [];
  private readonly cut = new Set<string>();
  /** FIFO links: the latest delivery time scheduled on each link. */
  private readonly linkClock = new Map<string, number>();
  private now = 0;
  /** Logical clock of the history: strictly increasing over calls and returns. */
  private historyClock = 0;
  private phase: 'chaos' | 'liveness' = 'chaos';
  private nextNodeOrdinal = 1;
  private dropRate: number;
  private duplicateRate: number;

  // Global knowledge for the invariant checks.
  private readonly leaderByTerm = new Map<number, NodeId>();
  private readonly committed: Entry[] = [null as unknown as Entry];
  /**
   * Per committed index, the durable term of the node that first recorded it committed: at least
   * the term it was committed in (that node heard the commit from a leader of that term or later).
   */
  private readonly committedKnownAtTerm: number[] = [0];
  private readonly refDigests: string[] = [''];
  private readonly refKv = new Map<string, string>();
  private readonly entryByIndexTerm = new Map<string, string>();
  private pendingConf: { index: number; term: number; change: ConfChange } | null = null;

  private marker: { node: NodeId; index: number; term: number } | null = null;
  private markerCommittedIndex = 0;

  readonly stats: SimStats = {
    events: 0,
    messagesSent: 0,
    messagesDropped: 0,
    messagesDuplicated: 0,
    crashes: 0,
    restarts: 0,
    partitions: 0,
    elections: 0,
    maxTerm: 0,
    committedEntries: 0,
    snapshotsMade: 0,
    snapshotsInstalled: 0,
    confChangesCommitted: 0,
    nodesCreated: 0,
    readsServed: 0,
    opsCompleted: 0,
    opsUnknown: 0,
    livenessCommitUnits: 0,
    catchUpUnits: 0,
  };

  constructor(
    private readonly seed: number,
    private readonly options: Required<Omit<SimOptions, 'seed' | 'trace' | 'traceFromUnits'>> & Pick<SimOptions, 'trace' | 'traceFromUnits'>,
  ) {
    this.prng = new Prng(seed);
    this.params = drawParams(this.prng);
    this.dropRate = this.params.dropRate;
    this.duplicateRate = this.params.duplicateRate;
  }

  private fail(detail: string): never {
    throw new SimulationFailure(this.seed, detail, this.now);
  }

  // -------------------------------------------------------------------------------------------
  // Run
  // -------------------------------------------------------------------------------------------

  run(): SimResult {
    const voters: NodeId[] = [];
    for (let i = 0; i < this.params.initialVoters; i++) voters.push(`n${this.nextNodeOrdinal + i}`);
    for (const id of voters) this.createNode(id, { voters: [...voters], learners: [] });
    for (let c = 0; c < CLIENT_COUNT; c++) {
      this.clients.push({ id: c, busy: null, hint: null, seq: 0 });
      this.queue.push(this.prng.range(1, 50), { kind: 'client-start', client: c });
    }
    this.queue.push(this.params.faultIntervalUnits, { kind: 'fault' });
    this.queue.push(this.params.membershipIntervalUnits, { kind: 'membership' });
    this.queue.push(FULL_LOG_CHECK_INTERVAL_UNITS, { kind: 'full-check' });
    if (this.params.loadIntervalUnits > 0) this.queue.push(this.params.loadIntervalUnits, { kind: 'load' });

    this.runUntil(this.options.steps, () => false);
    this.startLiveness();
    const livenessStart = this.now;
    // The budget is for a cluster whose replication round trip (two message delays and a disk
    // write) is up to 20 units; slower drawn settings get it in proportion. With 30-unit delays
    // and 25-unit writes, a leader's backlog of uncommitted entries took 3,200-6,900 units to
    // commit in soaks (a slow commit, not a stall).
    const roundTripUnits = 2 * this.params.delayMaxUnits + this.params.persistDelayMaxUnits;
    const budget = Math.round(this.options.livenessBudgetUnits * Math.max(1, roundTripUnits / 20));
    const deadline = this.now + budget;
    this.runUntil(deadline, () => this.markerCommittedIndex > 0);
    if (this.markerCommittedIndex === 0) this.fail(`liveness: no leader committed a new entry within ${budget} units (${this.describeCluster()})`);
    // Catching a learner up can take long in the slowest configurations (one entry per append,
    // a window of one, 60-unit round trips), so it has its own budget.
    this.stats.livenessCommitUnits = this.now - livenessStart;
    const catchUpStart = this.now;
    const catchUpDeadline = this.now + CATCH_UP_BUDGET_UNITS;
    this.runUntil(catchUpDeadline, () => this.allMembersCaughtUp());
    if (!this.allMembersCaughtUp()) this.fail(`liveness: members did not catch up to index ${this.markerCommittedIndex} (${this.describeCluster()})`);
    this.stats.catchUpUnits = this.now - catchUpStart;
    this.checkAllLogs();

    for (const client of this.clients) {
      if (client.busy !== null) this.timeoutOp(client, client.busy);
    }
    let linearizability: CheckResult | null = null;
    if (!this.options.skipLinearizability) {
      linearizability = checkKvLinearizable(this.history, { maxStates: this.options.maxCheckerStates });
      if (linearizability.ok === false) this.fail(`history not linearizable on key ${linearizability.key}: ${linearizability.reason}`);
    }
    return { seed: this.seed, digest: this.digest.value(), history: this.history, linearizability, stats: this.stats, params: this.params };
  }

  private runUntil(limit: number, done: () => boolean): void {
    while (!done() && this.queue.peekTime() <= limit) {
      const item = this.queue.pop()!;
      this.now = item.time;
      this.stats.events++;
      if (this.options.trace !== undefined && this.now >= (this.options.traceFromUnits ?? 0)) this.traceEvent(item.event);
      this.handle(item.event);
    }
    if (this.queue.peekTime() > limit) this.now = Math.max(this.now, limit);
  }

  private traceEvent(ev: SimEvent): void {
    let line = `t=${this.now} ${ev.kind}`;
    if (ev.kind === 'deliver') {
      const { entries, data, ...rest } = ev.msg as Message & { entries?: Entry[]; data?: Uint8Array };
      line += ` ${JSON.stringify(rest)}`;
      if (entries !== undefined) line += ` entries=${entries.map((e) => `${e.index}@${e.term}`).join(',')}`;
      if (data !== undefined) line += ` bytes=${data.length}`;
    } else if ('node' in ev) {
      line += ` ${ev.node}`;
    }
    this.options.trace!(line);
  }

  private handle(ev: SimEvent): void {
    switch (ev.kind) {
      case 'tick':
        this.onTick(ev.node);
        return;
      case 'deliver':
        this.onDeliver(ev.msg);
        return;
      case 'persist':
        this.onPersist(ev.node, ev.epoch);
        return;
      case 'restart':
        this.restartNode(ev.node);
        return;
      case 'client-start':
        this.startOp(this.clients[ev.client]!);
        return;
      case 'client-attempt':
        this.attemptOp(this.clients[ev.client]!, ev.opId, ev.attempt);
        return;
      case 'client-timeout': {
        const client = this.clients[ev.client]!;
        if (client.busy !== null && client.busy.opId === ev.opId) this.timeoutOp(client, client.busy);
        return;
      }
      case 'fault':
        if (this.phase === 'chaos') {
          this.injectFault();
          this.queue.push(this.now + this.prng.range(1, 2 * this.params.faultIntervalUnits), { kind: 'fault' });
        }
        return;
      case 'membership':
        this.resolvePendingConf();
        if (this.phase === 'chaos') {
          this.changeMembership();
          this.queue.push(this.now + this.prng.range(this.params.membershipIntervalUnits / 2, this.params.membershipIntervalUnits * 2), {
            kind: 'membership',
          });
        }
        return;
      case 'liveness-probe':
        this.livenessProbe();
        return;
      case 'load':
        if (this.phase === 'chaos') {
          this.backgroundLoad();
          this.queue.push(this.now + this.prng.range(1, 2 * this.params.loadIntervalUnits), { kind: 'load' });
        }
        return;
      case 'full-check':
        this.checkAllLogs();
        this.queue.push(this.now + FULL_LOG_CHECK_INTERVAL_UNITS, { kind: 'full-check' });
        return;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Nodes and the host loop
  // -------------------------------------------------------------------------------------------

  private createNode(id: NodeId, conf: { voters: NodeId[]; learners: NodeId[] }): SimNode {
    const ordinal = this.nextNodeOrdinal++;
    const storage = new SimStorage({ meta: { index: 0, term: 0, conf }, data: new Uint8Array(0) });
    const node: SimNode = {
      id,
      ordinal,
      raft: null,
      storage,
      outstanding: null,
      epoch: 0,
      decommissioned: false,
      tickUnits: TICK_UNITS_BASE + this.prng.range(-1, 1),
      pendingProposals: new Map(),
      pendingReads: new Map(),
      lastObservedLeaderTerm: 0,
      quorumCheckedCommit: 0,
    };
    this.nodes.set(id, node);
    this.stats.nodesCreated++;
    node.raft = new RaftNode(this.raftConfig(id), storage.initialState());
    this.queue.push(this.now + this.prng.range(1, node.tickUnits), { kind: 'tick', node: id });
    return node;
  }

  private raftConfig(id: NodeId): RaftConfig {
    return {
      id,
      electionTimeoutTicks: ELECTION_TIMEOUT_TICKS,
      heartbeatTicks: this.params.heartbeatTicks,
      random: (max) => this.prng.int(max),
      preVote: this.params.preVote,
      checkQuorum: this.params.checkQuorum,
      maxInflightMsgs: this.params.maxInflightMsgs,
      maxBytesPerAppend: this.params.maxBytesPerAppend,
      maxSnapshotChunkBytes: this.params.maxSnapshotChunkBytes,
    };
  }

  private onTick(id: NodeId): void {
    const node = this.nodes.get(id)!;
    if (node.decommissioned) return;
    this.queue.push(this.now + node.tickUnits, { kind: 'tick', node: id });
    if (node.raft === null) return;
    node.raft.tick();
    this.afterCoreCall(node);
  }

  private onDeliver(msg: Message): void {
    const node = this.nodes.get(msg.to);
    if (node === undefined || node.decommissioned || node.raft === null || this.cut.has(`${msg.from}>${msg.to}`)) {
      this.stats.messagesDropped++;
      return;
    }
    const d = this.digest;
    d.addNumber(MESSAGE_TYPE_CODES[msg.type]);
    d.addNumber(this.nodes.get(msg.from)?.ordinal ?? 0);
    d.addNumber(node.ordinal);
    d.addNumber(msg.term);
    d.addNumber(this.now);
    node.raft.step(msg);
    this.afterCoreCall(node);
  }

  /** After any call into a core: check election safety, then start a host cycle if idle. */
  private afterCoreCall(node: SimNode): void {
    this.observe(node);
    this.kick(node);
  }

  private observe(node: SimNode): void {
    const raft = node.raft!;
    const bs = raft.basicStatus();
    if (bs.term > this.stats.maxTerm) this.stats.maxTerm = bs.term;
    if (bs.role !== 'leader') return;
    if (node.lastObservedLeaderTerm === bs.term) {
      if (bs.commit > node.quorumCheckedCommit) this.checkCommitDurableOnQuorum(node, bs.commit);
      return;
    }
    node.lastObservedLeaderTerm = bs.term;
    node.quorumCheckedCommit = bs.commit;
    const other = this.leaderByTerm.get(bs.term);
    if (other !== undefined && other !== node.id) this.fail(`election safety: ${other} and ${node.id} both leaders of term ${bs.term}`);
    this.leaderByTerm.set(bs.term, node.id);
    this.stats.elections++;
    this.digest.addString(`leader ${node.id} ${bs.term}`);
    // Leader completeness: the new leader holds every entry committed in its term or before. An
    // entry first known committed at a later term may have been committed after this term (a
    // candidate whose delayed votes arrive late wins an old term; it can never commit).
    let checkedTop = false;
    for (let i = this.committed.length - 1; i >= 1; i--) {
      if (this.committedKnownAtTerm[i]! > bs.term) continue;
      if (!checkedTop && bs.lastIndex < i) this.fail(`leader completeness: ${node.id} leads term ${bs.term} with last index ${bs.lastIndex} < committed ${i}`);
      checkedTop = true;
      const t = raft.termAt(i);
      if (t === null) break;
      if (t !== this.committed[i]!.term) this.fail(`leader completeness: ${node.id} (term ${bs.term}) has term ${t} at committed index ${i}, expected ${this.committed[i]!.term}`);
    }
  }

  /**
   * A leader commits an entry only once a majority of the voters hold it DURABLY (§5.3 with
   * thesis §10.2.1): the leader's own copy counts only after its host persisted it. Checked
   * against durable storage — what would survive if every node crashed right now.
   */
  private checkCommitDurableOnQuorum(node: SimNode, commit: number): void {
    const raft = node.raft!;
    const voters = raft.status().conf.voters;
    const quorum = Math.floor(voters.length / 2) + 1;
    for (let i = node.quorumCheckedCommit + 1; i <= commit; i++) {
      const term = raft.termAt(i);
      if (term === null) continue; // compacted: it was applied, hence checked when it committed
      let holders = 0;
      for (const id of voters) {
        const st = this.nodes.get(id)?.storage;
        if (st === undefined) continue;
        if (st.snapshot.meta.index >= i || st.entryAt(i)?.term === term) holders++;
      }
      if (holders < quorum) {
        this.fail(`${node.id} (leader, term ${raft.basicStatus().term}) committed ${i} while only ${holders} of ${voters.length} voters hold it durably`);
      }
    }
    node.quorumCheckedCommit = commit;
  }

  /**
   * Starts a host cycle: take a Ready, send its early messages at once (a leader replicates while
   * it persists, thesis §10.2.1) and persist it after a simulated fsync delay, during which the
   * core keeps stepping — and a crash loses the entries the leader already sent.
   */
  private kick(node: SimNode): void {
    const raft = node.raft;
    if (raft === null || node.outstanding !== null || !raft.hasReady()) return;
    const rd = raft.ready();
    node.outstanding = rd;
    for (const m of rd.earlyMessages) this.send(m);
    this.queue.push(this.now + this.prng.range(0, this.params.persistDelayMaxUnits), { kind: 'persist', node: node.id, epoch: node.epoch });
  }

  private maybeCrashInHostLoop(node: SimNode): boolean {
    if (this.phase !== 'chaos' || this.params.crashInHostLoopRate === 0) return false;
    if (!this.prng.chance(this.params.crashInHostLoopRate)) return false;
    this.crashNode(node);
    return true;
  }

  private onPersist(id: NodeId, epoch: number): void {
    const node = this.nodes.get(id)!;
    if (node.epoch !== epoch || node.raft === null || node.outstanding === null) return;
    const rd = node.outstanding;
    const raft = node.raft;
    if (rd.earlyMessages.length > 0 && this.maybeCrashInHostLoop(node)) return; // crashed after sending, before persisting
    this.persist(node, rd);
    if (this.maybeCrashInHostLoop(node)) return; // crashed after persist, before send
    for (const m of rd.messages) this.send(m);
    if (this.maybeCrashInHostLoop(node)) return; // crashed after send, before apply
    for (const e of rd.committedEntries) {
      this.applyEntry(node, e);
      if (this.phase === 'chaos' && this.params.crashInHostLoopRate > 0 && this.prng.chance(this.params.crashInHostLoopRate / 4)) {
        this.crashNode(node); // crashed in the middle of applying
        return;
      }
    }
    this.checkAppliedState(node);
    if (node.raft !== raft) return; // decommissioned by applying its own removal
    for (const rs of rd.readStates) {
      const pending = node.pendingReads.get(rs.ctx);
      if (pending !== undefined) pending.index = rs.index;
    }
    this.answerReads(node);
    node.outstanding = null;
    raft.advance();
    this.digest.addNumber(node.ordinal);
    this.digest.addNumber(rd.entries.length);
    this.digest.addNumber(rd.committedEntries.length);
    this.digest.addNumber(rd.messages.length);
    this.digest.addNumber(rd.earlyMessages.length);
    this.maybeCompact(node);
    this.afterCoreCall(node);
  }

  /** The durable part of a host cycle, checked against the global record. */
  private persist(node: SimNode, rd: Ready): void {
    const st = node.storage;
    if (rd.hardState !== undefined) {
      const prev = st.hardState;
      const hs = rd.hardState;
      if (hs.term < prev.term) this.fail(`${node.id} persisted term ${hs.term} after ${prev.term}`);
      if (hs.term === prev.term && prev.vote !== null && hs.vote !== prev.vote) {
        this.fail(`${node.id} changed its vote in term ${hs.term} from ${prev.vote} to ${hs.vote}`);
      }
      if (hs.commit < prev.commit) this.fail(`${node.id} persisted commit ${hs.commit} after ${prev.commit}`);
    }
    if (rd.snapshot !== undefined) {
      const snap = rd.snapshot;
      const known = this.committed[snap.meta.index];
      if (snap.meta.index > 0) {
        if (known === undefined) this.fail(`${node.id} installs snapshot at ${snap.meta.index} beyond the known committed log`);
        if (known.term !== snap.meta.term) this.fail(`${node.id} snapshot at ${snap.meta.index} has term ${snap.meta.term}, committed term ${known.term}`);
      }
      const map = decodeKv(snap.data);
      if (kvDigest(map) !== this.refDigests[snap.meta.index]) this.fail(`${node.id} snapshot image at ${snap.meta.index} differs from the reference state`);
      if (snap.meta.index < st.kv.appliedIndex) this.fail(`${node.id} snapshot at ${snap.meta.index} below its applied index ${st.kv.appliedIndex}`);
      st.snapshot = snap;
      st.entries = [];
      st.kv = { map, appliedIndex: snap.meta.index };
      this.stats.snapshotsInstalled++;
      for (const idx of [...node.pendingProposals.keys()]) if (idx <= snap.meta.index) node.pendingProposals.delete(idx);
    }
    if (rd.entries.length > 0) this.writeEntries(node, rd.entries);
    if (rd.hardState !== undefined) {
      const from = st.hardState.commit;
      st.hardState = { ...rd.hardState };
      for (let i = Math.max(from, st.snapshot.meta.index) + 1; i <= rd.hardState.commit; i++) {
        const e = st.entryAt(i);
        if (e === undefined) this.fail(`${node.id} persisted commit ${rd.hardState.commit} without entry ${i} on disk`);
        this.recordCommitted(node, e);
      }
    }
    if (st.hardState.commit > st.lastIndex()) this.fail(`${node.id} durable commit ${st.hardState.commit} beyond its durable log ${st.lastIndex()}`);
  }

  private writeEntries(node: SimNode, ents: readonly Entry[]): void {
    const st = node.storage;
    const first = ents[0]!.index;
    for (const e of ents) {
      const key = `${e.index}:${e.term}`;
      const body = `${e.type}|${e.data}`;
      const seen = this.entryByIndexTerm.get(key);
      if (seen === undefined) this.entryByIndexTerm.set(key, body);
      else if (seen !== body) this.fail(`log matching: two different entries at index ${e.index} term ${e.term}`);
    }
    if (first <= st.snapshot.meta.index) this.fail(`${node.id} writes entry ${first} at or below its snapshot ${st.snapshot.meta.index}`);
    if (first > st.lastIndex() + 1) this.fail(`${node.id} writes entry ${first} after a gap (last ${st.lastIndex()})`);
    if (st.entries.length > 0 && first <= st.lastIndex()) {
      const base = st.entries[0]!.index;
      // The entries come from a leader of at least their highest term. A leader of the term an
      // entry was committed in, or later, holds it (leader completeness), so it can never make a
      // node drop it; an older, stale leader may overwrite a copy on a node that does not know it
      // is committed (a majority still holds it).
      const writerTermAtLeast = ents.reduce((max, e) => Math.max(max, e.term), 0);
      for (let i = Math.max(first, base); i <= st.lastIndex(); i++) {
        const old = st.entries[i - base]!;
        const c = this.committed[i];
        if (c !== undefined && c.term === old.term && writerTermAtLeast >= this.committedKnownAtTerm[i]!) {
          this.fail(`${node.id} truncates committed entry ${i} (term ${old.term}) for a writer of term ${writerTermAtLeast} >= ${this.committedKnownAtTerm[i]}`);
        }
        if (i <= st.hardState.commit) this.fail(`${node.id} truncates entry ${i} at or below its durable commit ${st.hardState.commit}`);
      }
      if (first <= base) st.entries = [];
      else st.entries.length = first - base;
    }
    for (const e of ents) st.entries.push(e);
  }

  private recordCommitted(node: SimNode, e: Entry): void {
    const known = this.committed[e.index];
    if (known !== undefined) {
      if (known.term !== e.term || known.data !== e.data || known.type !== e.type) {
        this.fail(`committed entry changed at index ${e.index}: term ${known.term} vs ${e.term} on ${node.id}`);
      }
      return;
    }
    if (e.index !== this.committed.length) this.fail(`commit record gap: ${e.index} after ${this.committed.length - 1} (${node.id})`);
    this.committed.push(e);
    this.committedKnownAtTerm.push(node.storage.hardState.term);
    this.stats.committedEntries++;
    const cmd = e.type === 'normal' ? parseCommand(e.data) : null;
    if (cmd !== null) applyCommand(this.refKv, cmd);
    this.refDigests.push(kvDigest(this.refKv));
    this.digest.addNumber(e.index);
    this.digest.addNumber(e.term);
  }

  private applyEntry(node: SimNode, e: Entry): void {
    const kv = node.storage.kv;
    if (e.index !== kv.appliedIndex + 1) this.fail(`${node.id} applies ${e.index} after ${kv.appliedIndex}`);
    const known = this.committed[e.index];
    if (known === undefined) this.fail(`${node.id} applies ${e.index} before it is known committed`);
    if (known.term !== e.term || known.data !== e.data || known.type !== e.type) this.fail(`state machine safety: ${node.id} applies a different entry at ${e.index}`);
    const cmd = e.type === 'normal' ? parseCommand(e.data) : null;
    if (cmd !== null) applyCommand(kv.map, cmd);
    kv.appliedIndex = e.index;
    if (e.type === 'conf-change' && this.pendingConf !== null && this.pendingConf.index === e.index) this.resolvePendingConf();
    const pending = node.pendingProposals.get(e.index);
    if (pending === undefined) return;
    node.pendingProposals.delete(e.index);
    const mine = pending.term === e.term;
    if (pending.op === null) {
      if (mine && this.marker !== null && this.marker.node === node.id && this.marker.index === e.index) this.markerCommittedIndex = e.index;
      else this.marker = null;
      return;
    }
    const op = pending.op;
    const client = this.clients[op.clientId]!;
    if (op.done || client.busy !== op) return;
    if (mine && parseCommand(e.data)?.id !== op.opId) this.fail(`${node.id} proposed ${op.opId} at ${e.index} term ${e.term} but a different entry holds that slot`);
    if (mine) {
      this.completeOp(client, op, op.op.kind === 'put' ? { kind: 'put' } : { kind: 'delete' });
    } else {
      // A different entry committed at our index: ours can never commit. Retry the same op.
      this.queue.push(this.now + 1, { kind: 'client-attempt', client: client.id, opId: op.opId, attempt: ++op.attempt });
    }
  }

  private checkAppliedState(node: SimNode): void {
    const kv = node.storage.kv;
    if (kvDigest(kv.map) !== this.refDigests[kv.appliedIndex]) this.fail(`state machine safety: ${node.id} state at ${kv.appliedIndex} differs from the reference`);
  }

  private answerReads(node: SimNode): void {
    if (node.pendingReads.size === 0) return;
    const kv = node.storage.kv;
    for (const [ctx, r] of node.pendingReads) {
      if (r.index === null || r.index > kv.appliedIndex) continue;
      node.pendingReads.delete(ctx);
      const client = this.clients[r.op.clientId]!;
      if (r.op.done || client.busy !== r.op || r.op.op.kind !== 'get') continue;
      this.stats.readsServed++;
      this.completeOp(client, r.op, { kind: 'get', value: kv.map.get(r.op.op.key) ?? null });
    }
  }

  private maybeCompact(node: SimNode): void {
    const raft = node.raft;
    if (raft === null) return;
    const st = node.storage;
    const applied = st.kv.appliedIndex;
    if (applied - st.snapshot.meta.index < this.params.compactThresholdEntries) return;
    const meta = raft.snapshotMetaAt(applied);
    if (meta === null) return; // superseded by a snapshot from the leader, installed next cycle
    const snapshot: Snapshot = { meta, data: encodeKv(st.kv.map) };
    const retainFrom = Math.max(1, applied + 1 - this.params.retainEntries);
    raft.compact(snapshot, retainFrom);
    st.snapshot = snapshot;
    let drop = 0;
    while (drop < st.entries.length && st.entries[drop]!.index < Math.min(retainFrom, applied + 1)) drop++;
    if (drop > 0) st.entries.splice(0, drop);
    this.stats.snapshotsMade++;
  }

  private crashNode(node: SimNode): void {
    if (node.raft === null || node.decommissioned) return;
    node.raft = null;
    node.outstanding = null;
    node.epoch++;
    node.pendingProposals.clear();
    node.pendingReads.clear();
    node.lastObservedLeaderTerm = 0;
    this.stats.crashes++;
    this.digest.addString(`crash ${node.id}`);
    if (this.phase === 'chaos') this.queue.push(this.now + this.prng.range(20, 600), { kind: 'restart', node: node.id });
  }

  private restartNode(id: NodeId): void {
    const node = this.nodes.get(id)!;
    if (node.decommissioned || node.raft !== null) return;
    node.raft = new RaftNode(this.raftConfig(id), node.storage.initialState());
    this.stats.restarts++;
    this.digest.addString(`restart ${id}`);
    this.afterCoreCall(node);
  }

  private decommission(id: NodeId): void {
    const node = this.nodes.get(id);
    if (node === undefined || node.decommissioned) return;
    node.decommissioned = true;
    node.raft = null;
    node.outstanding = null;
    node.epoch++;
    node.pendingProposals.clear();
    node.pendingReads.clear();
    this.digest.addString(`decommission ${id}`);
  }

  // -------------------------------------------------------------------------------------------
  // Network
  // -------------------------------------------------------------------------------------------

  private send(m: Message): void {
    this.stats.messagesSent++;
    if (this.cut.has(`${m.from}>${m.to}`) || this.prng.chance(this.dropRate)) {
      this.stats.messagesDropped++;
      return;
    }
    let at = this.now + this.prng.range(1, this.params.delayMaxUnits);
    if (this.params.fifoLinks) {
      const link = `${m.from}>${m.to}`;
      at = Math.max(at, this.linkClock.get(link) ?? 0);
      this.linkClock.set(link, at);
    }
    this.queue.push(at, { kind: 'deliver', msg: m });
    if (this.prng.chance(this.duplicateRate)) {
      this.stats.messagesDuplicated++;
      this.queue.push(this.now + this.prng.range(1, 3 * this.params.delayMaxUnits), { kind: 'deliver', msg: m });
    }
  }

  private liveIds(): NodeId[] {
    return [...this.nodes.values()].filter((n) => !n.decommissioned).map((n) => n.id);
  }

  private injectFault(): void {
    const ids = this.liveIds();
    const roll = this.prng.int(100);
    if (roll < 22) {
      const up = ids.filter((id) => this.nodes.get(id)!.raft !== null);
      if (up.length > 0) this.crashNode(this.nodes.get(this.prng.pick(up))!);
    } else if (roll < 30) {
      const leader = this.currentLeader();
      if (leader !== null) this.crashNode(leader);
    } else if (roll < 45) {
      // Split into two groups.
      this.cut.clear();
      const groupOf = new Map(ids.map((id) => [id, this.prng.int(2)] as const));
      for (const a of ids) for (const b of ids) if (a !== b && groupOf.get(a) !== groupOf.get(b)) this.cut.add(`${a}>${b}`);
      this.stats.partitions++;
    } else if (roll < 55) {
      const victim = this.prng.chance(0.5) ? (this.currentLeader()?.id ?? this.prng.pick(ids)) : this.prng.pick(ids);
      for (const other of ids) {
        if (other === victim) continue;
        this.cut.add(`${victim}>${other}`);
        this.cut.add(`${other}>${victim}`);
      }
      this.stats.partitions++;
    } else if (roll < 68) {
      // Asymmetric: some one-way links fail.
      const n = this.prng.range(1, 3);
      for (let i = 0; i < n; i++) {
        const a = this.prng.pick(ids);
        const b = this.prng.pick(ids);
        if (a !== b) this.cut.add(`${a}>${b}`);
      }
      this.stats.partitions++;
    } else if (roll < 90) {
      this.cut.clear();
    } else if (roll < 95) {
      const leader = this.currentLeader();
      const raft = leader?.raft;
      if (leader !== null && raft !== null && raft !== undefined) {
        const voters = raft.status().conf.voters.filter((id) => id !== leader.id);
        if (voters.length > 0) {
          raft.transferLeadership(this.prng.pick(voters));
          this.afterCoreCall(leader);
        }
      }
    } else {
      this.dropRate = this.prng.pick([0, 0.01, 0.05, 0.2]);
    }
    this.digest.addNumber(roll);
  }

  private currentLeader(): SimNode | null {
    let best: SimNode | null = null;
    let bestTerm = -1;
    for (const n of this.nodes.values()) {
      if (n.raft === null) continue;
      const bs = n.raft.basicStatus();
      if (bs.role === 'leader' && bs.term > bestTerm) {
        best = n;
        bestTerm = bs.term;
      }
    }
    return best;
  }

  // -------------------------------------------------------------------------------------------
  // Membership
  // -------------------------------------------------------------------------------------------

  private resolvePendingConf(): void {
    const p = this.pendingConf;
    if (p === null) return;
    const c = this.committed[p.index];
    if (c === undefined) return;
    this.pendingConf = null;
    const committed = c.term === p.term && c.type === 'conf-change';
    this.digest.addString(`conf ${p.change.type} ${p.change.nodeId} ${committed}`);
    if (committed) {
      this.stats.confChangesCommitted++;
      if (p.change.type === 'remove') this.decommission(p.change.nodeId);
    } else if (p.change.type === 'add-learner') {
      this.decommission(p.change.nodeId);
    }
  }

  private changeMembership(): void {
    if (this.pendingConf !== null) return;
    const leader = this.currentLeader();
    if (leader === null || leader.raft === null) return;
    const raft = leader.raft;
    const st = raft.status();
    const conf = st.conf;
    const live = this.liveIds().length;
    let change: ConfChange | null = null;
    const caughtUp = conf.learners.filter((id) => (st.progress?.[id]?.match ?? 0) >= st.lastIndex - 3);
    const roll = this.prng.int(100);
    if (caughtUp.length > 0 && conf.voters.length < MAX_VOTERS && roll < 50) {
      change = { type: 'promote', nodeId: this.prng.pick(caughtUp) };
    } else if (conf.voters.length > MIN_VOTERS && roll < 75) {
      change = { type: 'remove', nodeId: this.prng.pick(conf.voters) };
    } else if (conf.learners.length > 0 && roll < 80) {
      change = { type: 'remove', nodeId: this.prng.pick(conf.learners) };
    } else if (conf.learners.length === 0 && live < MAX_LIVE_NODES) {
      const id = `n${this.nextNodeOrdinal}`;
      this.createNode(id, { voters: [], learners: [] });
      change = { type: 'add-learner', nodeId: id };
    }
    if (change === null) return;
    const r = raft.proposeConfChange(change);
    this.afterCoreCall(leader);
    this.digest.addString(`propose-conf ${change.type} ${change.nodeId} ${r.ok}`);
    if (r.ok) this.pendingConf = { index: r.index, term: r.term, change };
    else if (change.type === 'add-learner') this.decommission(change.nodeId);
  }

  /**
   * Bursts of writes outside the checked history, proposed to every node that believes it leads —
   * stale leaders in a minority partition included — so logs grow long divergent tails.
   */
  private backgroundLoad(): void {
    for (const node of this.nodes.values()) {
      const raft = node.raft;
      if (raft === null || !this.prng.chance(0.7)) continue;
      const bs = raft.basicStatus();
      // Host-side backpressure: a real host bounds the proposals it has in flight.
      if (bs.role !== 'leader' || bs.lastIndex - bs.commit > MAX_UNCOMMITTED_BACKGROUND_ENTRIES) continue;
      const n = this.prng.range(1, this.params.loadBurstMax);
      for (let i = 0; i < n; i++) {
        const cmd: KvCommand = { id: `bg-${this.stats.events}-${i}`, op: { kind: 'put', key: 'bg', value: `${node.id}:${this.now}:${i}` } };
        raft.propose(JSON.stringify(cmd));
      }
      this.afterCoreCall(node);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Clients
  // -------------------------------------------------------------------------------------------

  private startOp(client: Client): void {
    if (this.phase !== 'chaos' || client.busy !== null) return;
    const key = this.prng.pick(KEYS);
    const roll = this.prng.int(10);
    const op: KvOp =
      roll < 4 ? { kind: 'put', key, value: `c${client.id}v${client.seq}` } : roll < 5 ? { kind: 'delete', key } : { kind: 'get', key };
    const cop: ClientOp = { opId: `c${client.id}-${client.seq++}`, clientId: client.id, op, call: ++this.historyClock, done: false, attempt: 0 };
    client.busy = cop;
    this.queue.push(this.now + OP_TIMEOUT_UNITS, { kind: 'client-timeout', client: client.id, opId: cop.opId });
    this.attemptOp(client, cop.opId, 0);
  }

  private attemptOp(client: Client, opId: string, attempt: number): void {
    const op = client.busy;
    if (op === null || op.opId !== opId || op.done || op.attempt !== attempt) return;
    const up = this.liveIds().filter((id) => this.nodes.get(id)!.raft !== null);
    if (up.length === 0) {
      this.queue.push(this.now + PROPOSE_RETRY_UNITS, { kind: 'client-attempt', client: client.id, opId, attempt: ++op.attempt });
      return;
    }
    const hinted = client.hint === null ? undefined : this.nodes.get(client.hint);
    const node = hinted !== undefined && hinted.raft !== null && !hinted.decommissioned ? hinted : this.nodes.get(this.prng.pick(up))!;
    const raft = node.raft!;
    if (op.op.kind === 'get') {
      const ctx = `${opId}#${attempt}`;
      const r = raft.readIndex(ctx);
      this.afterCoreCall(node);
      if (r.ok) {
        node.pendingReads.set(ctx, { op, index: null });
        this.queue.push(this.now + READ_RETRY_UNITS, { kind: 'client-attempt', client: client.id, opId, attempt: ++op.attempt });
      } else {
        client.hint = null;
        this.queue.push(this.now + PROPOSE_RETRY_UNITS, { kind: 'client-attempt', client: client.id, opId, attempt: ++op.attempt });
      }
      return;
    }
    const cmd: KvCommand = { id: opId, op: op.op };
    const r = raft.propose(JSON.stringify(cmd));
    this.afterCoreCall(node);
    if (r.ok) {
      client.hint = node.id;
      node.pendingProposals.set(r.index, { op, term: r.term });
    } else {
      client.hint = r.leaderHint !== null && r.leaderHint !== node.id ? r.leaderHint : null;
      this.queue.push(this.now + PROPOSE_RETRY_UNITS, { kind: 'client-attempt', client: client.id, opId, attempt: ++op.attempt });
    }
  }

  private completeOp(client: Client, op: ClientOp, result: KvResult): void {
    op.done = true;
    client.busy = null;
    this.history.push({ clientId: client.id, op: op.op, call: op.call, ret: ++this.historyClock, result });
    this.stats.opsCompleted++;
    this.digest.addString(op.opId);
    this.queue.push(this.now + this.prng.range(1, 30), { kind: 'client-start', client: client.id });
  }

  private timeoutOp(client: Client, op: ClientOp): void {
    op.done = true;
    client.busy = null;
    client.hint = null;
    // A get that timed out had no effect; a write's outcome is unknown.
    if (op.op.kind !== 'get') {
      this.history.push({ clientId: client.id, op: op.op, call: op.call, ret: null, result: null });
      this.stats.opsUnknown++;
    }
    this.queue.push(this.now + this.prng.range(1, 30), { kind: 'client-start', client: client.id });
  }

  // -------------------------------------------------------------------------------------------
  // Liveness and whole-log checks
  // -------------------------------------------------------------------------------------------

  private startLiveness(): void {
    this.phase = 'liveness';
    this.cut.clear();
    this.dropRate = 0;
    this.duplicateRate = 0;
    for (const n of this.nodes.values()) if (!n.decommissioned && n.raft === null) this.restartNode(n.id);
    this.queue.push(this.now + 1, { kind: 'liveness-probe' });
    this.digest.addString('liveness');
  }

  private livenessProbe(): void {
    this.queue.push(this.now + 20, { kind: 'liveness-probe' });
    if (this.markerCommittedIndex > 0) return;
    this.resolvePendingConf();
    if (this.marker !== null) {
      const n = this.nodes.get(this.marker.node);
      const bs = n?.raft?.basicStatus();
      // Still leading the term it proposed in: wait. Otherwise the entry may have been truncated
      // and the log may never reach its index again: propose anew at the current leader.
      if (n !== undefined && bs !== undefined && bs.role === 'leader' && bs.term === this.marker.term && n.pendingProposals.has(this.marker.index)) return;
      if (n !== undefined) n.pendingProposals.delete(this.marker.index);
      this.marker = null;
    }
    const leader = this.currentLeader();
    if (leader === null) return;
    const cmd: KvCommand = { id: `liveness-${this.seed}`, op: { kind: 'put', key: LIVENESS_KEY, value: String(this.seed) } };
    const r = leader.raft!.propose(JSON.stringify(cmd));
    this.afterCoreCall(leader);
    if (!r.ok) return;
    this.marker = { node: leader.id, index: r.index, term: r.term };
    leader.pendingProposals.set(r.index, { op: null, term: r.term });
  }

  private allMembersCaughtUp(): boolean {
    const leader = this.currentLeader();
    if (leader === null || this.markerCommittedIndex === 0) return false;
    const conf = leader.raft!.status().conf;
    for (const id of [...conf.voters, ...conf.learners]) {
      const n = this.nodes.get(id);
      if (n === undefined || n.decommissioned) continue;
      if (n.raft === null || n.storage.kv.appliedIndex < this.markerCommittedIndex) return false;
    }
    return true;
  }

  /** Log matching over whole retained logs: where two nodes agree on (index, term), they agree on everything before. */
  private checkAllLogs(): void {
    const up = [...this.nodes.values()].filter((n) => n.raft !== null);
    for (let a = 0; a < up.length; a++) {
      for (let b = a + 1; b < up.length; b++) {
        const ra = up[a]!.raft!;
        const rb = up[b]!.raft!;
        let i = Math.min(ra.basicStatus().lastIndex, rb.basicStatus().lastIndex);
        while (i > 0) {
          const ta = ra.termAt(i);
          const tb = rb.termAt(i);
          if (ta === null || tb === null) break;
          if (ta === tb) break;
          i--;
        }
        for (; i > 0; i--) {
          const ea = ra.entryAt(i);
          const eb = rb.entryAt(i);
          if (ea === null || eb === null) break;
          if (ea.term !== eb.term || ea.data !== eb.data || ea.type !== eb.type) {
            this.fail(`log matching: ${up[a]!.id} and ${up[b]!.id} agree at a later index but differ at ${i}`);
          }
        }
      }
    }
  }

  private describeCluster(): string {
    return [...this.nodes.values()]
      .filter((n) => !n.decommissioned)
      .map((n) => {
        if (n.raft === null) return `${n.id}:down`;
        const bs = n.raft.basicStatus();
        const conf = n.raft.status().conf;
        let line = `${n.id}:${bs.role}/t${bs.term}/c${bs.commit}/a${n.storage.kv.appliedIndex}/l${bs.lastIndex}/v[${conf.voters.join(',')}]l[${conf.learners.join(',')}]`;
        line += n.outstanding === null ? '' : '/busy';
        if (bs.role === 'leader') {
          const st = n.raft.status();
          const prs = Object.entries(st.progress ?? {}).map(([id, p]) => `${id}=${p.state}:m${p.match}:n${p.next}:i${p.inflight}:${p.recentActive ? 'A' : '-'}`);
          line += `{transferee=${st.leadTransferee} ${prs.join(' ')}}`;
        }
        return line;
      })
      .join(' ');
  }
}

/** Runs one seeded simulation; throws `SimulationFailure` (with the seed) on any violation. */
export function runSimulation(options: SimOptions): SimResult {
  const sim = new Simulation(options.seed, {
    steps: options.steps ?? DEFAULT_STEPS,
    livenessBudgetUnits: options.livenessBudgetUnits ?? DEFAULT_LIVENESS_BUDGET_UNITS,
    maxCheckerStates: options.maxCheckerStates ?? DEFAULT_MAX_CHECKER_STATES,
    skipLinearizability: options.skipLinearizability ?? false,
    trace: options.trace,
    traceFromUnits: options.traceFromUnits,
  });
  try {
    return sim.run();
  } catch (err) {
    if (err instanceof SimulationFailure) throw err;
    const detail = err instanceof Error ? `${err.name}: ${err.message}\n${err.stack ?? ''}` : String(err);
    throw new SimulationFailure(options.seed, `unexpected exception: ${detail}`, -1);
  }
}
