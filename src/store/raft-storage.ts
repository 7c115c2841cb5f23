/**
 * Durable Raft storage in the node's `cluster/raft.db` (DESIGN §4): the hard state and snapshot
 * metadata as JSON in `raft_meta`, the log after the snapshot in `raft_log`, the snapshot image as
 * a file under `cluster/snapshots/` (see `snapshot.ts`). The state-machine tables live in the same
 * database, which is what lets a received snapshot replace them atomically with the Raft metadata.
 *
 * The store is opened by `openStoreDatabase` (WAL, `synchronous=FULL`), so every committed
 * transaction here is on stable storage when `persist` returns.
 */
import type { Statement } from 'better-sqlite3';
import { existsSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { invariant, NeuwerkError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { Entry, EntryType, HardState, InitialState, Ready, Snapshot, SnapshotMeta } from '../raft/index.js';
import type { SqliteDatabase } from './database.js';
import {
  attachSnapshot,
  copyAttachedSnapshotIntoLiveTables,
  copyStateMachineSnapshot,
  detachSnapshot,
  pruneSnapshots,
  readSnapshotData,
  snapshotFilePath,
  unpublishedSnapshotOf,
  validateAttachedSnapshot,
  writeSnapshotFile,
  type SnapshotCopy,
  type SnapshotFile,
  type UnpublishedSnapshot,
} from './snapshot.js';

/** `raft_meta` key of the hard state (`{term, vote, commit}` as JSON). */
export const HARD_STATE_KEY = 'hard_state';
/** `raft_meta` key of the snapshot metadata (`{index, term, conf}` as JSON). */
export const SNAPSHOT_META_KEY = 'snapshot_meta';

/**
 * A persist that only raises the commit index commits with `synchronous=NORMAL` (no fsync of its
 * own); see `RaftStorage.isCommitOnly` for why that is safe. On the leader it removes an fsync from
 * every write's path (commit, then apply and answer); on followers one per commit update.
 */
export const COMMIT_ONLY_WITHOUT_FSYNC = true;

/**
 * Log rows a compaction deletes per transaction (`trimLog`): the rows below a new snapshot go in
 * bounded batches, one per processing pass, instead of all ~`snapshotThresholdEntries` rows in
 * one turn of the event loop.
 */
export const LOG_TRIM_BATCH_ENTRIES = 1_000;

/**
 * The error for a raft.db (or snapshot) that cannot be trusted: names the file and tells the
 * operator how to recover. neuwerk never resets Raft state by itself — a node that forgot its vote
 * or its log could break the safety of the whole cluster.
 */
export function raftStoreCorrupt(file: string, reason: string, cause?: unknown): NeuwerkError {
  return new NeuwerkError('NW_ERR_STORE_CORRUPT', `store ${file} is damaged and was not opened: ${reason}`, {
    cause,
    detail: { file },
    actions: [
      `Restore ${file} (with its -wal file and the snapshots/ directory beside it) from a backup taken while the node was stopped, or`,
      'remove this node from the cluster, move its data dir aside, and join it again with a bootstrap token.',
      'neuwerk never resets a damaged store by itself.',
    ],
  });
}

/** How `RaftStorage.open` finds and checks its state. */
export interface RaftStorageOptions {
  readonly db: SqliteDatabase;
  /** The database file, for error messages. */
  readonly dbPath: string;
  readonly snapshotsDir: string;
  readonly nodeId: string;
  /**
   * The initial voters when this node seeds a new cluster (`[self]` for single-node mode); null
   * for a node that will join an existing cluster. Used only for a fresh store: once state is
   * persisted it rules, and the flag is ignored.
   */
  readonly bootstrapVoters: readonly string[] | null;
  /** The state machine's applied index (from `sm_meta`), checked against the log and handed to the core. */
  readonly appliedIndex: number;
  readonly logger?: Logger;
}

/** What `persist` did beyond the log. */
export interface PersistOutcome {
  /** A received snapshot replaced the state-machine tables: the host must `StateMachine.reload()`. */
  readonly snapshotInstalled: boolean;
  /** The transaction was flushed to stable storage (false: it carried only a new commit index). */
  readonly flushed: boolean;
}

interface LogRow {
  idx: number;
  term: number;
  type: EntryType;
  data: string;
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isIdList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((id) => typeof id === 'string' && id !== '');
}

/**
 * The Raft log, hard state and snapshot of one node, on SQLite. Not shared: one `RaftStorage`
 * per node, used from the event loop only.
 */
export class RaftStorage {
  /** What the node loaded (or bootstrapped) at open; `applied` is the state machine's index. */
  readonly initialState: InitialState;
  private snapshotMetaValue: SnapshotMeta;
  private hardStateValue: HardState;
  /** False only for a fresh joiner that has persisted nothing yet: `raft_meta` holds both keys or neither. */
  private metaPersisted: boolean;
  private lastIndexValue: number;
  /**
   * Snapshots replaced by a compaction recorded without an fsync of its own (`recordCompaction`):
   * their files are removed after the next flushed commit makes that record durable.
   */
  private supersededSnapshots: SnapshotMeta[] = [];
  /**
   * Rows of `raft_log` below this index are left over from a compaction and still to be deleted
   * (`trimLog`); 0 when none. They are at or below the recorded snapshot, so nothing reads them:
   * `open` loads only the log after the snapshot, and no row below it is ever written again.
   */
  private trimBelowIndex = 0;
  /** Runs `fn` in a transaction; made once (better-sqlite3 builds its wrappers on every `transaction()` call). */
  private readonly transaction: <T>(fn: () => T) => T;
  private readonly statements: {
    setMeta: Statement<[string, string]>;
    insertEntry: Statement<[number, number, string, string]>;
    deleteFrom: Statement<[number]>;
    deleteBelowBatch: Statement<[number, number]>;
    deleteAll: Statement<[]>;
  };

  private constructor(
    private readonly db: SqliteDatabase,
    private readonly dbPath: string,
    private readonly snapshotsDir: string,
    initialState: InitialState,
    metaPersisted: boolean,
    private readonly logger: Logger | undefined,
  ) {
    this.initialState = initialState;
    this.snapshotMetaValue = initialState.snapshotMeta;
    this.hardStateValue = initialState.hardState;
    this.metaPersisted = metaPersisted;
    const n = initialState.entries.length;
    this.lastIndexValue = n === 0 ? initialState.snapshotMeta.index : initialState.entries[n - 1]!.index;
    this.statements = RaftStorage.prepare(db);
    const run = db.transaction((fn: () => unknown) => fn());
    this.transaction = <T>(fn: () => T): T => run(fn) as T;
  }

  private static prepare(db: SqliteDatabase): RaftStorage['statements'] {
    return {
      setMeta: db.prepare('INSERT INTO raft_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      insertEntry: db.prepare('INSERT INTO raft_log (idx, term, type, data) VALUES (?, ?, ?, ?)'),
      deleteFrom: db.prepare('DELETE FROM raft_log WHERE idx >= ?'),
      deleteBelowBatch: db.prepare('DELETE FROM raft_log WHERE idx IN (SELECT idx FROM raft_log WHERE idx < ? ORDER BY idx LIMIT ?)'),
      deleteAll: db.prepare('DELETE FROM raft_log'),
    };
  }

  /**
   * Loads the persisted state and checks it, or bootstraps a fresh store. Throws
   * `NW_ERR_STORE_CORRUPT` naming the file for anything inconsistent: bad JSON in `raft_meta`, a
   * gap or decreasing terms in the log, a commit index beyond the log, a state machine that is
   * behind the snapshot or ahead of the log, a missing snapshot file. Never resets.
   *
   * A fresh store (no Raft state, empty state machine) with `bootstrapVoters` persists the seed
   * configuration as snapshot metadata at index 0, so a restart does not depend on the flag. A
   * fresh joiner persists nothing until its first `persist`, which writes both keys (the snapshot
   * metadata with an empty configuration until the leader's bootstrap snapshot replaces it).
   */
  static open(options: RaftStorageOptions): RaftStorage {
    const { db, dbPath: file } = options;
    const meta = new Map<string, string>();
    for (const row of db.prepare('SELECT key, value FROM raft_meta').all() as { key: string; value: string }[]) meta.set(row.key, row.value);
    const hardText = meta.get(HARD_STATE_KEY);
    const snapText = meta.get(SNAPSHOT_META_KEY);
    const bounds = db.prepare('SELECT MIN(idx) AS first, MAX(idx) AS last, COUNT(*) AS count FROM raft_log').get() as {
      first: number | null;
      last: number | null;
      count: number;
    };

    if (hardText === undefined && snapText === undefined) {
      if (bounds.count === 0) {
        if (options.appliedIndex > 0) {
          throw raftStoreCorrupt(file, `the state machine has applied index ${options.appliedIndex} but raft_meta and raft_log are empty`);
        }
        return RaftStorage.fresh(options);
      }
      const adopted = RaftStorage.adoptSingleVoterLog(options, bounds);
      if (adopted !== null) return adopted;
      throw raftStoreCorrupt(file, `raft_log holds ${bounds.count} entries but raft_meta has no hard state or snapshot metadata`);
    }
    if (hardText === undefined) throw raftStoreCorrupt(file, `raft_meta has snapshot metadata but no ${HARD_STATE_KEY}`);
    if (snapText === undefined) throw raftStoreCorrupt(file, `raft_meta has a hard state but no ${SNAPSHOT_META_KEY}`);
    const hardState = parseHardState(file, hardText);
    const snapshotMeta = parseSnapshotMeta(file, snapText);

    const rows = db
      .prepare('SELECT idx, term, type, data FROM raft_log WHERE idx > ? ORDER BY idx')
      .all(snapshotMeta.index) as LogRow[];
    const entries: Entry[] = new Array<Entry>(rows.length);
    let expected = snapshotMeta.index + 1;
    let prevTerm = snapshotMeta.term;
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]!;
      if (row.idx !== expected) {
        throw raftStoreCorrupt(file, `raft_log has a gap: expected index ${expected} after ${expected - 1}, found ${row.idx}`);
      }
      if (row.term < prevTerm) throw raftStoreCorrupt(file, `raft_log terms decrease at index ${row.idx} (${prevTerm} then ${row.term})`);
      if (row.term > hardState.term) throw raftStoreCorrupt(file, `raft_log entry ${row.idx} has term ${row.term}, beyond the persisted term ${hardState.term}`);
      entries[i] = { index: row.idx, term: row.term, type: row.type, data: row.data };
      expected += 1;
      prevTerm = row.term;
    }
    const lastIndex = expected - 1;
    if (snapshotMeta.term > hardState.term) throw raftStoreCorrupt(file, `the snapshot term ${snapshotMeta.term} is beyond the persisted term ${hardState.term}`);
    if (hardState.commit > lastIndex) throw raftStoreCorrupt(file, `the commit index ${hardState.commit} is beyond the last log index ${lastIndex}`);
    if (options.appliedIndex < snapshotMeta.index) {
      throw raftStoreCorrupt(file, `the state machine (applied index ${options.appliedIndex}) is behind the snapshot at index ${snapshotMeta.index}`);
    }
    if (options.appliedIndex > lastIndex) {
      throw raftStoreCorrupt(file, `the state machine (applied index ${options.appliedIndex}) is ahead of the last log index ${lastIndex}`);
    }

    const initial: InitialState = { hardState, snapshotMeta, entries, applied: options.appliedIndex };
    if (snapshotMeta.index > 0) {
      const path = snapshotFilePath(options.snapshotsDir, snapshotMeta);
      if (!existsSync(path)) throw raftStoreCorrupt(file, `the snapshot file ${path} recorded in raft_meta is missing`);
      initial.snapshotData = readSnapshotData(path);
    }
    const removed = pruneSnapshots(options.snapshotsDir, snapshotMeta.index > 0 ? snapshotMeta : null);
    if (removed.length > 0) options.logger?.info({ removed }, 'removed leftover snapshot files');
    return new RaftStorage(db, file, options.snapshotsDir, initial, true, options.logger);
  }

  private static fresh(options: RaftStorageOptions): RaftStorage {
    const hardState: HardState = { term: 0, vote: null, commit: 0 };
    pruneSnapshots(options.snapshotsDir, null);
    if (options.bootstrapVoters === null) {
      const joiner: SnapshotMeta = { index: 0, term: 0, conf: { voters: [], learners: [] } };
      return new RaftStorage(options.db, options.dbPath, options.snapshotsDir, { hardState, snapshotMeta: joiner, entries: [], applied: 0 }, false, options.logger);
    }
    invariant(options.bootstrapVoters.length > 0, 'bootstrapVoters must name at least one voter');
    const seed: SnapshotMeta = { index: 0, term: 0, conf: { voters: [...options.bootstrapVoters], learners: [] } };
    const statements = RaftStorage.prepare(options.db);
    options.db.transaction(() => {
      statements.setMeta.run(SNAPSHOT_META_KEY, JSON.stringify(seed));
      statements.setMeta.run(HARD_STATE_KEY, JSON.stringify(hardState));
    })();
    options.logger?.info({ voters: seed.conf.voters }, 'bootstrapped a new Raft group');
    return new RaftStorage(options.db, options.dbPath, options.snapshotsDir, { hardState, snapshotMeta: seed, entries: [], applied: 0 }, true, options.logger);
  }

  /**
   * Adopts a store written by the pre-Raft single-voter stop-gap (log in `raft_log` at term 1,
   * every entry applied in the same transaction, no `raft_meta`): it is exactly what a one-voter
   * leader of term 1 would have persisted. Only when this node starts as that single voter;
   * anything else stays an error.
   */
  private static adoptSingleVoterLog(options: RaftStorageOptions, bounds: { first: number | null; last: number | null; count: number }): RaftStorage | null {
    const voters = options.bootstrapVoters;
    if (voters === null || voters.length !== 1 || voters[0] !== options.nodeId) return null;
    if (bounds.first !== 1 || bounds.last !== bounds.count || options.appliedIndex !== bounds.last) return null;
    const terms = options.db.prepare("SELECT MIN(term) AS lo, MAX(term) AS hi, SUM(type <> 'normal') AS other FROM raft_log").get() as { lo: number; hi: number; other: number };
    if (terms.lo < 1 || terms.hi !== terms.lo || terms.other !== 0) return null;
    const hardState: HardState = { term: terms.hi, vote: options.nodeId, commit: bounds.last };
    const seed: SnapshotMeta = { index: 0, term: 0, conf: { voters: [options.nodeId], learners: [] } };
    const statements = RaftStorage.prepare(options.db);
    options.db.transaction(() => {
      statements.setMeta.run(SNAPSHOT_META_KEY, JSON.stringify(seed));
      statements.setMeta.run(HARD_STATE_KEY, JSON.stringify(hardState));
    })();
    options.logger?.warn({ entries: bounds.count, term: terms.hi }, 'adopted the log of the single-voter store as a one-voter Raft group');
    return RaftStorage.open(options);
  }

  /** The snapshot metadata currently persisted. */
  get snapshotMeta(): SnapshotMeta {
    return this.snapshotMetaValue;
  }

  /** Index of the last persisted entry (or of the snapshot when the log after it is empty). */
  get lastIndex(): number {
    return this.lastIndexValue;
  }

  /**
   * Makes the durable parts of a `Ready` durable — in ONE SQLite transaction, so everything that
   * became ready in one turn of the event loop costs one commit (group commit): a received
   * snapshot (state-machine tables replaced, snapshot metadata written, the whole log discarded),
   * then the entries (the log truncated from `entries[0].index`, then appended), then the hard
   * state. Returns after the commit, i.e. when it is safe to send the messages of that `Ready`.
   *
   * A received snapshot is first written to its file and validated (before any live table is
   * touched); an invalid one throws `NW_ERR_STORE_CORRUPT` and changes nothing in the database.
   *
   * A `Ready` whose only durable change is a higher commit index commits WITHOUT its own fsync
   * (`synchronous=NORMAL` for that transaction; see `COMMIT_ONLY_WITHOUT_FSYNC`).
   *
   * `alongside`, when given, runs inside the same transaction after the Raft writes (the host
   * applies the entries a commit-only Ready committed there: one SQLite commit instead of two,
   * and the commit index and the applied index can only be lost together). If it throws,
   * nothing of the transaction is written.
   */
  persist(ready: Pick<Ready, 'hardState' | 'entries' | 'snapshot'>, alongside?: () => void): PersistOutcome {
    if (this.isCommitOnly(ready)) {
      this.withoutFsync(() => this.persistFlushed(ready, alongside));
      return { snapshotInstalled: false, flushed: false };
    }
    const snapshotInstalled = this.persistFlushed(ready, alongside);
    this.removeSupersededSnapshots();
    return { snapshotInstalled, flushed: true };
  }

  /**
   * Whether `ready` changes nothing durable but the commit index. Raft keeps the commit index in
   * volatile state (Figure 2): no message promises it is durable, and a node that loses it
   * re-learns it from the leader (or, as a sole voter, by committing its next entry); the state
   * machine's applied index, recorded with every apply, bounds it from below at restart. In WAL
   * mode a transaction committed without fsync is still ordered: a crash keeps a prefix of the
   * transactions, and the next flushed commit makes it durable too.
   */
  isCommitOnly(ready: Pick<Ready, 'hardState' | 'entries' | 'snapshot'>): boolean {
    const hard = ready.hardState;
    return (
      COMMIT_ONLY_WITHOUT_FSYNC &&
      this.metaPersisted &&
      ready.snapshot === undefined &&
      ready.entries.length === 0 &&
      hard !== undefined &&
      hard.term === this.hardStateValue.term &&
      hard.vote === this.hardStateValue.vote
    );
  }

  /**
   * Runs `fn` (which commits transactions) with `synchronous=NORMAL`: its commits are appended to
   * the WAL without an fsync of their own; the next FULL commit makes them durable. Only for
   * writes whose loss in a crash is safe (see the callers).
   */
  withoutFsync<T>(fn: () => T): T {
    this.setSynchronous('NORMAL');
    try {
      return fn();
    } finally {
      this.setSynchronous('FULL');
    }
  }

  /**
   * Sets `PRAGMA synchronous` on the node's connection. Through `exec`, not `pragma()` or a cached
   * statement: SQLite applies this pragma while compiling it, so a statement prepared earlier does
   * nothing when re-run, and `pragma()` prepares a new statement object per call, which the garbage
   * collector finalises later in a weak-handle callback during a scavenge (about 1.5 per write on a
   * follower: 2-3 ms of every young-generation pause at c=1). `exec` prepares, steps and finalises
   * in native code and leaves nothing behind for the collector.
   */
  private setSynchronous(level: 'NORMAL' | 'FULL'): void {
    this.db.exec(`PRAGMA synchronous = ${level}`);
  }

  /** The transaction of `persist`; returns whether a snapshot image replaced the state-machine tables. */
  private persistFlushed(ready: Pick<Ready, 'hardState' | 'entries' | 'snapshot'>, alongside: (() => void) | undefined): boolean {
    const snapshot = ready.snapshot;
    const image = snapshot !== undefined && snapshot.meta.index > 0;
    let file: SnapshotFile | null = null;
    if (image) file = writeSnapshotFile(this.snapshotsDir, snapshot.meta, snapshot.data);
    try {
      if (file !== null && snapshot !== undefined) {
        attachSnapshot(this.db, file.path);
        validateAttachedSnapshot(this.db, file.path, snapshot.meta.index);
      }
      const committed = this.transaction((): { last: number; hardState: HardState } => {
        let last = this.lastIndexValue;
        if (snapshot !== undefined) {
          if (image) {
            copyAttachedSnapshotIntoLiveTables(this.db);
            this.statements.deleteAll.run();
            this.trimBelowIndex = 0;
          }
          this.statements.setMeta.run(SNAPSHOT_META_KEY, JSON.stringify(snapshot.meta));
          last = snapshot.meta.index;
        }
        const entries = ready.entries;
        if (entries.length > 0) {
          const first = entries[0]!.index;
          const floor = snapshot?.meta.index ?? this.snapshotMetaValue.index;
          invariant(first > floor && first <= last + 1, () => `persisting entries from ${first} would leave a gap (log ends at ${last}, snapshot at ${floor})`);
          if (first <= last) this.statements.deleteFrom.run(first);
          let expected = first;
          for (const entry of entries) {
            invariant(entry.index === expected, () => `entries to persist are not contiguous at ${entry.index}`);
            this.statements.insertEntry.run(entry.index, entry.term, entry.type, entry.data);
            expected += 1;
          }
          last = expected - 1;
        }
        const hardState = ready.hardState ?? this.hardStateValue;
        if (ready.hardState !== undefined || !this.metaPersisted) this.statements.setMeta.run(HARD_STATE_KEY, JSON.stringify(hardState));
        if (snapshot === undefined && !this.metaPersisted) this.statements.setMeta.run(SNAPSHOT_META_KEY, JSON.stringify(this.snapshotMetaValue));
        alongside?.();
        return { last, hardState };
      });
      this.lastIndexValue = committed.last;
      this.hardStateValue = committed.hardState;
      this.metaPersisted = true;
    } catch (err) {
      if (file !== null) {
        detachSnapshot(this.db);
        pruneSnapshots(this.snapshotsDir, this.snapshotMetaValue.index > 0 ? this.snapshotMetaValue : null);
      }
      throw err;
    }
    if (snapshot !== undefined) {
      this.snapshotMetaValue = snapshot.meta;
      if (file !== null) {
        detachSnapshot(this.db);
        pruneSnapshots(this.snapshotsDir, snapshot.meta);
        this.logger?.info({ index: snapshot.meta.index, term: snapshot.meta.term, bytes: file.sizeBytes }, 'installed snapshot from the leader');
      }
    }
    return image;
  }

  /**
   * Log compaction, step 1 of 2, right after applying: copies the state machine at `meta.index`
   * (which must be the state machine's applied index) to a temporary snapshot file. The caller
   * makes it durable with `publishSnapshot` (off the event loop) and then calls
   * `recordCompaction`; the log and the current snapshot are untouched until then.
   */
  beginCompaction(meta: SnapshotMeta): UnpublishedSnapshot {
    invariant(meta.index > this.snapshotMetaValue.index, () => `snapshot at ${meta.index} is not newer than ${this.snapshotMetaValue.index}`);
    invariant(meta.index <= this.lastIndexValue, () => `snapshot at ${meta.index} beyond the log (last ${this.lastIndexValue})`);
    return copyStateMachineSnapshot(this.db, this.snapshotsDir, meta);
  }

  /**
   * Log compaction, step 1 of 2, for a copy taken off the event loop (`StoreWorker`): names the
   * copy, which holds exactly the state at `meta.index`, as the snapshot at `meta`. The caller
   * makes it durable with `publishSnapshot` and then calls `recordCompaction`, as for
   * `beginCompaction`.
   */
  adoptCompactionCopy(meta: SnapshotMeta, copy: SnapshotCopy): UnpublishedSnapshot {
    invariant(meta.index > this.snapshotMetaValue.index, () => `snapshot at ${meta.index} is not newer than ${this.snapshotMetaValue.index}`);
    invariant(meta.index <= this.lastIndexValue, () => `snapshot at ${meta.index} beyond the log (last ${this.lastIndexValue})`);
    return unpublishedSnapshotOf(copy, this.snapshotsDir, meta);
  }

  /**
   * Log compaction, step 2 of 2, once the snapshot file of `meta` is durable: records it as the
   * snapshot metadata and deletes the first LOG_TRIM_BATCH_ENTRIES `raft_log` rows below
   * `retainFromIndex` in one transaction (`trimLog` deletes the rest, a batch per call),
   * committed WITHOUT an fsync of its own (`synchronous=NORMAL`). That is safe because nothing
   * depends on the record being durable: a crash that loses it (WAL keeps a prefix of the
   * transactions) restarts from the previous snapshot and the full log, so the previous snapshot
   * file is removed only after the next flushed commit (`removeSupersededSnapshots`); the prune
   * at start removes whatever a crash left behind. Returns the `Snapshot` for
   * `RaftNode.compact`, or null — after deleting the file — when a snapshot at or beyond
   * `meta.index` was installed from the leader meanwhile. Rows at or below the snapshot that are
   * kept serve slow followers until the next compaction; after a restart the log starts after
   * the snapshot.
   */
  recordCompaction(meta: SnapshotMeta, file: SnapshotFile, retainFromIndex: number): Snapshot | null {
    const previous = this.snapshotMetaValue;
    if (meta.index <= previous.index) {
      if (file.path !== snapshotFilePath(this.snapshotsDir, previous)) rmSync(file.path, { force: true });
      return null;
    }
    invariant(meta.index <= this.lastIndexValue, () => `snapshot at ${meta.index} beyond the log (last ${this.lastIndexValue})`);
    const keepFrom = Math.min(retainFromIndex, meta.index + 1);
    this.setSynchronous('NORMAL');
    try {
      this.transaction(() => {
        this.statements.setMeta.run(SNAPSHOT_META_KEY, JSON.stringify(meta));
        this.trimBelowIndex = this.trimOneBatch(keepFrom);
      });
    } finally {
      this.setSynchronous('FULL');
    }
    this.snapshotMetaValue = meta;
    if (previous.index > 0) this.supersededSnapshots.push(previous);
    return { meta, data: readSnapshotData(file.path) };
  }

  /** Deletes up to LOG_TRIM_BATCH_ENTRIES rows below `below`; returns `below` while more remain, else 0. */
  private trimOneBatch(below: number): number {
    const deleted = this.statements.deleteBelowBatch.run(below, LOG_TRIM_BATCH_ENTRIES).changes;
    return deleted < LOG_TRIM_BATCH_ENTRIES ? 0 : below;
  }

  /** Whether rows below the snapshot are still to be deleted by `trimLog`. */
  get logTrimPending(): boolean {
    return this.trimBelowIndex > 0;
  }

  /**
   * Deletes the next batch of log rows left below the snapshot by `recordCompaction`, in a
   * transaction without an fsync of its own (a crash that loses it leaves rows nothing reads; the
   * next compaction deletes everything below its own snapshot). Returns whether more remain.
   */
  trimLog(): boolean {
    if (this.trimBelowIndex === 0) return false;
    const below = this.trimBelowIndex;
    this.setSynchronous('NORMAL');
    try {
      this.trimBelowIndex = this.transaction(() => this.trimOneBatch(below));
    } finally {
      this.setSynchronous('FULL');
    }
    return this.trimBelowIndex > 0;
  }

  /**
   * Removes, in the background, the snapshot files superseded by compactions whose record is now
   * durable: called after every flushed commit. Until then a crash could bring back the previous
   * snapshot metadata, whose file must still be there.
   */
  private removeSupersededSnapshots(): void {
    if (this.supersededSnapshots.length === 0) return;
    const superseded = this.supersededSnapshots;
    this.supersededSnapshots = [];
    for (const position of superseded) {
      rm(snapshotFilePath(this.snapshotsDir, position), { force: true }).catch((err: unknown) =>
        this.logger?.warn({ err, index: position.index }, 'could not remove a superseded snapshot file; it is removed at the next start'),
      );
    }
  }

  /** The file of the current snapshot, or null while the snapshot is the index-0 bootstrap one. */
  snapshotPath(): string | null {
    return this.snapshotMetaValue.index > 0 ? snapshotFilePath(this.snapshotsDir, this.snapshotMetaValue) : null;
  }

  /** The database file this storage lives in. */
  get path(): string {
    return this.dbPath;
  }
}

function parseJson(file: string, key: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw raftStoreCorrupt(file, `raft_meta.${key} is not valid JSON: ${(err as Error).message}`, err);
  }
}

export function parseHardState(file: string, text: string): HardState {
  const value = parseJson(file, HARD_STATE_KEY, text) as Partial<HardState> | null;
  const ok =
    value !== null &&
    typeof value === 'object' &&
    isCount(value.term) &&
    isCount(value.commit) &&
    (value.vote === null || (typeof value.vote === 'string' && value.vote !== ''));
  if (!ok) throw raftStoreCorrupt(file, `raft_meta.${HARD_STATE_KEY} is not a hard state: ${text.slice(0, 200)}`);
  return { term: value.term as number, vote: value.vote as string | null, commit: value.commit as number };
}

export function parseSnapshotMeta(file: string, text: string): SnapshotMeta {
  const value = parseJson(file, SNAPSHOT_META_KEY, text) as Partial<SnapshotMeta> | null;
  const conf = value?.conf as { voters?: unknown; learners?: unknown } | undefined;
  const ok =
    value !== null &&
    typeof value === 'object' &&
    isCount(value.index) &&
    isCount(value.term) &&
    conf !== undefined &&
    conf !== null &&
    isIdList(conf.voters) &&
    isIdList(conf.learners);
  if (!ok) throw raftStoreCorrupt(file, `raft_meta.${SNAPSHOT_META_KEY} is not snapshot metadata: ${text.slice(0, 200)}`);
  return {
    index: value.index as number,
    term: value.term as number,
    conf: { voters: [...(conf.voters as string[])], learners: [...(conf.learners as string[])] },
  };
}
