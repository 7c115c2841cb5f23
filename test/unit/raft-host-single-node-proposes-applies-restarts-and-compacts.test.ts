import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { openRaftReplicator, type RaftReplicator } from '../../src/cluster/raft-host.js';
import type { RaftSettings } from '../../src/config/load.js';
import { InvariantViolation, NeuwerkError } from '../../src/errors.js';
import { NodeMetrics } from '../../src/metrics/registry.js';
import { encodeCommand, type Command } from '../../src/store/commands.js';
import { openStoreDatabase, type SqliteDatabase } from '../../src/store/database.js';
import { RaftStorage } from '../../src/store/raft-storage.js';

/** Generous bound for a one-voter election on a loaded CI machine (the benchmark measures the real figure). */
const TIME_TO_LEADER_MS_MAX = 1_000;

const RAFT: RaftSettings = { tickMs: 20, electionTimeoutTicks: 10, heartbeatTicks: 1, snapshotThresholdEntries: 10_000, snapshotTrailingEntries: 1_000 };

function put(key: string, value: string): Command {
  return { v: 1, type: 'keyval.put', zone: 'z', key, value, expires_at: null };
}

function assertCode(code: string): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof NeuwerkError, `expected a NeuwerkError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  };
}

describe('the Raft host as a single-voter group on a real SQLite file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'neuwerk-raft-host-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  interface Opened {
    replicator: RaftReplicator;
    db: SqliteDatabase;
    fatal: Error[];
    close(): Promise<void>;
  }

  async function open(name: string, options: { raft?: Partial<RaftSettings>; bootstrapVoters?: string[] | null; metrics?: NodeMetrics } = {}): Promise<Opened> {
    const dbPath = join(dir, name, 'raft.db');
    const db = openStoreDatabase(dbPath);
    const fatal: Error[] = [];
    const replicator = await openRaftReplicator({
      db,
      dbPath,
      nodeId: 'n1',
      snapshotsDir: join(dir, name, 'snapshots'),
      raft: { ...RAFT, ...options.raft },
      bootstrapVoters: options.bootstrapVoters === undefined ? ['n1'] : options.bootstrapVoters,
      send: () => undefined,
      onFatal: (err) => fatal.push(err),
      ...(options.metrics ? { metrics: options.metrics } : {}),
    });
    return {
      replicator,
      db,
      fatal,
      close: async () => {
        await replicator.close();
        db.close();
      },
    };
  }

  it('elects itself fast, and a proposal resolves with the applied result', async () => {
    const metrics = new NodeMetrics('n1');
    const startedMs = performance.now();
    const node = await open('basic', { metrics });
    const timeToLeaderMs = performance.now() - startedMs;
    assert.ok(timeToLeaderMs < TIME_TO_LEADER_MS_MAX, `leader after ${timeToLeaderMs.toFixed(1)} ms`);
    assert.equal(node.replicator.status().role, 'leader');
    assert.equal(node.replicator.status().leaderId, 'n1');

    const result = await node.replicator.propose(put('a', '1'));
    assert.equal(result.type, 'keyval.put');
    assert.equal(result.type === 'keyval.put' && result.record.value, '1');
    const status = node.replicator.status();
    assert.equal(status.appliedIndex, status.commitIndex);
    assert.equal(status.caughtUpAtStart, true);
    assert.equal(node.replicator.stateMachine.getKeyval('z', 'a', 0)?.value, '1');

    // Many proposals in one turn become one Ready: one persist, one apply.
    const appendsBefore = (await metrics.appendLatency.get()).values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => node.replicator.propose(put(`k${i}`, `v${i}`))));
    assert.equal(results.length, 50);
    const appendsAfter = (await metrics.appendLatency.get()).values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
    assert.equal(appendsAfter - appendsBefore, 1, '50 proposals of one turn were persisted in one transaction');
    await node.close();
  });

  it('refuses an invalid command before it reaches the log', async () => {
    const node = await open('invalid');
    const before = node.replicator.status().commitIndex;
    await assert.rejects(node.replicator.propose({ v: 1, type: 'keyval.put', zone: 'bad zone!', key: 'k', value: 'v', expires_at: null }), assertCode('NW_ERR_COMMAND_INVALID'));
    assert.equal(node.replicator.raftStatus().lastIndex, before);
    await node.close();
  });

  it('linearizableRead resolves once the state machine has applied the read index', async () => {
    const node = await open('read');
    const write = node.replicator.propose(put('r', 'x'));
    await node.replicator.linearizableRead();
    assert.equal(node.replicator.stateMachine.getKeyval('z', 'r', 0)?.value, 'x', 'a write proposed before the read is visible');
    await write;
    await node.close();
  });

  it('restart replays the log and keeps state, term and vote', async () => {
    const first = await open('restart');
    for (let i = 0; i < 5; i++) await first.replicator.propose(put(`k${i}`, `v${i}`));
    const { term, commitIndex } = first.replicator.status();
    await first.close();

    const second = await open('restart', { bootstrapVoters: null });
    const status = second.replicator.status();
    assert.equal(status.role, 'leader', 'a one-voter group restarts as leader without the bootstrap flag');
    assert.ok(status.term > term, 'a new term');
    assert.equal(status.caughtUpAtStart, true);
    assert.ok(status.appliedIndex >= commitIndex);
    assert.equal(second.replicator.stateMachine.getKeyval('z', 'k4', 0)?.value, 'v4');
    const result = await second.replicator.propose(put('after', 'restart'));
    assert.ok(result.type === 'keyval.put' && result.record.version > commitIndex, 'new entries continue the log');
    await second.close();
  });

  it('applies entries that were committed but not applied before a crash', async () => {
    const name = 'unapplied';
    const dbPath = join(dir, name, 'raft.db');
    const db = openStoreDatabase(dbPath);
    const storage = RaftStorage.open({ db, dbPath, snapshotsDir: join(dir, name, 'snapshots'), nodeId: 'n1', bootstrapVoters: ['n1'], appliedIndex: 0 });
    // What a crash between persist and apply leaves behind.
    storage.persist({
      hardState: { term: 1, vote: 'n1', commit: 3 },
      entries: [
        { index: 1, term: 1, type: 'normal', data: '' },
        { index: 2, term: 1, type: 'normal', data: encodeCommand(put('c1', 'one')) },
        { index: 3, term: 1, type: 'normal', data: encodeCommand(put('c2', 'two')) },
      ],
    });
    db.close();
    const node = await open(name);
    await node.replicator.linearizableRead();
    assert.equal(node.replicator.stateMachine.getKeyval('z', 'c2', 0)?.value, 'two');
    assert.equal(node.replicator.status().caughtUpAtStart, true);
    await node.close();
  });

  it('compacts at the threshold, keeping trailing entries, and restarts from the snapshot plus the log after it', async () => {
    const raft = { snapshotThresholdEntries: 20, snapshotTrailingEntries: 5 };
    const node = await open('compact', { raft });
    for (let i = 0; i < 30; i++) await node.replicator.propose(put(`k${i}`, `v${i}`));
    // The snapshot file is made durable off the loop; the compaction lands a few fsyncs later.
    for (let i = 0; i < 200 && node.replicator.raftStatus().snapshotIndex < 20; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    const snapshotIndex = node.replicator.raftStatus().snapshotIndex;
    assert.ok(snapshotIndex >= 20, `a snapshot was taken (at ${snapshotIndex})`);
    assert.deepEqual(readdirSync(join(dir, 'compact', 'snapshots')), [`snap-${node.replicator.status().term}-${snapshotIndex}.db`], 'only the newest snapshot file is kept');
    const firstRow = (node.db.prepare('SELECT MIN(idx) AS first FROM raft_log').get() as { first: number }).first;
    assert.equal(firstRow, snapshotIndex - 5 + 1, 'the trailing entries before the snapshot are kept for slow followers');
    const applied = node.replicator.status().appliedIndex;
    await node.close();

    const again = await open('compact', { raft, bootstrapVoters: null });
    assert.equal(again.replicator.raftStatus().snapshotIndex, snapshotIndex);
    assert.ok(again.replicator.status().appliedIndex >= applied);
    for (let i = 0; i < 30; i++) assert.equal(again.replicator.stateMachine.getKeyval('z', `k${i}`, 0)?.value, `v${i}`);
    await again.replicator.propose(put('more', 'yes'));
    await again.close();
  });

  it('a snapshot taken while writes go on holds exactly the state at the index it is recorded at', async () => {
    const metrics = new NodeMetrics('n1');
    const raft = { snapshotThresholdEntries: 500, snapshotTrailingEntries: 10 };
    const node = await open('compact-under-load', { raft, metrics });
    // Every write overwrites one of 16 keys, so the state differs at every index.
    const writes = new Map<number, { key: string; value: string }>();
    let n = 0;
    while (node.replicator.raftStatus().snapshotIndex === 0 && n < 20_000) {
      const batch = await Promise.all(
        Array.from({ length: 25 }, () => {
          n += 1;
          const key = `k${n % 16}`;
          const value = `v${n}`;
          return node.replicator.propose(put(key, value)).then((result) => ({ key, value, result }));
        }),
      );
      for (const { key, value, result } of batch) if (result.type === 'keyval.put') writes.set(result.record.version, { key, value });
    }
    const snapshotIndex = node.replicator.raftStatus().snapshotIndex;
    assert.ok(snapshotIndex >= 500, `a snapshot was taken (at ${snapshotIndex})`);
    const file = join(dir, 'compact-under-load', 'snapshots', `snap-${node.replicator.status().term}-${snapshotIndex}.db`);
    const image = new Database(file, { readonly: true });
    try {
      const applied = image.prepare("SELECT value FROM sm_meta WHERE key = 'applied_index'").get() as { value: string };
      assert.equal(Number(applied.value), snapshotIndex, 'the file holds the state at the index it is recorded at');
      const expected = new Map<string, string>();
      for (const [index, write] of [...writes].sort((a, b) => a[0] - b[0])) if (index <= snapshotIndex) expected.set(write.key, write.value);
      const rows = image.prepare("SELECT key, value FROM keyval WHERE zone = 'z'").all() as { key: string; value: string }[];
      assert.deepEqual(new Map(rows.map((r) => [r.key, r.value])), expected);
    } finally {
      image.close();
    }
    const created = (await metrics.raftSnapshots.get()).values[0]?.value ?? 0;
    assert.ok(created >= 1, `the snapshot was counted (${created})`);
    await node.close();
  });

  it('a committed entry that fails to apply stops the node through onFatal, and nothing more is accepted', async () => {
    const name = 'fatal';
    const dbPath = join(dir, name, 'raft.db');
    const db = openStoreDatabase(dbPath);
    const storage = RaftStorage.open({ db, dbPath, snapshotsDir: join(dir, name, 'snapshots'), nodeId: 'n1', bootstrapVoters: ['n1'], appliedIndex: 0 });
    storage.persist({
      hardState: { term: 1, vote: 'n1', commit: 2 },
      entries: [
        { index: 1, term: 1, type: 'normal', data: encodeCommand(put('ok', 'fine')) },
        { index: 2, term: 1, type: 'normal', data: '{"v":1,"type":"no.such.command"}' },
      ],
    });
    db.close();
    const node = await open(name);
    assert.equal(node.fatal.length, 1);
    assert.ok(node.fatal[0] instanceof InvariantViolation, String(node.fatal[0]));
    assert.match(node.fatal[0]!.message, /committed entry 2 is not a valid command/);
    assert.equal(node.replicator.stateMachine.appliedIndex, 0, 'the failing batch changed nothing');
    await assert.rejects(node.replicator.propose(put('x', 'y')), assertCode('NW_ERR_SHUTTING_DOWN'));
    await node.close();
  });

  it('close rejects pending proposals with NW_ERR_SHUTTING_DOWN', async () => {
    const node = await open('close');
    const pending = node.replicator.propose(put('late', 'write'));
    await node.replicator.close();
    await assert.rejects(pending, assertCode('NW_ERR_SHUTTING_DOWN'));
    await assert.rejects(node.replicator.propose(put('later', 'write')), assertCode('NW_ERR_SHUTTING_DOWN'));
    await assert.rejects(node.replicator.linearizableRead(), assertCode('NW_ERR_SHUTTING_DOWN'));
    node.db.close();
  });

  it('a node that is not the only voter returns at once and refuses proposals with NW_ERR_NOT_LEADER', async () => {
    const node = await open('not-leader', { bootstrapVoters: ['n1', 'n2'] });
    assert.equal(node.replicator.status().role, 'follower');
    await assert.rejects(node.replicator.propose(put('a', 'b')), (err: unknown) => {
      assertCode('NW_ERR_NOT_LEADER')(err);
      assert.deepEqual((err as NeuwerkError).detail, { leaderId: null });
      return true;
    });
    await assert.rejects(node.replicator.linearizableRead(), assertCode('NW_ERR_NO_LEADER'));
    await node.close();
  });
});
