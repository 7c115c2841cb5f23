/**
 * A small in-memory test cluster of pure Raft cores, shared by the unit tests (hashicorp/raft's
 * test-cluster helper in spirit): make a cluster, tick, deliver messages, partition, heal, drop,
 * crash and restart, wait for a leader, and compare what the nodes applied.
 *
 * Every node has a `MemoryStorage` holding only what its host persisted, so a crash loses exactly
 * what a real crash would. The host loop is the real one: ready() -> persist -> send -> apply ->
 * advance(). Delivery is FIFO and synchronous unless a test intercepts it.
 */
import { RaftNode } from '../../src/raft/index.js';
import type {
  Entry,
  HardState,
  InitialState,
  Message,
  NodeId,
  RaftConfig,
  ReadState,
  Ready,
  Snapshot,
  SnapshotMeta,
} from '../../src/raft/index.js';

/** Durable storage of one node: exactly what its host persisted. */
export class MemoryStorage {
  hardState: HardState = { term: 0, vote: null, commit: 0 };
  snapshot: Snapshot;
  /** Persisted entries, contiguous, starting at `entries[0].index` (may start at or below the snapshot index). */
  entries: Entry[] = [];

  constructor(meta: SnapshotMeta, data: Uint8Array = new Uint8Array(0)) {
    this.snapshot = { meta, data };
  }

  /** Index of the last persisted entry (or the snapshot index). */
  lastIndex(): number {
    const n = this.entries.length;
    return n === 0 ? this.snapshot.meta.index : this.entries[n - 1]!.index;
  }

  /** Persists the durable parts of a Ready, as one atomic transaction. */
  persist(rd: Ready): void {
    if (rd.hardState !== undefined) this.hardState = { ...rd.hardState };
    if (rd.snapshot !== undefined) {
      this.snapshot = rd.snapshot;
      this.entries = [];
    }
    if (rd.entries.length > 0) this.writeEntries(rd.entries);
  }

  /** Truncates from `ents[0].index` and appends. */
  writeEntries(ents: readonly Entry[]): void {
    const first = ents[0]!.index;
    if (this.entries.length > 0) {
      const base = this.entries[0]!.index;
      if (first <= base) this.entries = [];
      else if (first <= this.lastIndex()) this.entries.length = first - base;
    }
    if (this.entries.length === 0 && first !== this.snapshot.meta.index + 1) {
      // Only valid right after a snapshot: the log restarts after it.
      if (first > this.snapshot.meta.index + 1) throw new Error(`storage gap: writing ${first} after snapshot ${this.snapshot.meta.index}`);
    }
    if (this.entries.length > 0 && first !== this.lastIndex() + 1) throw new Error(`storage gap: writing ${first} after ${this.lastIndex()}`);
    for (const e of ents) this.entries.push(e);
  }

  /** Records a snapshot made by the host and drops entries below `retainFromIndex`. */
  compact(snapshot: Snapshot, retainFromIndex: number): void {
    if (snapshot.meta.index <= this.snapshot.meta.index) return;
    this.snapshot = snapshot;
    const keepFrom = Math.min(retainFromIndex, snapshot.meta.index + 1);
    let drop = 0;
    while (drop < this.entries.length && this.entries[drop]!.index < keepFrom) drop++;
    if (drop > 0) this.entries.splice(0, drop);
  }

  /** What the host would load on restart. */
  initialState(applied?: number): InitialState {
    const meta = this.snapshot.meta;
    const init: InitialState = {
      hardState: { ...this.hardState },
      snapshotMeta: { index: meta.index, term: meta.term, conf: { voters: [...meta.conf.voters], learners: [...meta.conf.learners] } },
      entries: this.entries.filter((e) => e.index > meta.index),
    };
    if (this.snapshot.data.length > 0 || meta.index > 0) init.snapshotData = this.snapshot.data;
    if (applied !== undefined) init.applied = applied;
    return init;
  }
}

/** The data `setLog` gives the entry at `index` with `term`. */
export function logData(index: number, term: number): string {
  return `${index}@${term}`;
}

/** Encodes the test state machine (the applied normal entries' data) as a snapshot image. */
export function encodeAppliedImage(applied: readonly string[]): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(applied));
}

/** Decodes a snapshot image made by `encodeAppliedImage` (empty image: empty state). */
export function decodeAppliedImage(data: Uint8Array): string[] {
  if (data.length === 0) return [];
  return JSON.parse(new TextDecoder().decode(data)) as string[];
}

/** One node of a test cluster: its core, its durable storage and its applied state. */
export interface TestNode {
  id: NodeId;
  raft: RaftNode;
  storage: MemoryStorage;
  /** Data of applied normal, non-empty entries, in order (the test state machine). */
  applied: string[];
  appliedIndex: number;
  readStates: ReadState[];
  /** Every Ready this node produced, for assertions. */
  readies: Ready[];
  crashed: boolean;
  /** A Ready whose early messages went out but whose persist is held back (`holdPersist`). */
  held: Ready | null;
  /** Override of the random source: election timeout jitter for this node. */
  randomValue: number;
}

/** Tuning for a test cluster; ids default to n1..nN, all voters. */
export interface ClusterOptions {
  voters?: NodeId[];
  learners?: NodeId[];
  /** Nodes that exist but start as fresh joiners (empty configuration). */
  joiners?: NodeId[];
  electionTimeoutTicks?: number;
  heartbeatTicks?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  maxInflightMsgs?: number;
  maxBytesPerAppend?: number;
  maxSnapshotChunkBytes?: number;
  /** Election-timeout jitter per node (default: its ordinal), fixed before the node starts. */
  jitter?: Record<NodeId, number>;
}

type Filter = (m: Message) => boolean;

/** A deterministic in-memory cluster for scenario tests. */
export class TestCluster {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Messages sent and not yet delivered (FIFO). */
  queue: Message[] = [];
  /** Every message that passed the filters, in send order. */
  readonly sent: Message[] = [];
  /** Called after a node persisted a Ready and before its messages are sent (contract checks). */
  onPersisted: ((node: TestNode, rd: Ready) => void) | null = null;
  /**
   * Nodes whose host sends a Ready's early messages but does not persist it until
   * `releasePersist` (a slow disk): the core gets no `advance()` meanwhile.
   */
  readonly holdPersist = new Set<NodeId>();
  private readonly cut = new Set<string>();
  private readonly filters: Filter[] = [];
  private readonly options: Required<Omit<ClusterOptions, 'voters' | 'learners' | 'joiners' | 'jitter'>>;
  private readonly jitter: Record<NodeId, number>;
  private readonly initialConf: { voters: NodeId[]; learners: NodeId[] };

  constructor(options: ClusterOptions = {}) {
    this.options = {
      electionTimeoutTicks: options.electionTimeoutTicks ?? 10,
      heartbeatTicks: options.heartbeatTicks ?? 1,
      preVote: options.preVote ?? true,
      checkQuorum: options.checkQuorum ?? true,
      maxInflightMsgs: options.maxInflightMsgs ?? 256,
      maxBytesPerAppend: options.maxBytesPerAppend ?? 1 << 20,
      maxSnapshotChunkBytes: options.maxSnapshotChunkBytes ?? 1 << 20,
    };
    this.jitter = options.jitter ?? {};
    const voters = options.voters ?? ['n1', 'n2', 'n3'];
    const learners = options.learners ?? [];
    this.initialConf = { voters, learners };
    voters.forEach((id, i) => this.addNode(id, { index: 0, term: 0, conf: { voters: [...voters], learners: [...learners] } }, i));
    learners.forEach((id, i) => this.addNode(id, { index: 0, term: 0, conf: { voters: [...voters], learners: [...learners] } }, voters.length + i));
    for (const id of options.joiners ?? []) this.addJoiner(id);
  }

  /** Adds a fresh joiner (empty configuration) that waits for the leader to replicate to it. */
  addJoiner(id: NodeId): TestNode {
    return this.addNode(id, { index: 0, term: 0, conf: { voters: [], learners: [] } }, this.nodes.size);
  }

  private addNode(id: NodeId, meta: SnapshotMeta, ordinal: number): TestNode {
    const storage = new MemoryStorage(meta);
    const node: TestNode = {
      id,
      raft: undefined as unknown as RaftNode,
      storage,
      applied: [],
      appliedIndex: 0,
      readStates: [],
      readies: [],
      crashed: false,
      held: null,
      randomValue: Math.min(this.jitter[id] ?? ordinal, this.options.electionTimeoutTicks - 1),
    };
    node.raft = new RaftNode(this.config(node), storage.initialState());
    this.nodes.set(id, node);
    return node;
  }

  private config(node: TestNode): RaftConfig {
    return {
      id: node.id,
      electionTimeoutTicks: this.options.electionTimeoutTicks,
      heartbeatTicks: this.options.heartbeatTicks,
      random: (max) => Math.min(node.randomValue, max - 1),
      preVote: this.options.preVote,
      checkQuorum: this.options.checkQuorum,
      maxInflightMsgs: this.options.maxInflightMsgs,
      maxBytesPerAppend: this.options.maxBytesPerAppend,
      maxSnapshotChunkBytes: this.options.maxSnapshotChunkBytes,
    };
  }

  /** The node called `id` (throws if unknown). */
  node(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  /** The core of node `id`. */
  raft(id: NodeId): RaftNode {
    return this.node(id).raft;
  }

  /** Blocks messages between `a` and `b` in both directions. */
  cutLink(a: NodeId, b: NodeId): void {
    this.cut.add(`${a}>${b}`);
    this.cut.add(`${b}>${a}`);
  }

  /** Blocks messages from `from` to `to` only (asymmetric partition). */
  cutOneWay(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}>${to}`);
  }

  /** Partitions the cluster into the given groups (nodes not listed are isolated). */
  partition(...groups: NodeId[][]): void {
    const groupOf = new Map<NodeId, number>();
    groups.forEach((g, i) => g.forEach((id) => groupOf.set(id, i)));
    for (const a of this.nodes.keys()) {
      for (const b of this.nodes.keys()) {
        if (a !== b && (groupOf.get(a) === undefined || groupOf.get(a) !== groupOf.get(b))) this.cut.add(`${a}>${b}`);
      }
    }
  }

  /** Isolates `id` from every other node. */
  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) if (other !== id) this.cutLink(id, other);
  }

  /** Removes every partition and filter. */
  heal(): void {
    this.cut.clear();
    this.filters.length = 0;
  }

  /** Drops every message for which `drop` returns true, until `heal()`. */
  addFilter(drop: Filter): void {
    this.filters.push(drop);
  }

  /** Drops queued, undelivered messages. */
  dropQueued(): void {
    this.queue = [];
  }

  /** Ticks the given nodes (default: every live node) `count` times, running their hosts after each tick. */
  tick(count = 1, ids?: NodeId[]): void {
    for (let i = 0; i < count; i++) {
      for (const id of ids ?? [...this.nodes.keys()]) {
        const n = this.node(id);
        if (n.crashed) continue;
        n.raft.tick();
        this.processReady(id);
      }
    }
  }

  /** Ticks the given nodes (default: all) `count` times, delivering every message after each tick. */
  run(count: number, ids?: NodeId[]): void {
    for (let i = 0; i < count; i++) {
      this.tick(1, ids);
      this.stabilize();
    }
  }

  /** Runs node `id`'s host loop until it has nothing ready (or its persist is held). */
  processReady(id: NodeId): void {
    const n = this.node(id);
    if (n.crashed) return;
    for (let guard = 0; guard < 1000 && n.held === null && n.raft.hasReady(); guard++) {
      const rd = n.raft.ready();
      n.readies.push(rd);
      // A leader replicates while it persists (thesis §10.2.1).
      for (const m of rd.earlyMessages) this.send(m);
      if (this.holdPersist.has(id)) {
        n.held = rd;
        return;
      }
      this.finishReady(n, rd);
    }
  }

  /** Persists the Ready held for `id`, finishes its host cycle and resumes its loop. */
  releasePersist(id: NodeId): void {
    const n = this.node(id);
    this.holdPersist.delete(id);
    const rd = n.held;
    if (rd === null || n.crashed) return;
    n.held = null;
    this.finishReady(n, rd);
    this.processReady(id);
  }

  /** The rest of a host cycle: persist, send, apply, advance. */
  private finishReady(n: TestNode, rd: Ready): void {
    n.storage.persist(rd);
    this.onPersisted?.(n, rd);
    for (const m of rd.messages) this.send(m);
    if (rd.snapshot !== undefined) {
      n.applied = decodeAppliedImage(rd.snapshot.data);
      n.appliedIndex = rd.snapshot.meta.index;
    }
    for (const e of rd.committedEntries) {
      if (e.index !== n.appliedIndex + 1) throw new Error(`${n.id} applied ${e.index} after ${n.appliedIndex}`);
      n.appliedIndex = e.index;
      if (e.type === 'normal' && e.data !== '') n.applied.push(e.data);
    }
    for (const r of rd.readStates) n.readStates.push(r);
    n.raft.advance();
  }

  private send(m: Message): void {
    if (this.cut.has(`${m.from}>${m.to}`)) return;
    for (const f of this.filters) if (f(m)) return;
    this.sent.push(m);
    this.queue.push(m);
  }

  /** Delivers queued messages (and those they cause) until none remain or `maxMessages` were delivered. */
  deliver(maxMessages = 100_000): number {
    let delivered = 0;
    while (this.queue.length > 0 && delivered < maxMessages) {
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) {
        delivered++;
        this.deliverOne(m);
      }
    }
    return delivered;
  }

  /** Delivers one message to its recipient (if alive and the link is not cut) and runs its host. */
  deliverOne(m: Message): void {
    const target = this.nodes.get(m.to);
    if (target === undefined || target.crashed) return;
    if (this.cut.has(`${m.from}>${m.to}`)) return;
    target.raft.step(m);
    this.processReady(m.to);
  }

  /** Runs every host and delivers until quiet. */
  stabilize(): void {
    for (let round = 0; round < 100; round++) {
      for (const id of this.nodes.keys()) this.processReady(id);
      if (this.queue.length === 0) return;
      this.deliver();
    }
  }

  /** Makes `id` campaign by ticking only it past its election timeout, then stabilizes. */
  campaign(id: NodeId): void {
    const n = this.node(id);
    const before = n.raft.status().term;
    for (let i = 0; i < 4 * this.options.electionTimeoutTicks; i++) {
      this.tick(1, [id]);
      const st = n.raft.status();
      if (st.role !== 'follower' || st.term !== before) break;
    }
    this.stabilize();
  }

  /** Elects `id` (ticking only it) and asserts it became leader. */
  elect(id: NodeId): void {
    this.campaign(id);
    const st = this.raft(id).status();
    if (st.role !== 'leader') throw new Error(`${id} did not become leader: ${st.role} term ${st.term}`);
  }

  /** Ids of live nodes that consider themselves leader. */
  leaders(): NodeId[] {
    return [...this.nodes.values()].filter((n) => !n.crashed && n.raft.status().role === 'leader').map((n) => n.id);
  }

  /** Proposes `data` at `id` and stabilizes; returns the proposal result. */
  propose(id: NodeId, data: string): ReturnType<RaftNode['propose']> {
    const r = this.raft(id).propose(data);
    this.stabilize();
    return r;
  }

  /** Simulates a crash: the core and everything not persisted are lost. */
  crash(id: NodeId): void {
    const n = this.node(id);
    n.crashed = true;
    n.held = null;
    this.holdPersist.delete(id);
    this.queue = this.queue.filter((m) => m.to !== id);
  }

  /** Restarts a crashed node from its durable storage (the applied state is rebuilt from the snapshot). */
  restart(id: NodeId): void {
    const n = this.node(id);
    n.crashed = false;
    n.held = null;
    n.applied = decodeAppliedImage(n.storage.snapshot.data);
    n.appliedIndex = n.storage.snapshot.meta.index;
    n.readStates = [];
    n.raft = new RaftNode(this.config(n), n.storage.initialState());
  }

  /** Makes node `id` snapshot its applied state and compact, keeping entries from `retainFromIndex`. */
  compact(id: NodeId, retainFromIndex?: number): Snapshot {
    const n = this.node(id);
    const meta = n.raft.snapshotMetaAt(n.appliedIndex);
    if (meta === null) throw new Error(`${id} cannot snapshot at ${n.appliedIndex}`);
    const snapshot: Snapshot = { meta, data: encodeAppliedImage(n.applied) };
    n.raft.compact(snapshot, retainFromIndex ?? n.appliedIndex + 1);
    n.storage.compact(snapshot, retainFromIndex ?? n.appliedIndex + 1);
    return snapshot;
  }

  /**
   * Replaces node `id`'s durable state with a crafted log (entry i+1 has term `terms[i]` and data
   * `"<index>@<term>"`) and restarts it; used to set up the paper's figures.
   */
  setLog(id: NodeId, terms: number[], hard: { term: number; vote?: NodeId | null; commit?: number }): void {
    const n = this.node(id);
    const entries: Entry[] = terms.map((term, i) => ({ index: i + 1, term, type: 'normal', data: logData(i + 1, term) }));
    n.storage.entries = entries;
    n.storage.hardState = { term: hard.term, vote: hard.vote ?? null, commit: hard.commit ?? 0 };
    n.crashed = true;
    this.restart(id);
  }

  /** Terms of node `id`'s log from index 1 to its last index (-1 where compacted). */
  logTerms(id: NodeId): number[] {
    const raft = this.raft(id);
    const last = raft.status().lastIndex;
    const out: number[] = [];
    for (let i = 1; i <= last; i++) out.push(raft.termAt(i) ?? -1);
    return out;
  }

  /** The initial configuration the cluster was made with. */
  initialConfiguration(): { voters: NodeId[]; learners: NodeId[] } {
    return this.initialConf;
  }
}
