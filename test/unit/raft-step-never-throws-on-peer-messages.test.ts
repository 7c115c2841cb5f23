/**
 * Robustness: `step` must handle any well-typed message from a peer — stale, duplicated,
 * reordered, from unknown nodes, with odd indexes — without throwing and without breaking the
 * node's own invariants (which are assertions inside the core).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TestCluster } from '../sim/cluster.js';
import type { Message } from '../../src/raft/index.js';

const peer = fc.constantFrom('n1', 'n2', 'n3', 'stranger');
const small = fc.nat(12);

const message: fc.Arbitrary<Message> = fc.oneof(
  fc.record({ type: fc.constant('heartbeat' as const), from: peer, to: fc.constant('n2'), term: small, commit: small, readSeq: small }),
  fc.record({ type: fc.constant('heartbeat-resp' as const), from: peer, to: fc.constant('n2'), term: small, readSeq: small }),
  fc.record({
    type: fc.constantFrom('vote' as const, 'pre-vote' as const),
    from: peer,
    to: fc.constant('n2'),
    term: small,
    lastLogIndex: small,
    lastLogTerm: small,
    transfer: fc.boolean(),
  }),
  fc.record({ type: fc.constantFrom('vote-resp' as const, 'pre-vote-resp' as const), from: peer, to: fc.constant('n2'), term: small, reject: fc.boolean() }),
  fc.record({
    type: fc.constant('append-resp' as const),
    from: peer,
    to: fc.constant('n2'),
    term: small,
    index: small,
    reject: fc.boolean(),
    rejectHint: small,
    logTerm: small,
  }),
  fc.record({ type: fc.constant('timeout-now' as const), from: peer, to: fc.constant('n2'), term: small }),
  fc.record({ type: fc.constant('read-index' as const), from: peer, to: fc.constant('n2'), term: small, ctx: fc.string() }),
  fc.record({ type: fc.constant('read-index-resp' as const), from: peer, to: fc.constant('n2'), term: small, ctx: fc.string(), index: small }),
  fc.record({ type: fc.constant('snapshot-resp' as const), from: peer, to: fc.constant('n2'), term: small, index: small, offset: small, forOffset: small }),
);

test('a node survives arbitrary sequences of stale or foreign peer messages', () => {
  fc.assert(
    fc.property(fc.array(message, { maxLength: 40 }), fc.boolean(), (msgs, asLeader) => {
      const c = new TestCluster({ voters: ['n1', 'n2', 'n3'] });
      c.elect(asLeader ? 'n2' : 'n1');
      c.propose(asLeader ? 'n2' : 'n1', 'x');
      for (const m of msgs) {
        c.raft('n2').step(m);
        c.processReady('n2');
        if (c.queue.length > 50) c.dropQueued();
      }
      const st = c.raft('n2').status();
      assert.ok(st.commit <= st.lastIndex);
      assert.ok(st.applied <= st.commit);
    }),
    { numRuns: 300 },
  );
});
