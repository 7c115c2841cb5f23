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
  const name = text.endsWith('.') ? text.slice(0, -1) : text;
  if (name.length === 0 || name.length > MAX_HOSTNAME_CHARS) return false;
  for (const label of name.split('.')) {
    if (label.length === 0 || label.length > MAX_LABEL_CHARS) return false;
    for (let i = 0; i < label.length; i++) {
      const c = label.charCodeAt(i);
      const ok =
        (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 45 || c === 95 || (allowWildcard && c === 42);
      if (!ok) return false;
    }
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

function addTo(list: number[] | null, order: number): number[] {
  if (list === null) return [order];
  if (list[list.length - 1] !== order) list.push(order);
  return list;
}

/** Most labels a name within `MAX_HOSTNAME_CHARS` can have (one character and one dot each). */
const MAX_LABELS = (MAX_HOSTNAME_CHARS + 1) / 2;
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
  /** Offsets where the labels after the first begin (one past each dot), right to left. */
  readonly parentStarts = new Int32Array(MAX_LABELS);
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
 * An open-addressing hash table from strings to dense ids, probed with precomputed hashes so that
 * lookups never allocate. A probe reads a one-byte fingerprint per slot from a compact array
 * (64 slots per cache line, so the tables of a 100k-rule policy stay cache-resident) and loads
 * the id and the key only when the fingerprint matches; a hit is confirmed by comparing the key.
 */
class KeyTable {
  readonly keys: string[] = [];
  private fingerprints = new Uint8Array(0);
  private ids = new Int32Array(0);
  private mask = 0;
  private readonly building = new Map<string, number>();

  /** The id of `key`, adding it if new (while building). */
  idOf(key: string): number {
    let id = this.building.get(key);
    if (id === undefined) {
      id = this.keys.length;
      this.keys.push(key);
      this.building.set(key, id);
    }
    return id;
  }

  /** Builds the slot arrays from the keys and their hashes; lookups work only after this. */
  seal(hashOf: (key: string) => number): void {
    const keys = this.keys;
    let capacity = 8;
    while (capacity < keys.length * 2) capacity *= 2;
    const fingerprints = new Uint8Array(capacity);
    const ids = new Int32Array(capacity);
    const mask = capacity - 1;
    for (let id = 0; id < keys.length; id++) {
      const hash = hashOf(keys[id] as string);
      let slot = slotOf(hash, mask);
      while (fingerprints[slot] !== 0) slot = (slot + 1) & mask;
      fingerprints[slot] = fingerprintOf(hash);
      ids[slot] = id;
    }
    this.fingerprints = fingerprints;
    this.ids = ids;
    this.mask = mask;
    this.building.clear();
  }

  get size(): number {
    return this.keys.length;
  }

  /** The id of the key equal to the last `length` characters of `name` (whose tail hash is `hash`), or -1. */
  findTail(name: string, length: number, hash: number): number {
    const fingerprints = this.fingerprints;
    const mask = this.mask;
    const fingerprint = fingerprintOf(hash);
    for (let slot = slotOf(hash, mask); ; slot = (slot + 1) & mask) {
      const found = fingerprints[slot] as number;
      if (found === 0) return -1;
      if (found === fingerprint) {
        const id = this.ids[slot] as number;
        const key = this.keys[id] as string;
        if (key.length === length && name.endsWith(key)) return id;
      }
    }
  }

  /** The id of the key equal to the first `length` characters of `name` (whose head hash is `hash`), or -1. */
  findHead(name: string, length: number, hash: number): number {
    const fingerprints = this.fingerprints;
    const mask = this.mask;
    const fingerprint = fingerprintOf(hash);
    for (let slot = slotOf(hash, mask); ; slot = (slot + 1) & mask) {
      const found = fingerprints[slot] as number;
      if (found === 0) return -1;
      if (found === fingerprint) {
        const id = this.ids[slot] as number;
        const key = this.keys[id] as string;
        if (key.length === length && name.startsWith(key)) return id;
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
  /** Per name id: rules matching exactly that name (proven). */
  private readonly exact: (number[] | null)[] = [];
  /** Per name id: rules matching that domain and its subdomains (proven). */
  private readonly suffix: (number[] | null)[] = [];
  /** Per name id: rules that can match only that domain or its subdomains (glob and regex keys). */
  private readonly suffixCandidates: (number[] | null)[] = [];
  /** Per name id: rules that can match only names ending with those characters. */
  private readonly stringSuffix: (number[] | null)[] = [];
  private readonly stringSuffixLengths: number[] = [];
  private readonly prefixes = new KeyTable();
  /** Per prefix id: rules that can match only names starting with those characters. */
  private readonly prefix: number[][] = [];
  private readonly prefixLengths: number[] = [];
  /** Whether any name key has a parent-domain list (else parents need no probe). */
  private hasSuffixKeys = false;
  private sealed = false;

  private nameId(name: string): number {
    if (this.sealed) throw new Error('HostnameIndex: add after seal');
    const id = this.names.idOf(name);
    if (id === this.exact.length) {
      this.exact.push(null);
      this.suffix.push(null);
      this.suffixCandidates.push(null);
      this.stringSuffix.push(null);
    }
    return id;
  }

  /** The rule matches exactly the hostnames equal to `hostname` (and no others through this entry). */
  addExact(hostname: string, order: number): void {
    const id = this.nameId(hostname);
    this.exact[id] = addTo(this.exact[id] ?? null, order);
  }

  /** The rule matches `domain` and its subdomains. */
  addLabelSuffix(domain: string, order: number): void {
    const id = this.nameId(domain);
    this.suffix[id] = addTo(this.suffix[id] ?? null, order);
    this.hasSuffixKeys = true;
  }

  /** The rule can match only `domain` or its subdomains. */
  addLabelSuffixCandidate(domain: string, order: number): void {
    const id = this.nameId(domain);
    this.suffixCandidates[id] = addTo(this.suffixCandidates[id] ?? null, order);
    this.hasSuffixKeys = true;
  }

  /** The rule can match only hostnames ending with the characters `suffix`. */
  addStringSuffix(suffix: string, order: number): void {
    const id = this.nameId(suffix);
    this.stringSuffix[id] = addTo(this.stringSuffix[id] ?? null, order);
    insertSortedUnique(this.stringSuffixLengths, suffix.length);
  }

  /** The rule can match only hostnames starting with the characters `prefix`. */
  addStringPrefix(prefix: string, order: number): void {
    if (this.sealed) throw new Error('HostnameIndex: add after seal');
    const id = this.prefixes.idOf(prefix);
    if (id === this.prefix.length) this.prefix.push([]);
    this.prefix[id] = addTo(this.prefix[id] ?? null, order);
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
   * arrays; entries past the returned count are stale).
   */
  collect(probe: NameProbe, out: number[][], proofs: number[], count: number, proof: number): number {
    if (!this.sealed) throw new Error('HostnameIndex: collect before seal');
    let n = count;
    const name = probe.name;
    const length = name.length;
    const tails = probe.tailHashes;
    const names = this.names;
    if (names.size > 0) {
      const whole = names.findTail(name, length, tails[length] as number);
      if (whole >= 0) {
        n = this.push(this.exact[whole] ?? null, proof, out, proofs, n);
        n = this.push(this.suffix[whole] ?? null, proof, out, proofs, n);
        n = this.push(this.suffixCandidates[whole] ?? null, 0, out, proofs, n);
      }
      if (this.hasSuffixKeys) {
        const starts = probe.parentStarts;
        for (let i = 0; i < probe.parentCount; i++) {
          const parentLength = length - (starts[i] as number);
          const parent = names.findTail(name, parentLength, tails[parentLength] as number);
          if (parent >= 0) {
            n = this.push(this.suffix[parent] ?? null, proof, out, proofs, n);
            n = this.push(this.suffixCandidates[parent] ?? null, 0, out, proofs, n);
          }
        }
      }
      for (const suffixLength of this.stringSuffixLengths) {
        if (suffixLength > length) break;
        const id = names.findTail(name, suffixLength, tails[suffixLength] as number);
        if (id >= 0) n = this.push(this.stringSuffix[id] ?? null, 0, out, proofs, n);
      }
    }
    for (const prefixLength of this.prefixLengths) {
      if (prefixLength > length) break;
      const id = this.prefixes.findHead(name, prefixLength, probe.headHash(prefixLength));
      if (id >= 0) n = this.push(this.prefix[id] ?? null, 0, out, proofs, n);
    }
    return n;
  }

  private push(list: number[] | null, proof: number, out: number[][], proofs: number[], n: number): number {
    if (list === null) return n;
    out[n] = list;
    proofs[n] = proof;
    return n + 1;
  }
}
