/**
 * The leader's pending ReadIndex requests (Ongaro 2014, §6.4; etcd's readOnly). Each request
 * records the commit index at the time it arrived and waits for a heartbeat round, started after
 * it, to be acknowledged by a quorum of voters; that proves the leader was still the leader when
 * the request arrived. Acknowledging a round releases it and every earlier request (FIFO).
 */
import type { NodeId } from './types.js';

/** One pending read: who asked (`from`; the leader itself for local reads), its context and read index. */
export interface PendingRead {
  seq: number;
  ctx: string;
  from: NodeId;
  index: number;
  acks: Set<NodeId>;
}

/** FIFO of pending reads, keyed by a per-node increasing sequence number echoed in heartbeats. */
export class ReadOnlyQueue {
  private queue: PendingRead[] = [];
  private nextSeq = 1;

  /** Enqueues a read; returns its sequence number. */
  add(ctx: string, from: NodeId, index: number): PendingRead {
    const read: PendingRead = { seq: this.nextSeq++, ctx, from, index, acks: new Set() };
    this.queue.push(read);
    return read;
  }

  /** The newest pending read's sequence number (0: none), attached to heartbeats. */
  lastSeq(): number {
    return this.queue.length === 0 ? 0 : this.queue[this.queue.length - 1]!.seq;
  }

  /** Number of pending reads. */
  size(): number {
    return this.queue.length;
  }

  /** Records `from`'s acknowledgement of round `seq`; returns the read with that seq, if pending. */
  ack(seq: number, from: NodeId): PendingRead | null {
    if (seq === 0 || this.queue.length === 0) return null;
    if (seq < this.queue[0]!.seq) return null;
    for (const read of this.queue) {
      if (read.seq === seq) {
        read.acks.add(from);
        return read;
      }
      if (read.seq > seq) return null;
    }
    return null;
  }

  /** Removes and returns every read up to and including round `seq`. */
  releaseThrough(seq: number): PendingRead[] {
    let n = 0;
    while (n < this.queue.length && this.queue[n]!.seq <= seq) n++;
    return this.queue.splice(0, n);
  }

  /** Drops every pending read (leadership lost: the hosts time out). */
  clear(): void {
    this.queue = [];
  }
}
