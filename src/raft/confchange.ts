/**
 * Single-server membership changes (Ongaro 2014, §4.1): applying a `ConfChange` to a
 * `Configuration`, encoding it as entry data, and the history of configurations along the log
 * (a configuration takes effect when its entry is appended, so truncating the entry reverts it).
 */
import { invariant } from '../errors.js';
import type { ConfChange, Configuration, NodeId } from './types.js';

/** Whether `id` is a voter in `conf`. */
export function isVoter(conf: Configuration, id: NodeId): boolean {
  return conf.voters.includes(id);
}

/** Whether `id` is a learner in `conf`. */
export function isLearner(conf: Configuration, id: NodeId): boolean {
  return conf.learners.includes(id);
}

/** A deep copy, so callers never share the core's arrays. */
export function cloneConfiguration(conf: Configuration): Configuration {
  return { voters: [...conf.voters], learners: [...conf.learners] };
}

/**
 * The configuration after `change`, or null when the change is invalid: adding an existing
 * member, promoting a non-learner, removing a non-member, or removing the last voter.
 */
export function applyConfChange(conf: Configuration, change: ConfChange): Configuration | null {
  const id = change.nodeId;
  switch (change.type) {
    case 'add-learner':
      if (isVoter(conf, id) || isLearner(conf, id)) return null;
      return { voters: [...conf.voters], learners: [...conf.learners, id] };
    case 'promote':
      if (!isLearner(conf, id)) return null;
      return { voters: [...conf.voters, id], learners: conf.learners.filter((x) => x !== id) };
    case 'remove':
      if (isVoter(conf, id)) {
        if (conf.voters.length === 1) return null;
        return { voters: conf.voters.filter((x) => x !== id), learners: [...conf.learners] };
      }
      if (isLearner(conf, id)) return { voters: [...conf.voters], learners: conf.learners.filter((x) => x !== id) };
      return null;
  }
}

/** The entry data of a conf change. */
export function encodeConfChange(change: ConfChange): string {
  return JSON.stringify({ type: change.type, nodeId: change.nodeId });
}

/** Parses conf-change entry data; null when malformed (treated as a no-op by every replica alike). */
export function decodeConfChange(data: string): ConfChange | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null) return null;
  const { type, nodeId } = parsed as { type?: unknown; nodeId?: unknown };
  if (typeof nodeId !== 'string' || nodeId === '') return null;
  if (type === 'add-learner' || type === 'promote' || type === 'remove') return { type, nodeId };
  return null;
}

/** A configuration and the log index where it took effect. */
export interface ConfAt {
  index: number;
  conf: Configuration;
}

/**
 * The configurations along the log, oldest first. The first element is the configuration at or
 * before the log's compaction point; each later one was set by a conf-change entry at its index.
 */
export class ConfHistory {
  private items: ConfAt[];

  constructor(index: number, conf: Configuration) {
    this.items = [{ index, conf: cloneConfiguration(conf) }];
  }

  /** The configuration in effect now (set by the latest appended conf-change entry). */
  current(): Configuration {
    return this.items[this.items.length - 1]!.conf;
  }

  /** Index of the latest conf-change entry (or of the base configuration). */
  lastIndex(): number {
    return this.items[this.items.length - 1]!.index;
  }

  /** Records a conf-change entry appended at `index`; malformed or invalid changes leave the configuration as is. */
  appendEntry(index: number, data: string): void {
    invariant(index > this.lastIndex(), () => `conf entry at ${index} is not after ${this.lastIndex()}`);
    const change = decodeConfChange(data);
    const next = change === null ? null : applyConfChange(this.current(), change);
    this.items.push({ index, conf: next ?? cloneConfiguration(this.current()) });
  }

  /** Forgets configurations set by entries at or after `index` (those entries were truncated). */
  truncateFrom(index: number): void {
    while (this.items.length > 1 && this.items[this.items.length - 1]!.index >= index) this.items.pop();
    invariant(this.items[0]!.index < index, 'truncated below the base configuration');
  }

  /** Drops history no longer needed once the log is compacted up to `index`. */
  compact(index: number): void {
    let drop = 0;
    while (drop + 1 < this.items.length && this.items[drop + 1]!.index <= index) drop++;
    if (drop > 0) this.items.splice(0, drop);
  }

  /** The configuration in effect at `index` (which must not precede the base). */
  at(index: number): Configuration {
    invariant(index >= this.items[0]!.index, () => `no configuration history at ${index}`);
    for (let i = this.items.length - 1; i >= 0; i--) {
      const item = this.items[i]!;
      if (item.index <= index) return item.conf;
    }
    return this.items[0]!.conf;
  }

  /** Replaces the history with a snapshot's configuration. */
  reset(index: number, conf: Configuration): void {
    this.items = [{ index, conf: cloneConfiguration(conf) }];
  }
}
