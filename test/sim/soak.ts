/**
 * Soak runner for the deterministic simulation: `npm run sim -- --seeds N --steps M [--seed-base S]`.
 * Runs seeds S..S+N-1 (S random unless given; printed first so any run can be repeated), prints
 * progress, checks every history for linearizability, and exits 1 naming each failing seed
 * (2 on bad flags).
 */
import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import { DEFAULT_STEPS, runSimulation, SimulationFailure } from './simulator.js';

const EXIT_VIOLATION = 1;
const EXIT_USAGE = 2;
const USAGE = 'usage: npm run sim -- --seeds N --steps M [--seed-base S]';

function usage(message: string): never {
  console.error(`${message}\n${USAGE}`);
  process.exit(EXIT_USAGE);
}

function intFlag(name: string, raw: string | undefined, fallback: number, min: number): number {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) usage(`invalid value for --${name}: ${JSON.stringify(raw)} (expected an integer >= ${min})`);
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) usage(`invalid value for --${name}: ${raw} (expected an integer >= ${min})`);
  return n;
}

function main(): void {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: process.argv.slice(2),
      options: { seeds: { type: 'string' }, steps: { type: 'string' }, 'seed-base': { type: 'string' }, help: { type: 'boolean' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    usage(err instanceof Error ? err.message : String(err));
  }
  if (values['help'] === true) {
    console.log(USAGE);
    return;
  }
  const seeds = intFlag('seeds', values['seeds'] as string | undefined, 100, 1);
  const steps = intFlag('steps', values['steps'] as string | undefined, DEFAULT_STEPS, 1);
  const base = intFlag('seed-base', values['seed-base'] as string | undefined, randomInt(0, 2 ** 31), 0);
  console.log(`seed base ${base}: running seeds ${base}..${base + seeds - 1}, ${steps} steps each`);

  const started = performance.now();
  const failed: number[] = [];
  let histories = 0;
  let ops = 0;
  let unknownOutcome = 0;
  let inconclusive = 0;
  let lastReport = started;
  for (let i = 0; i < seeds; i++) {
    const seed = base + i;
    try {
      const r = runSimulation({ seed, steps });
      histories++;
      ops += r.history.length;
      unknownOutcome += r.stats.opsUnknown;
      if (r.linearizability?.ok === 'unknown') {
        inconclusive++;
        console.log(`seed ${seed}: linearizability check inconclusive: ${r.linearizability.reason}`);
      }
    } catch (err) {
      failed.push(seed);
      console.log(err instanceof SimulationFailure ? `FAIL ${err.message}` : `FAIL seed=${seed}: ${String(err)}`);
    }
    const now = performance.now();
    if (now - lastReport > 5000 || i === seeds - 1) {
      lastReport = now;
      console.log(`${i + 1}/${seeds} seeds done, ${failed.length} failed, ${((now - started) / 1000).toFixed(1)} s`);
    }
  }
  console.log(
    `ran ${seeds} seeds (${base}..${base + seeds - 1}); ${histories} histories (${ops} operations, ${unknownOutcome} with unknown outcome) ` +
      `checked for linearizability, ${inconclusive} inconclusive; ${failed.length} failed`,
  );
  if (failed.length > 0) {
    for (const seed of failed) console.log(`reproduce with: npm run sim -- --seeds 1 --steps ${steps} --seed-base ${seed}`);
    process.exit(EXIT_VIOLATION);
  }
}

main();
