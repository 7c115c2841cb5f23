/**
 * Hostname normalisation, the glob matcher, per-rule hostname matchers and the per-group hostname
 * index (exact and label-suffix hash tables keyed on labels, plus a table of literal string
 * suffixes that regular expressions must end with).
 */
import { storeRuleList } from './rule-lists.js';

/** Longest hostname (without trailing dot) accepted in a document (RFC 1035). */
export const MAX_HOSTNAME_CHARS = 253;
/** Longest label accepted in a document (RFC 1035). */
export const MAX_LABEL_CHARS = 63;

const UPPER_ASCII = /[A-Z]+/g;

/**
 * The canonical form every hostname is compared in: one trailing dot removed and ASCII letters
 * lowercased. Only ASCII is folded: DNS compares names ASCII-case-insensitively, and Unicode
 * folding could map a name onto a different, allowed one (e.g. KELVIN SIGN to `k`).
 */
export function normalizeHostname(name: string): string {
  let text = name;
  if (text.length > 0 && text.charCodeAt(text.length - 1) === 46) text = text.slice(0, -1);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 65 && c <= 90) return text.replace(UPPER_ASCII, (m) => m.toLowerCase());
  }
  return text;
}

function labelsValid(text: string, allowWildcard: boolean): boolean {
  // One pass over the characters (no label strings): `end` drops one trailing dot.
  const end = text.length > 0 && text.charCodeAt(text.length - 1) === 46 ? text.length - 1 : text.length;
  if (end === 0 || end > MAX_HOSTNAME_CHARS) return false;
  let labelStart = 0;
  for (let i = 0; i <= end; i++) {
    const c = i === end ? 46 : text.charCodeAt(i);
    if (c === 46) {
      const length = i - labelStart;
      if (length === 0 || length > MAX_LABEL_CHARS) return false;
      labelStart = i + 1;
      continue;
    }
    const ok =
      (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 45 || c === 95 || (allowWildcard && c === 42);
    if (!ok) return false;
  }
  return true;
}

/** A hostname as written in a document: dot-separated labels of `A-Z a-z 0-9 - _`, optional trailing dot. */
export function isValidHostname(text: string): boolean {
  return labelsValid(text, false);
}

/** A glob as written in a document: a hostname whose labels may also contain `*`. */
export function isValidHostnameGlob(text: string): boolean {
  return labelsValid(text, true);
}

/** Whether `hostname` is `suffix` or a subdomain of it (both normalised). */
export function hasLabelSuffix(hostname: string, suffix: string): boolean {
  if (hostname.length === suffix.length) return hostname === suffix;
  return (
    hostname.length > suffix.length &&
    hostname.charCodeAt(hostname.length - suffix.length - 1) === 46 &&
    hostname.endsWith(suffix)
  );
}

/**
 * Matches the label `text[start, end)` against the glob label `pattern[patternStart, patternEnd)`
 * where `*` is any run of characters. The classic two-pointer algorithm: O(label × pattern) in
 * the worst case, no backtracking blow-up.
 */
function globLabelMatches(pattern: string, patternStart: number, patternEnd: number, text: string, start: number, end: number): boolean {
  let p = patternStart;
  let t = start;
  let starP = -1;
  let starT = start;
  while (t < end) {
    if (p < patternEnd && pattern.charCodeAt(p) === 42) {
      starP = p++;
      starT = t;
    } else if (p < patternEnd && pattern.charCodeAt(p) === text.charCodeAt(t)) {
      p++;
      t++;
    } else if (starP >= 0) {
      p = starP + 1;
      t = ++starT;
    } else {
      return false;
    }
  }
  while (p < patternEnd && pattern.charCodeAt(p) === 42) p++;
  return p === patternEnd;
}

/**
 * Whether `hostname` matches the glob `pattern[start, end)` (both normalised): as many labels,
 * each matching its glob label, where `*` matches within one label. Reads the pattern in place,
 * so a group can keep its rules' globs in one string.
 */
export function globMatches(pattern: string, start: number, end: number, hostname: string): boolean {
  let p = start;
  let t = 0;
  for (;;) {
    let patternDot = pattern.indexOf('.', p);
    if (patternDot < 0 || patternDot > end) patternDot = end;
    let dot = hostname.indexOf('.', t);
    if (dot < 0) dot = hostname.length;
    if (!globLabelMatches(pattern, p, patternDot, hostname, t, dot)) return false;
    const patternDone = patternDot === end;
    const nameDone = dot === hostname.length;
    if (patternDone || nameDone) return patternDone && nameDone;
    p = patternDot + 1;
    t = dot + 1;
  }
}

/** A compiled glob: `*` matches within one label, so the label counts must agree. */
export class HostnameGlob {
  private readonly labels: readonly string[];

  /** `glob` must be normalised. */
  constructor(readonly text: string) {
    this.labels = text.split('.');
  }

  matches(hostname: string): boolean {
    return globMatches(this.text, 0, this.text.length, hostname);
  }

  /**
   * The labels right of the last label holding a `*` (`*.api.github.com` -> `api.github.com`):
   * every match is a strict subdomain of it, so it is a label-suffix index key. Null when the
   * last label holds a `*`; the whole glob when it has no `*` at all.
   */
  indexKey(): { kind: 'exact' | 'suffix'; key: string } | null {
    let lastWild = -1;
    this.labels.forEach((label, i) => {
      if (label.includes('*')) lastWild = i;
    });
    if (lastWild < 0) return { kind: 'exact', key: this.labels.join('.') };
    if (lastWild === this.labels.length - 1) return null;
    return { kind: 'suffix', key: this.labels.slice(lastWild + 1).join('.') };
  }
}

/**
 * Up to this many `suffix` entries a rule compares them one by one; above, it looks the hostname
 * and each of its parent domains up in a Set, so a deny list of 10,000 domains costs one probe
 * per label instead of 10,000 comparisons.
 */
export const MAX_LINEAR_SUFFIXES = 8;

/** Whether `hostname` or one of its parent domains is in `domains` (all normalised). */
function hasSuffixIn(domains: ReadonlySet<string>, hostname: string): boolean {
  if (domains.has(hostname)) return true;
  for (let dot = hostname.indexOf('.'); dot >= 0; dot = hostname.indexOf('.', dot + 1)) {
    if (domains.has(hostname.slice(dot + 1))) return true;
  }
  return false;
}

/** The per-rule check of a hostname selector: any entry matching is a match. */
export class HostnameMatcher {
  /** A lone exact name is compared directly: one memory access less than a Set. */
  private readonly single: string | null;
  private readonly exact: ReadonlySet<string> | null;
  /** Few suffixes: compared one by one. */
  private readonly suffixList: readonly string[] | null;
  /** Many suffixes: looked up per label of the hostname. */
  private readonly suffixSet: ReadonlySet<string> | null;

  constructor(
    exact: ReadonlySet<string> | null,
    suffixes: readonly string[] | null,
    private readonly globs: readonly HostnameGlob[] | null,
    private readonly regex: RegExp | null,
  ) {
    this.single = exact !== null && exact.size === 1 ? ([...exact][0] as string) : null;
    this.exact = this.single === null ? exact : null;
    const many = suffixes !== null && suffixes.length > MAX_LINEAR_SUFFIXES;
    this.suffixList = many ? null : suffixes;
    this.suffixSet = many ? new Set(suffixes) : null;
  }

  /** `hostname` must be normalised. */
  matches(hostname: string): boolean {
    if (hostname === this.single) return true;
    if (this.exact !== null && this.exact.has(hostname)) return true;
    if (this.suffixList !== null) {
      for (const suffix of this.suffixList) if (hasLabelSuffix(hostname, suffix)) return true;
    }
    if (this.suffixSet !== null && hasSuffixIn(this.suffixSet, hostname)) return true;
    if (this.globs !== null) {
      for (const glob of this.globs) if (glob.matches(hostname)) return true;
    }
    return this.regex !== null && this.regex.test(hostname);
  }
}

const HASH_SEED = 0x811c9dc5 | 0;
const HASH_PRIME = 0x01000193;

/** FNV-1a step: the running hash of a string read one character at a time. */
function hashStep(hash: number, code: number): number {
  return Math.imul(hash ^ code, HASH_PRIME);
}

/** Hash of `key` read right to left: equals `NameProbe.tailHashes[key.length]` of any name ending with `key`. */
function tailHashOf(key: string): number {
  let hash = HASH_SEED;
  for (let i = key.length - 1; i >= 0; i--) hash = hashStep(hash, key.charCodeAt(i));
  return hash;
}

/** Hash of `key` read left to right: equals `NameProbe.headHash(key.length)` of any name starting with `key`. */
function headHashOf(key: string): number {
  let hash = HASH_SEED;
  for (let i = 0; i < key.length; i++) hash = hashStep(hash, key.charCodeAt(i));
  return hash;
}

/** Spreads a string hash over the low bits used as a table slot. */
function slotOf(hash: number, mask: number): number {
  let h = hash ^ (hash >>> 16);
  h = Math.imul(h, 0x85ebca6b);
  return (h ^ (h >>> 13)) & mask;
}

/**
 * One normalised name (at most `MAX_HOSTNAME_CHARS`), prepared once per decision for the hostname
 * indexes of every group it is looked up in: the hash of each of its suffixes and the start of
 * each label, so that a lookup probes a table per label without slicing (allocating) the parent
 * domains or hashing them again. Reused: `set` overwrites it.
 */
export class NameProbe {
  name = '';
  /** `tailHashes[k]`: the hash of the last `k` characters, for k = 0..name.length. */
  readonly tailHashes = new Int32Array(MAX_HOSTNAME_CHARS + 1);
  /**
   * Offsets where the labels after the first begin (one past each dot), right to left. One slot
   * per character: decision inputs are not validated names, so every character may be a dot.
   */
  readonly parentStarts = new Int32Array(MAX_HOSTNAME_CHARS);
  parentCount = 0;
  /**
   * Whether the name has no line terminator (`\n`, `\r`, U+2028, U+2029), the characters a
   * regex `.` does not match: only then does a `plainSuffix` key prove its regex matches.
   */
  plain = true;
  /** `headHashes[k]`: the hash of the first `k` characters, valid up to `headsComputed`. */
  private readonly headHashes = new Int32Array(MAX_HOSTNAME_CHARS + 1).fill(HASH_SEED, 0, 1);
  private headsComputed = 0;

  /** Prepares `name`, which must be normalised and at most `MAX_HOSTNAME_CHARS` long. */
  set(name: string): void {
    const length = name.length;
    if (length > MAX_HOSTNAME_CHARS) throw new Error(`NameProbe: name longer than ${MAX_HOSTNAME_CHARS} characters`);
    this.name = name;
    const tails = this.tailHashes;
    const starts = this.parentStarts;
    let hash = HASH_SEED;
    let parents = 0;
    let plain = true;
    tails[0] = hash;
    for (let k = 1; k <= length; k++) {
      const code = name.charCodeAt(length - k);
      if (code === 46) starts[parents++] = length - k + 1;
      else if (code === 10 || code === 13 || code === 0x2028 || code === 0x2029) plain = false;
      hash = hashStep(hash, code);
      tails[k] = hash;
    }
    this.parentCount = parents;
    this.plain = plain;
    this.headsComputed = 0;
  }

  /** The hash of the first `length` characters (computed on first use: only prefix tables need it). */
  headHash(length: number): number {
    const heads = this.headHashes;
    if (length > this.headsComputed) {
      const name = this.name;
      let hash = heads[this.headsComputed] as number;
      for (let k = this.headsComputed + 1; k <= length; k++) {
        hash = hashStep(hash, name.charCodeAt(k - 1));
        heads[k] = hash;
      }
      this.headsComputed = length;
    }
    return heads[length] as number;
  }
}

/** Ints per key record of a `KeyTable`: `[hash, key start in the arena, key length, list codes × 5]`. */
const RECORD_INTS = 8;
/** Where a record's list codes begin. */
const RECORD_LISTS = 3;
/** Lists (kinds of rule lists) per key. */
const LISTS_PER_KEY = 5;
/** A key's id is kept in the low 24 bits of its slot tag, a fingerprint of its hash in the high 8. */
const ID_BITS = 24;
const ID_MASK = (1 << ID_BITS) - 1;
/**
 * A list code: NO_LIST, a rule order (>= 0) for a one-rule list, or `-(i + 2)` for the list
 * `lists[i]` of two or more rules.
 */
const NO_LIST = -1;

/** The nonzero one-byte fingerprint of a hash kept per slot (0 marks an empty slot). */
function fingerprintOf(hash: number): number {
  return (hash >>> 24) | 1;
}

/**
 * An open-addressing hash table from strings to up to `LISTS_PER_KEY` ascending lists of rule
 * orders, probed with precomputed hashes so that lookups never allocate, and laid out in typed
 * arrays so that a lookup touches few cache lines however many keys there are:
 * - per slot an int32 tag, the key's id with a one-byte fingerprint of its hash (16 slots per
 *   cache line): a miss reads one line;
 * - per key a 32-byte record (its full hash, where its characters lie in the arena, and its list
 *   codes, a one-rule list inline): read only when the fingerprint matches;
 * - the keys' characters in one arena, compared only when the full hash matches too.
 * A hit therefore reads a tag line, a record and the key's characters (three lines), where a
 * table of objects read a slot array, the entry object, the key string and each list object.
 */
class KeyTable {
  private tags = new Int32Array(0);
  /** Per key id, `RECORD_INTS` ints; see `RECORD_INTS`. */
  records = new Int32Array(0);
  private arena = new Uint16Array(0);
  /** The lists of two or more rules, by code (`-(code + 2)`). */
  lists: number[][] = [];
  private mask = 0;
  /** Key ids while building (null once sealed); a key's id is its index in `keys`. */
  private ids: Map<string, number> | null = new Map();
  private keys: string[] = [];
  /** While building: the list codes, `LISTS_PER_KEY` per key id (lists of two or more in `lists`). */
  private codes: number[] = [];
  private count = 0;

  /** Appends `order` to list `kind` (0..4) of `key` (skipped when equal to its last order); before `seal`. */
  add(key: string, kind: number, order: number): void {
    if (this.ids === null) throw new Error('KeyTable: add after seal');
    if (!Number.isInteger(order) || order < 0) throw new Error('KeyTable: orders are integers >= 0');
    let id = this.ids.get(key);
    if (id === undefined) {
      id = this.keys.length;
      this.ids.set(key, id);
      this.keys.push(key);
      for (let i = 0; i < LISTS_PER_KEY; i++) this.codes.push(NO_LIST);
      this.count++;
    }
    const at = id * LISTS_PER_KEY + kind;
    const code = this.codes[at] as number;
    if (code === NO_LIST) {
      this.codes[at] = order;
    } else if (code >= 0) {
      if (code !== order) this.codes[at] = -(this.lists.push([code, order]) - 1) - 2;
    } else {
      const list = this.lists[-code - 2] as number[];
      if (list[list.length - 1] !== order) list.push(order);
    }
  }

  /** Places the keys in their slots by `hashOf(key)`; lookups work only after this. */
  seal(hashOf: (key: string) => number): void {
    if (this.ids === null) return;
    const keys = this.keys;
    if (keys.length > ID_MASK) throw new Error(`KeyTable: more than ${ID_MASK} keys`);
    let capacity = 8;
    while (capacity < keys.length * 2) capacity *= 2;
    const tags = new Int32Array(capacity);
    const mask = capacity - 1;
    const records = new Int32Array(keys.length * RECORD_INTS);
    let chars = 0;
    for (const key of keys) chars += key.length;
    const arena = new Uint16Array(chars);
    const codes = this.codes;
    let at = 0;
    keys.forEach((key, id) => {
      const hash = hashOf(key);
      let slot = slotOf(hash, mask);
      while (tags[slot] !== 0) slot = (slot + 1) & mask;
      tags[slot] = (fingerprintOf(hash) << ID_BITS) | id;
      const record = id * RECORD_INTS;
      records[record] = hash;
      records[record + 1] = at;
      records[record + 2] = key.length;
      for (let i = 0; i < key.length; i++) arena[at + i] = key.charCodeAt(i);
      at += key.length;
      for (let kind = 0; kind < LISTS_PER_KEY; kind++) records[record + RECORD_LISTS + kind] = codes[id * LISTS_PER_KEY + kind] as number;
    });
    this.tags = tags;
    this.records = records;
    this.arena = arena;
    this.mask = mask;
    this.ids = null;
    this.keys = [];
    this.codes = [];
  }

  /** Number of keys. */
  get size(): number {
    return this.count;
  }

  /**
   * The record (offset into `records`) of the key equal to the `length` characters of `name`
   * from `offset` on, whose hash is `hash`; -1 if there is none.
   */
  find(name: string, offset: number, length: number, hash: number): number {
    const tags = this.tags;
    const mask = this.mask;
    const fingerprint = fingerprintOf(hash);
    for (let slot = slotOf(hash, mask); ; slot = (slot + 1) & mask) {
      const tag = tags[slot] as number;
      if (tag === 0) return -1;
      if (tag >>> ID_BITS === fingerprint) {
        const record = (tag & ID_MASK) * RECORD_INTS;
        const records = this.records;
        if (records[record] === hash && records[record + 2] === length) {
          const arena = this.arena;
          const start = (records[record + 1] as number) - offset;
          let i = offset;
          const end = offset + length;
          while (i < end && arena[start + i] === name.charCodeAt(i)) i++;
          if (i === end) return record;
        }
      }
    }
  }
}

function insertSortedUnique(list: number[], value: number): void {
  if (list.includes(value)) return;
  list.push(value);
  list.sort((a, b) => a - b);
}

// The kinds of lists of a name key (indexes of its list codes) and of a prefix key.
/** Rules matching exactly this name (proven). */
const EXACT = 0;
/** Rules matching this domain and its subdomains (proven). */
const SUFFIX = 1;
/** Rules that can match only this domain or its subdomains (glob and regex keys). */
const SUFFIX_CANDIDATES = 2;
/** Rules that can match only names ending with these characters. */
const STRING_SUFFIX = 3;
/**
 * Rules matching this domain and its subdomains whose names have no line terminator, and no
 * other names (regexes `(.*\.)?domain`): proven for a `plain` name, candidates otherwise.
 */
const PLAIN_SUFFIX = 4;
/** The one list of a prefix key: rules whose matches all start with it. */
const PREFIX = 0;

/** The bit of a key hash in a parent filter of `2 ** (32 - shift)` bits. */
function filterBitOf(hash: number, shift: number): number {
  return shift >= 32 ? 0 : Math.imul(hash, 0x9e3779b1) >>> shift;
}

/** Stores the list of `code` (see NO_LIST) at `out[n]` with `proofs[n] = proof`; returns the new count. */
function push(code: number, lists: readonly number[][], proof: number, out: number[][], proofs: number[], n: number): number {
  if (code === NO_LIST) return n;
  storeRuleList(code, lists, out, n);
  proofs[n] = proof;
  return n + 1;
}

/**
 * Hash tables from hostname keys to ascending lists of rule orders. A lookup costs one probe per
 * label of the hostname, plus one per distinct length of literal string suffixes and prefixes,
 * however many rules there are; exact, label-suffix and string-suffix keys share one table
 * (probed with the `NameProbe`'s suffix hashes, so the full name is probed once for all three).
 * Lists from `exact` and `suffix` entries prove the rule's selector matches; the others (glob
 * and regex keys) only make the rule a candidate.
 *
 * Add rules in ascending order, then `seal()` once before the first `collect`.
 */
export class HostnameIndex {
  private readonly names = new KeyTable();
  private readonly stringSuffixLengths: number[] = [];
  private readonly prefixes = new KeyTable();
  private readonly prefixLengths: number[] = [];
  /** Whether any name key has a parent-domain list (else parents need no probe). */
  private hasSuffixKeys = false;
  /** Keys with a parent-domain list, until `seal` puts them in `parentFilter`. */
  private parentKeys: string[] | null = [];
  /**
   * A one-hash Bloom filter (bit set) of the keys with a parent-domain list, at least 16 bits per
   * key: a parent domain whose bit is clear has no such list, so most parent probes read one line
   * of this small array instead of a random line of the (larger) table.
   */
  private parentFilter = new Int32Array(1);
  private parentFilterShift = 32;
  private hasNames = false;
  private sealed = false;

  /** The rule matches exactly the hostnames equal to `hostname` (and no others through this entry). */
  addExact(hostname: string, order: number): void {
    this.names.add(hostname, EXACT, order);
    this.hasNames = true;
  }

  /** The rule matches `domain` and its subdomains. */
  addLabelSuffix(domain: string, order: number): void {
    this.names.add(domain, SUFFIX, order);
    this.parentKeys?.push(domain);
    this.hasNames = true;
    this.hasSuffixKeys = true;
  }

  /**
   * The rule matches exactly `domain` and those of its subdomains without a line terminator (the
   * names the regex `(.*\.)?domain` matches): a hit proves the match for a `plain` name.
   */
  addPlainLabelSuffix(domain: string, order: number): void {
    this.names.add(domain, PLAIN_SUFFIX, order);
    this.parentKeys?.push(domain);
    this.hasNames = true;
    this.hasSuffixKeys = true;
  }

  /** The rule can match only `domain` or its subdomains. */
  addLabelSuffixCandidate(domain: string, order: number): void {
    this.names.add(domain, SUFFIX_CANDIDATES, order);
    this.parentKeys?.push(domain);
    this.hasNames = true;
    this.hasSuffixKeys = true;
  }

  /** The rule can match only hostnames ending with the characters `suffix`. */
  addStringSuffix(suffix: string, order: number): void {
    this.names.add(suffix, STRING_SUFFIX, order);
    this.hasNames = true;
    insertSortedUnique(this.stringSuffixLengths, suffix.length);
  }

  /** The rule can match only hostnames starting with the characters `prefix`. */
  addStringPrefix(prefix: string, order: number): void {
    this.prefixes.add(prefix, PREFIX, order);
    insertSortedUnique(this.prefixLengths, prefix.length);
  }

  /** Freezes the keys into their lookup tables. */
  seal(): void {
    if (this.sealed) return;
    this.names.seal(tailHashOf);
    this.prefixes.seal(headHashOf);
    const parentKeys = this.parentKeys as string[];
    let bitsLog2 = 5;
    while (1 << bitsLog2 < parentKeys.length * 16 && bitsLog2 < 30) bitsLog2++;
    this.parentFilter = new Int32Array((1 << bitsLog2) >>> 5);
    this.parentFilterShift = 32 - bitsLog2;
    for (const key of parentKeys) {
      const bit = filterBitOf(tailHashOf(key), this.parentFilterShift);
      this.parentFilter[bit >>> 5] = (this.parentFilter[bit >>> 5] as number) | (1 << (bit & 31));
    }
    this.parentKeys = null;
    this.sealed = true;
  }

  /** Number of distinct keys (names, string suffixes and prefixes). */
  get size(): number {
    return this.names.size + this.prefixes.size;
  }

  /**
   * Stores every list whose key fits `probe`'s name from `out[count]` on, with `proofs[n]` set to
   * `proof` for lists that prove the selector matches (exact and suffix entries) and to 0 for
   * lists of mere candidates, and returns the new count (`out` and `proofs` are reused scratch
   * arrays; entries past the returned count are stale, and a one-rule list stays valid only until
   * the next `collect` writes its position).
   */
  collect(probe: NameProbe, out: number[][], proofs: number[], count: number, proof: number): number {
    if (!this.sealed) throw new Error('HostnameIndex: collect before seal');
    let n = count;
    const name = probe.name;
    const length = name.length;
    const tails = probe.tailHashes;
    if (this.hasNames) {
      const names = this.names;
      const records = names.records;
      const lists = names.lists;
      const plainProof = probe.plain ? proof : 0;
      const whole = names.find(name, 0, length, tails[length] as number);
      if (whole >= 0) {
        const at = whole + RECORD_LISTS;
        n = push(records[at + EXACT] as number, lists, proof, out, proofs, n);
        n = push(records[at + SUFFIX] as number, lists, proof, out, proofs, n);
        n = push(records[at + SUFFIX_CANDIDATES] as number, lists, 0, out, proofs, n);
        n = push(records[at + STRING_SUFFIX] as number, lists, 0, out, proofs, n);
        n = push(records[at + PLAIN_SUFFIX] as number, lists, plainProof, out, proofs, n);
      }
      if (this.hasSuffixKeys) {
        const starts = probe.parentStarts;
        for (let i = 0; i < probe.parentCount; i++) {
          const start = starts[i] as number;
          const hash = tails[length - start] as number;
          const bit = filterBitOf(hash, this.parentFilterShift);
          if (((this.parentFilter[bit >>> 5] as number) & (1 << (bit & 31))) === 0) continue;
          const parent = names.find(name, start, length - start, hash);
          if (parent >= 0) {
            const at = parent + RECORD_LISTS;
            n = push(records[at + SUFFIX] as number, lists, proof, out, proofs, n);
            n = push(records[at + SUFFIX_CANDIDATES] as number, lists, 0, out, proofs, n);
            n = push(records[at + PLAIN_SUFFIX] as number, lists, plainProof, out, proofs, n);
          }
        }
      }
      for (const suffixLength of this.stringSuffixLengths) {
        if (suffixLength >= length) break;
        const entry = names.find(name, length - suffixLength, suffixLength, tails[suffixLength] as number);
        if (entry >= 0) n = push(records[entry + RECORD_LISTS + STRING_SUFFIX] as number, lists, 0, out, proofs, n);
      }
    }
    for (const prefixLength of this.prefixLengths) {
      if (prefixLength > length) break;
      const prefixes = this.prefixes;
      const entry = prefixes.find(name, 0, prefixLength, probe.headHash(prefixLength));
      if (entry >= 0) n = push(prefixes.records[entry + RECORD_LISTS + PREFIX] as number, prefixes.lists, 0, out, proofs, n);
    }
    return n;
  }
}
