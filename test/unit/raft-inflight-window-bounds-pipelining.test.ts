/**
 * Flow control (etcd's Progress/Inflights): in replicate state the leader pipelines appends
 * without waiting for replies, but never has more than `maxInflightMsgs` unacknowledged appends to
 * one follower; each append carries at most `maxBytesPerAppend` of entries (at least one entry).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from '../sim/cluster.js';
import { entrySizeBytes } from '../../src/raft/index.js';
import { MAX_PROBE_BYTES } from '../../src/raft/node.js';
import type { AppendMessage } from '../../src/raft/index.js';

function appendsTo(c: TestCluster, to: string, from = 0): AppendMessage[] {
  return c.sent.slice(from).filter((m): m is AppendMessage => m.type === 'append' && m.to === to && m.entries.length > 0);
}

test('pipelining: appends to a replicating follower go out without waiting, up to the in-flight bound', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], maxInflightMsgs: 3, maxBytesPerAppend: 1 });
  c.elect('n1');
  c.run(1);
  assert.equal(c.raft('n1').status().progress?.['n2']?.state, 'replicate');
  // n2's acks are lost from now on.
  c.addFilter((m) => m.type === 'append-resp' && m.from === 'n2');
  const before = c.sent.length;
  for (let i = 0; i < 10; i++) {
    c.raft('n1').propose(`v${i}`);
    c.processReady('n1');
  }
  assert.equal(appendsTo(c, 'n2', before).length, 3, 'exactly maxInflightMsgs appends in flight');
  assert.equal(c.raft('n1').status().progress?.['n2']?.inflight, 3);
  // n3 acks, so it keeps receiving.
  c.stabilize();
  assert.ok(appendsTo(c, 'n3', before).length >= 10);
  assert.equal(appendsTo(c, 'n2', before).length, 3);
  // Once acks flow again, the window drains and n2 catches up.
  c.heal();
  c.run(3);
  assert.equal(c.node('n2').applied.length, 10);
});

test('a heartbeat reply frees one slot so lost appends cannot wedge a follower forever', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], maxInflightMsgs: 2, maxBytesPerAppend: 1 });
  c.elect('n1');
  c.run(1);
  c.addFilter((m) => m.type === 'append' && m.to === 'n2');
  for (let i = 0; i < 6; i++) c.raft('n1').propose(`v${i}`);
  c.stabilize();
  c.heal();
  c.run(5);
  assert.equal(c.node('n2').applied.length, 6);
});

test('max bytes per append: entries are split across messages, each within the bound', () => {
  const maxBytes = 100;
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], maxBytesPerAppend: maxBytes });
  c.elect('n1');
  c.run(1);
  c.isolate('n2');
  const data = 'x'.repeat(30); // 46 bytes with overhead: two per message
  for (let i = 0; i < 9; i++) c.raft('n1').propose(`${i}${data}`);
  c.stabilize();
  c.heal();
  const before = c.sent.length;
  c.run(3);
  const msgs = appendsTo(c, 'n2', before);
  assert.ok(msgs.length >= 5, `${msgs.length} messages`);
  for (const m of msgs) {
    const bytes = m.entries.reduce((sum, e) => sum + entrySizeBytes(e), 0);
    assert.ok(m.entries.length === 1 || bytes <= maxBytes, `${bytes} bytes in ${m.entries.length} entries`);
  }
  assert.equal(c.node('n2').applied.length, 9);
});

test('max bytes per append: an entry larger than the bound is still sent, alone', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], maxBytesPerAppend: 10 });
  c.elect('n1');
  c.run(1);
  const before = c.sent.length;
  c.raft('n1').propose('y'.repeat(100));
  c.raft('n1').propose('z');
  c.stabilize();
  const msgs = appendsTo(c, 'n2', before);
  assert.ok(msgs.every((m) => m.entries.length === 1));
  c.run(1);
  assert.equal(c.node('n2').applied.length, 2);
});

test('probing appends carry at most MAX_PROBE_BYTES; once the follower replicates, appends are full size again', () => {
  const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], maxBytesPerAppend: 1024 * 1024 });
  c.elect('n1');
  c.run(1);
  c.isolate('n2');
  const data = 'p'.repeat(2048);
  for (let i = 0; i < 100; i++) c.raft('n1').propose(`${i}${data}`); // about 200 KiB that n2 misses
  c.stabilize();
  // A new leader knows nothing of n2: it probes from its own last index down.
  c.raft('n1').transferLeadership('n3');
  for (let i = 0; i < 20 && c.raft('n3').status().role !== 'leader'; i++) c.run(1, ['n1', 'n3']);
  assert.equal(c.raft('n3').status().role, 'leader');
  assert.equal(c.raft('n3').status().progress?.['n2']?.state, 'probe');
  const n2Last = c.raft('n2').status().lastIndex;
  c.heal();
  const before = c.sent.length;
  c.run(5);
  const msgs = appendsTo(c, 'n2', before).filter((m) => m.from === 'n3');
  const bytes = (m: AppendMessage): number => m.entries.reduce((sum, e) => sum + entrySizeBytes(e), 0);
  // The probes that find the match point (right after n2's last entry) are bounded...
  const probes = msgs.filter((m) => m.index === n2Last);
  assert.ok(probes.length >= 1, `no probe after index ${n2Last}: ${msgs.map((m) => m.index).join(',')}`);
  for (const probe of probes) assert.ok(bytes(probe) <= MAX_PROBE_BYTES, `probe of ${bytes(probe)} bytes`);
  // ...and what follows in replicate state is not.
  assert.ok(msgs.some((m) => m.index > n2Last && bytes(m) > MAX_PROBE_BYTES), msgs.map((m) => `${m.index}:${bytes(m)}`).join(','));
  assert.equal(c.node('n2').applied.length, c.node('n3').applied.length);
});
