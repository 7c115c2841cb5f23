import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stuckLearners } from '../../src/cluster/runtime.js';

describe('stuckLearners', () => {
  it('names learners unreachable for the whole threshold since they were first seen, and forgets those that left', () => {
    const since = new Map<string, number>();
    const peers = [
      { node_id: 'leader', role: 'leader' as const, status: 'healthy' as const },
      { node_id: 'stuck', role: 'learner' as const, status: 'unreachable' as const },
      { node_id: 'catching-up', role: 'learner' as const, status: 'lagging' as const },
    ];
    assert.deepEqual(stuckLearners(peers, since, 1_000, 60_000), [], 'just seen: not stuck yet');
    assert.deepEqual(stuckLearners(peers, since, 60_999, 60_000), []);
    assert.deepEqual(stuckLearners(peers, since, 61_000, 60_000), [{ node_id: 'stuck', learnerForMs: 60_000 }], 'a reachable learner never is');
    // Promoted (or removed): forgotten, so a later learner with the same id starts afresh.
    assert.deepEqual(stuckLearners([peers[0] as (typeof peers)[number]], since, 62_000, 60_000), []);
    assert.deepEqual([...since.keys()], []);
    assert.deepEqual(stuckLearners(peers, since, 63_000, 60_000), []);
  });
});
