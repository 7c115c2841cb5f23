/**
 * The in-memory Raft log of one node: the retained entries after a compaction point, the commit
 * and applied indexes, what has not yet been handed to the host for persistence, and a received
 * snapshot that the host has not yet installed.
 *
 * Entries are kept in one array indexed from `offsetIndex + 1`. Appends push, conflicts truncate
 * the tail in place, compaction drops a prefix: no operation copies the whole log.
 */
import { invariant } from '../errors.js';
import type { Entry, Snapshot, SnapshotMeta } from './types.js';

/** Fixed per-entry overhead added to `data.length` when estimating message sizes. */
export const ENTRY_OVERHEAD_BYTES = 16;

/** Estimated wire size of an entry, for `maxBytesPerAppend`. */
export function entrySizeBytes(entry: Entry): number {
  return entry.data.length + ENTRY_OVERHEAD_BYTES;
}

/** Where `maybeAppend` accepted an append: the last index known to match, and the first index rewritten (0: none). */
export interface AppendOutcome {
  lastNewIndex: number;
  rewrittenFrom: number;
}

/** The log of one node. Indexes are 1-based; index 0 with term 0 precedes every log. */
export class RaftLog {
  /** Index of the entry just before `entries[0]` (a snapshot or compaction point); its term is kept. */
  private offsetIndex: number;
  private offsetTerm: number;
  private entries: Entry[];
  /** First index not yet handed to the host for persistence. */
  private unstableFrom: number;
  /**
   * Every entry of this log up to here is durable on the host (its persisted log agrees with this
   * one up to this index). Only `stableTo` (the host acknowledged a persist) raises it; rewriting
   * the tail or restoring a snapshot lowers it. A leader counts its own copy toward a commit
   * quorum only up to here (Raft thesis §10.2.1).
   */
  private stableIndexValue: number;
  /** Highest index known to be committed. */
  committed: number;
  /** Highest index the host has applied (as acknowledged by `advance`). */
  applied: number;
  /** A snapshot received from the leader and not yet handed to the host. */
  pendingSnapshot: Snapshot | null = null;

  /** Builds the log from what the host persisted: everything given is already stable. */
  constructor(snapshotMeta: SnapshotMeta, entries: readonly Entry[], commit: number, applied: number) {
    this.offsetIndex = snapshotMeta.index;
    this.offsetTerm = snapshotMeta.term;
    this.entries = [];
    for (const entry of entries) {
      if (entry.index <= this.offsetIndex) continue;
      invariant(entry.index === this.lastIndex() + 1, () => `persisted log is not contiguous at index ${entry.index}`);
      invariant(entry.term >= this.lastTerm(), () => `persisted log terms decrease at index ${entry.index}`);
      this.entries.push(entry);
    }
    this.unstableFrom = this.lastIndex() + 1;
    this.stableIndexValue = this.lastIndex();
    invariant(commit <= this.lastIndex(), () => `commit ${commit} beyond the persisted log (last ${this.lastIndex()})`);
    this.committed = commit;
    this.applied = applied;
  }

  /** First index whose entry is retained (may be lastIndex + 1 when the log is empty). */
  firstIndex(): number {
    return this.offsetIndex + 1;
  }

  /** Index of the compaction/snapshot point: the last index not retained as an entry. */
  snapshotIndex(): number {
    return this.offsetIndex;
  }

  /** Index of the last entry (or of the compaction point when no entries are retained). */
  lastIndex(): number {
    return this.offsetIndex + this.entries.length;
  }

  /** Term of the last entry. */
  lastTerm(): number {
    const n = this.entries.length;
    return n === 0 ? this.offsetTerm : this.entries[n - 1]!.term;
  }

  /** Term at `index`, or -1 when the index is compacted away or beyond the log. */
  term(index: number): number {
    if (index === this.offsetIndex) return this.offsetTerm;
    if (index < this.offsetIndex || index > this.lastIndex()) return -1;
    return this.entries[index - this.offsetIndex - 1]!.term;
  }

  /** The entry at `index`, or undefined when not retained. */
  entry(index: number): Entry | undefined {
    if (index <= this.offsetIndex || index > this.lastIndex()) return undefined;
    return this.entries[index - this.offsetIndex - 1];
  }

  /** Whether the log holds an entry at `index` with `term` (index 0 / term 0 always matches). */
  matchTerm(index: number, term: number): boolean {
    const t = this.term(index);
    return t >= 0 && t === term;
  }

  /** Raft §5.4.1: a candidate's log is at least as up-to-date as ours. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /** Leader path: append entries that continue the log exactly. */
  append(entry: Entry): void {
    invariant(entry.index === this.lastIndex() + 1, () => `append at ${entry.index} does not continue the log (last ${this.lastIndex()})`);
    this.entries.push(entry);
  }

  /**
   * Follower path (Raft §5.3): if the log matches `prevIndex`/`prevTerm`, writes `ents` from their
   * first conflict on (truncating the divergent tail), advances commit to min(`commit`, last new
   * index) and returns where it wrote; returns null when the log does not match.
   */
  maybeAppend(prevIndex: number, prevTerm: number, commit: number, ents: readonly Entry[]): AppendOutcome | null {
    if (!this.matchTerm(prevIndex, prevTerm)) return null;
    const lastNewIndex = prevIndex + ents.length;
    let rewrittenFrom = 0;
    for (let i = 0; i < ents.length; i++) {
      const ent = ents[i]!;
      if (!this.matchTerm(ent.index, ent.term)) {
        invariant(ent.index > this.committed, () => `conflict at committed index ${ent.index} (commit ${this.committed})`);
        invariant(ent.index === prevIndex + 1 + i, 'append entries are not contiguous');
        this.truncateAndAppend(ents, i);
        rewrittenFrom = ent.index;
        break;
      }
    }
    this.commitTo(Math.min(commit, lastNewIndex));
    return { lastNewIndex, rewrittenFrom };
  }

  /** Replaces the log from `ents[from].index` on with `ents[from..]`. */
  private truncateAndAppend(ents: readonly Entry[], from: number): void {
    const first = ents[from]!.index;
    invariant(first > this.offsetIndex && first <= this.lastIndex() + 1, () => `cannot write at ${first}`);
    if (first <= this.lastIndex()) {
      this.entries.length = first - this.offsetIndex - 1;
      if (this.unstableFrom > first) this.unstableFrom = first;
      if (this.stableIndexValue >= first) this.stableIndexValue = first - 1;
    }
    for (let i = from; i < ents.length; i++) this.entries.push(ents[i]!);
  }

  /**
   * The largest index <= `index` whose term is <= `term` (etcd's findConflictByTerm): no entry
   * between it and `index` can match a log whose entry at `index` has term `term`.
   */
  findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex());
    while (i > this.offsetIndex && this.entries[i - this.offsetIndex - 1]!.term > term) i--;
    return i;
  }

  /**
   * Entries [`lo`, `hiInclusive`] limited to about `maxBytes` (at least one entry), or null when
   * `lo` is compacted away. Copies only the returned range.
   */
  slice(lo: number, hiInclusive: number, maxBytes: number): Entry[] | null {
    if (lo <= this.offsetIndex) return null;
    if (lo > hiInclusive) return [];
    invariant(hiInclusive <= this.lastIndex(), () => `slice beyond the log: ${hiInclusive} > ${this.lastIndex()}`);
    const start = lo - this.offsetIndex - 1;
    const end = hiInclusive - this.offsetIndex;
    let bytes = entrySizeBytes(this.entries[start]!);
    let stop = start + 1;
    while (stop < end) {
      const size = entrySizeBytes(this.entries[stop]!);
      if (bytes + size > maxBytes) break;
      bytes += size;
      stop++;
    }
    return this.entries.slice(start, stop);
  }

  /** Advances the commit index; it never moves back, and never beyond the log. */
  commitTo(index: number): void {
    if (index <= this.committed) return;
    invariant(index <= this.lastIndex(), () => `commit ${index} beyond the log (last ${this.lastIndex()})`);
    this.committed = index;
  }

  /** Whether some entries have not yet been handed to the host. */
  hasUnstable(): boolean {
    return this.unstableFrom <= this.lastIndex();
  }

  /** Entries not yet handed to the host (a copy of that range only). */
  unstableEntries(): Entry[] {
    if (this.unstableFrom > this.lastIndex()) return [];
    return this.entries.slice(this.unstableFrom - this.offsetIndex - 1);
  }

  /** Records that every entry up to the last one has been handed to the host. */
  markHandedOut(): void {
    this.unstableFrom = this.lastIndex() + 1;
  }

  /** Highest index up to which this log is known durable on the host (see `stableIndexValue`). */
  stableIndex(): number {
    return this.stableIndexValue;
  }

  /**
   * The host made the entry at `index` with `term` durable (and everything before it, which it
   * persisted earlier). Ignored when this log no longer holds that entry: the tail was rewritten
   * or a snapshot restored after it was handed out, so what the host persisted is not this log.
   * Same index and term means the same entry and the same prefix (Log Matching, §5.3).
   */
  stableTo(index: number, term: number): void {
    if (index <= this.stableIndexValue || index > this.lastIndex()) return;
    if (this.term(index) !== term) return;
    this.stableIndexValue = index;
  }

  /** First committed index not yet applied (a pending snapshot covers everything up to its index). */
  private firstUnapplied(): number {
    return Math.max(this.applied, this.offsetIndex) + 1;
  }

  /** Whether committed entries are waiting to be applied. */
  hasNextCommitted(): boolean {
    return this.committed >= this.firstUnapplied();
  }

  /** Up to `maxCount` committed, unapplied entries, in order. */
  nextCommitted(maxCount: number): Entry[] {
    const lo = this.firstUnapplied();
    if (this.committed < lo) return [];
    const hi = Math.min(this.committed, lo + maxCount - 1);
    const start = lo - this.offsetIndex - 1;
    return this.entries.slice(start, start + (hi - lo + 1));
  }

  /** Records that the host applied everything up to `index`. */
  appliedTo(index: number): void {
    if (index <= this.applied) return;
    invariant(index <= this.committed, () => `applied ${index} beyond commit ${this.committed}`);
    this.applied = index;
  }

  /** Discards entries up to and including `index`, keeping its term as the new offset. */
  compact(index: number): void {
    if (index <= this.offsetIndex) return;
    invariant(index <= this.applied, () => `compaction at ${index} beyond applied ${this.applied}`);
    invariant(index <= this.lastIndex(), 'compaction beyond the log');
    const term = this.term(index);
    this.entries.splice(0, index - this.offsetIndex);
    this.offsetIndex = index;
    this.offsetTerm = term;
  }

  /** Replaces the whole log with a received snapshot (the host installs it from the next `Ready`). */
  restore(snapshot: Snapshot): void {
    invariant(
      snapshot.meta.index > this.committed || (snapshot.meta.index === 0 && this.lastIndex() === 0),
      'restoring a snapshot at or below commit',
    );
    this.entries = [];
    this.offsetIndex = snapshot.meta.index;
    this.offsetTerm = snapshot.meta.term;
    this.unstableFrom = this.offsetIndex + 1;
    // Nothing of the new log is durable until the host installed the snapshot (`stableTo`).
    this.stableIndexValue = 0;
    this.committed = snapshot.meta.index;
    this.pendingSnapshot = snapshot;
  }
}
