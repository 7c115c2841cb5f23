/**
 * The leader's bookkeeping of each follower's replication (etcd's tracker.Progress): how much of
 * the log is known to match, what to send next, and the flow-control state that decides whether
 * another append may be sent now.
 *
 * - `probe`: the match point is unknown; one append at a time until a reply arrives (or a
 *   heartbeat reply unpauses it).
 * - `replicate`: the match point is known; appends are pipelined optimistically, bounded by an
 *   in-flight window of `maxInflightMsgs` messages.
 * - `snapshot`: the follower needs entries the leader compacted; a chunked snapshot is in flight
 *   and no appends are sent until it completes.
 */
import { invariant } from '../errors.js';
import type { ProgressState, Snapshot } from './types.js';

/** A bounded FIFO ring of the last indexes of in-flight append messages. */
export class Inflights {
  private readonly buffer: number[];
  private start = 0;
  private count = 0;

  /** `capacity` is the maximum number of messages in flight. */
  constructor(private readonly capacity: number) {
    invariant(capacity >= 1, 'inflight capacity must be at least 1');
    this.buffer = new Array<number>(capacity).fill(0);
  }

  /** Records a sent message whose last entry is `index`; indexes must be added in increasing order. */
  add(index: number): void {
    invariant(this.count < this.capacity, 'inflight window overflow');
    this.buffer[(this.start + this.count) % this.capacity] = index;
    this.count++;
  }

  /** Frees every in-flight message whose last index is <= `index` (they were acknowledged). */
  freeLE(index: number): void {
    while (this.count > 0 && this.buffer[this.start]! <= index) {
      this.start = (this.start + 1) % this.capacity;
      this.count--;
    }
  }

  /** Frees the oldest message (a heartbeat reply proves the follower alive; lost messages must not wedge the window). */
  freeFirstOne(): void {
    if (this.count === 0) return;
    this.start = (this.start + 1) % this.capacity;
    this.count--;
  }

  /** Whether no further message may be sent. */
  full(): boolean {
    return this.count === this.capacity;
  }

  /** Number of messages in flight. */
  size(): number {
    return this.count;
  }

  /** Forgets every in-flight message. */
  reset(): void {
    this.start = 0;
    this.count = 0;
  }
}

/** A chunked InstallSnapshot transfer in progress to one follower. */
export interface SnapshotTransfer {
  snapshot: Snapshot;
  /** Bytes the follower is known to hold. */
  ackedBytes: number;
  /** Offset of the most recently sent chunk. */
  lastSentOffset: number;
  /** Ticks since a chunk was last sent (drives retransmission). */
  ticksSinceSend: number;
}

/** The leader's view of one follower (or of itself, with match = its last index). */
export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** Probe state: an append was sent and no reply has been seen yet. */
  probeSent = false;
  /** Heard from within the current check-quorum window. */
  recentActive = true;
  isLearner: boolean;
  /** Highest commit index sent to this follower in an append. */
  sentCommit = 0;
  /** Snapshot state: the index of the snapshot being sent. */
  pendingSnapshotIndex = 0;
  transfer: SnapshotTransfer | null = null;
  readonly inflights: Inflights;

  constructor(next: number, maxInflightMsgs: number, isLearner: boolean) {
    this.next = next;
    this.isLearner = isLearner;
    this.inflights = new Inflights(maxInflightMsgs);
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshotIndex = 0;
    this.transfer = null;
    this.state = state;
    this.inflights.reset();
  }

  /** Back to probing from just after the match point (or after a finished snapshot). */
  becomeProbe(): void {
    if (this.state === 'snapshot') {
      const pending = this.pendingSnapshotIndex;
      this.resetState('probe');
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState('probe');
      this.next = this.match + 1;
    }
  }

  /** The match point is known: pipeline appends from just after it. */
  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  /** Start sending `snapshot`; appends pause until it completes. */
  becomeSnapshot(snapshot: Snapshot): void {
    this.resetState('snapshot');
    this.pendingSnapshotIndex = snapshot.meta.index;
    this.transfer = { snapshot, ackedBytes: 0, lastSentOffset: 0, ticksSinceSend: 0 };
  }

  /** An acknowledgement of `index`: returns whether the match point advanced. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    if (this.next < index + 1) this.next = index + 1;
    return updated;
  }

  /**
   * A rejection of the append after `rejected`, with the leader-side probe hint `matchHint`.
   * Returns false when the rejection is stale (already superseded); otherwise moves `next` back.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'snapshot') return false;
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** Records an append whose last entry is `lastIndex` (`entryCount` entries) was sent. */
  sentEntries(lastIndex: number, entryCount: number): void {
    switch (this.state) {
      case 'replicate':
        if (entryCount > 0) {
          this.next = lastIndex + 1;
          this.inflights.add(lastIndex);
        }
        return;
      case 'probe':
        this.probeSent = true;
        return;
      case 'snapshot':
        invariant(false, 'append sent while a snapshot is in flight');
    }
  }

  /** Whether no append may be sent right now. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }
}
