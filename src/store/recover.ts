/**
 * Break-glass recovery of a cluster that lost a quorum for good (`neuwerk cluster recover
 * --force-new-cluster`): rewrites a STOPPED member's store so that it starts as the only voter of
 * the cluster it was part of, with everything that cluster had committed as far as this member
 * knows. Nothing here runs inside a node: the command refuses while a process holds the store.
 *
 * What it writes, in one transaction (as etcd's `--force-new-cluster` does in spirit):
 *  - the whole log this member holds is kept and becomes committed, also entries after its own
 *    commit index: a follower learns of a commit only with the leader's next message, so its tail
 *    may hold writes the lost majority acknowledged (every entry came from a leader; with no
 *    quorum left nothing can contradict it) — except an uncommitted removal of this member itself
 *    and what follows it, which are dropped;
 *  - after the last entry, in a new term: conf-change entries making this member the only voter
 *    (a learner is promoted first, then every other member is removed), and a `member.tombstone`
 *    command for every other node the store knows of, so none can come back with its old
 *    identity: it is refused and must be wiped and joined again;
 *  - a hard state in that term, voted for itself, with those entries committed.
 * On its next start the node applies them like any committed entries and elects itself.
 */
import { NeuwerkError } from '../errors.js';
import { applyConfChange, decodeConfChange, encodeConfChange } from '../raft/index.js';
import type { ConfChange, Configuration } from '../raft/index.js';
import { encodeCommand } from './commands.js';
import type { SqliteDatabase } from './database.js';
import { HARD_STATE_KEY, parseHardState, parseSnapshotMeta, raftStoreCorrupt, SNAPSHOT_META_KEY } from './raft-storage.js';

export interface RecoveryOutcome {
  /** The other nodes the store knew of, now tombstoned (voters, learners, member rows). */
  readonly removed: readonly string[];
  /** Entries dropped from the end of the log: an uncommitted removal of this node and what followed it. */
  readonly droppedEntries: number;
  /** The commit index this member had. */
  readonly previousCommitIndex: number;
  /** The last index of its log: everything through it is kept, and now committed. */
  readonly keptThroughIndex: number;
  /** The term of that last entry: of several survivors, recover the one with the highest (term, index). */
  readonly keptThroughTerm: number;
  /** True when nothing was written (`dryRun`). */
  readonly dryRun: boolean;
  /** The new term, and the index of the last entry written. */
  readonly term: number;
  readonly lastIndex: number;
}

/**
 * Makes `nodeId` the only voter of the store in `db` (see the module comment). Throws
 * NW_ERR_STORE_CORRUPT for a store without Raft state, NW_ERR_CONFLICT when `nodeId` is not a
 * member of its configuration.
 */
export function forceNewCluster(db: SqliteDatabase, file: string, nodeId: string, nowIso: string, options: { readonly dryRun?: boolean } = {}): RecoveryOutcome {
  const meta = new Map((db.prepare('SELECT key, value FROM raft_meta').all() as { key: string; value: string }[]).map((row) => [row.key, row.value]));
  const hardText = meta.get(HARD_STATE_KEY);
  const snapText = meta.get(SNAPSHOT_META_KEY);
  if (hardText === undefined || snapText === undefined) throw raftStoreCorrupt(file, 'no Raft state to recover from (raft_meta is incomplete)');
  const hardState = parseHardState(file, hardText);
  const snapshot = parseSnapshotMeta(file, snapText);
  const anotherMember = { actions: ["Recover from another survivor's store (`neuwerk cluster recover --dry-run` on each shows what it holds)."] };
  if (db.prepare('SELECT 1 FROM removed_members WHERE node_id = ?').get(nodeId) !== undefined) {
    throw new NeuwerkError('NW_ERR_CONFLICT', `node ${nodeId} was removed from its cluster (its store records it); its store cannot seed a new one`, anotherMember);
  }

  // The log's conf changes, and the first entry that removes this node (its conf change or its
  // tombstone): uncommitted, that entry and everything after it are dropped (a removal it proposed
  // as leader but never replicated must not lock it out); committed, this node is no member.
  const changes: { idx: number; change: ConfChange }[] = [];
  let selfRemovedAt: number | null = null;
  for (const row of db.prepare("SELECT idx, data FROM raft_log WHERE idx > ? AND type = 'conf-change' ORDER BY idx").all(snapshot.index) as { idx: number; data: string }[]) {
    const change = decodeConfChange(row.data);
    if (change === null) continue;
    if (change.type === 'remove' && change.nodeId === nodeId) {
      selfRemovedAt = row.idx;
      break;
    }
    changes.push({ idx: row.idx, change });
  }
  for (const row of db.prepare("SELECT idx, data FROM raft_log WHERE idx > ? AND type = 'normal' AND data LIKE '%\"member.tombstone\"%' ORDER BY idx").all(snapshot.index) as { idx: number; data: string }[]) {
    if ((JSON.parse(row.data) as { node_id?: unknown }).node_id === nodeId) {
      if (selfRemovedAt === null || row.idx < selfRemovedAt) selfRemovedAt = row.idx;
      break;
    }
  }
  if (selfRemovedAt !== null && selfRemovedAt <= hardState.commit) {
    throw new NeuwerkError('NW_ERR_CONFLICT', `node ${nodeId} was removed from its cluster at index ${selfRemovedAt} (committed); its store cannot seed a new one`, anotherMember);
  }
  const keepBelow = selfRemovedAt ?? Number.MAX_SAFE_INTEGER;
  const tail = db.prepare('SELECT idx, term FROM raft_log WHERE idx > ? AND idx < ? ORDER BY idx DESC LIMIT 1').get(snapshot.index, keepBelow) as { idx: number; term: number } | undefined;
  const last = tail?.idx ?? snapshot.index;
  const lastTerm = tail?.term ?? snapshot.term;
  const dropped = selfRemovedAt === null ? 0 : (db.prepare('SELECT COUNT(*) AS n FROM raft_log WHERE idx >= ?').get(selfRemovedAt) as { n: number }).n;

  // The configuration in effect at the end of the kept log (a configuration takes effect when its
  // entry is appended): the snapshot's, then each conf change after it.
  let conf: Configuration = snapshot.conf;
  const mentioned = new Set([...snapshot.conf.voters, ...snapshot.conf.learners]);
  for (const { idx, change } of changes) {
    if (idx >= keepBelow) break;
    mentioned.add(change.nodeId);
    conf = applyConfChange(conf, change) ?? conf;
  }
  if (!conf.voters.includes(nodeId) && !conf.learners.includes(nodeId)) {
    throw new NeuwerkError('NW_ERR_CONFLICT', `node ${nodeId} is not a member of the configuration in its store (voters ${conf.voters.join(', ') || 'none'})`, anotherMember);
  }

  const others = [...conf.voters, ...conf.learners].filter((id) => id !== nodeId);
  if (others.length === 0 && conf.voters.includes(nodeId) && dropped === 0) {
    throw new NeuwerkError('NW_ERR_CONFLICT', `node ${nodeId} is already the only voter of its cluster; start it as it is`);
  }
  // Every other node the store knows of is tombstoned, in the configuration or not (a member row,
  // or one a kept conf change named), so none of them can come back with its old identity.
  for (const row of db.prepare('SELECT node_id FROM members').all() as { node_id: string }[]) mentioned.add(row.node_id);
  const alreadyRemoved = new Set((db.prepare('SELECT node_id FROM removed_members').all() as { node_id: string }[]).map((row) => row.node_id));
  const tombstoned = [...mentioned].filter((id) => id !== nodeId && !alreadyRemoved.has(id)).sort();
  const plan: ConfChange[] = [];
  if (conf.learners.includes(nodeId)) plan.push({ type: 'promote', nodeId });
  for (const id of others) plan.push({ type: 'remove', nodeId: id });

  const term = hardState.term + 1;
  const outcome = (lastIndex: number): RecoveryOutcome => ({
    removed: tombstoned,
    droppedEntries: dropped,
    previousCommitIndex: hardState.commit,
    keptThroughIndex: last,
    keptThroughTerm: lastTerm,
    term,
    lastIndex,
    dryRun: options.dryRun === true,
  });
  if (options.dryRun === true) return outcome(last + plan.length + tombstoned.length);
  let index = last;
  db.transaction(() => {
    db.prepare('DELETE FROM raft_log WHERE idx > ?').run(last);
    const insert = db.prepare('INSERT INTO raft_log (idx, term, type, data) VALUES (?, ?, ?, ?)');
    for (const change of plan) insert.run(++index, term, 'conf-change', encodeConfChange(change));
    for (const id of tombstoned) insert.run(++index, term, 'normal', encodeCommand({ v: 1, type: 'member.tombstone', node_id: id, removed_at: nowIso }));
    db.prepare('INSERT INTO raft_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(
      HARD_STATE_KEY,
      JSON.stringify({ term, vote: nodeId, commit: index }),
    );
  })();
  return outcome(index);
}
