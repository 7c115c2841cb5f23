/**
 * Log compaction and InstallSnapshot (Raft §7; Ongaro 2014, §5.3): "the leader must occasionally
 * send snapshots to followers that lag behind ... when the leader has already discarded the next
 * log entry that it needs to send to a follower". The image travels in chunks of at most
 * `maxSnapshotChunkBytes`, each acknowledged, and is installed only once complete.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster, encodeAppliedImage } from '../sim/cluster.js';
import type { SnapshotMessage } from '../../src/raft/index.js';

const CHUNK_BYTES = 7;

function laggingFollower(): TestCluster {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], maxSnapshotChunkBytes: CHUNK_BYTES });
  c.elect('n1');
  c.isolate('n3');
  for (let i = 0; i < 20; i++) c.propose('n1', `v${i}`);
  c.run(1, ['n1', 'n2']);
  // Keep only a short trailing window: n3 needs entries the leader no longer has.
  c.compact('n1', c.node('n1').appliedIndex - 2);
  assert.ok(c.raft('n1').status().firstIndex > 2);
  return c;
}

test('§7: a follower behind the compacted log receives a chunked snapshot, then the log', () => {
  const c = laggingFollower();
  const image = encodeAppliedImage(c.node('n1').applied);
  c.heal();
  c.run(5);
  const chunks = c.sent.filter((m): m is SnapshotMessage => m.type === 'snapshot' && m.to === 'n3');
  assert.ok(chunks.length >= Math.ceil(image.length / CHUNK_BYTES), `${chunks.length} chunks`);
  assert.ok(chunks.every((m) => m.data.length <= CHUNK_BYTES));
  assert.deepEqual(chunks[0]!.offset, 0);
  assert.equal(chunks.filter((m) => m.done).length >= 1, true);
  // Chunks were acknowledged one by one.
  assert.ok(c.sent.filter((m) => m.type === 'snapshot-resp' && m.from === 'n3').length >= chunks.length - 1);
  const installed = c.node('n3').readies.filter((rd) => rd.snapshot !== undefined);
  assert.equal(installed.length, 1, 'installed exactly once, after the last chunk');
  assert.deepEqual(installed[0]!.snapshot!.data, image);
  assert.deepEqual(c.node('n3').applied, c.node('n1').applied);
  // Replication continues from the log afterwards.
  c.propose('n1', 'after');
  c.run(2);
  assert.deepEqual(c.node('n3').applied.at(-1), 'after');
  assert.equal(c.raft('n1').status().progress?.['n3']?.state, 'replicate');
});

test('§7: lost chunks are retransmitted and the transfer completes', () => {
  const c = laggingFollower();
  c.heal();
  let dropped = 0;
  c.addFilter((m) => m.type === 'snapshot' && m.offset > 0 && dropped++ % 3 === 0);
  c.run(80);
  assert.ok(dropped > 0);
  assert.deepEqual(c.node('n3').applied, c.node('n1').applied);
});

test('§7: a follower that restarts mid-transfer gets the snapshot from the beginning', () => {
  const c = laggingFollower();
  c.heal();
  // Deliver a few chunks, then crash n3 (its partial image is lost) and restart it.
  c.tick(1, ['n1']);
  for (let i = 0; i < 6 && c.queue.length > 0; i++) {
    const batch = c.queue;
    c.queue = [];
    for (const m of batch) c.deliverOne(m);
  }
  assert.ok(c.sent.some((m) => m.type === 'snapshot' && m.offset > 0));
  c.crash('n3');
  c.restart('n3');
  c.run(80);
  assert.deepEqual(c.node('n3').applied, c.node('n1').applied);
});

test('a restarted node loads its snapshot and the retained log, and serves as leader from it', () => {
  const c = laggingFollower();
  c.run(1, ['n1', 'n2']);
  c.compact('n2');
  c.crash('n2');
  c.restart('n2');
  assert.deepEqual(c.node('n2').applied, c.node('n1').applied.slice(0, c.node('n2').applied.length));
  c.run(2, ['n1', 'n2']);
  assert.deepEqual(c.node('n2').applied, c.node('n1').applied);
  // n2 can become leader and bring n3 up to date with its own snapshot.
  c.crash('n1');
  c.heal();
  c.campaign('n2');
  c.run(40, ['n2', 'n3']);
  assert.deepEqual(c.leaders().filter((id) => id !== 'n1').length, 1);
  assert.deepEqual(c.node('n3').applied, c.node('n2').applied);
});

test('snapshotMetaAt reports the term and configuration in effect at an applied index', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], joiners: ['n4'] });
  c.elect('n1');
  c.propose('n1', 'a');
  c.raft('n1').proposeConfChange({ type: 'add-learner', nodeId: 'n4' });
  c.run(2);
  const last = c.raft('n1').status().lastIndex;
  assert.deepEqual(c.raft('n1').snapshotMetaAt(2), { index: 2, term: 1, conf: { voters: ['n1', 'n2', 'n3'], learners: [] } });
  assert.deepEqual(c.raft('n1').snapshotMetaAt(last), { index: last, term: 1, conf: { voters: ['n1', 'n2', 'n3'], learners: ['n4'] } });
});

test('snapshotMetaAt returns null for an index superseded by a snapshot restored meanwhile (sim seed 189)', () => {
  const c = laggingFollower();
  const n3 = c.node('n3');
  const applied = n3.appliedIndex;
  assert.ok(n3.raft.snapshotMetaAt(applied) !== null);
  // The leader's snapshot arrives after the host applied `applied` but before it snapshots there.
  const meta = c.raft('n1').snapshotMetaAt(c.node('n1').appliedIndex)!;
  const data = encodeAppliedImage(c.node('n1').applied);
  const term = c.raft('n1').status().term;
  n3.raft.step({ type: 'snapshot', from: 'n1', to: 'n3', term, meta, offset: 0, totalBytes: data.length, data, done: true });
  assert.equal(n3.raft.snapshotMetaAt(applied), null, 'the host must skip this compaction');
  c.processReady('n3');
  assert.deepEqual(n3.applied, c.node('n1').applied);
});
