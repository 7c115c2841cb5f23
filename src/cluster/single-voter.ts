import type { Statement } from 'better-sqlite3';
import { NeuwerkError } from '../errors.js';
import { encodeCommand, validateCommand, type Command } from '../store/commands.js';
import type { SqliteDatabase } from '../store/database.js';
import { StateMachine, type ApplyResult } from '../store/state-machine.js';
import type { ReplicationStatus, Replicator } from './replicator.js';

/**
 * A one-voter group without the Raft core: each command is appended to the log and applied in
 * one SQLite transaction, which is exactly what a single-voter Raft leader commits. It exists
 * until the Raft host drives single-node mode through the same `Replicator` interface; the log
 * format (`raft_log`, term 1) is the one the Raft host reads.
 */
export class SingleVoterReplicator implements Replicator {
  readonly stateMachine: StateMachine;
  private readonly appendEntry: Statement<[number, number, string, string]>;
  private closed = false;
  private readonly term = 1;

  constructor(private readonly db: SqliteDatabase, private readonly nodeId: string) {
    this.stateMachine = new StateMachine(db);
    this.appendEntry = db.prepare('INSERT INTO raft_log (idx, term, type, data) VALUES (?, ?, ?, ?)');
    this.replayUnapplied();
  }

  /** Applies log entries that were appended but not applied before a crash. */
  private replayUnapplied(): void {
    const rows = this.db
      .prepare('SELECT idx AS "index", term, data FROM raft_log WHERE idx > ? ORDER BY idx')
      .all(this.stateMachine.appliedIndex) as { index: number; term: number; data: string }[];
    this.stateMachine.apply(rows);
  }

  async propose(command: Command): Promise<ApplyResult> {
    if (this.closed) throw new NeuwerkError('NW_ERR_SHUTTING_DOWN', 'the node is shutting down and accepts no writes');
    const valid = validateCommand(command);
    const data = encodeCommand(valid);
    const index = this.stateMachine.appliedIndex + 1;
    const results = this.db.transaction(() => {
      this.appendEntry.run(index, this.term, 'normal', data);
      return this.stateMachine.apply([{ index, term: this.term, data }]);
    })();
    return results[0] as ApplyResult;
  }

  async linearizableRead(): Promise<void> {
    if (this.closed) throw new NeuwerkError('NW_ERR_SHUTTING_DOWN', 'the node is shutting down');
  }

  status(): ReplicationStatus {
    return {
      nodeId: this.nodeId,
      role: 'leader',
      leaderId: this.nodeId,
      term: this.term,
      commitIndex: this.stateMachine.appliedIndex,
      appliedIndex: this.stateMachine.appliedIndex,
      caughtUpAtStart: true,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
