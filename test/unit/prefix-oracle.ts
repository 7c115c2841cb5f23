/** The naive oracle the prefix structures are checked against (not a test file itself). */
import type { IpPrefix } from '../../src/policy/ip.js';

function toBigInt(words: readonly number[]): bigint {
  return words.reduce((acc, w) => (acc << 32n) | BigInt(w), 0n);
}

/** Whether `prefix` contains the address `words` (v4: one word, v6: four), by BigInt bit comparison. */
export function naiveContains(prefix: IpPrefix, words: readonly number[], v6: boolean): boolean {
  if (prefix.v6 !== v6) return false;
  const bits = BigInt(v6 ? 128 : 32);
  const shift = bits - BigInt(prefix.prefixLength);
  return toBigInt(prefix.words) >> shift === toBigInt(words) >> shift;
}
