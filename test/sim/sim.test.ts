/**
 * The deterministic simulation as a test: a fixed range of seeds (so CI is reproducible; the soak
 * runner explores random ranges), committed regression seeds, and proof that a seed replays
 * identically. A failing seed is a bug in the core or the simulator: never skip one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSimulation, SimulationFailure } from './simulator.js';
import type { SimResult } from './simulator.js';

/** Seeds 1..SEED_COUNT run on every `npm test`. */
const SEED_COUNT = 300;
/** Chaos-phase length per seed (about 400 election timeouts). */
const STEPS = 40_000;
const BATCH_SIZE = 25;

/**
 * Seeds that found bugs, with the chaos length they were found at. Seeds found before the
 * simulator's last change of its random draws no longer replay the original trace; those bugs are
 * also pinned by unit tests (named in the comment).
 */
const REGRESSION_SEEDS: ReadonlyArray<{ seed: number; steps: number; found: string }> = [
  // Core: a fresh joiner kept its own index-0 InitialState (empty configuration) as "its snapshot";
  // promoted and elected later, it sent that empty bootstrap configuration to the next joiner,
  // which never learned the cluster (liveness stall). Unit test: raft-membership-changes
  // "a joiner that later leads hands the next joiner the real bootstrap configuration".
  { seed: 607, steps: 3000, found: 'joiner-turned-leader sent an empty bootstrap configuration' },
  { seed: 643, steps: 3000, found: 'joiner-turned-leader sent an empty bootstrap configuration' },
  { seed: 992, steps: 3000, found: 'joiner-turned-leader sent an empty bootstrap configuration' },
  { seed: 2351, steps: 3000, found: 'joiner-turned-leader sent an empty bootstrap configuration' },
  { seed: 2557, steps: 3000, found: 'joiner-turned-leader sent an empty bootstrap configuration' },
  // Core: snapshotMetaAt(applied) threw when a leader snapshot was restored between the host's
  // ready() and its compaction; it now returns null. Unit test: raft-snapshot-install-chunked
  // "snapshotMetaAt returns null ...". (Found before the background load was added.)
  { seed: 189, steps: 3000, found: 'snapshotMetaAt race with a restored snapshot' },
  // Simulator: the liveness marker waited forever for an index whose entry had been truncated.
  { seed: 300, steps: 3000, found: 'simulator liveness probe waited for a truncated proposal' },
  // Simulator: a stale leader accumulated ~800 uncommitted background entries and fully
  // reordering links made catch-up crawl; added host-style backpressure and FIFO links.
  { seed: 217, steps: 3000, found: 'unbounded uncommitted background load' },
  // Core (pre-vote and check-quorum both off): a node with a higher term and an out-of-date
  // configuration ignored the leader's lower-term appends without answering and stayed behind for
  // good; a stale-term append or heartbeat is now always answered with the newer term.
  { seed: 1021809, steps: 20_000, found: 'stale-term appends ignored without an answer' },
  { seed: 1022852, steps: 20_000, found: 'stale-term appends ignored without an answer' },
  { seed: 7025764, steps: 20_000, found: 'stale-term appends ignored without an answer' },
  // Simulator: a stale leader (check-quorum off) overwrote a learner's copy of an entry a later
  // term had committed, which Raft allows; the check now flags it only for a writer of that term or later.
  { seed: 1006720, steps: 20_000, found: 'over-strict committed-entry truncation check' },
  // Simulator: 30-unit delays, a lossy reordering network and tiny snapshots committed in 5,776
  // units, over the fixed 3,000 budget; the budget now scales with the drawn round trip.
  { seed: 7017843, steps: 20_000, found: 'liveness budget too tight for slow drawn settings' },
];

function summarize(results: SimResult[]): string {
  const ops = results.reduce((n, r) => n + r.history.length, 0);
  const commits = results.reduce((n, r) => n + r.stats.committedEntries, 0);
  return `${results.length} seeds, ${ops} ops checked, ${commits} entries committed`;
}

for (let start = 1; start <= SEED_COUNT; start += BATCH_SIZE) {
  const end = Math.min(SEED_COUNT, start + BATCH_SIZE - 1);
  test(`simulation seeds ${start}..${end} keep every safety invariant, stay live and linearizable`, (t) => {
    const failures: string[] = [];
    const results: SimResult[] = [];
    for (let seed = start; seed <= end; seed++) {
      try {
        const r = runSimulation({ seed, steps: STEPS });
        assert.notEqual(r.linearizability?.ok, false);
        results.push(r);
      } catch (err) {
        failures.push(err instanceof Error ? err.message : String(err));
      }
    }
    t.diagnostic(summarize(results));
    assert.deepEqual(failures, []);
  });
}

for (const r of REGRESSION_SEEDS) {
  test(`regression seed ${r.seed} (${r.found})`, () => {
    runSimulation({ seed: r.seed, steps: r.steps });
  });
}

test('a seed replays identically: same trace digest, same history', () => {
  for (const seed of [7, 42]) {
    const a = runSimulation({ seed, steps: 5000 });
    const b = runSimulation({ seed, steps: 5000 });
    assert.equal(a.digest, b.digest);
    assert.deepEqual(a.history, b.history);
    assert.deepEqual(a.stats, b.stats);
  }
  const other = runSimulation({ seed: 43, steps: 5000 });
  assert.notEqual(other.digest, runSimulation({ seed: 42, steps: 5000 }).digest);
});

test('a failing run names its seed for replay', () => {
  assert.throws(
    () =>
      runSimulation({
        seed: 1234,
        steps: 1000,
        trace: () => {
          throw new Error('boom');
        },
      }),
    (err: unknown) => err instanceof SimulationFailure && err.seed === 1234 && /reproduce with seed=1234/.test(err.message),
  );
});

test('the simulation exercises what it claims to', () => {
  const results = Array.from({ length: 20 }, (_, i) => runSimulation({ seed: 5000 + i, steps: STEPS }));
  const total = (f: (r: SimResult) => number): number => results.reduce((n, r) => n + f(r), 0);
  assert.ok(total((r) => r.stats.crashes) > 0, 'crashes');
  assert.ok(total((r) => r.stats.partitions) > 0, 'partitions');
  assert.ok(total((r) => r.stats.messagesDuplicated) > 0, 'duplicates');
  assert.ok(total((r) => r.stats.snapshotsInstalled) > 0, 'snapshot installs');
  assert.ok(total((r) => r.stats.confChangesCommitted) > 0, 'membership changes');
  assert.ok(total((r) => r.stats.nodesCreated) > 20 * 3, 'nodes added');
  assert.ok(total((r) => r.stats.readsServed) > 0, 'ReadIndex reads');
  assert.ok(total((r) => r.stats.opsUnknown) > 0, 'unknown outcomes');
  assert.ok(results.some((r) => !r.params.preVote) && results.some((r) => r.params.preVote));
});
