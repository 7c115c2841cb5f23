/**
 * The shell around the pure Raft core (DESIGN §2, §4): one `RaftNode`, its SQLite storage and the
 * control-plane `StateMachine`, driven from one event loop.
 *
 * The loop. A ticker (the `Timers` port, every `tickMs`) calls `tick()`. Every tick, received
 * message, proposal and read asks for ONE processing pass in a later phase of the same event-loop
 * turn (`Timers.soon`, i.e. `setImmediate`); the pass takes one `Ready` and handles it in the order
 * the core's contract demands:
 *   0. send the leader's replication messages (`earlyMessages`) at once, so the followers write
 *      their copies while we write ours (thesis §10.2.1); the core counts our own copy toward
 *      commit only after `advance()`;
 *   1. persist hard state, entries and a received snapshot — one SQLite transaction, so everything
 *      that became ready during the turn is one commit (group commit); a Ready that only raises the
 *      commit index is written without an fsync of its own (`COMMIT_ONLY_WITHOUT_FSYNC`), and the
 *      entries it committed are applied in that same transaction (`APPLY_WITH_COMMIT_ONLY_PERSIST`);
 *   2. only then send the messages (vote grants and append acks promise that durability); a pass
 *      that writes no entries and answers waiting proposals or reads holds its messages (early
 *      ones included) until a later phase, after the answers (`SEND_AFTER_ANSWERS`);
 *   3. then apply the committed entries (after the snapshot, if one was installed) unless step 1
 *      did, and resolve the proposals and reads waiting on them;
 *   4. `advance()`, then compact the log when it is long enough (the snapshot is copied on a worker
 *      thread and made durable off the loop, then recorded and the log trimmed in batches).
 * A committed entry that cannot be applied, or any failure of the store, stops the loop for good:
 * continuing could diverge the replicated state. A store the disk will not let it write (full,
 * read-only, failing) stops replication only (every later caller is told why, `failure()`); any
 * other failure also goes to `onFatal`.
 */
import { rmSync } from 'node:fs';
import { NeuwerkError, describeError } from '../errors.js';
import type { RaftSettings } from '../config/load.js';
import type { Logger } from '../log/logger.js';
import type { NodeMetrics } from '../metrics/registry.js';
import { systemClock, type Clock } from '../platform/clock.js';
import { systemRandomInt, type RandomIntSource } from '../platform/random.js';
import { systemTimers, type TimerHandle, type Timers } from '../platform/timers.js';
import { isLearner, RaftNode } from '../raft/index.js';
import type { ConfChange, Entry, Message, NodeId, ProposeRejection, RaftStatus, Ready, Role, SnapshotMeta, SoftState, TransferResult } from '../raft/index.js';
import { encodeCommand, validateCommand, type Command } from '../store/commands.js';
import { storageFailure, type SqliteDatabase } from '../store/database.js';
import { RaftStorage } from '../store/raft-storage.js';
import { StoreWorker } from '../store/store-worker.js';
import { publishSnapshot, type SnapshotCopy, type SnapshotFile, type UnpublishedSnapshot } from '../store/snapshot.js';
import { StateMachine, type AppliedEntry, type ApplyResult, type DeferredApply } from '../store/state-machine.js';
import type { ReplicationStatus, Replicator } from './replicator.js';

/** How long `propose` waits for its entry to be applied before rejecting with NW_ERR_TIMEOUT. */
export const DEFAULT_PROPOSE_TIMEOUT_MS = 5_000;
/** How long `linearizableRead` waits for its read index to be confirmed and applied. */
export const DEFAULT_READ_TIMEOUT_MS = 5_000;
/** A single voter must have elected itself within this budget after start (it takes one tick of CPU). */
export const START_LEADER_TIMEOUT_MS = 5_000;
/** Bound on proposals waiting to be applied; beyond it `propose` rejects at once. */
export const MAX_PENDING_PROPOSALS = 16_384;
/** Bound on linearizable reads waiting at once (the core itself queues at most 4096 per leader). */
export const MAX_PENDING_READS = 4_096;
/** Append messages carrying entries in flight to one follower (core `maxInflightMsgs`). */
export const MAX_INFLIGHT_APPEND_MESSAGES = 256;
/** Bytes of entries in one append message (core `maxBytesPerAppend`). */
export const MAX_APPEND_BYTES = 1024 * 1024;
/** Bytes of snapshot image in one InstallSnapshot chunk (core `maxSnapshotChunkBytes`). */
export const MAX_SNAPSHOT_CHUNK_BYTES = 1024 * 1024;

/**
 * Apply transactions commit without their own fsync (`synchronous=NORMAL` for the apply only).
 * Safe because the entries being applied were made durable by an earlier `synchronous=FULL`
 * commit, the WAL is append-only, and the next FULL commit (any persist) fsyncs the WAL including
 * the apply's frames; a crash can only lose a suffix of applies, which are replayed from the log
 * on restart (the applied index is recorded in the same transaction). It halves the fsyncs per
 * processing pass.
 */
export const APPLY_WITHOUT_FSYNC = true;

/**
 * A Ready that only raises the commit index (the usual Ready on the leader once a quorum has
 * acknowledged, and on a follower told of a new commit index) is persisted and applied in ONE
 * transaction, committed without an fsync: one SQLite commit per write instead of two. Both
 * halves were already written without an fsync (`COMMIT_ONLY_WITHOUT_FSYNC`, `APPLY_WITHOUT_FSYNC`)
 * and a crash could already lose either; together it can only lose both or neither, so the
 * commit index stays at or above the applied index, as before. Messages of that Ready go out
 * after the transaction, i.e. after the apply: none of them depends on it.
 */
export const APPLY_WITH_COMMIT_ONLY_PERSIST = true;

/**
 * When a pass writes no entries (so there is no fsync for early messages to overlap with) and
 * commits entries or confirms reads that a local caller waits for, its messages (on the leader:
 * the new commit index for the followers) are held and sent in the next phase of the loop
 * (`Timers.soon`), after the promises the pass settled have run: the answer to the client (or to
 * the follower that forwarded the write) is written first instead of behind a TLS write per
 * follower. Delaying a message is always allowed (what it promises is already durable); order per
 * peer is kept, since held messages are sent before any later pass sends anything.
 */
export const SEND_AFTER_ANSWERS = true;

/** Everything `openRaftReplicator` needs. The node owns `db` and closes it after `close()`. */
export interface RaftReplicatorOptions {
  /** The node's store, opened by `openStoreDatabase` (WAL, synchronous=FULL). */
  readonly db: SqliteDatabase;
  /** Path of `db`, for error messages. */
  readonly dbPath: string;
  readonly nodeId: NodeId;
  /** Where snapshot files live (`cluster/snapshots/`). */
  readonly snapshotsDir: string;
  readonly raft: RaftSettings;
  /** Initial voters when seeding a new group (`[self]` for single-node mode); null to join one. Ignored once state is persisted. */
  readonly bootstrapVoters: string[] | null;
  /**
   * Sends messages to peers. Called only after the state they depend on is durable; must not
   * throw (a failure is logged; Raft tolerates lost messages). Single-node mode passes a no-op.
   */
  readonly send: (messages: Message[]) => void;
  readonly logger?: Logger;
  readonly metrics?: NodeMetrics;
  /** Called once when the loop stops on a failure that is not the disk's (a bug): the node logs and exits. */
  readonly onFatal: (err: Error) => void;
  /** Ports for tests and simulation; default to the real ones. */
  readonly timers?: Timers;
  readonly clock?: Clock;
  readonly random?: RandomIntSource;
  readonly proposeTimeoutMs?: number;
  readonly readTimeoutMs?: number;
}

interface PendingProposal {
  readonly term: number;
  readonly deadlineMs: number;
  readonly resolve: (result: ApplyResult) => void;
  readonly reject: (err: Error) => void;
}

interface PendingRead {
  readonly deadlineMs: number;
  /** The read index once the leader confirmed it; null until then. */
  index: number | null;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

function shuttingDown(message = 'the node is shutting down; the write was not acknowledged'): NeuwerkError {
  return new NeuwerkError('NW_ERR_SHUTTING_DOWN', message);
}

function notLeader(reason: ProposeRejection | 'lost', leaderId: NodeId | null): NeuwerkError {
  const message =
    reason === 'lost'
      ? 'proposal lost to a leadership change, retry'
      : reason === 'transferring'
        ? 'leadership is being transferred; retry on the new leader'
        : leaderId === null
          ? 'this node is not the leader and no leader is known; retry shortly'
          : `this node is not the leader; the leader is ${leaderId}`;
  return new NeuwerkError('NW_ERR_NOT_LEADER', message, { detail: { leaderId } });
}

function seconds(fromMs: number, toMs: number): number {
  return (toMs - fromMs) / 1000;
}

/**
 * A `Replicator` backed by the Raft core: the one path by which the control-plane state changes,
 * in single-node mode (a one-voter group) and in a cluster. Create it with `openRaftReplicator`.
 */
export class RaftReplicator implements Replicator {
  readonly stateMachine: StateMachine;
  private readonly node: RaftNode;
  private readonly storage: RaftStorage;
  private readonly nodeId: NodeId;
  private readonly settings: RaftSettings;
  private readonly sendMessages: (messages: Message[]) => void;
  private readonly logger: Logger | undefined;
  private readonly metrics: NodeMetrics | undefined;
  private readonly onFatal: (err: Error) => void;
  private readonly timers: Timers;
  private readonly clock: Clock;
  private readonly proposeTimeoutMs: number;
  private readonly readTimeoutMs: number;
  /** Makes read contexts unique across restarts, so a late answer to a read of a previous run never matches. */
  private readonly readContextPrefix: string;

  private ticker: TimerHandle | null = null;
  private passScheduled = false;
  /** Messages of a pass held until its answers went out (`SEND_AFTER_ANSWERS`), in send order. */
  private heldMessages: Message[] = [];
  private heldFlushScheduled = false;
  /** A snapshot is being copied or made durable (`maybeCompact`); no second compaction starts meanwhile. */
  private compacting = false;
  /** Takes the snapshot copies and the WAL checkpoints on a thread of its own, off this loop. */
  private readonly storeWorker: StoreWorker;
  private readonly dbPath: string;
  private closed = false;
  /** Why the loop stopped for good: what every later write, read and wait is told. */
  private stoppedBy: NeuwerkError | null = null;
  private role: Role = 'follower';
  private leaderId: NodeId | null = null;
  private readonly proposals = new Map<number, PendingProposal>();
  private readonly reads = new Map<string, PendingRead>();
  private readSeq = 0;
  private readonly startCommit: number;
  private caughtUp: boolean;
  private leaderWaiters: { resolve: () => void; reject: (err: Error) => void }[] = [];

  /** Use `openRaftReplicator`; the constructor performs no I/O beyond loading the state machine. */
  constructor(options: RaftReplicatorOptions, storage: RaftStorage, stateMachine: StateMachine, random: RandomIntSource) {
    this.nodeId = options.nodeId;
    this.settings = options.raft;
    this.sendMessages = options.send;
    this.logger = options.logger;
    this.metrics = options.metrics;
    this.onFatal = options.onFatal;
    this.timers = options.timers ?? systemTimers;
    this.clock = options.clock ?? systemClock;
    this.proposeTimeoutMs = options.proposeTimeoutMs ?? DEFAULT_PROPOSE_TIMEOUT_MS;
    this.readTimeoutMs = options.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS;
    this.storage = storage;
    this.stateMachine = stateMachine;
    this.dbPath = options.dbPath;
    this.storeWorker = new StoreWorker(options.db, options.dbPath, options.snapshotsDir);
    this.readContextPrefix = `${options.nodeId}:${random(2 ** 30).toString(36)}${random(2 ** 30).toString(36)}`;
    this.node = new RaftNode(
      {
        id: options.nodeId,
        electionTimeoutTicks: options.raft.electionTimeoutTicks,
        heartbeatTicks: options.raft.heartbeatTicks,
        random,
        preVote: true,
        checkQuorum: true,
        maxInflightMsgs: MAX_INFLIGHT_APPEND_MESSAGES,
        maxBytesPerAppend: MAX_APPEND_BYTES,
        maxSnapshotChunkBytes: MAX_SNAPSHOT_CHUNK_BYTES,
      },
      storage.initialState,
    );
    this.startCommit = storage.initialState.hardState.commit;
    this.caughtUp = stateMachine.appliedIndex >= this.startCommit;
  }

  /** Starts the ticker. Called once by `openRaftReplicator`. */
  start(): void {
    if (this.ticker !== null || this.closed) return;
    this.ticker = this.timers.every(this.settings.tickMs, () => this.onTick());
    this.storeWorker.start();
    this.schedulePass();
  }

  /** Whether this node is the only voter of its current configuration (it can elect itself alone). */
  isSoleVoter(): boolean {
    const voters = this.node.status().conf.voters;
    return voters.length === 1 && voters[0] === this.nodeId;
  }

  /**
   * A sole voter needs nobody's vote, so waiting a randomized election timeout only delays the
   * start: advance its logical time until it campaigns (at most two election timeouts of ticks,
   * the upper bound of the randomized timeout). Safe only for a sole voter — checked.
   */
  electSoleVoterNow(): void {
    if (!this.isSoleVoter()) return;
    const maxTicks = 2 * this.settings.electionTimeoutTicks;
    for (let i = 0; i < maxTicks && this.node.status().role !== 'leader'; i++) this.node.tick();
    this.schedulePass();
  }

  /** Resolves once this node has durably become leader; rejects after `timeoutMs` or on close/failure. */
  whenLeader(timeoutMs: number): Promise<void> {
    if (this.role === 'leader') return Promise.resolve();
    if (this.closed) return Promise.reject(this.stoppedBy ?? shuttingDown());
    return new Promise<void>((resolve, reject) => {
      const timer = this.timers.after(timeoutMs, () => {
        this.leaderWaiters = this.leaderWaiters.filter((w) => w.resolve !== done);
        reject(new NeuwerkError('NW_ERR_TIMEOUT', `node ${this.nodeId} did not become leader within ${timeoutMs} ms`));
      });
      const done = (): void => {
        timer.cancel();
        resolve();
      };
      this.leaderWaiters.push({
        resolve: done,
        reject: (err) => {
          timer.cancel();
          reject(err);
        },
      });
    });
  }

  /**
   * Validates `command`, appends it to the log (leader only) and resolves with its `ApplyResult`
   * once the entry at its index is applied with the same term. Rejects with NW_ERR_COMMAND_INVALID
   * (bad command), NW_ERR_NOT_LEADER (`detail.leaderId`; also when another leader's entry took the
   * index: the proposal was lost), NW_ERR_TIMEOUT (not applied within the bound; the outcome is
   * unknown) or NW_ERR_SHUTTING_DOWN.
   */
  async propose(command: Command): Promise<ApplyResult> {
    if (this.closed) throw this.stoppedBy ?? shuttingDown();
    const data = encodeCommand(validateCommand(command));
    if (this.proposals.size >= MAX_PENDING_PROPOSALS) {
      throw new NeuwerkError('NW_ERR_TIMEOUT', `more than ${MAX_PENDING_PROPOSALS} writes are waiting to be applied; retry later`);
    }
    const outcome = this.node.propose(data);
    if (!outcome.ok) throw notLeader(outcome.reason, outcome.leaderHint);
    this.schedulePass();
    return this.awaitApplied(outcome.index, outcome.term);
  }

  /**
   * Proposes a single-server membership change (leader only) and resolves once its entry is
   * applied here, i.e. committed. The configuration already took effect when it was appended.
   * Rejects like `propose`, and with NW_ERR_CONFLICT while another change is still uncommitted
   * or when the change does not fit the configuration (e.g. promoting a non-learner).
   */
  async proposeConfChange(change: ConfChange): Promise<void> {
    if (this.closed) throw this.stoppedBy ?? shuttingDown();
    if (this.proposals.size >= MAX_PENDING_PROPOSALS) {
      throw new NeuwerkError('NW_ERR_TIMEOUT', `more than ${MAX_PENDING_PROPOSALS} writes are waiting to be applied; retry later`);
    }
    const outcome = this.node.proposeConfChange(change);
    if (!outcome.ok) {
      if (outcome.reason === 'conf-change-pending') throw new NeuwerkError('NW_ERR_CONFLICT', 'another membership change is still in progress; retry when it has committed');
      if (outcome.reason === 'invalid') throw new NeuwerkError('NW_ERR_CONFLICT', `membership change ${change.type} ${change.nodeId} does not fit the current configuration`);
      throw notLeader(outcome.reason, outcome.leaderHint);
    }
    this.schedulePass();
    await this.awaitApplied(outcome.index, outcome.term);
  }

  /**
   * Waits for the entry this node appended at `index` in `term`: resolves with its result when the
   * entry applied there has that term, rejects when another term's entry took the index (lost),
   * at the deadline, or on close.
   */
  private awaitApplied(index: number, term: number): Promise<ApplyResult> {
    const displaced = this.proposals.get(index);
    if (displaced !== undefined) {
      // Our own earlier proposal at this index was truncated away when we lost leadership.
      this.proposals.delete(index);
      displaced.reject(notLeader('lost', this.leaderId));
    }
    return new Promise<ApplyResult>((resolve, reject) => {
      this.proposals.set(index, { term, deadlineMs: this.clock.monotonicMs() + this.proposeTimeoutMs, resolve, reject });
    });
  }

  /**
   * Resolves once the local state machine reflects every write committed before the call
   * (ReadIndex, §6.4: the leader confirms its leadership with a quorum, then this node waits until
   * it has applied the returned index). Rejects with NW_ERR_NO_LEADER when no leader is known,
   * NW_ERR_TIMEOUT after the bound (e.g. leadership changed), or NW_ERR_SHUTTING_DOWN.
   */
  async linearizableRead(): Promise<void> {
    if (this.closed) throw this.stoppedBy ?? shuttingDown('the node is shutting down');
    if (this.reads.size >= MAX_PENDING_READS) {
      throw new NeuwerkError('NW_ERR_TIMEOUT', `more than ${MAX_PENDING_READS} reads are waiting; retry later`);
    }
    this.readSeq += 1;
    const ctx = `${this.readContextPrefix}:${this.readSeq}`;
    const outcome = this.node.readIndex(ctx);
    if (!outcome.ok) throw new NeuwerkError('NW_ERR_NO_LEADER', 'no leader is known, so a linearizable read is not possible; retry shortly');
    this.schedulePass();
    return new Promise<void>((resolve, reject) => {
      this.reads.set(ctx, { deadlineMs: this.clock.monotonicMs() + this.readTimeoutMs, index: null, resolve, reject });
    });
  }

  /** Role, leader, term and indexes for readiness, status and metrics. */
  status(): ReplicationStatus {
    const s = this.raftStatus();
    const applied = this.stateMachine.appliedIndex;
    if (!this.caughtUp && applied >= this.startCommit) this.caughtUp = true;
    return {
      nodeId: this.nodeId,
      role: s.role === 'follower' && isLearner(s.conf, this.nodeId) ? 'learner' : s.role,
      leaderId: s.leader,
      term: s.term,
      commitIndex: s.commit,
      appliedIndex: applied,
      caughtUpAtStart: this.caughtUp,
      stoppedBy: this.stoppedBy?.message ?? null,
    };
  }

  failure(): NeuwerkError | null {
    return this.stoppedBy;
  }

  /**
   * The core's full status (configuration, progress of followers) for diagnostics. Once the loop
   * stopped for good the core's view is frozen: the node no longer claims a role it cannot play
   * (a follower without a leader, which it no longer hears).
   */
  raftStatus(): RaftStatus {
    const status = this.node.status();
    return this.stoppedBy === null ? status : { ...status, role: 'follower', leader: null };
  }

  /** Delivers a message from a peer (the cluster transport calls this). Ignored after close. */
  step(message: Message): void {
    if (this.closed) return;
    try {
      this.node.step(message);
    } catch (err) {
      this.fail(err);
      return;
    }
    this.schedulePass();
  }

  /** Starts handing leadership to voter `to` (graceful shutdown of a leader); see `RaftNode.transferLeadership`. */
  transferLeadership(to: NodeId): TransferResult {
    if (this.closed) return { ok: false, reason: 'not-leader' };
    const outcome = this.node.transferLeadership(to);
    this.schedulePass();
    return outcome;
  }

  /**
   * Stops the ticker and the loop; proposals and reads still waiting reject with
   * NW_ERR_SHUTTING_DOWN (a proposal not yet applied is not acknowledged — it may still commit).
   * Does not close the database: its owner does, after this resolves.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.stop(shuttingDown());
  }

  // ---------------------------------------------------------------------------------------------
  // The loop
  // ---------------------------------------------------------------------------------------------

  private onTick(): void {
    if (this.closed) return;
    try {
      this.node.tick();
    } catch (err) {
      this.fail(err);
      return;
    }
    this.expireWaiters();
    this.schedulePass();
  }

  /** Asks for one processing pass later in this turn; many requests in one turn make one pass. */
  private schedulePass(): void {
    if (this.passScheduled || this.closed) return;
    this.passScheduled = true;
    this.timers.soon(() => this.pass());
  }

  private pass(): void {
    this.passScheduled = false;
    if (this.closed || !this.node.hasReady()) return;
    try {
      const ready = this.node.ready();
      this.handleReady(ready);
      this.node.advance();
      this.maybeCompact();
      // One bounded batch of the log prefix a compaction left behind (see `RaftStorage.trimLog`).
      if (this.storage.logTrimPending) this.storage.trimLog();
    } catch (err) {
      this.fail(err);
      return;
    }
    // More work (e.g. committed entries beyond the per-Ready bound): next turn, so new I/O batches in.
    if (this.node.hasReady()) this.schedulePass();
  }

  private handleReady(ready: Ready): void {
    // 0. A leader's replication messages go out first, so the followers write their copies while
    //    we write ours (thesis §10.2.1): one fsync of latency per write instead of two in a row.
    //    The core counts our own copy toward commit only after `advance()`.
    // A pass that writes no entries (nothing to overlap with) and answers waiting callers holds
    // all its messages until the answers went out (SEND_AFTER_ANSWERS).
    const holdForAnswers =
      SEND_AFTER_ANSWERS &&
      ready.entries.length === 0 &&
      ready.snapshot === undefined &&
      ((ready.committedEntries.length > 0 && this.proposals.size > 0) || (ready.readStates.length > 0 && this.reads.size > 0));
    if (ready.earlyMessages.length > 0) this.sendOrHold(ready.earlyMessages, holdForAnswers);
    // Typed by assertion: it is assigned in the closure below, which narrowing does not follow.
    let applied = null as DeferredApply | null;
    // 1. Persist: one transaction (group commit).
    if (ready.hardState !== undefined || ready.entries.length > 0 || ready.snapshot !== undefined) {
      const startedMs = this.clock.monotonicMs();
      // A commit-only Ready's entries are applied inside its transaction (APPLY_WITH_COMMIT_ONLY_PERSIST).
      const applyAlongside =
        APPLY_WITH_COMMIT_ONLY_PERSIST && ready.committedEntries.length > 0 && this.storage.isCommitOnly(ready)
          ? (): void => {
              applied = this.applyEntries(ready.committedEntries);
            }
          : undefined;
      const outcome = this.storage.persist(ready, applyAlongside);
      // The state machine's listeners are told after the commit, as for an apply of its own.
      applied?.notify();
      // A commit-index-only write is not an append (and is not flushed): keep it out of the histogram.
      if (outcome.flushed) this.metrics?.appendLatency.observe(seconds(startedMs, this.clock.monotonicMs()));
      if (outcome.snapshotInstalled && ready.snapshot !== undefined) {
        this.stateMachine.reload();
        this.settleProposalsThrough(ready.snapshot.meta.index);
        const meta = ready.snapshot.meta;
        this.logger?.info(
          { index: meta.index, term: meta.term, bytes: ready.snapshot.data.length, ms: Math.round(this.clock.monotonicMs() - startedMs) },
          'installed a raft snapshot from the leader',
        );
      }
    }
    if (ready.softState !== undefined) this.onSoftState(ready.softState);
    // 2. Send, now that what the messages promise is durable — after the answers of this pass when
    //    it has any (SEND_AFTER_ANSWERS).
    if (ready.messages.length > 0) this.sendOrHold(ready.messages, holdForAnswers);
    // 3. Apply (unless step 1 did), then settle the proposals.
    if (ready.committedEntries.length > 0) {
      const entries = ready.committedEntries;
      if (applied === null) {
        applied = APPLY_WITHOUT_FSYNC ? this.storage.withoutFsync(() => this.applyEntries(entries)) : this.applyEntries(entries);
        applied.notify();
      }
      this.settleProposals(entries, applied.results);
    }
    for (const readState of ready.readStates) {
      const read = this.reads.get(readState.ctx);
      if (read !== undefined) read.index = readState.index;
    }
    this.settleReads();
  }

  /** Sends `messages` now (after any held before), or holds them too when `hold`. */
  private sendOrHold(messages: Message[], hold: boolean): void {
    if (hold) {
      this.hold(messages);
      return;
    }
    this.sendHeld();
    this.send(messages);
  }

  /** Holds `messages` and sends them, with any held before, in the next phase of the loop. */
  private hold(messages: Message[]): void {
    for (const message of messages) this.heldMessages.push(message);
    if (this.heldFlushScheduled) return;
    this.heldFlushScheduled = true;
    this.timers.soon(() => {
      this.heldFlushScheduled = false;
      if (!this.closed) this.sendHeld();
    });
  }

  /** Sends the held messages now (before anything newer goes to the same peers). */
  private sendHeld(): void {
    if (this.heldMessages.length === 0) return;
    const held = this.heldMessages;
    this.heldMessages = [];
    this.send(held);
  }

  private send(messages: Message[]): void {
    try {
      this.sendMessages(messages);
    } catch (err) {
      this.logger?.error({ err }, 'raft transport failed to send messages');
    }
  }

  private onSoftState(soft: SoftState): void {
    const wasLeader = this.role === 'leader';
    const previousLeader = this.leaderId;
    if (soft.leader !== this.leaderId && soft.leader !== null) this.metrics?.raftLeaderChanges.inc();
    this.role = soft.role;
    this.leaderId = soft.leader;
    if (soft.role === 'leader' && !wasLeader) {
      this.logger?.info({ term: this.node.status().term }, 'became raft leader');
      const waiters = this.leaderWaiters;
      this.leaderWaiters = [];
      for (const waiter of waiters) waiter.resolve();
    } else if (wasLeader && soft.role !== 'leader') {
      this.logger?.info({ leader: soft.leader }, 'lost raft leadership');
    } else if (soft.role === 'follower' && soft.leader !== null && soft.leader !== previousLeader) {
      this.logger?.info({ leader: soft.leader, term: this.node.status().term }, 'following raft leader');
    }
  }

  /**
   * Applies committed entries to the state machine (in its own transaction, or as a savepoint of
   * the caller's); the caller tells the state machine's listeners with `notify()` once committed.
   */
  private applyEntries(entries: readonly Entry[]): DeferredApply {
    const batch: AppliedEntry[] = entries.map((e) => ({ index: e.index, term: e.term, data: e.type === 'normal' ? e.data : '' }));
    const startedMs = this.clock.monotonicMs();
    const applied = this.stateMachine.applyDeferringNotify(batch);
    this.metrics?.applyLatency.observe(seconds(startedMs, this.clock.monotonicMs()));
    return applied;
  }

  /** Resolves (or rejects, when another term's entry took the index) the proposals of applied entries. */
  private settleProposals(entries: readonly Entry[], results: readonly ApplyResult[]): void {
    if (this.proposals.size > 0) {
      for (let i = 0; i < entries.length; i++) {
        const entry = entries[i]!;
        const proposal = this.proposals.get(entry.index);
        if (proposal === undefined) continue;
        this.proposals.delete(entry.index);
        if (proposal.term === entry.term) proposal.resolve(results[i]!);
        else proposal.reject(notLeader('lost', this.leaderId));
      }
    }
    if (!this.caughtUp && this.stateMachine.appliedIndex >= this.startCommit) this.caughtUp = true;
  }

  /** A snapshot replaced the state up to `index`: proposals at or below it can no longer learn their result. */
  private settleProposalsThrough(index: number): void {
    for (const [at, proposal] of this.proposals) {
      if (at > index) continue;
      this.proposals.delete(at);
      proposal.reject(
        new NeuwerkError('NW_ERR_NOT_LEADER', 'proposal outcome unknown: leadership changed and a snapshot replaced the log; retry', {
          detail: { leaderId: this.leaderId },
        }),
      );
    }
  }

  private settleReads(): void {
    if (this.reads.size === 0) return;
    const applied = this.stateMachine.appliedIndex;
    for (const [ctx, read] of this.reads) {
      if (read.index === null || read.index > applied) continue;
      this.reads.delete(ctx);
      read.resolve();
    }
  }

  /** Rejects proposals and reads past their deadline. Both maps are in deadline order (constant timeouts). */
  private expireWaiters(): void {
    const nowMs = this.clock.monotonicMs();
    for (const [index, proposal] of this.proposals) {
      if (proposal.deadlineMs > nowMs) break;
      this.proposals.delete(index);
      proposal.reject(new NeuwerkError('NW_ERR_TIMEOUT', `the write was not applied within ${this.proposeTimeoutMs} ms; its outcome is unknown`));
    }
    for (const [ctx, read] of this.reads) {
      if (read.deadlineMs > nowMs) break;
      this.reads.delete(ctx);
      read.reject(new NeuwerkError('NW_ERR_TIMEOUT', `the linearizable read was not confirmed within ${this.readTimeoutMs} ms`));
    }
  }

  /**
   * Log compaction: once `snapshotThresholdEntries` entries were applied since the last snapshot,
   * snapshot the state machine, keep `snapshotTrailingEntries` entries before the snapshot for
   * slow followers, and drop the rest from the core and from SQLite.
   *
   * Nothing of it blocks the loop for long: the copy runs on a worker thread with its own
   * connection (`StoreWorker`) while writes go on, as of one read transaction, so it holds
   * exactly the state at the applied index that transaction saw — the snapshot is taken at that
   * index, whatever was applied since the request; making the file durable (fsync, rename,
   * directory fsync) runs on libuv's thread pool; `finishCompaction` then records it (deleting the
   * first batch of the log prefix; later passes delete the rest) and hands it to the core. At most
   * one compaction is in flight. Until it is recorded the previous snapshot and the whole log stay
   * valid, so a crash at any point restarts from the previous snapshot. A snapshot installed from
   * the leader meanwhile supersedes the compaction: it is dropped (the install may also have pruned
   * its file).
   */
  private maybeCompact(): void {
    if (this.compacting) return;
    const applied = this.stateMachine.appliedIndex;
    const snapshotIndex = this.storage.snapshotMeta.index;
    if (applied <= snapshotIndex || applied - snapshotIndex < this.settings.snapshotThresholdEntries) return;
    this.compacting = true;
    const startedMs = this.clock.monotonicMs();
    this.storeWorker.copy().then(
      (copy) => this.publishCompaction(copy, snapshotIndex, startedMs),
      (err: unknown) => this.compactionFailed(err, snapshotIndex),
    );
  }

  /** Step 2 of `maybeCompact`, once the copy is taken: names it by its position and makes it durable. */
  private publishCompaction(copy: SnapshotCopy, snapshotIndexBefore: number, startedMs: number): void {
    const copyMs = this.clock.monotonicMs() - startedMs;
    let unpublished: UnpublishedSnapshot;
    let meta: SnapshotMeta;
    try {
      // Null: the node closed, or a snapshot installed from the leader meanwhile supersedes the copy.
      const position = this.closed || this.storage.snapshotMeta.index !== snapshotIndexBefore ? null : this.node.snapshotMetaAt(copy.index);
      if (position === null) {
        this.compacting = false;
        rmSync(copy.temporary, { force: true });
        return;
      }
      meta = position;
      unpublished = this.storage.adoptCompactionCopy(meta, copy);
    } catch (err) {
      this.compacting = false;
      rmSync(copy.temporary, { force: true });
      this.fail(err);
      return;
    }
    const retainFromIndex = Math.max(1, meta.index - this.settings.snapshotTrailingEntries + 1);
    publishSnapshot(unpublished).then(
      (file) => this.finishCompaction(meta, file, retainFromIndex, snapshotIndexBefore, startedMs, copyMs),
      (err: unknown) => this.compactionFailed(err, snapshotIndexBefore),
    );
  }

  /** A failed copy or publish stops the loop, unless the node closed or a leader's snapshot superseded it. */
  private compactionFailed(err: unknown, snapshotIndexBefore: number): void {
    this.compacting = false;
    if (this.closed) return;
    // The install of a newer snapshot from the leader may have removed the file under us: nothing lost.
    if (this.storage.snapshotMeta.index !== snapshotIndexBefore) return;
    this.fail(err);
  }

  /** Step 3 of `maybeCompact`, once the snapshot file is durable. */
  private finishCompaction(meta: SnapshotMeta, file: SnapshotFile, retainFromIndex: number, snapshotIndexBefore: number, startedMs: number, copyMs: number): void {
    this.compacting = false;
    // After close the database may be closed: the unrecorded file is pruned at the next start.
    if (this.closed) return;
    // A snapshot from the leader was installed meanwhile; its install pruned (or prunes at the next start) our file.
    if (this.storage.snapshotMeta.index !== snapshotIndexBefore) {
      if (this.storage.snapshotPath() !== file.path) rmSync(file.path, { force: true });
      return;
    }
    try {
      const recordStartedMs = this.clock.monotonicMs();
      const snapshot = this.storage.recordCompaction(meta, file, retainFromIndex);
      if (snapshot === null) return;
      this.node.compact(snapshot, retainFromIndex);
      const nowMs = this.clock.monotonicMs();
      this.metrics?.raftSnapshots.inc();
      this.logger?.info(
        {
          index: meta.index,
          term: meta.term,
          bytes: snapshot.data.length,
          ms: Math.round(nowMs - startedMs),
          copyMs: Math.round(copyMs),
          recordMs: Math.round(nowMs - recordStartedMs),
        },
        'created raft snapshot and compacted the log',
      );
    } catch (err) {
      this.fail(err);
      return;
    }
    this.schedulePass();
  }

  private stop(reason: Error): void {
    this.closed = true;
    // Not awaited: the thread has its own connection, and a copy it abandons is removed (or pruned at the next start).
    void this.storeWorker.close();
    this.ticker?.cancel();
    this.ticker = null;
    for (const proposal of this.proposals.values()) proposal.reject(reason);
    this.proposals.clear();
    for (const read of this.reads.values()) read.reject(reason);
    this.reads.clear();
    const waiters = this.leaderWaiters;
    this.leaderWaiters = [];
    for (const waiter of waiters) waiter.reject(reason);
  }

  /**
   * Stops the loop for good and reports `err` once: the node must not go on with a store it cannot
   * trust. A store the disk will not let it write (full, read-only, failing) is said so, to the
   * waiting and every later caller, with what to do.
   */
  private fail(err: unknown): void {
    if (this.stoppedBy !== null) return;
    const error = err instanceof Error ? err : new Error(String(err));
    const storage = storageFailure(error);
    this.stoppedBy =
      storage === null
        ? new NeuwerkError('NW_ERR_SHUTTING_DOWN', 'the node stopped after a fatal error; the write was not acknowledged', { cause: error })
        : new NeuwerkError('NW_ERR_STORE_UNAVAILABLE', `the store ${this.dbPath} cannot be written: ${storage}; this node stopped replicating and refuses writes until it is restarted with space to write`, {
            actions: ['Free space on (or repair) the disk that holds the store, then restart the node.'],
            cause: error,
          });
    this.stop(this.stoppedBy);
    if (storage === null) this.logger?.fatal({ err: error }, 'raft loop stopped on a fatal error');
    else this.logger?.error({ err: describeError(error), store: this.dbPath }, `raft loop stopped: ${this.stoppedBy.message}`);
    if (storage === null) this.onFatal(error);
  }
}

/**
 * Opens the Raft-replicated store of a node: loads (or bootstraps) the durable Raft state, builds
 * the core and starts the loop. A node that is the only voter of its configuration (single-node
 * mode, or a one-voter cluster restarting) elects itself at once and this resolves once it is
 * leader; otherwise (joining or multi-voter) it resolves immediately and leadership comes from
 * the cluster. Throws NW_ERR_STORE_CORRUPT for a store it cannot trust.
 */
export async function openRaftReplicator(options: RaftReplicatorOptions): Promise<RaftReplicator> {
  const stateMachine = new StateMachine(options.db);
  const storage = RaftStorage.open({
    db: options.db,
    dbPath: options.dbPath,
    snapshotsDir: options.snapshotsDir,
    nodeId: options.nodeId,
    bootstrapVoters: options.bootstrapVoters,
    appliedIndex: stateMachine.appliedIndex,
    ...(options.logger !== undefined ? { logger: options.logger } : {}),
  });
  const replicator = new RaftReplicator(options, storage, stateMachine, options.random ?? systemRandomInt);
  replicator.start();
  if (replicator.isSoleVoter()) {
    replicator.electSoleVoterNow();
    try {
      await replicator.whenLeader(START_LEADER_TIMEOUT_MS);
    } catch (err) {
      await replicator.close();
      throw err;
    }
  }
  return replicator;
}
