/**
 * The data types of the pure Raft core: log entries, configurations, messages, and the `Ready`
 * batch through which the host learns what to persist, send and apply.
 *
 * Everything here is plain data (no classes), so the host can serialize messages and persist
 * entries without knowing the core's internals. Messages are a discriminated union on `type`.
 */

/** A node's identity. Ids are always strings, in the same format everywhere. */
export type NodeId = string;

/**
 * A cluster configuration. `voters` elect leaders and form quorums; `learners` receive the log
 * but never vote, never count toward a quorum and never campaign. A node is in at most one list.
 */
export interface Configuration {
  voters: NodeId[];
  learners: NodeId[];
}

/** `normal` entries carry opaque state-machine commands; `conf-change` entries carry a `ConfChange`. */
export type EntryType = 'normal' | 'conf-change';

/**
 * One log entry. For `normal` entries `data` is opaque to the core (JSON command text; `''` is the
 * leader's no-op appended on election). For `conf-change` entries `data` is the JSON of a
 * `ConfChange`. Entries are immutable once created: the core shares them between its log, its
 * messages and `Ready` batches without copying.
 */
export interface Entry {
  index: number;
  term: number;
  type: EntryType;
  data: string;
}

/**
 * A single-server membership change (Ongaro 2014, §4.1). It takes effect on each node as soon as
 * its entry is appended to that node's log, not when it commits; only one may be uncommitted.
 */
export type ConfChange =
  | { type: 'add-learner'; nodeId: NodeId }
  | { type: 'promote'; nodeId: NodeId }
  | { type: 'remove'; nodeId: NodeId };

/** The state that must be durable before any message depending on it is sent. */
export interface HardState {
  term: number;
  vote: NodeId | null;
  commit: number;
}

/** Where a snapshot sits in the log, and the configuration in effect at that index. */
export interface SnapshotMeta {
  index: number;
  term: number;
  conf: Configuration;
}

/** A state-machine image at `meta.index`; `data` is opaque to the core. */
export interface Snapshot {
  meta: SnapshotMeta;
  data: Uint8Array;
}

/**
 * A ReadIndex result: a read tagged `ctx` is linearizable once the local applied index is at
 * least `index`.
 */
export interface ReadState {
  ctx: string;
  index: number;
}

/** A node's role. `pre-candidate` is the pre-vote phase (no term change yet). */
export type Role = 'follower' | 'candidate' | 'pre-candidate' | 'leader';

/** Volatile state worth reporting to the host (not persisted). */
export interface SoftState {
  leader: NodeId | null;
  role: Role;
}

/** Fields every message carries. `term` is the sender's current term (pre-vote: the term it would campaign in). */
export interface MessageBase {
  from: NodeId;
  to: NodeId;
  term: number;
}

/**
 * AppendEntries (Raft §5.3). `index`/`logTerm` identify the entry preceding `entries` (prevLogIndex,
 * prevLogTerm); `commit` is the leader's commit index. An empty `entries` is a probe or a commit
 * update.
 */
export interface AppendMessage extends MessageBase {
  type: 'append';
  index: number;
  logTerm: number;
  entries: Entry[];
  commit: number;
}

/**
 * Reply to `append` or to a completed snapshot. On success `index` is the highest index known to
 * match the leader. On rejection `index` is the rejected prevLogIndex, and `rejectHint`/`logTerm`
 * are the follower's conflict hint: the largest index <= `index` whose term is <= the leader's
 * `logTerm`, and that index's term (fast back-off, etcd's findConflictByTerm).
 */
export interface AppendResponseMessage extends MessageBase {
  type: 'append-resp';
  index: number;
  reject: boolean;
  rejectHint: number;
  logTerm: number;
}

/**
 * RequestVote, or its pre-vote probe (Ongaro 2014, §9.6). `transfer` marks a campaign started by
 * TimeoutNow: it bypasses the voters' leader lease.
 */
export interface VoteMessage extends MessageBase {
  type: 'vote' | 'pre-vote';
  lastLogIndex: number;
  lastLogTerm: number;
  transfer: boolean;
}

/** Reply to `vote`/`pre-vote`. A granted pre-vote carries the term it was requested for. */
export interface VoteResponseMessage extends MessageBase {
  type: 'vote-resp' | 'pre-vote-resp';
  reject: boolean;
}

/**
 * Leader heartbeat. `commit` is never above what the follower is known to hold. `readSeq` is the
 * newest pending ReadIndex round (0: none); the follower echoes it.
 */
export interface HeartbeatMessage extends MessageBase {
  type: 'heartbeat';
  commit: number;
  readSeq: number;
}

/** Reply to a heartbeat, echoing its `readSeq`. */
export interface HeartbeatResponseMessage extends MessageBase {
  type: 'heartbeat-resp';
  readSeq: number;
}

/**
 * One chunk of an InstallSnapshot transfer: `data` holds bytes [`offset`, `offset + data.length`)
 * of a `totalBytes`-byte image; `done` marks the last chunk.
 */
export interface SnapshotMessage extends MessageBase {
  type: 'snapshot';
  meta: SnapshotMeta;
  offset: number;
  totalBytes: number;
  data: Uint8Array;
  done: boolean;
}

/**
 * Acknowledges snapshot chunks: the follower holds the first `offset` bytes of the snapshot at
 * `index`. `forOffset` is the offset of the chunk that prompted this reply, so the leader can tell
 * a fresh answer from a stale, reordered one.
 */
export interface SnapshotResponseMessage extends MessageBase {
  type: 'snapshot-resp';
  index: number;
  offset: number;
  forOffset: number;
}

/** Leadership transfer: the recipient campaigns at once, bypassing pre-vote and leases (§3.10). */
export interface TimeoutNowMessage extends MessageBase {
  type: 'timeout-now';
}

/** A follower forwards a ReadIndex request to its leader. */
export interface ReadIndexMessage extends MessageBase {
  type: 'read-index';
  ctx: string;
}

/** The leader's answer to a forwarded ReadIndex request. */
export interface ReadIndexResponseMessage extends MessageBase {
  type: 'read-index-resp';
  ctx: string;
  index: number;
}

/** Every message exchanged between cores, discriminated on `type`. */
export type Message =
  | AppendMessage
  | AppendResponseMessage
  | VoteMessage
  | VoteResponseMessage
  | HeartbeatMessage
  | HeartbeatResponseMessage
  | SnapshotMessage
  | SnapshotResponseMessage
  | TimeoutNowMessage
  | ReadIndexMessage
  | ReadIndexResponseMessage;

/** The `type` tags of `Message`. */
export type MessageType = Message['type'];

/**
 * What the host must do next, in this order:
 * 1. `earlyMessages` may be sent at once — before, or while, persisting below (Raft thesis
 *    §10.2.1: a leader writes its log in parallel with replicating it). They are a leader's
 *    replication messages (append, heartbeat, snapshot chunks) and depend only on its term and
 *    vote, which an earlier `Ready` made durable (the core puts nothing here when this `Ready`
 *    changes term or vote). The leader does not count its own copy of these entries toward a
 *    commit until `advance()` reports them durable, so a crash before the persist loses only
 *    entries that were never committed by its copy. (A sole voter commits on append; while its
 *    commit index is ahead of its durable log, this list stays empty.);
 * 2. persist `hardState`, `entries` (truncate the log from `entries[0].index`, then append) and
 *    `snapshot` (install it: replace the state machine and discard the WHOLE log, since the core
 *    only installs a snapshot whose last entry its log does not hold) — atomically if possible.
 *    A snapshot at index 0 with an empty image is a fresh joiner's bootstrap: it carries the
 *    cluster's initial configuration, which the host must persist as its snapshot meta; the
 *    state machine is the empty one. A `hardState` that differs from the previous one only in
 *    `commit` needs no flush of its own: no message depends on the commit index being durable
 *    (it is volatile state in Raft, Figure 2), and a lost commit index is re-learned;
 * 3. only then send `messages` (vote grants and append acks depend on that durability);
 * 4. apply `committedEntries` in order (after the snapshot, if any; they may include entries of
 *    this `Ready`, so only after step 2);
 * 5. call `advance()` (it tells the core that the entries of this `Ready` are durable).
 * `ready()` must not be called again before `advance()`.
 */
export interface Ready {
  /** Present when the leader or the role changed. */
  softState?: SoftState;
  /** Present when term, vote or commit changed: persist before sending `messages`. */
  hardState?: HardState;
  /** Entries to append durably; may start at or below the last persisted index (truncate from there). */
  entries: Entry[];
  /** A snapshot received from the leader: install it before applying `committedEntries`. */
  snapshot?: Snapshot;
  /** Entries to apply in order, after the persistence above. */
  committedEntries: Entry[];
  /** Leader replication messages that may be sent before this `Ready` is durable (step 1). */
  earlyMessages: Message[];
  /** Messages to send after `hardState`/`entries`/`snapshot` are durable. */
  messages: Message[];
  /** ReadIndex results: a read with `ctx` is safe once the applied index is >= `index`. */
  readStates: ReadState[];
}

/** What the host loaded from disk, or a fresh bootstrap. */
export interface InitialState {
  /** `{term: 0, vote: null, commit: 0}` when fresh. */
  hardState: HardState;
  /**
   * The latest snapshot. A fresh cluster seed: `{index: 0, term: 0, conf: {voters: [self], learners: []}}`;
   * a fresh joiner: `{index: 0, term: 0, conf: {voters: [], learners: []}}`.
   */
  snapshotMeta: SnapshotMeta;
  /** The latest snapshot image, if any (the leader needs it to send InstallSnapshot). */
  snapshotData?: Uint8Array;
  /** The persisted log after `snapshotMeta.index`, contiguous. Entries at or below it are ignored. */
  entries: Entry[];
  /**
   * Optional: the index the host's durable state machine has already applied (>= snapshotMeta.index).
   * Committed entries up to it are not handed out again. Omitted: `snapshotMeta.index`.
   */
  applied?: number;
}

/** The core's tuning and its injected source of randomness. */
export interface RaftConfig {
  id: NodeId;
  /** Base election timeout; the effective timeout is drawn from [T, 2T) via `random`. */
  electionTimeoutTicks: number;
  /** Leader heartbeat interval; must be less than `electionTimeoutTicks`. */
  heartbeatTicks: number;
  /** Injected integer source: returns an integer in [0, maxExclusive). */
  random: (maxExclusive: number) => number;
  /** Run a pre-vote round before incrementing the term (§9.6). */
  preVote: boolean;
  /** Leaders step down without a quorum for an election timeout; followers honour a leader lease. */
  checkQuorum: boolean;
  /** Maximum append messages carrying entries in flight to one follower in replicate state. */
  maxInflightMsgs: number;
  /** Maximum estimated size of the entries in one append message (at least one entry is sent). */
  maxBytesPerAppend: number;
  /** Maximum bytes of snapshot image per InstallSnapshot chunk. */
  maxSnapshotChunkBytes: number;
  /** Maximum committed entries handed out in one `Ready`; default `DEFAULT_MAX_COMMITTED_ENTRIES_PER_READY`. */
  maxCommittedEntriesPerReady?: number;
}

/** Why a proposal was refused. */
export type ProposeRejection = 'not-leader' | 'transferring' | 'conf-change-pending' | 'invalid';

/** The outcome of `propose`/`proposeConfChange`: the entry's position, or why it was refused. */
export type ProposeResult =
  | { ok: true; index: number; term: number }
  | { ok: false; reason: ProposeRejection; leaderHint: NodeId | null };

/** The outcome of `readIndex`: accepted (a `ReadState` may follow), or no leader is known. */
export type ReadIndexResult = { ok: true } | { ok: false; reason: 'not-leader-unknown' };

/** The outcome of `transferLeadership`. */
export type TransferResult = { ok: true } | { ok: false; reason: 'not-leader' | 'transferee-is-self' | 'not-a-voter' };

/** Replication state of one follower as the leader tracks it. */
export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** The leader's view of one follower, as reported by `status()`. */
export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressState;
  recentActive: boolean;
  isLearner: boolean;
  inflight: number;
}

/** The few scalar fields hosts read on hot paths (metrics, routing); `status()` has the rest. */
export interface BasicStatus {
  role: Role;
  term: number;
  leader: NodeId | null;
  commit: number;
  applied: number;
  lastIndex: number;
}

/** A snapshot of a node's state for diagnostics and tests. */
export interface RaftStatus {
  id: NodeId;
  role: Role;
  term: number;
  vote: NodeId | null;
  leader: NodeId | null;
  commit: number;
  applied: number;
  lastIndex: number;
  firstIndex: number;
  snapshotIndex: number;
  conf: Configuration;
  progress?: Record<NodeId, ProgressStatus>;
  leadTransferee: NodeId | null;
}

/** Exhaustiveness guard for discriminated unions: reaching it is a bug. */
export function assertNever(value: never): never {
  throw new Error(`unreachable: ${JSON.stringify(value)}`);
}
