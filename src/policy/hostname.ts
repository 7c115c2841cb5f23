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
 * Matches one label against one glob label where `*` is any run of characters. The classic
 * two-pointer algorithm: O(label × pattern) in the worst case, no backtracking blow-up.
 */
function globLabelMatches(pattern: string, label: string): boolean {
  let p = 0;
  let t = 0;
  let starP = -1;
  let starT = 0;
  while (t < label.length) {
    if (p < pattern.length && pattern.charCodeAt(p) === 42) {
      starP = p++;
      starT = t;
    } else if (p < pattern.length && pattern.charCodeAt(p) === label.charCodeAt(t)) {
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
      const label = last ? hostname.slice(start) : hostname.slice(start, dot);
      if (!globLabelMatches(labels[i] as string, label)) return false;
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

/** The rules keyed on one name: those matching exactly it, and those matching it and its subdomains. */
interface NameEntry {
  exact: number[] | null;
  suffix: number[] | null;
}

/**
 * Hash tables from hostname keys to ascending lists of rule orders. A lookup costs one probe per
 * label of the hostname plus one per distinct literal-suffix length, however many rules there are
 * (exact and label-suffix keys share one table, so the full name is probed once for both).
 * Rules must be added in ascending order.
 */
export class HostnameIndex {
  private readonly names = new Map<string, NameEntry>();
  private readonly stringSuffix = new Map<string, number[]>();
  private stringSuffixLengths: number[] = [];

  private entry(name: string): NameEntry {
    let entry = this.names.get(name);
    if (entry === undefined) {
      entry = { exact: null, suffix: null };
      this.names.set(name, entry);
    }
    return entry;
  }

  /** The rule matches only hostnames equal to `hostname`. */
  addExact(hostname: string, order: number): void {
    const entry = this.entry(hostname);
    entry.exact = addTo(entry.exact, order);
  }

  /** The rule matches only `domain` or its subdomains. */
  addLabelSuffix(domain: string, order: number): void {
    const entry = this.entry(domain);
    entry.suffix = addTo(entry.suffix, order);
  }

  /** The rule matches only hostnames ending with the characters `suffix`. */
  addStringSuffix(suffix: string, order: number): void {
    const existing = this.stringSuffix.get(suffix);
    if (existing === undefined && !this.stringSuffixLengths.includes(suffix.length)) {
      this.stringSuffixLengths.push(suffix.length);
      this.stringSuffixLengths.sort((a, b) => a - b);
    }
    this.stringSuffix.set(suffix, addTo(existing ?? null, order));
  }

  /**
   * Stores every list whose key fits `hostname` (normalised) from `out[count]` on and returns the
   * new count (`out` is a reused scratch array).
   */
  collect(hostname: string, out: number[][], count: number): number {
    let n = count;
    if (this.names.size > 0) {
      const whole = this.names.get(hostname);
      if (whole !== undefined) {
        if (whole.exact !== null) out[n++] = whole.exact;
        if (whole.suffix !== null) out[n++] = whole.suffix;
      }
      for (let dot = hostname.indexOf('.'); dot >= 0; dot = hostname.indexOf('.', dot + 1)) {
        const parent = this.names.get(hostname.slice(dot + 1));
        if (parent !== undefined && parent.suffix !== null) out[n++] = parent.suffix;
      }
    }
    const length = hostname.length;
    for (const suffixLength of this.stringSuffixLengths) {
      if (suffixLength > length) break;
      const hits = this.stringSuffix.get(suffixLength === length ? hostname : hostname.slice(length - suffixLength));
      if (hits !== undefined) out[n++] = hits;
    }
    return n;
  }
}
