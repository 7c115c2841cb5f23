import type { IpAddress, IpPrefix } from './ip.js';

/**
 * A binary, path-compressed (PATRICIA) trie of IPv4 and IPv6 prefixes. A lookup walks at most one
 * node per branching bit of the address (≤ 32 or ≤ 128 steps) whatever the number of prefixes,
 * and memory is at most two nodes per inserted prefix.
 *
 * Each prefix carries a list of values. Lists keep insertion order and skip a value equal to the
 * last one, so inserting ascending values (rule orders, group ranks) yields sorted, duplicate-free
 * lists that the evaluator merges without sorting.
 */
interface TrieNode<T> {
  /** The node's prefix, masked to `length` bits. */
  readonly key: readonly number[];
  /**
   * The same words inline as int32 (0 past the address), so a lookup compares a node without
   * loading its key array: one memory access per node visited instead of two.
   */
  readonly w0: number;
  readonly w1: number;
  readonly w2: number;
  readonly w3: number;
  readonly length: number;
  zero: TrieNode<T> | null;
  one: TrieNode<T> | null;
  values: T[] | null;
}

function bitAt(words: readonly number[], index: number): number {
  return ((words[index >>> 5] as number) >>> (31 - (index & 31))) & 1;
}

/** Number of leading bits `a` and `b` share, at most `limit`. */
function commonPrefixLength(a: readonly number[], b: readonly number[], limit: number): number {
  let count = 0;
  for (let w = 0; count < limit; w++) {
    const diff = ((a[w] as number) ^ (b[w] as number)) >>> 0;
    if (diff !== 0) return Math.min(limit, count + Math.clz32(diff));
    count += 32;
  }
  return limit;
}

function maskTo(words: readonly number[], length: number): number[] {
  return words.map((w, i) => {
    const keep = length - i * 32;
    if (keep >= 32) return w;
    if (keep <= 0) return 0;
    return (w & ~(0xffffffff >>> keep)) >>> 0;
  });
}

function newNode<T>(key: readonly number[], length: number, value: T | undefined): TrieNode<T> {
  const masked = maskTo(key, length);
  return {
    key: masked,
    w0: (masked[0] ?? 0) | 0,
    w1: (masked[1] ?? 0) | 0,
    w2: (masked[2] ?? 0) | 0,
    w3: (masked[3] ?? 0) | 0,
    length,
    zero: null,
    one: null,
    values: value === undefined ? null : [value],
  };
}

/** The int32 mask of the first `bits` (1–32) bits of a word. */
function leadingMask(bits: number): number {
  return -1 << (32 - bits);
}

/** Whether `node`'s prefix contains the address whose int32 words are a0..a3 (a1..a3 0 for IPv4). */
function nodeContains<T>(node: TrieNode<T>, a0: number, a1: number, a2: number, a3: number): boolean {
  const length = node.length;
  if (length <= 32) return length === 0 || ((node.w0 ^ a0) & leadingMask(length)) === 0;
  if (node.w0 !== a0) return false;
  if (length <= 64) return ((node.w1 ^ a1) & leadingMask(length - 32)) === 0;
  if (node.w1 !== a1) return false;
  if (length <= 96) return ((node.w2 ^ a2) & leadingMask(length - 64)) === 0;
  if (node.w2 !== a2) return false;
  return ((node.w3 ^ a3) & leadingMask(length - 96)) === 0;
}

/** The child of `node` on the side of the address's bit at `node.length`. */
function childToward<T>(node: TrieNode<T>, a0: number, a1: number, a2: number, a3: number): TrieNode<T> | null {
  const index = node.length;
  const word = index < 32 ? a0 : index < 64 ? a1 : index < 96 ? a2 : a3;
  return ((word >>> (31 - (index & 31))) & 1) === 0 ? node.zero : node.one;
}

function addValue<T>(node: TrieNode<T>, value: T): void {
  if (node.values === null) node.values = [value];
  else if (node.values[node.values.length - 1] !== value) node.values.push(value);
}

export class CidrTrie<T> {
  private readonly v4Root: TrieNode<T> = newNode<T>([0], 0, undefined);
  private readonly v6Root: TrieNode<T> = newNode<T>([0, 0, 0, 0], 0, undefined);
  private prefixCount = 0;

  /** Number of `insert` calls. */
  get size(): number {
    return this.prefixCount;
  }

  /** Adds `value` to the list of `prefix` (an address with prefixLength 32/128 is a host). */
  insert(prefix: IpPrefix, value: T): void {
    this.prefixCount++;
    const target = prefix.prefixLength;
    const key = prefix.words;
    let node = prefix.v6 ? this.v6Root : this.v4Root;
    for (;;) {
      // Invariant: node.key is a prefix of key and node.length <= target.
      if (node.length === target) {
        addValue(node, value);
        return;
      }
      const branch = bitAt(key, node.length);
      const child = branch === 0 ? node.zero : node.one;
      if (child === null) {
        const leaf = newNode(key, target, value);
        if (branch === 0) node.zero = leaf;
        else node.one = leaf;
        return;
      }
      const shared = commonPrefixLength(child.key, key, Math.min(child.length, target));
      if (shared === child.length) {
        node = child;
        continue;
      }
      // Split: a new node at the shared length takes the child's place.
      const middle = newNode<T>(key, shared, undefined);
      if (bitAt(child.key, shared) === 0) middle.zero = child;
      else middle.one = child;
      if (branch === 0) node.zero = middle;
      else node.one = middle;
      if (shared === target) {
        addValue(middle, value);
      } else {
        const leaf = newNode(key, target, value);
        if (bitAt(key, shared) === 0) middle.zero = leaf;
        else middle.one = leaf;
      }
      return;
    }
  }

  /**
   * Stores, from `out[count]` on, the value list of every prefix that contains `address`,
   * shortest prefix first, and returns the new count. Allocation-free (`out` is a reused scratch
   * array; entries past the returned count are stale).
   */
  collect(address: IpAddress, out: T[][], count: number): number {
    const words = address.words;
    const v6 = address.v6;
    const a0 = (words[0] as number) | 0;
    const a1 = v6 ? (words[1] as number) | 0 : 0;
    const a2 = v6 ? (words[2] as number) | 0 : 0;
    const a3 = v6 ? (words[3] as number) | 0 : 0;
    const maxLength = v6 ? 128 : 32;
    let n = count;
    let node = v6 ? this.v6Root : this.v4Root;
    if (node.values !== null) out[n++] = node.values;
    while (node.length < maxLength) {
      const child = childToward(node, a0, a1, a2, a3);
      if (child === null || !nodeContains(child, a0, a1, a2, a3)) break;
      if (child.values !== null) out[n++] = child.values;
      node = child;
    }
    return n;
  }

  /** The value list of the longest prefix containing `address`, or null. */
  longestMatch(address: IpAddress): readonly T[] | null {
    const words = address.words;
    const v6 = address.v6;
    const a0 = (words[0] as number) | 0;
    const a1 = v6 ? (words[1] as number) | 0 : 0;
    const a2 = v6 ? (words[2] as number) | 0 : 0;
    const a3 = v6 ? (words[3] as number) | 0 : 0;
    const maxLength = v6 ? 128 : 32;
    let node = v6 ? this.v6Root : this.v4Root;
    let found = node.values;
    while (node.length < maxLength) {
      const child = childToward(node, a0, a1, a2, a3);
      if (child === null || !nodeContains(child, a0, a1, a2, a3)) break;
      if (child.values !== null) found = child.values;
      node = child;
    }
    return found;
  }

  /**
   * Folds into each prefix's list the lists of all shorter prefixes containing it (with
   * `merge(outer, own)`), so that `longestMatch` alone answers "the values of every containing
   * prefix". Call once, after the last insert.
   */
  accumulate(merge: (outer: readonly T[], own: readonly T[]) => T[]): void {
    const visit = (node: TrieNode<T> | null, inherited: readonly T[] | null): void => {
      if (node === null) return;
      let carried = inherited;
      if (node.values !== null) {
        if (inherited !== null) node.values = merge(inherited, node.values);
        carried = node.values;
      }
      visit(node.zero, carried);
      visit(node.one, carried);
    };
    visit(this.v4Root, null);
    visit(this.v6Root, null);
  }

  /** Whether any inserted prefix contains `address`. */
  contains(address: IpAddress): boolean {
    const words = address.words;
    const v6 = address.v6;
    const a0 = (words[0] as number) | 0;
    const a1 = v6 ? (words[1] as number) | 0 : 0;
    const a2 = v6 ? (words[2] as number) | 0 : 0;
    const a3 = v6 ? (words[3] as number) | 0 : 0;
    const maxLength = v6 ? 128 : 32;
    let node = v6 ? this.v6Root : this.v4Root;
    if (node.values !== null) return true;
    while (node.length < maxLength) {
      const child = childToward(node, a0, a1, a2, a3);
      if (child === null || !nodeContains(child, a0, a1, a2, a3)) return false;
      if (child.values !== null) return true;
      node = child;
    }
    return false;
  }
}
