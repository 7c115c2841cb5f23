import type { NeuwerkError } from '../errors.js';
import type { Command } from '../store/commands.js';
import type { ApplyResult, StateMachine } from '../store/state-machine.js';

/** What the rest of the node knows about replication, for readiness, status and metrics. */
export interface ReplicationStatus {
  readonly nodeId: string;
  readonly role: 'leader' | 'follower' | 'candidate' | 'pre-candidate' | 'learner';
  readonly leaderId: string | null;
  readonly term: number;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  /** True once the state machine has applied everything committed when the node started. */
  readonly caughtUpAtStart: boolean;
  /** Why replication stopped for good (the store could not be written, ...); null while it runs. */
  readonly stoppedBy: string | null;
}

/**
 * The one path by which state changes: propose a command, get the applied result once it is
 * committed and applied locally. A single node is a one-voter group behind the same interface.
 */
export interface Replicator {
  readonly stateMachine: StateMachine;
  /** Validates, replicates and applies `command`; rejects with a typed NeuwerkError. */
  propose(command: Command): Promise<ApplyResult>;
  /** Resolves once the local state machine reflects every write committed before the call. */
  linearizableRead(): Promise<void>;
  status(): ReplicationStatus;
  /** Why replication stopped for good, as the error every later caller gets; null while it runs. */
  failure(): NeuwerkError | null;
  /** Stops accepting proposals and releases resources; pending proposals reject. */
  close(): Promise<void>;
}
