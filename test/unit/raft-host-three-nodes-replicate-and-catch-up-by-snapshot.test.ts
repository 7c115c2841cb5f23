import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openRaftReplicator, type RaftReplicator } from '../../src/cluster/raft-host.js';
import { raftMessageProblem } from '../../src/cluster/raft-message.js';
import { encodeFrame, FrameDecoder } from '../../src/cluster/transport.js';
import type { RaftSettings } from '../../src/config/load.js';
import { NeuwerkError } from '../../src/errors.js';
import type { Message } from '../../src/raft/index.js';
import type { Command } from '../../src/store/commands.js';
import { openStoreDatabase, type SqliteDatabase } from '../../src/store/database.js';

const RAFT: RaftSettings = { tickMs: 10, electionTimeoutTicks: 10, heartbeatTicks: 1, snapshotThresholdEntries: 10_000, snapshotTrailingEntries: 1_000 };
/** Bound on any wait for the in-process cluster to converge. */
const CONVERGE_TIMEOUT_MS = 10_000;
const POLL_INTERVAL_MS = 10;
const IDS = ['n1', 'n2', 'n3'];

function put(key: string, value: string): Command {
  return { v: 1, type: 'keyval.put', zone: 'z', key, value, expires_at: null };
}

async function waitFor(what: string, condition: () => boolean): Promise<void> {
  const deadline = performance.now() + CONVERGE_TIMEOUT_MS;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}

/**
 * A message as the peer gets it from the cluster transport: encoded into a frame, decoded, and
 * checked as `ClusterRuntime` checks it before its core sees it (a snapshot read from its file is
 * a Buffer, which once went over the wire as `{type: 'Buffer', data: [...]}`).
 */
function overTheWire(message: Message): Message {
  const frames = new FrameDecoder().push(encodeFrame({ kind: 'raft', body: message }));
  assert.equal(frames.length, 1);
  const body = (frames[0] as { body: unknown }).body;
  const problem = raftMessageProblem(body);
  assert.equal(problem, null, `a ${message.type} message from ${message.from} arrives malformed: ${problem}`);
  return body as Message;
}

/**
 * Three real hosts (own SQLite file, snapshots dir, ticker) wired by an in-process transport that
 * delivers each message in a later turn through the real frame codec, with links that can be cut.
 */
class InProcessCluster {
  readonly hosts = new Map<string, RaftReplicator>();
  readonly dbs = new Map<string, SqliteDatabase>();
  readonly fatal: Error[] = [];
  /** Every message handed to the transport, in order. */
  readonly sent: Message[] = [];
  private readonly cut = new Set<string>();

  constructor(private readonly dir: string, private readonly raft: RaftSettings, private readonly proposeTimeoutMs?: number) {}

  async start(): Promise<void> {
    for (const id of IDS) {
      const dbPath = join(this.dir, id, 'raft.db');
      const db = openStoreDatabase(dbPath);
      this.dbs.set(id, db);
      const host = await openRaftReplicator({
        db,
        dbPath,
        nodeId: id,
        snapshotsDir: join(this.dir, id, 'snapshots'),
        raft: this.raft,
        bootstrapVoters: IDS,
        send: (messages) => this.deliver(messages),
        onFatal: (err) => this.fatal.push(err),
        ...(this.proposeTimeoutMs !== undefined ? { proposeTimeoutMs: this.proposeTimeoutMs } : {}),
      });
      this.hosts.set(id, host);
    }
  }

  private deliver(messages: Message[]): void {
    for (const message of messages) {
      this.sent.push(message);
      if (this.cut.has(message.from) || this.cut.has(message.to)) continue;
      const copy = overTheWire(message);
      setImmediate(() => {
        if (this.cut.has(copy.from) || this.cut.has(copy.to)) return;
        this.hosts.get(copy.to)?.step(copy);
      });
    }
  }

  isolate(id: string): void {
    this.cut.add(id);
  }

  heal(): void {
    this.cut.clear();
  }

  leader(): RaftReplicator | null {
    const leaders = [...this.hosts.values()].filter((h) => h.status().role === 'leader');
    return leaders.length === 1 ? leaders[0]! : null;
  }

  async waitForLeader(except?: string): Promise<RaftReplicator> {
    await waitFor('a single leader', () => {
      const leader = this.leader();
      return leader !== null && leader.status().nodeId !== except;
    });
    return this.leader()!;
  }

  async stop(): Promise<void> {
    for (const host of this.hosts.values()) await host.close();
    for (const db of this.dbs.values()) db.close();
  }
}

describe('three Raft hosts over an in-process transport', () => {
  const dir = mkdtempSync(join(tmpdir(), 'neuwerk-raft-cluster-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('elect one leader, replicate a write to every state machine, and serve linearizable reads on a follower', async () => {
    const cluster = new InProcessCluster(join(dir, 'basic'), RAFT);
    await cluster.start();
    try {
      const leader = await cluster.waitForLeader();
      const leaderId = leader.status().nodeId;
      const result = await leader.propose(put('a', '1'));
      assert.equal(result.type, 'keyval.put');

      const follower = [...cluster.hosts.values()].find((h) => h !== leader)!;
      await assert.rejects(follower.propose(put('b', '2')), (err: unknown) => {
        assert.ok(err instanceof NeuwerkError);
        assert.equal(err.code, 'NW_ERR_NOT_LEADER');
        assert.deepEqual(err.detail, { leaderId });
        return true;
      });
      await follower.linearizableRead();
      assert.equal(follower.stateMachine.getKeyval('z', 'a', 0)?.value, '1', 'a read after the write on a follower sees it');
      await waitFor('every node applied the write', () => [...cluster.hosts.values()].every((h) => h.stateMachine.getKeyval('z', 'a', 0)?.value === '1'));
      assert.deepEqual(cluster.fatal, []);
    } finally {
      await cluster.stop();
    }
  });

  it('the leader applies the entries a commit-only Ready committed inside that Ready\'s transaction', async () => {
    const cluster = new InProcessCluster(join(dir, 'shared-transaction'), RAFT);
    await cluster.start();
    try {
      const leader = await cluster.waitForLeader();
      await leader.propose(put('warm', 'up'));
      const db = cluster.dbs.get(leader.status().nodeId)!;
      const readCommit = db.prepare("SELECT value FROM raft_meta WHERE key = 'hard_state'");
      const calls: { inTransaction: boolean; commit: number; last: number }[] = [];
      const apply = leader.stateMachine.applyDeferringNotify.bind(leader.stateMachine);
      leader.stateMachine.applyDeferringNotify = (entries) => {
        // Read on the store's own connection: it sees what the open transaction wrote.
        const commit = (JSON.parse((readCommit.get() as { value: string }).value) as { commit: number }).commit;
        calls.push({ inTransaction: db.inTransaction, commit, last: entries[entries.length - 1]!.index });
        return apply(entries);
      };
      const toldInTransaction: boolean[] = [];
      leader.stateMachine.onApplied(() => toldInTransaction.push(db.inTransaction));
      for (let i = 0; i < 5; i++) await leader.propose(put(`k${i}`, `v${i}`));
      assert.ok(calls.length > 0);
      assert.equal(toldInTransaction.length, calls.length);
      assert.ok(toldInTransaction.every((inside) => !inside), 'the state machine\'s listeners are told after the commit');
      // Each write commits once a follower acknowledges it: a Ready that only raises the commit index.
      for (const call of calls) {
        assert.equal(call.inTransaction, true, 'applied inside the persist transaction');
        assert.ok(call.commit >= call.last, `the commit index ${call.commit} written in the same transaction covers the applied entry ${call.last}`);
      }
      assert.deepEqual(cluster.fatal, []);
    } finally {
      await cluster.stop();
    }
  });

  it('the leader answers a write before it sends the followers the commit index that includes it', async () => {
    const cluster = new InProcessCluster(join(dir, 'answer-first'), RAFT);
    await cluster.start();
    try {
      const leader = await cluster.waitForLeader();
      const leaderId = leader.status().nodeId;
      await leader.propose(put('warm', 'up'));
      const commitSent = (index: number): boolean => cluster.sent.some((m) => m.from === leaderId && 'commit' in m && m.commit >= index);
      for (let i = 0; i < 3; i++) {
        const result = await leader.propose(put(`k${i}`, `v${i}`));
        assert.equal(result.type, 'keyval.put');
        const index = (result as { record: { version: number } }).record.version;
        assert.equal(commitSent(index), false, `commit index ${index} went out before the answer`);
        await waitFor(`the followers to be sent commit index ${index}`, () => commitSent(index));
      }
      await waitFor('every node applied the writes', () => [...cluster.hosts.values()].every((h) => h.stateMachine.getKeyval('z', 'k2', 0)?.value === 'v2'));
      assert.deepEqual(cluster.fatal, []);
    } finally {
      await cluster.stop();
    }
  });

  it('a follower cut off while the leader compacted past it catches up by installing the snapshot', async () => {
    const raft = { ...RAFT, snapshotThresholdEntries: 30, snapshotTrailingEntries: 5 };
    const cluster = new InProcessCluster(join(dir, 'snapshot'), raft);
    await cluster.start();
    try {
      let leader = await cluster.waitForLeader();
      const laggard = IDS.find((id) => id !== leader.status().nodeId)!;
      cluster.isolate(laggard);
      for (let i = 0; i < 80; i++) await leader.propose(put(`k${i}`, `v${i}`));
      assert.ok(leader.raftStatus().snapshotIndex >= 30, 'the leader compacted');
      cluster.heal();
      leader = await cluster.waitForLeader();
      const target = leader.status().appliedIndex;
      const lagging = cluster.hosts.get(laggard)!;
      await waitFor('the laggard to catch up', () => lagging.status().appliedIndex >= target);
      for (let i = 0; i < 80; i++) assert.equal(lagging.stateMachine.getKeyval('z', `k${i}`, 0)?.value, `v${i}`);
      assert.ok(lagging.raftStatus().snapshotIndex >= 30, 'it installed a snapshot rather than replaying a log that no longer exists');
      // It keeps the snapshot file it holds for its own followers, and nothing else once settled: a
      // compaction of its own may be in flight right at catch-up (a temporary copy and a published
      // file not yet recorded), whose finish removes the file it supersedes.
      const snapshotsDir = join(dir, 'snapshot', laggard, 'snapshots');
      const recordedFile = (): RegExp => new RegExp(`^snap-\\d+-${lagging.raftStatus().snapshotIndex}\\.db$`);
      await waitFor('the laggard to hold exactly its recorded snapshot file', () => {
        const files = readdirSync(snapshotsDir);
        return files.length === 1 && recordedFile().test(files[0] as string);
      });
      assert.deepEqual(cluster.fatal, []);
    } finally {
      await cluster.stop();
    }
  });

  it('a membership change resolves once committed, and a second one while it is pending is refused with NW_ERR_CONFLICT', async () => {
    const cluster = new InProcessCluster(join(dir, 'membership'), RAFT);
    await cluster.start();
    try {
      const leader = await cluster.waitForLeader();
      await leader.propose(put('first', 'commit of this term'));
      const adding = leader.proposeConfChange({ type: 'add-learner', nodeId: 'n4' });
      await assert.rejects(leader.proposeConfChange({ type: 'add-learner', nodeId: 'n5' }), (err: unknown) => {
        assert.ok(err instanceof NeuwerkError);
        assert.equal(err.code, 'NW_ERR_CONFLICT');
        return true;
      });
      await adding;
      assert.deepEqual(leader.raftStatus().conf, { voters: IDS, learners: ['n4'] });
      const applied = leader.status().appliedIndex;
      await waitFor('the followers to apply the change', () => [...cluster.hosts.values()].every((h) => h.status().appliedIndex >= applied));
      assert.deepEqual(cluster.fatal, []);
    } finally {
      await cluster.stop();
    }
  });

  it('a proposal on a leader cut off from its followers times out with NW_ERR_TIMEOUT (outcome unknown)', async () => {
    const cluster = new InProcessCluster(join(dir, 'timeout'), RAFT, 300);
    await cluster.start();
    try {
      const leader = await cluster.waitForLeader();
      await leader.propose(put('before', 'cut'));
      for (const id of IDS) if (id !== leader.status().nodeId) cluster.isolate(id);
      const startedMs = performance.now();
      await assert.rejects(leader.propose(put('during', 'cut')), (err: unknown) => {
        assert.ok(err instanceof NeuwerkError);
        assert.equal(err.code, 'NW_ERR_TIMEOUT');
        return true;
      });
      assert.ok(performance.now() - startedMs >= 290, 'it waited for the bound');
    } finally {
      await cluster.stop();
    }
  });
});
