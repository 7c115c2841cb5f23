/**
 * Raft messages from peers are shape-checked before the core sees them (`raftMessageProblem`):
 * everything a core sends passes after the trip through the frame codec, and a field of the wrong
 * type is named with its value — e.g. a snapshot chunk that arrives as Buffer#toJSON output.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { raftMessageProblem } from '../../src/cluster/raft-message.js';
import { encodeFrame, FrameDecoder } from '../../src/cluster/transport.js';
import type { Message } from '../../src/raft/index.js';
import { TestCluster } from '../sim/cluster.js';

function overTheWire(message: Message): unknown {
  const [frame] = new FrameDecoder().push(encodeFrame({ kind: 'raft', body: message })) as unknown as [{ body: unknown }];
  return frame.body;
}

const ALL_TYPES: readonly Message['type'][] = [
  'append',
  'append-resp',
  'vote',
  'pre-vote',
  'vote-resp',
  'pre-vote-resp',
  'heartbeat',
  'heartbeat-resp',
  'snapshot',
  'snapshot-resp',
  'timeout-now',
  'read-index',
  'read-index-resp',
];

describe('the shape check of Raft messages from peers', () => {
  it('passes every message a core sends, of every type, after the frame codec', () => {
    const c = new TestCluster({ voters: ['n1', 'n2', 'n3'], maxSnapshotChunkBytes: 5 });
    c.elect('n1');
    c.isolate('n3');
    for (let i = 0; i < 12; i++) c.propose('n1', `v${i}`);
    c.run(1, ['n1', 'n2']);
    c.compact('n1', c.node('n1').appliedIndex - 1);
    c.heal();
    c.run(20);
    c.raft('n2').readIndex('ctx-1');
    c.run(3);
    c.raft('n1').transferLeadership('n2');
    c.run(30);
    const seen = new Set(c.sent.map((m) => m.type));
    assert.deepEqual(
      ALL_TYPES.filter((type) => !seen.has(type)),
      [],
      'the scenario sends every message type',
    );
    for (const message of c.sent) assert.equal(raftMessageProblem(overTheWire(message)), null, JSON.stringify(message).slice(0, 200));
  });

  it('names the field and the value that are wrong', () => {
    const base = { from: 'n1', to: 'n2', term: 3 };
    const chunk = { ...base, type: 'snapshot', meta: { index: 9, term: 3, conf: { voters: ['n1'], learners: [] } }, offset: 0, totalBytes: 4, done: false };
    const cases: [unknown, RegExp][] = [
      [{ ...chunk, data: Buffer.from([1, 2, 3, 4]).toJSON() }, /^snapshot\.data is not binary \(an object with keys type, data\)$/],
      [{ ...chunk, data: new Uint8Array(4), meta: { index: 9, term: 3 } }, /^snapshot\.meta is not snapshot metadata/],
      [{ ...base, type: 'snapshot-resp', index: 9, offset: null, forOffset: 0 }, /^snapshot-resp\.offset is not a non-negative integer \(null\)$/],
      [{ ...base, type: 'heartbeat', commit: -1, readSeq: 0 }, /^heartbeat\.commit is not a non-negative integer \(-1\)$/],
      [{ ...base, type: 'append', index: 1, logTerm: 1, commit: 1, entries: [{ index: 2, term: 1, type: 'normal', data: 7 }] }, /^append\.entries \[0\] is not an entry/],
      [{ ...base, type: 'vote', lastLogIndex: 1, lastLogTerm: 1, transfer: 'yes' }, /^vote\.transfer is not a boolean \("yes"\)$/],
      [{ ...base, term: 1.5, type: 'timeout-now' }, /^timeout-now\.term is not a non-negative integer \(1\.5\)$/],
      [{ ...base, from: undefined, type: 'timeout-now' }, /^timeout-now\.from is not a string \(missing\)$/],
      [{ ...base, type: 'gossip' }, /^unknown type "gossip"$/],
      [[base], /^not an object$/],
      [null, /^not an object$/],
    ];
    for (const [message, expected] of cases) assert.match(raftMessageProblem(message) ?? 'accepted', expected);
  });
});
