/**
 * The randomness port (DESIGN §2). The Raft core draws election-timeout jitter from an injected
 * integer source; production uses the operating system's generator, tests and the simulator a
 * seeded one.
 */
import { randomInt } from 'node:crypto';

/** Returns an integer in [0, maxExclusive). */
export type RandomIntSource = (maxExclusive: number) => number;

/** The operating system's cryptographic generator (unpredictable jitter across nodes). */
export const systemRandomInt: RandomIntSource = (maxExclusive) => randomInt(maxExclusive);
