/**
 * Property tests of the quorum arithmetic against naive oracles (etcd's quorum tests): the commit
 * index is the largest index held by a majority, and an election is won/lost exactly when a
 * majority granted/can no longer grant.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { committedIndex, voteResult, hasQuorum, quorumSize } from '../../src/raft/index.js';

const voterSets = fc.uniqueArray(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'), { minLength: 1, maxLength: 9 });

test('committedIndex equals the largest m that a majority has matched', () => {
  fc.assert(
    fc.property(voterSets, fc.array(fc.nat(50), { minLength: 9, maxLength: 9 }), (voters, matches) => {
      const matchOf = (id: string): number => matches[id.charCodeAt(0) - 97]!;
      let oracle = 0;
      for (let m = 0; m <= 50; m++) {
        const holders = voters.filter((v) => matchOf(v) >= m).length;
        if (holders > voters.length / 2) oracle = m;
      }
      assert.equal(committedIndex(voters, matchOf), oracle);
    }),
    { numRuns: 2000 },
  );
});

test('voteResult agrees with counting by hand; non-voters are ignored', () => {
  const vote = fc.constantFrom<boolean | undefined>(true, false, undefined);
  fc.assert(
    fc.property(voterSets, fc.array(vote, { minLength: 12, maxLength: 12 }), (voters, raw) => {
      const votes = new Map<string, boolean>();
      'abcdefghijkl'.split('').forEach((id, i) => {
        const v = raw[i];
        if (v !== undefined) votes.set(id, v);
      });
      const yes = voters.filter((v) => votes.get(v) === true).length;
      const no = voters.filter((v) => votes.get(v) === false).length;
      const q = Math.floor(voters.length / 2) + 1;
      const expected = yes >= q ? 'won' : voters.length - no < q ? 'lost' : 'pending';
      assert.equal(voteResult(voters, votes), expected);
      assert.equal(hasQuorum(voters, (id) => votes.get(id) === true), yes >= q);
      assert.equal(quorumSize(voters.length), q);
    }),
    { numRuns: 2000 },
  );
});
