/**
 * Majority quorum arithmetic over a set of voters (etcd's quorum.MajorityConfig): the commit index
 * a majority has reached, and the outcome of an election.
 */
import type { NodeId } from './types.js';

/** The outcome of counting votes so far. */
export type VoteResult = 'won' | 'lost' | 'pending';

/** Votes needed for a majority of `voterCount` voters. */
export function quorumSize(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/**
 * The largest index that at least a majority of `voters` have matched (`matchOf` gives each
 * voter's match). With no voters the result is 0: nothing can commit.
 */
export function committedIndex(voters: readonly NodeId[], matchOf: (id: NodeId) => number): number {
  const n = voters.length;
  if (n === 0) return 0;
  if (n === 1) return matchOf(voters[0]!);
  const matches = new Array<number>(n);
  for (let i = 0; i < n; i++) matches[i] = matchOf(voters[i]!);
  // Insertion sort, descending: configurations are small (3-7 voters).
  for (let i = 1; i < n; i++) {
    const v = matches[i]!;
    let j = i - 1;
    while (j >= 0 && matches[j]! < v) {
      matches[j + 1] = matches[j]!;
      j--;
    }
    matches[j + 1] = v;
  }
  return matches[quorumSize(n) - 1]!;
}

/**
 * Tallies `votes` (true: granted, false: rejected) from `voters`; votes from non-voters are
 * ignored. `won` once a majority granted, `lost` once a majority can no longer be reached.
 */
export function voteResult(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  const n = voters.length;
  if (n === 0) return 'lost';
  let granted = 0;
  let rejected = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === true) granted++;
    else if (v === false) rejected++;
  }
  const q = quorumSize(n);
  if (granted >= q) return 'won';
  if (n - rejected < q) return 'lost';
  return 'pending';
}

/** Whether at least a majority of `voters` satisfy `isActive`. */
export function hasQuorum(voters: readonly NodeId[], isActive: (id: NodeId) => boolean): boolean {
  if (voters.length === 0) return false;
  let active = 0;
  for (const id of voters) if (isActive(id)) active++;
  return active >= quorumSize(voters.length);
}
