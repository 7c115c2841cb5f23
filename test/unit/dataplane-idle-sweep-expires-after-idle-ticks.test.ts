/**
 * `IdleSweep` expires an entry exactly when more than `ceil(idleMs / intervalMs)` sweeps have run
 * since its last activity (never earlier, never later), whatever the order of adds, touches,
 * removals and sweeps. A model run with fast-check; sweeps are called by hand (no timer).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { IdleSweep, sweepIntervalFor, type IdleEntry } from '../../src/dataplane/idle-sweep.js';

class Entry implements IdleEntry<Entry> {
  older: Entry | null = null;
  newer: Entry | null = null;
  tick = -1;
  constructor(readonly id: number) {}
}

type Op = { kind: 'add' | 'touch' | 'remove'; id: number } | { kind: 'sweep' };

const ENTRIES = 6;
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constantFrom('add' as const, 'touch' as const, 'remove' as const), id: fc.integer({ min: 0, max: ENTRIES - 1 }) }),
  fc.constant({ kind: 'sweep' as const }),
  fc.constant({ kind: 'sweep' as const }),
);

describe('IdleSweep', () => {
  it('expires an entry after more than ceil(idleMs / intervalMs) sweeps without activity, and only then', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 }), fc.array(op, { maxLength: 120 }), (idleMs, intervalMs, ops) => {
        const idleTicks = Math.max(1, Math.ceil(idleMs / intervalMs));
        const expired: number[] = [];
        const sweep = new IdleSweep<Entry>(idleMs, intervalMs, (entry) => expired.push(entry.id));
        const entries = Array.from({ length: ENTRIES }, (_, id) => new Entry(id));
        /** Model: sweeps since the last activity of each entry in the sweep. */
        const quiet = new Map<number, number>();
        for (const step of ops) {
          if (step.kind === 'sweep') {
            sweep.sweep();
            const due: number[] = [];
            for (const [id, sweeps] of quiet) {
              if (sweeps + 1 > idleTicks) due.push(id);
              else quiet.set(id, sweeps + 1);
            }
            for (const id of due) quiet.delete(id);
            assert.deepEqual([...expired].sort(), due.sort(), 'the sweep expired exactly the entries idle too long');
            expired.length = 0;
          } else if (step.kind === 'add') {
            if (quiet.has(step.id)) continue; // add takes an entry that is not in the sweep
            sweep.add(entries[step.id] as Entry);
            quiet.set(step.id, 0);
          } else if (step.kind === 'touch') {
            sweep.touch(entries[step.id] as Entry);
            if (quiet.has(step.id)) quiet.set(step.id, 0);
          } else {
            sweep.remove(entries[step.id] as Entry);
            quiet.delete(step.id);
          }
          assert.equal(sweep.size, quiet.size);
          assert.deepEqual(sweep.entries().map((e) => e.id).sort(), [...quiet.keys()].sort());
        }
      }),
      { numRuns: 500 },
    );
  });

  it('expires entries from its interval timer once started, and not after stop', async () => {
    const expired: Entry[] = [];
    const sweep = new IdleSweep<Entry>(20, 10, (entry) => expired.push(entry));
    const entry = new Entry(1);
    sweep.add(entry);
    sweep.start();
    const deadline = Date.now() + 2_000;
    while (expired.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.deepEqual(expired, [entry]);
    sweep.stop();
    sweep.add(entry);
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.equal(expired.length, 1, 'a stopped sweep expires nothing');
    assert.equal(sweep.size, 1);
  });

  it('sweeps a sixteenth of the idle time, between 10 ms and 1 s', () => {
    assert.equal(sweepIntervalFor(300_000), 1_000);
    assert.equal(sweepIntervalFor(400), 25);
    assert.equal(sweepIntervalFor(50), 10);
  });
});
