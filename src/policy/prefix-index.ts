import { CidrTrie } from './cidr-trie.js';
import type { IpAddress, IpPrefix } from './ip.js';
import { storeRuleList } from './rule-lists.js';

/**
 * Up to this many distinct prefix lengths in one address family, a lookup probes one hash table
 * entry per length (the address masked to that length); above, it walks a CIDR trie. Rule
 * documents use few lengths (typically /32 hosts and a few network sizes), so a lookup costs a
 * handful of probes however many prefixes there are, where a trie walk grows with their number.
 */
export const MAX_HASHED_PREFIX_LENGTHS = 8;

/** The int32 mask of the first `bits` (0–32) bits of a word. */
function leadingMask(bits: number): number {
  return bits <= 0 ? 0 : bits >= 32 ? -1 : -1 << (32 - bits);
}

/** Word `index` of an address (int32) masked to `length` bits. */
function maskedWord(word: number, index: number, length: number): number {
  return word & leadingMask(length - index * 32);
}

/** Hash of a masked prefix: its words and its length. */
function prefixHash(w0: number, w1: number, w2: number, w3: number, length: number): number {
  let h = Math.imul(length + 1, 0x9e3779b1) ^ w0;
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b) ^ w1;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) ^ w2;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) ^ w3;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** The nonzero one-byte fingerprint of a hash kept in a slot's tag (0 marks an empty slot). */
function fingerprintOf(hash: number): number {
  return (hash >>> 24) | 1;
}

/** A prefix's id is kept in the low 24 bits of its slot tag, a fingerprint of its hash in the high 8. */
const ID_BITS = 24;
const ID_MASK = (1 << ID_BITS) - 1;
/** Ints per prefix record: `[w0, w1, w2, w3, length, list code, unused, unused]`. */
const RECORD_INTS = 8;

/**
 * The prefixes of one family in an open-addressing table keyed by (masked words, length): a
 * lookup masks the address to each present length and probes once per length, shortest first.
 * Laid out in typed arrays: per slot an int32 tag (the prefix's id with a one-byte fingerprint of
 * its hash; a miss reads one cache line), per prefix a 32-byte record (its words, length and list
 * code: the rule order of a one-rule list inline, else `-(i + 2)` for `lists[i]`), read only when
 * the fingerprint matches.
 */
class HashedPrefixes {
  /** Distinct prefix lengths, ascending. */
  private readonly lengths: readonly number[];
  private readonly tags: Int32Array;
  private readonly mask: number;
  private readonly records: Int32Array;
  /** The lists of two or more rules. */
  private readonly lists: number[][] = [];

  constructor(entries: readonly { prefix: IpPrefix; values: number[] }[]) {
    if (entries.length > ID_MASK) throw new Error(`HashedPrefixes: more than ${ID_MASK} prefixes`);
    this.lengths = [...new Set(entries.map((e) => e.prefix.prefixLength))].sort((a, b) => a - b);
    let capacity = 8;
    while (capacity < entries.length * 2) capacity *= 2;
    this.tags = new Int32Array(capacity);
    this.mask = capacity - 1;
    this.records = new Int32Array(entries.length * RECORD_INTS);
    entries.forEach(({ prefix, values }, id) => {
      const w = [0, 1, 2, 3].map((i) => ((prefix.words[i] ?? 0) as number) | 0) as [number, number, number, number];
      const record = id * RECORD_INTS;
      this.records.set(w, record);
      this.records[record + 4] = prefix.prefixLength;
      this.records[record + 5] = values.length === 1 ? (values[0] as number) : -(this.lists.push(values) - 1) - 2;
      const hash = prefixHash(w[0], w[1], w[2], w[3], prefix.prefixLength);
      let slot = hash & this.mask;
      while (this.tags[slot] !== 0) slot = (slot + 1) & this.mask;
      this.tags[slot] = (fingerprintOf(hash) << ID_BITS) | id;
    });
  }

  /** Stores the list of every prefix containing the address (int32 words a0..a3) from `out[n]` on; returns the new count. */
  collect(a0: number, a1: number, a2: number, a3: number, out: number[][], count: number): number {
    let n = count;
    const lengths = this.lengths;
    const tags = this.tags;
    const records = this.records;
    const mask = this.mask;
    for (let i = 0; i < lengths.length; i++) {
      const length = lengths[i] as number;
      const m0 = maskedWord(a0, 0, length);
      const m1 = maskedWord(a1, 1, length);
      const m2 = maskedWord(a2, 2, length);
      const m3 = maskedWord(a3, 3, length);
      const hash = prefixHash(m0, m1, m2, m3, length);
      const fingerprint = fingerprintOf(hash);
      for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
        const tag = tags[slot] as number;
        if (tag === 0) break;
        if (tag >>> ID_BITS !== fingerprint) continue;
        const at = (tag & ID_MASK) * RECORD_INTS;
        if (records[at + 4] === length && records[at] === m0 && records[at + 1] === m1 && records[at + 2] === m2 && records[at + 3] === m3) {
          storeRuleList(records[at + 5] as number, this.lists, out, n);
          n++;
          break;
        }
      }
    }
    return n;
  }
}

/**
 * The destination index of a group: IP prefixes to ascending lists of rule orders. Per address
 * family, hash tables probed once per distinct prefix length when there are at most
 * `MAX_HASHED_PREFIX_LENGTHS` of them, else a CIDR trie. Insert values in ascending order (a value
 * equal to the prefix's last one is skipped), then `seal()` once before the first `collect`.
 */
export class PrefixIndex {
  private building: Map<string, { prefix: IpPrefix; values: number[] }> | null = new Map();
  private v4: HashedPrefixes | CidrTrie<number> | null = null;
  private v6: HashedPrefixes | CidrTrie<number> | null = null;

  insert(prefix: IpPrefix, value: number): void {
    if (this.building === null) throw new Error('PrefixIndex: insert after seal');
    if (!Number.isInteger(value) || value < 0) throw new Error('PrefixIndex: values are rule orders (integers >= 0)');
    const key = `${prefix.v6 ? 6 : 4}/${prefix.prefixLength}/${prefix.words.join(',')}`;
    const entry = this.building.get(key);
    if (entry === undefined) this.building.set(key, { prefix, values: [value] });
    else if (entry.values[entry.values.length - 1] !== value) entry.values.push(value);
  }

  seal(): void {
    if (this.building === null) return;
    const entries = [...this.building.values()];
    this.v4 = PrefixIndex.build(entries.filter((e) => !e.prefix.v6));
    this.v6 = PrefixIndex.build(entries.filter((e) => e.prefix.v6));
    this.building = null;
  }

  private static build(entries: readonly { prefix: IpPrefix; values: number[] }[]): HashedPrefixes | CidrTrie<number> | null {
    if (entries.length === 0) return null;
    const lengths = new Set(entries.map((e) => e.prefix.prefixLength));
    if (lengths.size <= MAX_HASHED_PREFIX_LENGTHS) return new HashedPrefixes(entries);
    const trie = new CidrTrie<number>();
    for (const { prefix, values } of entries) for (const v of values) trie.insert(prefix, v);
    return trie;
  }

  /**
   * Stores, from `out[count]` on, the value list of every prefix that contains `address` and
   * returns the new count. Allocation-free (`out` is a reused scratch array).
   */
  collect(address: IpAddress, out: number[][], count: number): number {
    if (this.building !== null) throw new Error('PrefixIndex: collect before seal');
    const table = address.v6 ? this.v6 : this.v4;
    if (table === null) return count;
    if (table instanceof CidrTrie) return table.collect(address, out, count);
    const words = address.words;
    const v6 = address.v6;
    return table.collect(
      (words[0] as number) | 0,
      v6 ? (words[1] as number) | 0 : 0,
      v6 ? (words[2] as number) | 0 : 0,
      v6 ? (words[3] as number) | 0 : 0,
      out,
      count,
    );
  }
}
