import type { MemberRecord, StateMachine } from '../store/state-machine.js';
import type { LeaderAddress } from './leader-proxy.js';

/** Most node ids whose lookups are remembered at once; beyond it the memory starts over. */
export const MEMBERSHIP_VIEW_ENTRIES_MAX = 1024;

/** Whether an applied batch (its AppliedListener types) may have changed the members or removed-members tables. */
export function changesMembership(types: ReadonlySet<string>): boolean {
  return types.has('snapshot') || types.has('member.upsert') || types.has('member.remove') || types.has('member.tombstone');
}

/**
 * The membership lookups of the request-forwarding path (a follower's "where is the leader", a
 * leader's "may this peer forward"), answered from memory instead of one SQLite query each per
 * request. What was read is remembered until the next applied batch that can change the
 * membership tables (`member.*` commands or a snapshot install): the state machine tells its
 * listeners synchronously after the batch's transaction, so an answer is never one the tables no
 * longer give.
 */
export class MembershipView {
  private members = new Map<string, MemberRecord | null>();
  private removed = new Map<string, boolean>();

  constructor(private readonly stateMachine: Pick<StateMachine, 'member' | 'isRemoved' | 'onApplied'>) {
    stateMachine.onApplied((types) => {
      if (changesMembership(types)) this.forget();
    });
  }

  private forget(): void {
    this.members = new Map();
    this.removed = new Map();
  }

  member(nodeId: string): MemberRecord | undefined {
    let known = this.members.get(nodeId);
    if (known === undefined) {
      known = this.stateMachine.member(nodeId) ?? null;
      if (this.members.size >= MEMBERSHIP_VIEW_ENTRIES_MAX) this.forget();
      this.members.set(nodeId, known);
    }
    return known ?? undefined;
  }

  /** A current member: recorded and not removed. */
  isMember(nodeId: string): boolean {
    if (this.member(nodeId) === undefined) return false;
    let removed = this.removed.get(nodeId);
    if (removed === undefined) {
      removed = this.stateMachine.isRemoved(nodeId);
      if (this.removed.size >= MEMBERSHIP_VIEW_ENTRIES_MAX) this.forget();
      this.removed.set(nodeId, removed);
    }
    return !removed;
  }

  /** The leader's node id and management address, or null when there is no leader or it has no record yet. */
  leaderAddress(leaderId: string | null): LeaderAddress | null {
    if (leaderId === null) return null;
    const member = this.member(leaderId);
    return member === undefined ? null : { nodeId: leaderId, address: member.http_addr };
  }
}
