/**
 * Hostname normalisation, the glob matcher, per-rule hostname matchers and the per-group hostname
 * index (exact and label-suffix hash tables keyed on labels, plus a table of literal string
 * suffixes that regular expressions must end with).
 */

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
 * Matches the label `text[start, end)` against one glob label where `*` is any run of characters.
 * The classic two-pointer algorithm: O(label × pattern) in the worst case, no backtracking blow-up.
 */
function globLabelMatches(pattern: string, text: string, start: number, end: number): boolean {
  let p = 0;
  let t = start;
  let starP = -1;
  let starT = start;
  while (t < end) {
    if (p < pattern.length && pattern.charCodeAt(p) === 42) {
      starP = p++;
      starT = t;
    } else if (p < pattern.length && pattern.charCodeAt(p) === text.charCodeAt(t)) {
      p++;
      t++;
    } else if (starP >= 0) {
      p = starP + 1;
      t = ++starT;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern.charCodeAt(p) === 42) p++;
  return p === pattern.length;
}

/** A compiled glob: `*` matches within one label, so the label counts must agree. */
export class HostnameGlob {
  private readonly labels: readonly string[];

  /** `glob` must be normalised. */
  constructor(glob: string) {
    this.labels = glob.split('.');
  }

  matches(hostname: string): boolean {
    const labels = this.labels;
    let start = 0;
    for (let i = 0; i < labels.length; i++) {
      const dot = hostname.indexOf('.', start);
      const last = i === labels.length - 1;
      if (last !== (dot < 0)) return false;
      if (!globLabelMatches(labels[i] as string, hostname, start, last ? hostname.length : dot)) return false;
      start = dot + 1;
    }
    return true;
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
    tails[0] = hash;
    for (let k = 1; k <= length; k++) {
      const code = name.charCodeAt(length - k);
      if (code === 46) starts[parents++] = length - k + 1;
      hash = hashStep(hash, code);
      tails[k] = hash;
    }
    this.parentCount = parents;
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

/** The nonzero one-byte fingerprint of a hash kept per slot (0 marks an empty slot). */
function fingerprintOf(hash: number): number {
  return (hash >>> 24) | 1;
}

/**
 * An open-addressing hash table from strings to entries, probed with precomputed hashes so that
 * lookups never allocate. A probe reads a one-byte fingerprint per slot from a compact array
 * (64 slots per cache line, so the tables of a 100k-rule policy stay cache-resident) and loads
 * the entry, which sits in the slot's place of a parallel array, only when the fingerprint
 * matches; a hit is confirmed by comparing the entry's key.
 */
class KeyTable<E extends { readonly key: string }> {
  private fingerprints = new Uint8Array(0);
  private slotEntries: (E | null)[] = [];
  private mask = 0;
  private building: Map<string, E> | null = new Map();
  private count = 0;

  /** The entry of `key`, made by `make` if new (before `seal`). */
  entry(key: string, make: (key: string) => E): E {
    if (this.building === null) throw new Error('KeyTable: add after seal');
    let entry = this.building.get(key);
    if (entry === undefined) {
      entry = make(key);
      this.building.set(key, entry);
      this.count++;
    }
    return entry;
  }

  /** Places the entries in their slots by `hashOf(key)`; lookups work only after this. */
  seal(hashOf: (key: string) => number): void {
    if (this.building === null) return;
    const entries = [...this.building.values()];
    let capacity = 8;
    while (capacity < entries.length * 2) capacity *= 2;
    const fingerprints = new Uint8Array(capacity);
    const slotEntries = new Array<E | null>(capacity).fill(null);
    const mask = capacity - 1;
    for (const entry of entries) {
      const hash = hashOf(entry.key);
      let slot = slotOf(hash, mask);
      while (fingerprints[slot] !== 0) slot = (slot + 1) & mask;
      fingerprints[slot] = fingerprintOf(hash);
      slotEntries[slot] = entry;
    }
    this.fingerprints = fingerprints;
    this.slotEntries = slotEntries;
    this.mask = mask;
    this.building = null;
  }

  /** Number of keys. */
  get size(): number {
    return this.count;
  }

  /** The entry whose key equals the last `length` characters of `name` (whose tail hash is `hash`), or null. */
  findTail(name: string, length: number, hash: number): E | null {
    const fingerprints = this.fingerprints;
    const mask = this.mask;
    const fingerprint = fingerprintOf(hash);
    for (let slot = slotOf(hash, mask); ; slot = (slot + 1) & mask) {
      const found = fingerprints[slot] as number;
      if (found === 0) return null;
      if (found === fingerprint) {
        const entry = this.slotEntries[slot] as E;
        const key = entry.key;
        if (key.length === length && name.endsWith(key)) return entry;
      }
    }
  }

  /** The entry whose key equals the first `length` characters of `name` (whose head hash is `hash`), or null. */
  findHead(name: string, length: number, hash: number): E | null {
    const fingerprints = this.fingerprints;
    const mask = this.mask;
    const fingerprint = fingerprintOf(hash);
    for (let slot = slotOf(hash, mask); ; slot = (slot + 1) & mask) {
      const found = fingerprints[slot] as number;
      if (found === 0) return null;
      if (found === fingerprint) {
        const entry = this.slotEntries[slot] as E;
        const key = entry.key;
        if (key.length === length && name.startsWith(key)) return entry;
      }
    }
  }
}

function insertSortedUnique(list: number[], value: number): void {
  if (list.includes(value)) return;
  list.push(value);
  list.sort((a, b) => a - b);
}

/**
 * An ascending list of rule orders kept inline while it has one element (`one`), so that the
 * common single-rule hit costs no load of a separate array.
 */
class RuleList {
  /** The only order while the list has one element, else -1. */
  one = -1;
  /** All orders once there are two or more, else null. */
  many: number[] | null = null;

  add(order: number): void {
    if (this.many !== null) {
      if (this.many[this.many.length - 1] !== order) this.many.push(order);
    } else if (this.one < 0) {
      this.one = order;
    } else if (this.one !== order) {
      this.many = [this.one, order];
      this.one = -1;
    }
  }
}

/** The rule lists keyed on one name (or one literal suffix). */
class NameEntry {
  /** Rules matching exactly this name (proven). */
  exact: RuleList | null = null;
  /** Rules matching this domain and its subdomains (proven). */
  suffix: RuleList | null = null;
  /** Rules that can match only this domain or its subdomains (glob and regex keys). */
  suffixCandidates: RuleList | null = null;
  /** Rules that can match only names ending with these characters. */
  stringSuffix: RuleList | null = null;

  constructor(readonly key: string) {}
}

/** The rules whose matches all start with one literal prefix. */
class PrefixEntry {
  readonly rules = new RuleList();

  constructor(readonly key: string) {}
}

// One-element lists handed to the evaluator for inline singletons, one per output position.
// Valid until the next `collect` writes the same position; decisions consume them first.
const singletons: number[][] = [];

function push(list: RuleList | null, proof: number, out: number[][], proofs: number[], n: number): number {
  if (list === null) return n;
  if (list.many !== null) {
    out[n] = list.many;
  } else {
    let single = singletons[n];
    if (single === undefined) {
      single = [0];
      singletons[n] = single;
    }
    single[0] = list.one;
    out[n] = single;
  }
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
  private readonly names = new KeyTable<NameEntry>();
  private readonly stringSuffixLengths: number[] = [];
  private readonly prefixes = new KeyTable<PrefixEntry>();
  private readonly prefixLengths: number[] = [];
  /** Whether any name key has a parent-domain list (else parents need no probe). */
  private hasSuffixKeys = false;
  private hasNames = false;
  private sealed = false;

  private nameEntry(name: string): NameEntry {
    this.hasNames = true;
    return this.names.entry(name, (key) => new NameEntry(key));
  }

  /** The rule matches exactly the hostnames equal to `hostname` (and no others through this entry). */
  addExact(hostname: string, order: number): void {
    const entry = this.nameEntry(hostname);
    (entry.exact ??= new RuleList()).add(order);
  }

  /** The rule matches `domain` and its subdomains. */
  addLabelSuffix(domain: string, order: number): void {
    const entry = this.nameEntry(domain);
    (entry.suffix ??= new RuleList()).add(order);
    this.hasSuffixKeys = true;
  }

  /** The rule can match only `domain` or its subdomains. */
  addLabelSuffixCandidate(domain: string, order: number): void {
    const entry = this.nameEntry(domain);
    (entry.suffixCandidates ??= new RuleList()).add(order);
    this.hasSuffixKeys = true;
  }

  /** The rule can match only hostnames ending with the characters `suffix`. */
  addStringSuffix(suffix: string, order: number): void {
    const entry = this.nameEntry(suffix);
    (entry.stringSuffix ??= new RuleList()).add(order);
    insertSortedUnique(this.stringSuffixLengths, suffix.length);
  }

  /** The rule can match only hostnames starting with the characters `prefix`. */
  addStringPrefix(prefix: string, order: number): void {
    this.prefixes.entry(prefix, (key) => new PrefixEntry(key)).rules.add(order);
    insertSortedUnique(this.prefixLengths, prefix.length);
  }

  /** Freezes the keys into their lookup tables. */
  seal(): void {
    this.names.seal(tailHashOf);
    this.prefixes.seal(headHashOf);
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
      const whole = names.findTail(name, length, tails[length] as number);
      if (whole !== null) {
        n = push(whole.exact, proof, out, proofs, n);
        n = push(whole.suffix, proof, out, proofs, n);
        n = push(whole.suffixCandidates, 0, out, proofs, n);
        n = push(whole.stringSuffix, 0, out, proofs, n);
      }
      if (this.hasSuffixKeys) {
        const starts = probe.parentStarts;
        for (let i = 0; i < probe.parentCount; i++) {
          const parentLength = length - (starts[i] as number);
          const parent = names.findTail(name, parentLength, tails[parentLength] as number);
          if (parent !== null) {
            n = push(parent.suffix, proof, out, proofs, n);
            n = push(parent.suffixCandidates, 0, out, proofs, n);
          }
        }
      }
      for (const suffixLength of this.stringSuffixLengths) {
        if (suffixLength >= length) break;
        const entry = names.findTail(name, suffixLength, tails[suffixLength] as number);
        if (entry !== null) n = push(entry.stringSuffix, 0, out, proofs, n);
      }
    }
    for (const prefixLength of this.prefixLengths) {
      if (prefixLength > length) break;
      const entry = this.prefixes.findHead(name, prefixLength, probe.headHash(prefixLength));
      if (entry !== null) n = push(entry.rules, 0, out, proofs, n);
    }
    return n;
  }
}
