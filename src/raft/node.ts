/**
 * The pure Raft state machine of one node, after etcd's raft library and Ongaro's dissertation
 * (2014). It performs no I/O: the host drives it with `tick()` (logical time), `step()` (messages
 * from peers) and the proposal methods, and collects what to persist, send and apply through
 * `ready()`/`advance()`.
 *
 * Implemented: randomized election timeouts from an injected source; pre-vote (§9.6); check-quorum
 * with a leader lease on followers (§6.2 / §9.6); log replication with pipelining, an in-flight
 * window and a byte bound per append; fast back-off on conflicts (conflict term/index hints);
 * commitment only of current-term entries by counting (§5.4.2); a no-op on election; learners;
 * single-server membership changes effective on append (§4.1); chunked InstallSnapshot (§5);
 * ReadIndex (§6.4); leadership transfer with TimeoutNow (§3.10).
 */
import { invariant } from '../errors.js';
import { ConfHistory, cloneConfiguration, encodeConfChange, isLearner, isVoter } from './confchange.js';
import { RaftLog } from './log.js';
import { Progress } from './progress.js';
import { committedIndex, hasQuorum, voteResult } from './quorum.js';
import { ReadOnlyQueue } from './read-only.js';
import type {
  AppendMessage,
  AppendResponseMessage,
  BasicStatus,
  ConfChange,
  Entry,
  EntryType,
  HardState,
  HeartbeatMessage,
  HeartbeatResponseMessage,
  InitialState,
  Message,
  NodeId,
  ProgressStatus,
  ProposeRejection,
  ProposeResult,
  RaftConfig,
  RaftStatus,
  ReadIndexResult,
  ReadState,
  Ready,
  Role,
  Snapshot,
  SnapshotMessage,
  SnapshotMeta,
  SnapshotResponseMessage,
  SoftState,
  TransferResult,
  VoteMessage,
  VoteResponseMessage,
} from './types.js';
import { assertNever } from './types.js';

/** Default bound on committed entries handed out in one `Ready`. */
export const DEFAULT_MAX_COMMITTED_ENTRIES_PER_READY = 4096;
/** Bound on ReadIndex requests queued at a leader (beyond it requests are dropped; hosts time out). */
export const MAX_PENDING_READ_REQUESTS = 4096;

/** The state-machine image of a bootstrap snapshot at index 0: the empty state. */
const EMPTY_IMAGE = new Uint8Array(0);
/**
 * Most bytes of entries in an append sent while probing (`pr.state === 'probe'`). A probe looks for
 * the match point; once one is accepted the follower is replicated at full size. Probes are sent
 * again on every heartbeat response until one is answered, so a follower that is slow to answer
 * (a restarted member parsing its catch-up) would otherwise get a full-size append per heartbeat,
 * most of them duplicates, and fall further behind with each.
 */
export const MAX_PROBE_BYTES = 64 * 1024;

type CampaignKind = 'pre-election' | 'election' | 'transfer';

/** A ReadIndex request waiting for the leader to commit an entry of its own term. */
interface QueuedRead {
  ctx: string;
  from: NodeId;
}

/** An InstallSnapshot transfer being reassembled on a follower. */
interface IncomingSnapshot {
  meta: SnapshotMeta;
  chunks: Uint8Array[];
  receivedBytes: number;
}

/** What `ready()` handed out, for `advance()` to acknowledge. */
interface HandedOut {
  committedTo: number;
  snapshotIndex: number;
  /** The last entry (or, without entries, the snapshot point) handed out for persistence; index 0: none. */
  persistIndex: number;
  persistTerm: number;
}

/**
 * Messages a leader may send before the `Ready` carrying them is durable: replication traffic,
 * which depends only on the leader's term (durable since an earlier `Ready`), never on its own
 * copy of the entries it carries.
 */
function isLeaderReplicationMessage(m: Message): boolean {
  return m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot';
}

function sameSoftState(a: SoftState, b: SoftState): boolean {
  return a.leader === b.leader && a.role === b.role;
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function concatChunks(chunks: readonly Uint8Array[], totalBytes: number): Uint8Array {
  if (chunks.length === 1 && chunks[0]!.length === totalBytes) return chunks[0]!;
  const out = new Uint8Array(totalBytes);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/**
 * One Raft node. Not thread-safe by design (there are no threads): the host calls it from one
 * event loop. Methods never perform I/O; effects surface in the next `Ready`.
 */
export class RaftNode {
  private readonly id: NodeId;
  private readonly electionTimeoutTicks: number;
  private readonly heartbeatTicks: number;
  private readonly random: (maxExclusive: number) => number;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly maxInflightMsgs: number;
  private readonly maxBytesPerAppend: number;
  private readonly maxSnapshotChunkBytes: number;
  private readonly maxCommittedEntriesPerReady: number;
  /** Ticks without progress after which a snapshot chunk is sent again. */
  private readonly snapshotRetryTicks: number;

  private term: number;
  private vote: NodeId | null;
  private leader: NodeId | null = null;
  private role: Role = 'follower';
  private readonly log: RaftLog;
  private readonly confs: ConfHistory;

  private electionElapsedTicks = 0;
  private heartbeatElapsedTicks = 0;
  private randomizedElectionTimeoutTicks: number;

  private readonly votes = new Map<NodeId, boolean>();
  private readonly progress = new Map<NodeId, Progress>();
  private leadTransferee: NodeId | null = null;
  private readonly readOnly = new ReadOnlyQueue();
  private queuedReads: QueuedRead[] = [];

  /** The latest snapshot this node can send (from `compact`, the initial state, or a received one). */
  private snapshot: Snapshot | null;
  private incoming: IncomingSnapshot | null = null;

  private msgs: Message[] = [];
  private readStates: ReadState[] = [];
  /** Leader: new entries or a new commit index to broadcast at the next `ready()`. */
  private pendingBroadcast = false;
  /** Leader: a ReadIndex round needs a heartbeat broadcast at the next `ready()` (one per batch). */
  private pendingReadHeartbeat = false;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  private handedOut: HandedOut | null = null;

  /**
   * Builds a node from its configuration and what the host persisted. A node restarted with a
   * persisted term and vote keeps them, so it never votes twice in a term.
   */
  constructor(config: RaftConfig, initial: InitialState) {
    invariant(config.id !== '', 'node id must not be empty');
    invariant(Number.isInteger(config.heartbeatTicks) && config.heartbeatTicks >= 1, 'heartbeatTicks must be an integer >= 1');
    invariant(
      Number.isInteger(config.electionTimeoutTicks) && config.electionTimeoutTicks > config.heartbeatTicks,
      'electionTimeoutTicks must be an integer greater than heartbeatTicks',
    );
    invariant(Number.isInteger(config.maxInflightMsgs) && config.maxInflightMsgs >= 1, 'maxInflightMsgs must be >= 1');
    invariant(config.maxBytesPerAppend >= 1, 'maxBytesPerAppend must be >= 1');
    invariant(Number.isInteger(config.maxSnapshotChunkBytes) && config.maxSnapshotChunkBytes >= 1, 'maxSnapshotChunkBytes must be >= 1');
    this.id = config.id;
    this.electionTimeoutTicks = config.electionTimeoutTicks;
    this.heartbeatTicks = config.heartbeatTicks;
    this.random = config.random;
    this.preVote = config.preVote;
    this.checkQuorum = config.checkQuorum;
    this.maxInflightMsgs = config.maxInflightMsgs;
    this.maxBytesPerAppend = config.maxBytesPerAppend;
    this.maxSnapshotChunkBytes = config.maxSnapshotChunkBytes;
    this.maxCommittedEntriesPerReady = config.maxCommittedEntriesPerReady ?? DEFAULT_MAX_COMMITTED_ENTRIES_PER_READY;
    invariant(this.maxCommittedEntriesPerReady >= 1, 'maxCommittedEntriesPerReady must be >= 1');
    this.snapshotRetryTicks = Math.max(2 * config.heartbeatTicks, Math.floor(config.electionTimeoutTicks / 2));

    const meta = initial.snapshotMeta;
    const applied = Math.max(meta.index, initial.applied ?? meta.index);
    const commit = Math.max(initial.hardState.commit, applied);
    this.log = new RaftLog(meta, initial.entries, commit, applied);
    this.confs = new ConfHistory(meta.index, meta.conf);
    for (const entry of initial.entries) {
      if (entry.index > meta.index && entry.type === 'conf-change') this.confs.appendEntry(entry.index, entry.data);
    }
    // An index-0 snapshot is never kept: the bootstrap snapshot is synthesized from the
    // configuration history (a fresh joiner's own index-0 meta has an empty configuration).
    this.snapshot =
      initial.snapshotData === undefined || meta.index === 0 ? null : { meta: { ...meta, conf: cloneConfiguration(meta.conf) }, data: initial.snapshotData };
    this.term = initial.hardState.term;
    this.vote = initial.hardState.vote;
    this.randomizedElectionTimeoutTicks = this.electionTimeoutTicks;
    this.resetRandomizedElectionTimeout();
    this.prevSoftState = { leader: null, role: 'follower' };
    this.prevHardState = { ...initial.hardState };
  }

  // ---------------------------------------------------------------------------------------------
  // Host interface
  // ---------------------------------------------------------------------------------------------

  /** Advances logical time by one tick: elections on followers, heartbeats and check-quorum on leaders. */
  tick(): void {
    if (this.role === 'leader') this.tickLeader();
    else this.tickElection();
  }

  /**
   * Processes a message from a peer. Messages for another node, stale terms, duplicates and
   * reorderings are handled safely; a well-typed message never makes it throw.
   */
  step(m: Message): void {
    if (m.to !== this.id || m.from === this.id) return;
    if (m.term > this.term) {
      if (m.type === 'vote' || m.type === 'pre-vote') {
        const inLease = this.checkQuorum && this.leader !== null && this.electionElapsedTicks < this.electionTimeoutTicks;
        // Leader lease (§9.6): a node that heard from a live leader ignores disruptive campaigns.
        if (inLease && !m.transfer) return;
      }
      if (m.type === 'pre-vote') {
        // A pre-vote never changes our term.
      } else if (m.type === 'pre-vote-resp' && !m.reject) {
        // A granted pre-vote carries the term the pre-candidate would campaign in.
      } else if (m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot') {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, null);
      }
    } else if (m.term < this.term) {
      if (m.type === 'append' || m.type === 'heartbeat') {
        // A stale leader (e.g. after a partition) learns the newer term and steps down; without
        // this, pre-vote/check-quorum could leave it stuck forever. Answered with neither as well
        // (the Raft paper's rule): a node whose configuration is out of date (its voters removed,
        // or itself a learner there) never campaigns where the leader would hear its higher term,
        // and ignoring the leader would leave it behind for good (simulation seed 1021809).
        this.msgs.push({ type: 'append-resp', from: this.id, to: m.from, term: this.term, index: 0, reject: false, rejectHint: 0, logTerm: 0 });
      } else if (m.type === 'pre-vote') {
        this.msgs.push({ type: 'pre-vote-resp', from: this.id, to: m.from, term: this.term, reject: true });
      }
      return;
    }

    switch (m.type) {
      case 'vote':
      case 'pre-vote':
        this.handleVoteRequest(m);
        return;
      default:
        break;
    }

    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        return;
      case 'candidate':
      case 'pre-candidate':
        this.stepCandidate(m);
        return;
      case 'follower':
        this.stepFollower(m);
        return;
      default:
        assertNever(this.role);
    }
  }

  /**
   * Appends a normal entry with opaque `data` (leader only). Accepted does not mean committed:
   * the host learns the outcome when an entry at `index` with `term` is applied.
   */
  propose(data: string): ProposeResult {
    const refused = this.refuseProposal();
    if (refused !== null) return this.rejection(refused);
    const entry = this.appendLeaderEntry('normal', data);
    return { ok: true, index: entry.index, term: entry.term };
  }

  /**
   * Appends a membership change (leader only). At most one may be uncommitted, and a new leader
   * must first commit an entry of its own term (the single-server change fix, Ongaro 2015).
   */
  proposeConfChange(change: ConfChange): ProposeResult {
    const refused = this.refuseProposal();
    if (refused !== null) return this.rejection(refused);
    if (this.confs.lastIndex() > this.log.committed || this.log.term(this.log.committed) !== this.term) {
      return this.rejection('conf-change-pending');
    }
    const conf = this.confs.current();
    const valid =
      typeof change.nodeId === 'string' &&
      change.nodeId !== '' &&
      (change.type === 'add-learner'
        ? !isVoter(conf, change.nodeId) && !isLearner(conf, change.nodeId)
        : change.type === 'promote'
          ? isLearner(conf, change.nodeId)
          : change.type === 'remove'
            ? (isVoter(conf, change.nodeId) && conf.voters.length > 1) || isLearner(conf, change.nodeId)
            : false);
    if (!valid) return this.rejection('invalid');
    const entry = this.appendLeaderEntry('conf-change', encodeConfChange(change));
    return { ok: true, index: entry.index, term: entry.term };
  }

  /**
   * Requests a linearizable read point tagged `ctx` (§6.4). The answer arrives as a `ReadState`
   * in a later `Ready`, on this node; it may never arrive if leadership changes (the host times out).
   */
  readIndex(ctx: string): ReadIndexResult {
    if (this.role === 'leader') {
      this.handleReadRequest(ctx, this.id);
      return { ok: true };
    }
    if (this.leader === null) return { ok: false, reason: 'not-leader-unknown' };
    this.msgs.push({ type: 'read-index', from: this.id, to: this.leader, term: this.term, ctx });
    return { ok: true };
  }

  /**
   * Starts handing leadership to voter `to` (§3.10): proposals are refused while the transfer
   * runs; once `to` has the whole log it is told to campaign at once. Aborts after an election
   * timeout without success.
   */
  transferLeadership(to: NodeId): TransferResult {
    if (this.role !== 'leader') return { ok: false, reason: 'not-leader' };
    if (to === this.id) return { ok: false, reason: 'transferee-is-self' };
    if (!isVoter(this.confs.current(), to)) return { ok: false, reason: 'not-a-voter' };
    if (this.leadTransferee === to) return { ok: true };
    this.abortLeaderTransfer();
    this.electionElapsedTicks = 0;
    this.leadTransferee = to;
    const pr = this.progress.get(to);
    invariant(pr !== undefined, 'voter without progress');
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to, pr, true);
    return { ok: true };
  }

  /**
   * The host made `snapshot` at `snapshot.meta.index` (<= applied). The core keeps entries from
   * `retainFromIndex` on (a trailing window for slow followers; never beyond the snapshot) and
   * sends this snapshot to followers that need compacted entries. Stale snapshots are ignored.
   */
  compact(snapshot: Snapshot, retainFromIndex: number): void {
    const index = snapshot.meta.index;
    const appliedLimit = Math.max(this.log.applied, this.handedOut?.committedTo ?? 0);
    invariant(index <= appliedLimit, () => `snapshot at ${index} beyond applied ${appliedLimit}`);
    if (this.snapshot !== null && index <= this.snapshot.meta.index) return;
    if (index < this.log.snapshotIndex()) return;
    const term = this.log.term(index);
    invariant(term < 0 || term === snapshot.meta.term, () => `snapshot term ${snapshot.meta.term} does not match log term ${term} at ${index}`);
    this.snapshot = snapshot;
    const newOffset = Math.min(index, Math.max(retainFromIndex - 1, this.log.snapshotIndex()), this.log.applied);
    if (newOffset > this.log.snapshotIndex()) {
      this.log.compact(newOffset);
      this.confs.compact(newOffset);
    }
  }

  /**
   * The term and configuration in effect at `index` (<= the last index), for building a snapshot
   * there. Returns null when `index` is no longer known: a newer snapshot from the leader was
   * restored after the host applied `index` (it arrives in the next `Ready`; skip this compaction).
   */
  snapshotMetaAt(index: number): SnapshotMeta | null {
    invariant(index <= this.log.lastIndex(), () => `snapshotMetaAt(${index}) beyond the last index ${this.log.lastIndex()}`);
    if (this.snapshot !== null && this.snapshot.meta.index === index && index < this.log.snapshotIndex()) {
      return { index, term: this.snapshot.meta.term, conf: cloneConfiguration(this.snapshot.meta.conf) };
    }
    const term = this.log.term(index);
    if (term < 0) return null;
    return { index, term, conf: cloneConfiguration(this.confs.at(index)) };
  }

  /** Term of the entry at `index` if known (retained or the snapshot point), else null. */
  termAt(index: number): number | null {
    const t = this.log.term(index);
    return t < 0 ? null : t;
  }

  /** The retained entry at `index`, else null. Entries are shared: do not mutate. */
  entryAt(index: number): Entry | null {
    return this.log.entry(index) ?? null;
  }

  /** Whether `ready()` has anything to hand out (always false while a `Ready` awaits `advance()`). */
  hasReady(): boolean {
    if (this.handedOut !== null) return false;
    return (
      this.pendingBroadcast ||
      this.pendingReadHeartbeat ||
      this.msgs.length > 0 ||
      this.readStates.length > 0 ||
      this.log.hasUnstable() ||
      this.log.pendingSnapshot !== null ||
      this.log.hasNextCommitted() ||
      this.leader !== this.prevSoftState.leader ||
      this.role !== this.prevSoftState.role ||
      this.term !== this.prevHardState.term ||
      this.vote !== this.prevHardState.vote ||
      this.log.committed !== this.prevHardState.commit
    );
  }

  /**
   * Hands out the next batch (see `Ready` for the host's ordering obligations). Must be followed
   * by `advance()` before the next call.
   */
  ready(): Ready {
    invariant(this.handedOut === null, 'ready() called again before advance()');
    if (this.pendingBroadcast) {
      this.pendingBroadcast = false;
      if (this.role === 'leader') this.bcastAppend();
    }
    if (this.pendingReadHeartbeat) {
      this.pendingReadHeartbeat = false;
      if (this.role === 'leader') this.bcastHeartbeat();
    }
    const hard = this.hardState();
    // Early messages depend on the term and vote (handed out by an earlier Ready, so durable by
    // now) and carry the commit index, which a sole voter reaches before its entries are durable
    // (`ownMatch`): while the commit is ahead of the durable log, everything waits for the persist.
    const mayReplicateEarly =
      hard.term === this.prevHardState.term && hard.vote === this.prevHardState.vote && this.log.committed <= this.log.stableIndex();
    let messages = this.msgs;
    let earlyMessages: Message[] = [];
    if (mayReplicateEarly && messages.some(isLeaderReplicationMessage)) {
      earlyMessages = messages.filter(isLeaderReplicationMessage);
      messages = messages.filter((m) => !isLeaderReplicationMessage(m));
    }
    const rd: Ready = {
      entries: this.log.unstableEntries(),
      committedEntries: this.log.nextCommitted(this.maxCommittedEntriesPerReady),
      earlyMessages,
      messages,
      readStates: this.readStates,
    };
    const soft = this.softState();
    if (!sameSoftState(soft, this.prevSoftState)) {
      rd.softState = soft;
      this.prevSoftState = soft;
    }
    if (!sameHardState(hard, this.prevHardState)) {
      rd.hardState = hard;
      this.prevHardState = hard;
    }
    const snap = this.log.pendingSnapshot;
    if (snap !== null) rd.snapshot = snap;
    const lastCommitted = rd.committedEntries.length > 0 ? rd.committedEntries[rd.committedEntries.length - 1]!.index : 0;
    const lastEntry = rd.entries.length > 0 ? rd.entries[rd.entries.length - 1]! : null;
    this.handedOut = {
      committedTo: lastCommitted,
      snapshotIndex: snap === null ? 0 : snap.meta.index,
      persistIndex: lastEntry !== null ? lastEntry.index : snap !== null ? snap.meta.index : 0,
      persistTerm: lastEntry !== null ? lastEntry.term : snap !== null ? snap.meta.term : 0,
    };
    this.log.markHandedOut();
    this.log.pendingSnapshot = null;
    this.msgs = [];
    this.readStates = [];
    return rd;
  }

  /**
   * The host persisted, sent and applied the last `Ready`. Its entries are now durable: a leader
   * counts its own copy toward commit from here on (which may commit entries, surfacing in the
   * next `Ready`).
   */
  advance(): void {
    const handed = this.handedOut;
    invariant(handed !== null, 'advance() without ready()');
    this.handedOut = null;
    const appliedTo = Math.max(handed.committedTo, handed.snapshotIndex);
    if (appliedTo > 0) this.log.appliedTo(appliedTo);
    if (handed.persistIndex > 0) this.log.stableTo(handed.persistIndex, handed.persistTerm);
    this.onOwnEntriesDurable();
  }

  /** Role, term, leader and log positions, without copying configuration or progress. */
  basicStatus(): BasicStatus {
    return {
      role: this.role,
      term: this.term,
      leader: this.leader,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
    };
  }

  /** A copy of the node's state for diagnostics and tests. */
  status(): RaftStatus {
    const st: RaftStatus = {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.leader,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      firstIndex: this.log.firstIndex(),
      snapshotIndex: this.snapshot?.meta.index ?? this.log.snapshotIndex(),
      conf: cloneConfiguration(this.confs.current()),
      leadTransferee: this.leadTransferee,
    };
    if (this.role === 'leader') {
      const progress: Record<NodeId, ProgressStatus> = {};
      for (const [id, pr] of this.progress) {
        progress[id] = {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          recentActive: pr.recentActive,
          isLearner: pr.isLearner,
          inflight: pr.inflights.size(),
        };
      }
      st.progress = progress;
    }
    return st;
  }

  // ---------------------------------------------------------------------------------------------
  // Roles and elections
  // ---------------------------------------------------------------------------------------------

  private softState(): SoftState {
    return { leader: this.leader, role: this.role };
  }

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  private resetRandomizedElectionTimeout(): void {
    const jitter = this.random(this.electionTimeoutTicks);
    invariant(Number.isInteger(jitter) && jitter >= 0 && jitter < this.electionTimeoutTicks, () => `random source returned ${jitter}`);
    this.randomizedElectionTimeoutTicks = this.electionTimeoutTicks + jitter;
  }

  private reset(term: number): void {
    if (this.term !== term) {
      invariant(term > this.term, () => `term moved back from ${this.term} to ${term}`);
      this.term = term;
      this.vote = null;
    }
    this.leader = null;
    this.electionElapsedTicks = 0;
    this.heartbeatElapsedTicks = 0;
    this.resetRandomizedElectionTimeout();
    this.leadTransferee = null;
    this.votes.clear();
    this.progress.clear();
    this.readOnly.clear();
    this.queuedReads = [];
    this.pendingBroadcast = false;
    this.pendingReadHeartbeat = false;
  }

  private becomeFollower(term: number, leader: NodeId | null): void {
    this.reset(term);
    this.leader = leader;
    this.role = 'follower';
  }

  private becomePreCandidate(): void {
    invariant(this.role !== 'leader', 'a leader cannot become a pre-candidate');
    // Pre-vote changes neither term nor vote.
    this.votes.clear();
    this.leader = null;
    this.role = 'pre-candidate';
    this.resetRandomizedElectionTimeout();
  }

  private becomeCandidate(): void {
    invariant(this.role !== 'leader', 'a leader cannot become a candidate');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = 'candidate';
  }

  private becomeLeader(): void {
    invariant(this.role === 'candidate', 'only a candidate can become leader');
    this.reset(this.term);
    this.leader = this.id;
    this.role = 'leader';
    const conf = this.confs.current();
    const last = this.log.lastIndex();
    for (const id of conf.voters) this.progress.set(id, new Progress(last + 1, this.maxInflightMsgs, false));
    for (const id of conf.learners) this.progress.set(id, new Progress(last + 1, this.maxInflightMsgs, true));
    const self = this.progress.get(this.id);
    invariant(self !== undefined, 'leader is not a member');
    // Reported by `status()`; commit counting uses `ownMatch()`.
    self.match = this.log.stableIndex();
    self.becomeReplicate();
    // The no-op lets the leader commit entries of earlier terms (§5.4.2, §8).
    this.appendLeaderEntry('normal', '');
  }

  private promotable(): boolean {
    return isVoter(this.confs.current(), this.id);
  }

  private tickElection(): void {
    this.electionElapsedTicks++;
    if (this.promotable() && this.electionElapsedTicks >= this.randomizedElectionTimeoutTicks) {
      this.electionElapsedTicks = 0;
      this.campaign(this.preVote ? 'pre-election' : 'election');
    }
  }

  private campaign(kind: CampaignKind): void {
    if (!this.promotable()) return;
    let voteType: 'vote' | 'pre-vote';
    let term: number;
    if (kind === 'pre-election') {
      this.becomePreCandidate();
      voteType = 'pre-vote';
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteType = 'vote';
      term = this.term;
    }
    this.votes.set(this.id, true);
    const voters = this.confs.current().voters;
    const result = voteResult(voters, this.votes);
    if (result === 'won') {
      if (kind === 'pre-election') this.campaign('election');
      else this.becomeLeader();
      return;
    }
    const lastLogIndex = this.log.lastIndex();
    const lastLogTerm = this.log.lastTerm();
    for (const to of voters) {
      if (to === this.id) continue;
      const msg: VoteMessage = { type: voteType, from: this.id, to, term, lastLogIndex, lastLogTerm, transfer: kind === 'transfer' };
      this.msgs.push(msg);
    }
  }

  private handleVoteRequest(m: VoteMessage): void {
    const respType = m.type === 'vote' ? 'vote-resp' : 'pre-vote-resp';
    // We can vote if we already voted for this candidate, or have not voted and know no leader
    // in this term, or (pre-vote) the candidate asks about a future term.
    const canVote =
      this.vote === m.from || (this.vote === null && this.leader === null) || (m.type === 'pre-vote' && m.term > this.term);
    if (canVote && this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm)) {
      const resp: VoteResponseMessage = { type: respType, from: this.id, to: m.from, term: m.term, reject: false };
      this.msgs.push(resp);
      if (m.type === 'vote') {
        this.electionElapsedTicks = 0;
        this.vote = m.from;
      }
    } else {
      this.msgs.push({ type: respType, from: this.id, to: m.from, term: this.term, reject: true });
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case 'append':
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case 'snapshot':
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case 'vote-resp':
      case 'pre-vote-resp': {
        const expectedType = this.role === 'pre-candidate' ? 'pre-vote-resp' : 'vote-resp';
        if (m.type !== expectedType) return;
        // A granted pre-vote is for term+1; anything else is a leftover of an earlier round.
        const expectedTerm = this.role === 'pre-candidate' && !m.reject ? this.term + 1 : this.term;
        if (m.term !== expectedTerm) return;
        if (!this.votes.has(m.from)) this.votes.set(m.from, !m.reject);
        const result = voteResult(this.confs.current().voters, this.votes);
        if (result === 'won') {
          if (this.role === 'pre-candidate') this.campaign('election');
          else this.becomeLeader();
        } else if (result === 'lost') {
          this.becomeFollower(this.term, null);
        }
        return;
      }
      case 'timeout-now':
      case 'read-index':
      case 'read-index-resp':
      case 'append-resp':
      case 'heartbeat-resp':
      case 'snapshot-resp':
      case 'vote':
      case 'pre-vote':
        return;
      default:
        assertNever(m);
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'append':
        this.electionElapsedTicks = 0;
        this.leader = m.from;
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.electionElapsedTicks = 0;
        this.leader = m.from;
        this.handleHeartbeat(m);
        return;
      case 'snapshot':
        this.electionElapsedTicks = 0;
        this.leader = m.from;
        this.handleSnapshot(m);
        return;
      case 'timeout-now':
        // Leadership transfer: campaign now, skipping pre-vote and the voters' lease (§3.10).
        if (this.promotable()) this.campaign('transfer');
        return;
      case 'read-index-resp':
        this.readStates.push({ ctx: m.ctx, index: m.index });
        return;
      case 'read-index':
      case 'append-resp':
      case 'heartbeat-resp':
      case 'snapshot-resp':
      case 'vote-resp':
      case 'pre-vote-resp':
      case 'vote':
      case 'pre-vote':
        return;
      default:
        assertNever(m);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Follower side of replication
  // ---------------------------------------------------------------------------------------------

  private handleAppend(m: AppendMessage): void {
    const committed = this.log.committed;
    if (m.index === 0 && this.baseConfUnknown()) {
      // A fresh joiner does not know the configuration at index 0 (the bootstrap one), so it
      // cannot derive configurations from conf-change entries. Rejecting prevLogIndex 0 (which
      // otherwise always matches) asks the leader for a snapshot that carries it.
      this.msgs.push({ type: 'append-resp', from: this.id, to: m.from, term: this.term, index: 0, reject: true, rejectHint: 0, logTerm: 0 });
      return;
    }
    if (m.index < committed) {
      this.sendAppendResponse(m.from, committed);
      return;
    }
    const outcome = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (outcome !== null) {
      if (outcome.rewrittenFrom > 0) this.onEntriesWritten(m.entries, outcome.rewrittenFrom);
      this.sendAppendResponse(m.from, outcome.lastNewIndex);
      return;
    }
    // Fast back-off: point the leader at the largest index whose term is <= its prevLogTerm.
    const hintIndex = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    const hintTerm = Math.max(0, this.log.term(hintIndex));
    this.msgs.push({ type: 'append-resp', from: this.id, to: m.from, term: this.term, index: m.index, reject: true, rejectHint: hintIndex, logTerm: hintTerm });
  }

  /** Keeps the configuration history in step with entries written from `from` on. */
  private onEntriesWritten(ents: readonly Entry[], from: number): void {
    this.confs.truncateFrom(from);
    const first = ents[0]!.index;
    for (let i = from - first; i < ents.length; i++) {
      const e = ents[i]!;
      if (e.type === 'conf-change') this.confs.appendEntry(e.index, e.data);
    }
  }

  private sendAppendResponse(to: NodeId, index: number): void {
    this.msgs.push({ type: 'append-resp', from: this.id, to, term: this.term, index, reject: false, rejectHint: 0, logTerm: 0 });
  }

  private handleHeartbeat(m: HeartbeatMessage): void {
    // The leader never sends a commit beyond what it knows we hold; clamp defensively anyway.
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.msgs.push({ type: 'heartbeat-resp', from: this.id, to: m.from, term: this.term, readSeq: m.readSeq });
  }

  /** A fresh joiner: nothing in the log and no configuration known at index 0. */
  private baseConfUnknown(): boolean {
    if (this.log.snapshotIndex() !== 0 || this.log.lastIndex() !== 0) return false;
    const conf = this.confs.at(0);
    return conf.voters.length === 0 && conf.learners.length === 0;
  }

  private handleSnapshot(m: SnapshotMessage): void {
    const meta = m.meta;
    const bootstrap = meta.index === 0 && this.baseConfUnknown();
    if (meta.index <= this.log.committed && !bootstrap) {
      // Already have it (or newer): report our commit so the leader moves on.
      this.incoming = null;
      this.sendAppendResponse(m.from, this.log.committed);
      return;
    }
    let inc = this.incoming;
    const same = inc !== null && inc.meta.index === meta.index && inc.meta.term === meta.term;
    if (m.offset === 0 && !same) {
      inc = { meta, chunks: [], receivedBytes: 0 };
      this.incoming = inc;
    } else if (!same || inc === null || m.offset !== inc.receivedBytes) {
      // A gap, a duplicate, or a chunk of a snapshot we are not assembling: say where we are.
      const have = same && inc !== null ? inc.receivedBytes : 0;
      this.msgs.push({ type: 'snapshot-resp', from: this.id, to: m.from, term: this.term, index: meta.index, offset: have, forOffset: m.offset });
      return;
    }
    if (inc.receivedBytes + m.data.length > m.totalBytes) {
      this.incoming = null;
      this.msgs.push({ type: 'snapshot-resp', from: this.id, to: m.from, term: this.term, index: meta.index, offset: 0, forOffset: m.offset });
      return;
    }
    if (m.data.length > 0) inc.chunks.push(m.data);
    inc.receivedBytes += m.data.length;
    if (!m.done) {
      this.msgs.push({ type: 'snapshot-resp', from: this.id, to: m.from, term: this.term, index: meta.index, offset: inc.receivedBytes, forOffset: m.offset });
      return;
    }
    this.incoming = null;
    if (inc.receivedBytes !== m.totalBytes) {
      this.msgs.push({ type: 'snapshot-resp', from: this.id, to: m.from, term: this.term, index: meta.index, offset: 0, forOffset: m.offset });
      return;
    }
    const snapshot: Snapshot = {
      meta: { index: meta.index, term: meta.term, conf: cloneConfiguration(meta.conf) },
      data: concatChunks(inc.chunks, inc.receivedBytes),
    };
    if (this.restore(snapshot)) this.sendAppendResponse(m.from, this.log.lastIndex());
    else this.sendAppendResponse(m.from, this.log.committed);
  }

  /** Installs a received snapshot unless our log already holds its last entry (then fast-forward commit). */
  private restore(snapshot: Snapshot): boolean {
    const meta = snapshot.meta;
    if (meta.index === 0) {
      // The bootstrap snapshot: only its configuration matters (the image is the empty state).
      if (!this.baseConfUnknown()) return false;
      this.log.restore(snapshot);
      this.confs.reset(0, meta.conf);
      return true;
    }
    if (meta.index <= this.log.committed) return false;
    if (this.log.matchTerm(meta.index, meta.term)) {
      this.log.commitTo(meta.index);
      return false;
    }
    this.log.restore(snapshot);
    this.confs.reset(meta.index, meta.conf);
    this.snapshot = snapshot;
    return true;
  }

  // ---------------------------------------------------------------------------------------------
  // Leader side
  // ---------------------------------------------------------------------------------------------

  private refuseProposal(): ProposeRejection | null {
    if (this.role !== 'leader') return 'not-leader';
    if (this.leadTransferee !== null) return 'transferring';
    return null;
  }

  private rejection(reason: ProposeRejection): ProposeResult {
    const leaderHint = this.role === 'leader' ? this.id : this.leader;
    return { ok: false, reason, leaderHint };
  }

  /**
   * Appends an entry of the current term to the leader's log. It does not count toward a commit
   * quorum yet (see `ownMatch`): the host may replicate it before persisting it (thesis §10.2.1).
   */
  private appendLeaderEntry(type: EntryType, data: string): Entry {
    const entry: Entry = { index: this.log.lastIndex() + 1, term: this.term, type, data };
    this.log.append(entry);
    if (type === 'conf-change') {
      this.confs.appendEntry(entry.index, data);
      this.syncProgressWithConf();
      // A smaller quorum may already hold a longer prefix.
      this.maybeCommit();
    } else if (this.isSoleVoter()) {
      this.maybeCommit();
    }
    this.pendingBroadcast = true;
    return entry;
  }

  private isSoleVoter(): boolean {
    const voters = this.confs.current().voters;
    return voters.length === 1 && voters[0] === this.id;
  }

  /**
   * The leader's own match for commit counting: its durable log only, because its replication
   * messages may leave before its entries are persisted (thesis §10.2.1) — a crash in between
   * must not lose an entry that was counted. The sole voter is the exception: it has no
   * followers to overlap with, so it commits on append (one `Ready` carries the entries and their
   * commit, applied after the persist), and `ready()` sends nothing early while the commit index is
   * ahead of the durable log, so no learner hears of a commit that a crash could undo.
   */
  private ownMatch(): number {
    return this.isSoleVoter() ? this.log.lastIndex() : this.log.stableIndex();
  }

  /** Leader: the host made more of its log durable; its own copy now counts for commit. */
  private onOwnEntriesDurable(): void {
    if (this.role !== 'leader') return;
    const self = this.progress.get(this.id);
    if (self !== undefined && self.maybeUpdate(this.log.stableIndex())) this.maybeCommit();
  }

  /** Adds progress for new members, drops it for removed ones (the conf took effect on append). */
  private syncProgressWithConf(): void {
    const conf = this.confs.current();
    const last = this.log.lastIndex();
    for (const id of conf.voters) {
      const pr = this.progress.get(id);
      if (pr === undefined) this.progress.set(id, new Progress(last + 1, this.maxInflightMsgs, false));
      else pr.isLearner = false;
    }
    for (const id of conf.learners) {
      const pr = this.progress.get(id);
      if (pr === undefined) this.progress.set(id, new Progress(last + 1, this.maxInflightMsgs, true));
      else pr.isLearner = true;
    }
    for (const id of [...this.progress.keys()]) {
      if (id === this.id) continue;
      if (!isVoter(conf, id) && !isLearner(conf, id)) {
        this.progress.delete(id);
        if (this.leadTransferee === id) this.abortLeaderTransfer();
      }
    }
  }

  /** Commits the largest index matched by a quorum, if it is of the current term (§5.4.2). */
  private maybeCommit(): boolean {
    const voters = this.confs.current().voters;
    const idx = committedIndex(voters, (id) => (id === this.id ? this.ownMatch() : (this.progress.get(id)?.match ?? 0)));
    if (idx <= this.log.committed || this.log.term(idx) !== this.term) return false;
    this.log.commitTo(idx);
    this.pendingBroadcast = true;
    this.afterLeaderCommit();
    return true;
  }

  private afterLeaderCommit(): void {
    if (this.queuedReads.length > 0 && this.log.term(this.log.committed) === this.term) {
      const queued = this.queuedReads;
      this.queuedReads = [];
      for (const q of queued) this.handleReadRequest(q.ctx, q.from);
    }
    const conf = this.confs.current();
    if (!isVoter(conf, this.id) && this.log.committed >= this.confs.lastIndex()) {
      // Our removal committed (§4.2.2): tell everyone the commit index, hand over to the most
      // up-to-date voter, and step down.
      this.bcastAppend();
      let best: NodeId | null = null;
      let bestMatch = -1;
      for (const id of conf.voters) {
        const pr = this.progress.get(id);
        if (pr !== undefined && pr.match > bestMatch) {
          best = id;
          bestMatch = pr.match;
        }
      }
      if (best !== null && bestMatch === this.log.lastIndex()) this.sendTimeoutNow(best);
      this.becomeFollower(this.term, null);
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case 'append-resp': {
        const pr = this.progress.get(m.from);
        if (pr !== undefined) this.handleAppendResponse(m, pr);
        return;
      }
      case 'heartbeat-resp': {
        const pr = this.progress.get(m.from);
        if (pr !== undefined) this.handleHeartbeatResponse(m, pr);
        return;
      }
      case 'snapshot-resp': {
        const pr = this.progress.get(m.from);
        if (pr !== undefined) this.handleSnapshotResponse(m, pr);
        return;
      }
      case 'read-index':
        this.handleReadRequest(m.ctx, m.from);
        return;
      case 'append':
      case 'heartbeat':
      case 'snapshot':
      case 'timeout-now':
      case 'read-index-resp':
      case 'vote-resp':
      case 'pre-vote-resp':
      case 'vote':
      case 'pre-vote':
        // Another leader in our term is impossible; stale vote replies are irrelevant now.
        return;
      default:
        assertNever(m);
    }
  }

  private handleAppendResponse(m: AppendResponseMessage, pr: Progress): void {
    pr.recentActive = true;
    if (m.reject) {
      if (m.index === 0) {
        // The follower is a fresh joiner that needs the configuration at our log's base.
        if (pr.state !== 'snapshot') this.sendBaseSnapshot(m.from, pr);
        return;
      }
      let probe = m.rejectHint;
      if (m.logTerm > 0) probe = this.log.findConflictByTerm(m.rejectHint, m.logTerm);
      if (pr.maybeDecrTo(m.index, probe)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from, pr, true);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    const updated = pr.maybeUpdate(m.index);
    let resumed = false;
    switch (pr.state) {
      case 'probe':
        if (updated) pr.becomeReplicate();
        break;
      case 'snapshot':
        // The snapshot (or something newer) arrived: resume replicating from the log.
        if (m.index >= pr.pendingSnapshotIndex) {
          pr.becomeProbe();
          if (pr.match + 1 >= this.log.firstIndex()) pr.becomeReplicate();
          resumed = true;
        }
        break;
      case 'replicate':
        if (updated) pr.inflights.freeLE(m.index);
        break;
      default:
        assertNever(pr.state);
    }
    if (!updated && !resumed) return;
    if (updated && this.maybeCommit()) {
      if (this.role !== 'leader') return;
    } else if (wasPaused && !pr.isPaused()) {
      this.sendAppend(m.from, pr, true);
    }
    // Pipelining: fill the in-flight window.
    while (this.sendAppend(m.from, pr, false)) {
      // keep sending
    }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
  }

  private handleHeartbeatResponse(m: HeartbeatResponseMessage, pr: Progress): void {
    pr.recentActive = true;
    pr.probeSent = false;
    // A live follower must not stay wedged behind lost appends.
    if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.log.lastIndex() || pr.sentCommit < this.log.committed) this.sendAppend(m.from, pr, true);
    if (m.readSeq === 0) return;
    const read = this.readOnly.ack(m.readSeq, m.from);
    if (read === null) return;
    const voters = this.confs.current().voters;
    if (!hasQuorum(voters, (id) => read.acks.has(id))) return;
    for (const r of this.readOnly.releaseThrough(read.seq)) this.answerRead(r.ctx, r.from, r.index);
  }

  private handleSnapshotResponse(m: SnapshotResponseMessage, pr: Progress): void {
    pr.recentActive = true;
    const t = pr.transfer;
    if (pr.state !== 'snapshot' || t === null || t.snapshot.meta.index !== m.index) return;
    // Progress, or a fresh answer to the chunk we sent last (e.g. the follower restarted).
    if (m.offset > t.ackedBytes || (m.forOffset === t.lastSentOffset && m.offset !== t.ackedBytes)) {
      t.ackedBytes = Math.min(m.offset, t.snapshot.data.length);
      this.sendSnapshotChunk(m.from, pr);
    }
  }

  /**
   * Sends `to` the entries after `pr.next - 1` (bounded by `maxBytesPerAppend`, and by
   * `MAX_PROBE_BYTES` while probing), or a snapshot when they were compacted. Returns whether a
   * message was sent.
   */
  private sendAppend(to: NodeId, pr: Progress, sendIfEmpty: boolean): boolean {
    if (pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const last = this.log.lastIndex();
    const maxBytes = pr.state === 'probe' ? Math.min(this.maxBytesPerAppend, MAX_PROBE_BYTES) : this.maxBytesPerAppend;
    const entries = prevTerm < 0 ? null : this.log.slice(pr.next, last, maxBytes);
    if (entries === null) return this.sendSnapshot(to, pr);
    if (entries.length === 0 && !sendIfEmpty) return false;
    const commit = this.log.committed;
    const msg: AppendMessage = { type: 'append', from: this.id, to, term: this.term, index: prevIndex, logTerm: prevTerm, entries, commit };
    this.msgs.push(msg);
    pr.sentEntries(entries.length === 0 ? prevIndex : entries[entries.length - 1]!.index, entries.length);
    pr.sentCommit = commit;
    return true;
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    // Do not stream snapshots into the void: wait until the follower is heard from.
    if (!pr.recentActive) return false;
    const snapshot = this.snapshot;
    if (snapshot === null || snapshot.meta.index < this.log.snapshotIndex()) return false;
    pr.becomeSnapshot(snapshot);
    this.sendSnapshotChunk(to, pr);
    return true;
  }

  /**
   * Sends a fresh joiner the configuration at our log's base: our snapshot, or, while the log
   * still starts at index 1, a bootstrap snapshot at index 0 with an empty image.
   */
  private sendBaseSnapshot(to: NodeId, pr: Progress): void {
    let snapshot = this.snapshot;
    if (snapshot === null || snapshot.meta.index < this.log.snapshotIndex()) {
      if (this.log.snapshotIndex() !== 0) return;
      const base = this.confs.at(0);
      // Never hand out an unknown (empty) base configuration.
      if (base.voters.length === 0) return;
      snapshot = { meta: { index: 0, term: 0, conf: cloneConfiguration(base) }, data: EMPTY_IMAGE };
    }
    pr.becomeSnapshot(snapshot);
    this.sendSnapshotChunk(to, pr);
  }

  private sendSnapshotChunk(to: NodeId, pr: Progress): void {
    const t = pr.transfer;
    invariant(t !== null, 'snapshot chunk without a transfer');
    const total = t.snapshot.data.length;
    const offset = t.ackedBytes;
    const end = Math.min(total, offset + this.maxSnapshotChunkBytes);
    const msg: SnapshotMessage = {
      type: 'snapshot',
      from: this.id,
      to,
      term: this.term,
      meta: t.snapshot.meta,
      offset,
      totalBytes: total,
      data: t.snapshot.data.subarray(offset, end),
      done: end === total,
    };
    this.msgs.push(msg);
    t.lastSentOffset = offset;
    t.ticksSinceSend = 0;
  }

  /** Sends pending entries (or a commit update) to every follower whose window allows it. */
  private bcastAppend(): void {
    const commit = this.log.committed;
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      let first = true;
      while (this.sendAppend(id, pr, first && pr.sentCommit < commit)) first = false;
    }
  }

  private bcastHeartbeat(): void {
    const readSeq = this.readOnly.lastSeq();
    const commit = this.log.committed;
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      const msg: HeartbeatMessage = { type: 'heartbeat', from: this.id, to: id, term: this.term, commit: Math.min(pr.match, commit), readSeq };
      this.msgs.push(msg);
    }
  }

  private sendTimeoutNow(to: NodeId): void {
    this.msgs.push({ type: 'timeout-now', from: this.id, to, term: this.term });
  }

  private abortLeaderTransfer(): void {
    this.leadTransferee = null;
  }

  private tickLeader(): void {
    this.heartbeatElapsedTicks++;
    this.electionElapsedTicks++;
    if (this.electionElapsedTicks >= this.electionTimeoutTicks) {
      this.electionElapsedTicks = 0;
      if (this.checkQuorum) {
        const voters = this.confs.current().voters;
        const active = hasQuorum(voters, (id) => id === this.id || this.progress.get(id)?.recentActive === true);
        for (const [id, pr] of this.progress) if (id !== this.id) pr.recentActive = false;
        if (!active) {
          // Check-quorum (§6.2): without a quorum for an election timeout we may be deposed.
          this.becomeFollower(this.term, null);
          return;
        }
      }
      if (this.leadTransferee !== null) this.abortLeaderTransfer();
    }
    for (const [id, pr] of this.progress) {
      if (id === this.id || pr.state !== 'snapshot' || pr.transfer === null) continue;
      pr.transfer.ticksSinceSend++;
      if (pr.transfer.ticksSinceSend >= this.snapshotRetryTicks) this.sendSnapshotChunk(id, pr);
    }
    if (this.heartbeatElapsedTicks >= this.heartbeatTicks) {
      this.heartbeatElapsedTicks = 0;
      this.bcastHeartbeat();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // ReadIndex
  // ---------------------------------------------------------------------------------------------

  private handleReadRequest(ctx: string, from: NodeId): void {
    if (this.log.term(this.log.committed) !== this.term) {
      // §6.4 step 1: the leader must first commit an entry of its own term.
      if (this.queuedReads.length < MAX_PENDING_READ_REQUESTS) this.queuedReads.push({ ctx, from });
      return;
    }
    const voters = this.confs.current().voters;
    if (voters.length === 1 && voters[0] === this.id) {
      this.answerRead(ctx, from, this.log.committed);
      return;
    }
    if (this.readOnly.size() >= MAX_PENDING_READ_REQUESTS) return;
    const read = this.readOnly.add(ctx, from, this.log.committed);
    if (isVoter(this.confs.current(), this.id)) read.acks.add(this.id);
    this.pendingReadHeartbeat = true;
  }

  private answerRead(ctx: string, from: NodeId, index: number): void {
    if (from === this.id) this.readStates.push({ ctx, index });
    else this.msgs.push({ type: 'read-index-resp', from: this.id, to: from, term: this.term, ctx, index });
  }
}
