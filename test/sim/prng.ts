/**
 * The simulator's only source of randomness (mulberry32: 32-bit state, fast, and identical on
 * every platform), and a running FNV-1a digest used to prove that a seed replays identically.
 */

/** A seeded pseudo-random generator. Every random choice of a simulation run comes from one instance. */
export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = (Math.trunc(seed) ^ 0x9e3779b9) >>> 0;
    for (let i = 0; i < 4; i++) this.nextUint32();
  }

  /** The next 32-bit unsigned integer. */
  nextUint32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in [0, maxExclusive). */
  int(maxExclusive: number): number {
    if (!(maxExclusive >= 1)) throw new RangeError(`int(${maxExclusive})`);
    return Math.floor((this.nextUint32() / 4294967296) * maxExclusive);
  }

  /** An integer in [lo, hiInclusive]. */
  range(lo: number, hiInclusive: number): number {
    return lo + this.int(hiInclusive - lo + 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.nextUint32() < p * 4294967296;
  }

  /** A uniformly chosen element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty array');
    return items[this.int(items.length)]!;
  }
}

/** A running 32-bit FNV-1a digest of a trace. */
export class TraceDigest {
  private hash = 0x811c9dc5;
  private count = 0;

  /** Mixes an integer in (two 16-bit halves, so negative and large values are fine). */
  addNumber(n: number): void {
    const v = Math.trunc(n);
    this.mix(v & 0xffff);
    this.mix((v >>> 16) & 0xffff);
    this.count++;
  }

  /** Mixes a string in. */
  addString(s: string): void {
    for (let i = 0; i < s.length; i++) this.mix(s.charCodeAt(i));
    this.mix(0xffff);
    this.count++;
  }

  private mix(x: number): void {
    this.hash ^= x;
    this.hash = Math.imul(this.hash, 16777619) >>> 0;
  }

  /** The digest so far, with the number of items mixed in. */
  value(): string {
    return `${this.hash.toString(16).padStart(8, '0')}:${this.count}`;
  }
}
