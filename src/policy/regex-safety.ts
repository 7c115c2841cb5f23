/**
 * Static safety check for the regular expressions of a policy, and their compilation.
 *
 * Every policy regex is matched against the WHOLE subject: it is compiled as `^(?:source)$`, so
 * `.*\.github\.com` cannot match `api.github.com.evil.net` (explicit `^`/`$` are allowed and
 * redundant). Hostname and SNI regexes are case-insensitive (flag `i`) and see the normalised
 * hostname (lowercase, no trailing dot); path regexes are case-sensitive.
 *
 * Backtracking regex engines can take exponential or high-polynomial time on crafted input
 * (ReDoS), and the subject of a DNS decision is chosen by the client. So the compiler only accepts
 * a conservative subset it can parse itself and whose worst case it can bound:
 *
 * 1. Length at most `MAX_REGEX_LENGTH_CHARS`.
 * 2. Syntax: characters, `.`, classes `[...]`/`[^...]`, `\d \w \s \D \W \S \b \B`, escaped
 *    punctuation, `\t \n \r \f \v \xHH \uHHHH`, groups `(...)`, `(?:...)`, `(?<name>...)`,
 *    alternation, `^`, `$`, quantifiers `* + ? {n} {n,} {n,m}` (n, m ≤ `MAX_REPEAT_COUNT`),
 *    lazy or greedy. Refused: backreferences (`\1`, `\k<name>`), lookahead and lookbehind, octal
 *    and control escapes, unescaped `{`, `}` or `]` as literals, empty classes.
 * 3. No nested quantifiers: a repetition that may run more than once (`max > 1`) must not contain
 *    another quantifier (refuses `(a+)+`, `(a*)*`, `(\w+\.)+`) nor anything that can match the
 *    empty string, and every alternation inside it must have branches that start with disjoint
 *    characters (refuses `(a|a)*`, `(ab|ac)+`; accepts `(com|net)+`).
 * 4. Bounded ambiguity. A variable repetition is *ambiguous* when the characters it can start with
 *    overlap the characters that can follow it (`.*\.` is, `[a-z0-9-]+\.` is not): there the engine
 *    must try every split. At most `MAX_AMBIGUOUS_UNBOUNDED_REPEATS` ambiguous repetitions with no
 *    small bound (max > `BOUNDED_REPEAT_MAX`) are allowed in hostname and SNI regexes, none in
 *    HTTP path regexes (`MAX_AMBIGUOUS_UNBOUNDED_REPEATS_PATH`, as paths have no length bound), and
 *    the product of the choices of the ambiguous bounded ones and of alternations with overlapping
 *    branches must stay within `MAX_AMBIGUOUS_CHOICES`. The evaluator never runs a hostname regex
 *    on more than 253 characters, so a match costs at most about 253² × 16 steps (tens of
 *    microseconds), and a path match is linear in the path.
 *
 * The check is deliberately conservative: some safe expressions are refused; the message says how
 * to rewrite them (narrower classes such as `[^.]*` or `[a-z0-9-]+`, or the exact/suffix/glob forms).
 */

export const MAX_REGEX_LENGTH_CHARS = 256;
export const MAX_REPEAT_COUNT = 1000;
export const BOUNDED_REPEAT_MAX = 16;
export const MAX_AMBIGUOUS_UNBOUNDED_REPEATS = 1;
/** HTTP paths are not length-bounded like hostnames (253), so their regexes get none. */
export const MAX_AMBIGUOUS_UNBOUNDED_REPEATS_PATH = 0;
export const MAX_AMBIGUOUS_CHOICES = 16;
/** A regex's literal tails are used as index keys only when there are at most this many. */
export const MAX_LITERAL_SUFFIXES = 16;

/** A set of UTF-16 code units: exact for ASCII, one flag for everything above. */
class CharSet {
  private constructor(
    private readonly bits: Uint32Array,
    private readonly nonAscii: boolean,
  ) {}

  static readonly EMPTY = new CharSet(new Uint32Array(4), false);

  static range(lo: number, hi: number): CharSet {
    const bits = new Uint32Array(4);
    for (let c = lo; c <= Math.min(hi, 127); c++) bits[c >>> 5] = ((bits[c >>> 5] as number) | (1 << (c & 31))) >>> 0;
    return new CharSet(bits, hi >= 128);
  }

  static of(code: number): CharSet {
    return CharSet.range(code, code);
  }

  union(other: CharSet): CharSet {
    const bits = new Uint32Array(4);
    for (let i = 0; i < 4; i++) bits[i] = ((this.bits[i] as number) | (other.bits[i] as number)) >>> 0;
    return new CharSet(bits, this.nonAscii || other.nonAscii);
  }

  intersects(other: CharSet): boolean {
    for (let i = 0; i < 4; i++) if (((this.bits[i] as number) & (other.bits[i] as number)) !== 0) return true;
    return this.nonAscii && other.nonAscii;
  }

  /** Complement; the non-ASCII part is kept (sound because the ASCII part is exact). */
  negate(): CharSet {
    const bits = new Uint32Array(4);
    for (let i = 0; i < 4; i++) bits[i] = ~(this.bits[i] as number) >>> 0;
    return new CharSet(bits, true);
  }

  /** Adds the other case of every ASCII letter (the `i` flag without `u` folds no ASCII/non-ASCII pairs). */
  foldCase(): CharSet {
    const bits = Uint32Array.from(this.bits);
    for (let c = 65; c <= 90; c++) {
      const upper = ((bits[c >>> 5] as number) >>> (c & 31)) & 1;
      const lower = ((bits[(c + 32) >>> 5] as number) >>> ((c + 32) & 31)) & 1;
      if (upper !== lower) {
        bits[c >>> 5] = ((bits[c >>> 5] as number) | (1 << (c & 31))) >>> 0;
        bits[(c + 32) >>> 5] = ((bits[(c + 32) >>> 5] as number) | (1 << ((c + 32) & 31))) >>> 0;
      }
    }
    return new CharSet(bits, this.nonAscii);
  }
}

const DIGITS = CharSet.range(48, 57);
const WORD = CharSet.range(48, 57).union(CharSet.range(65, 90)).union(CharSet.range(97, 122)).union(CharSet.of(95));
const SPACE = CharSet.range(9, 13).union(CharSet.of(32)).union(CharSet.range(128, 0xffff));
const ANY_BUT_NEWLINE = CharSet.range(0, 9).union(CharSet.range(11, 12)).union(CharSet.range(14, 0xffff));

type RegexNode =
  | { readonly kind: 'chars'; readonly set: CharSet; readonly literal: string | null }
  | { readonly kind: 'assert'; readonly text: string }
  | { readonly kind: 'group'; readonly alternatives: readonly (readonly RegexNode[])[] }
  | { readonly kind: 'repeat'; readonly body: RegexNode; readonly min: number; readonly max: number };

class Refusal extends Error {}

const SIMPLE_ESCAPES: Record<string, number> = { t: 9, n: 10, v: 11, f: 12, r: 13 };
const CLASS_ESCAPES: Record<string, CharSet> = {
  d: DIGITS,
  D: DIGITS.negate(),
  w: WORD,
  W: WORD.negate(),
  s: SPACE,
  S: CharSet.range(0, 8).union(CharSet.range(14, 31)).union(CharSet.range(33, 127)).union(CharSet.range(128, 0xffff)),
};
const GROUP_NAME = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const HEX = /^[0-9A-Fa-f]+$/;

class Parser {
  private pos = 0;

  constructor(
    private readonly source: string,
    private readonly caseInsensitive: boolean,
  ) {}

  parse(): RegexNode[][] {
    const alternatives = this.disjunction();
    if (this.pos < this.source.length) throw new Refusal(`unmatched ")" at offset ${this.pos}`);
    return alternatives;
  }

  private peek(offset = 0): string {
    return this.source.charAt(this.pos + offset);
  }

  private disjunction(): RegexNode[][] {
    const alternatives = [this.sequence()];
    while (this.peek() === '|') {
      this.pos++;
      alternatives.push(this.sequence());
    }
    return alternatives;
  }

  private sequence(): RegexNode[] {
    const nodes: RegexNode[] = [];
    while (this.pos < this.source.length && this.peek() !== '|' && this.peek() !== ')') {
      const atom = this.atom();
      const quantifier = this.quantifier();
      if (quantifier === null) {
        nodes.push(atom);
        continue;
      }
      if (atom.kind === 'assert') throw new Refusal(`quantifier on the assertion "${atom.text}"`);
      nodes.push({ kind: 'repeat', body: atom, min: quantifier.min, max: quantifier.max });
      if (this.quantifierAhead()) throw new Refusal(`nothing to repeat at offset ${this.pos}`);
    }
    return nodes;
  }

  private quantifierAhead(): boolean {
    const c = this.peek();
    return c === '*' || c === '+' || c === '?' || (c === '{' && this.braceQuantifier(false) !== null);
  }

  /** Parses `{n}`, `{n,}`, `{n,m}` at the cursor; moves past it only when `consume`. */
  private braceQuantifier(consume: boolean): { min: number; max: number } | null {
    const match = /^\{(\d+)(,(\d*))?\}/.exec(this.source.slice(this.pos));
    if (match === null) return null;
    const min = Number(match[1]);
    const max = match[2] === undefined ? min : match[3] === '' ? Infinity : Number(match[3]);
    if (min > MAX_REPEAT_COUNT || (max !== Infinity && max > MAX_REPEAT_COUNT)) {
      throw new Refusal(`repetition count above ${MAX_REPEAT_COUNT}`);
    }
    if (max < min) throw new Refusal(`repetition {${min},${max}} is out of order`);
    if (consume) this.pos += match[0].length;
    return { min, max };
  }

  private quantifier(): { min: number; max: number } | null {
    const c = this.peek();
    let result: { min: number; max: number } | null = null;
    if (c === '*') result = { min: 0, max: Infinity };
    else if (c === '+') result = { min: 1, max: Infinity };
    else if (c === '?') result = { min: 0, max: 1 };
    if (result !== null) this.pos++;
    else if (c === '{') {
      result = this.braceQuantifier(true);
      if (result === null) throw new Refusal('a literal "{" must be escaped as "\\{"');
    }
    if (result !== null && this.peek() === '?') this.pos++; // lazy: same worst case
    return result;
  }

  private chars(set: CharSet, code: number | null): RegexNode {
    const folded = this.caseInsensitive ? set.foldCase() : set;
    let literal: string | null = null;
    if (code !== null && code < 128) {
      literal = String.fromCharCode(code);
      if (this.caseInsensitive) literal = literal.toLowerCase();
    }
    return { kind: 'chars', set: folded, literal };
  }

  private atom(): RegexNode {
    const c = this.peek();
    const offset = this.pos;
    switch (c) {
      case '(':
        return this.group();
      case '[':
        return this.charClass();
      case '.':
        this.pos++;
        return { kind: 'chars', set: ANY_BUT_NEWLINE, literal: null };
      case '^':
      case '$':
        this.pos++;
        return { kind: 'assert', text: c };
      case '\\':
        return this.escape();
      case '*':
      case '+':
      case '?':
        throw new Refusal(`nothing to repeat at offset ${offset}`);
      case '{':
        if (this.braceQuantifier(false) !== null) throw new Refusal(`nothing to repeat at offset ${offset}`);
        throw new Refusal('a literal "{" must be escaped as "\\{"');
      case '}':
      case ']':
        throw new Refusal(`a literal "${c}" must be escaped as "\\${c}"`);
      default: {
        this.pos++;
        const code = c.charCodeAt(0);
        return this.chars(CharSet.of(code), code);
      }
    }
  }

  private group(): RegexNode {
    this.pos++; // (
    if (this.peek() === '?') {
      const next = this.peek(1);
      if (next === ':') {
        this.pos += 2;
      } else if (next === '=' || next === '!') {
        throw new Refusal('lookahead assertions are not supported');
      } else if (next === '<' && (this.peek(2) === '=' || this.peek(2) === '!')) {
        throw new Refusal('lookbehind assertions are not supported');
      } else if (next === '<') {
        const close = this.source.indexOf('>', this.pos);
        const name = close < 0 ? '' : this.source.slice(this.pos + 2, close);
        if (!GROUP_NAME.test(name)) throw new Refusal('invalid group name');
        this.pos = close + 1;
      } else {
        throw new Refusal(`unsupported group syntax "(?${next}"`);
      }
    }
    const alternatives = this.disjunction();
    if (this.peek() !== ')') throw new Refusal('unterminated group');
    this.pos++;
    return { kind: 'group', alternatives };
  }

  /** An escape outside a class: a set, an assertion or a literal. */
  private escape(): RegexNode {
    const c = this.peek(1);
    if (c === 'b' || c === 'B') {
      this.pos += 2;
      return { kind: 'assert', text: `\\${c}` };
    }
    const classEscape = CLASS_ESCAPES[c];
    if (classEscape !== undefined) {
      this.pos += 2;
      return this.chars(classEscape, null);
    }
    const code = this.escapedCode();
    return this.chars(CharSet.of(code), code);
  }

  /** Reads an escape that stands for one character and returns its code. */
  private escapedCode(): number {
    const c = this.peek(1);
    if (c === '') throw new Refusal('trailing backslash');
    if (c >= '0' && c <= '9') throw new Refusal(`backreferences and octal escapes are not supported ("\\${c}")`);
    if (c === 'k') throw new Refusal('backreferences are not supported ("\\k")');
    const simple = SIMPLE_ESCAPES[c];
    if (simple !== undefined) {
      this.pos += 2;
      return simple;
    }
    if (c === 'x' || c === 'u') {
      const digits = this.source.slice(this.pos + 2, this.pos + (c === 'x' ? 4 : 6));
      if (digits.length !== (c === 'x' ? 2 : 4) || !HEX.test(digits)) throw new Refusal(`malformed "\\${c}" escape`);
      this.pos += 2 + digits.length;
      return parseInt(digits, 16);
    }
    if (/[A-Za-z]/.test(c)) throw new Refusal(`unsupported escape "\\${c}"`);
    this.pos += 2;
    return c.charCodeAt(0);
  }

  private charClass(): RegexNode {
    this.pos++; // [
    let negated = false;
    if (this.peek() === '^') {
      negated = true;
      this.pos++;
    }
    if (this.peek() === ']') throw new Refusal('the classes "[]" and "[^]" are not supported');
    let set = CharSet.EMPTY;
    let singleCode: number | null = null;
    let members = 0;
    for (;;) {
      if (this.pos >= this.source.length) throw new Refusal('unterminated character class');
      if (this.peek() === ']') break;
      const first = this.classAtom();
      members++;
      if (this.peek() === '-' && this.peek(1) !== ']' && this.pos + 1 < this.source.length) {
        this.pos++; // -
        const second = this.classAtom();
        if (typeof first !== 'number' || typeof second !== 'number') {
          throw new Refusal('a class escape (\\d, \\w, \\s) cannot bound a range');
        }
        if (second < first) throw new Refusal('character class range out of order');
        set = set.union(CharSet.range(first, second));
        members++;
      } else if (typeof first === 'number') {
        set = set.union(CharSet.of(first));
        singleCode = first;
      } else {
        set = set.union(first);
        members++;
      }
    }
    this.pos++; // ]
    if (negated) set = set.negate();
    const literal = !negated && members === 1 ? singleCode : null;
    return this.chars(set, literal);
  }

  /** One member of a class: a character code, or a set for `\d`-style escapes. */
  private classAtom(): number | CharSet {
    const c = this.peek();
    if (c !== '\\') {
      if (c === '[') throw new Refusal('a literal "[" inside a class must be escaped as "\\["');
      this.pos++;
      return c.charCodeAt(0);
    }
    const e = this.peek(1);
    const classEscape = CLASS_ESCAPES[e];
    if (classEscape !== undefined) {
      this.pos += 2;
      return classEscape;
    }
    if (e === 'b' || e === 'B') throw new Refusal(`"\\${e}" inside a class is not supported`);
    if (e === '-') {
      this.pos += 2;
      return 45;
    }
    return this.escapedCode();
  }
}

function nullable(node: RegexNode): boolean {
  switch (node.kind) {
    case 'chars':
      return false;
    case 'assert':
      return true;
    case 'group':
      return node.alternatives.some((alt) => alt.every(nullable));
    case 'repeat':
      return node.min === 0 || nullable(node.body);
  }
}

function firstOfSequence(seq: readonly RegexNode[]): CharSet {
  let set = CharSet.EMPTY;
  for (const node of seq) {
    set = set.union(first(node));
    if (!nullable(node)) break;
  }
  return set;
}

function first(node: RegexNode): CharSet {
  switch (node.kind) {
    case 'chars':
      return node.set;
    case 'assert':
      return CharSet.EMPTY;
    case 'group':
      return node.alternatives.reduce((acc, alt) => acc.union(firstOfSequence(alt)), CharSet.EMPTY);
    case 'repeat':
      return first(node.body);
  }
}

function containsQuantifier(node: RegexNode): boolean {
  if (node.kind === 'repeat') return true;
  if (node.kind === 'group') return node.alternatives.some((alt) => alt.some(containsQuantifier));
  return false;
}

/** Inside a repetition: every alternation must be decided by its first character. */
function checkDeterministicAlternations(node: RegexNode): void {
  if (node.kind !== 'group') return;
  const alts = node.alternatives;
  if (alts.length > 1) {
    const firsts = alts.map((alt) => {
      if (alt.every(nullable)) throw new Refusal('a repeated alternation with a branch that can match the empty string risks catastrophic backtracking');
      return firstOfSequence(alt);
    });
    for (let i = 0; i < firsts.length; i++) {
      for (let j = i + 1; j < firsts.length; j++) {
        if ((firsts[i] as CharSet).intersects(firsts[j] as CharSet)) {
          throw new Refusal('a repeated alternation whose branches can start with the same character (like "(a|a)*") risks catastrophic backtracking');
        }
      }
    }
  }
  for (const alt of alts) for (const child of alt) checkDeterministicAlternations(child);
}

function checkNesting(node: RegexNode): void {
  if (node.kind === 'group') {
    for (const alt of node.alternatives) for (const child of alt) checkNesting(child);
    return;
  }
  if (node.kind !== 'repeat') return;
  if (node.max > 1) {
    if (containsQuantifier(node.body)) {
      throw new Refusal('nested quantifiers (a repeated group that contains a quantifier, like "(a+)+") risk catastrophic backtracking');
    }
    if (nullable(node.body)) throw new Refusal('repeating something that can match the empty string risks catastrophic backtracking');
    checkDeterministicAlternations(node.body);
  }
  checkNesting(node.body);
}

interface Ambiguity {
  unbounded: number;
  choices: number;
}

function walkSequence(seq: readonly RegexNode[], follow: CharSet, acc: Ambiguity): void {
  let after = follow;
  for (let i = seq.length - 1; i >= 0; i--) {
    const node = seq[i] as RegexNode;
    walkNode(node, after, acc);
    after = nullable(node) ? first(node).union(after) : first(node);
  }
}

function walkNode(node: RegexNode, follow: CharSet, acc: Ambiguity): void {
  if (node.kind === 'group') {
    const alts = node.alternatives;
    if (alts.length > 1) {
      const lookahead = alts.map((alt) => (alt.every(nullable) ? firstOfSequence(alt).union(follow) : firstOfSequence(alt)));
      let overlapping = false;
      for (let i = 0; i < lookahead.length && !overlapping; i++) {
        for (let j = i + 1; j < lookahead.length; j++) {
          if ((lookahead[i] as CharSet).intersects(lookahead[j] as CharSet)) overlapping = true;
        }
      }
      if (overlapping) acc.choices = Math.min(acc.choices * alts.length, Number.MAX_SAFE_INTEGER);
    }
    for (const alt of alts) walkSequence(alt, follow, acc);
    return;
  }
  if (node.kind !== 'repeat') return;
  if (node.min !== node.max) {
    const ambiguous = nullable(node.body) || first(node.body).intersects(follow);
    if (ambiguous) {
      if (node.max > BOUNDED_REPEAT_MAX) acc.unbounded++;
      else acc.choices = Math.min(acc.choices * (node.max - node.min + 1), Number.MAX_SAFE_INTEGER);
    }
  }
  walkNode(node.body, node.max > 1 ? follow.union(first(node.body)) : follow, acc);
}

/** What the last character matched by `seq[0..end)` can be, and whether that stretch can be empty. */
function lastOfSequence(seq: readonly RegexNode[], end: number): { set: CharSet; open: boolean } {
  let set = CharSet.EMPTY;
  for (let i = end - 1; i >= 0; i--) {
    const node = seq[i] as RegexNode;
    if (node.kind === 'assert') {
      if (node.text === '^') return { set, open: false }; // the subject starts here
      continue;
    }
    set = set.union(last(node));
    if (!nullable(node)) return { set, open: false };
  }
  return { set, open: true };
}

function last(node: RegexNode): CharSet {
  switch (node.kind) {
    case 'chars':
      return node.set;
    case 'assert':
      return CharSet.EMPTY;
    case 'group':
      return node.alternatives.reduce((acc, alt) => acc.union(lastOfSequence(alt, alt.length).set), CharSet.EMPTY);
    case 'repeat':
      return last(node.body);
  }
}

const NOT_DOT = CharSet.of(46).negate();

/**
 * A literal tail every match ends with. `labelStart`: the tail begins a label — the subject starts
 * there or the character before it can only be a dot — so it is a label-aligned domain suffix.
 */
export interface LiteralTail {
  readonly text: string;
  readonly labelStart: boolean;
}

/** Whether whatever `seq[0..end)` matches can only end with a dot or at the start of the subject. */
function endsAtLabelStart(seq: readonly RegexNode[], end: number, atTop: boolean): boolean {
  const { set, open } = lastOfSequence(seq, end);
  if (set.intersects(NOT_DOT)) return false;
  return !open || atTop;
}

/**
 * The literal tails of `seq` (`(.*\.)?github\.com` -> `github.com`, label-aligned); `complete`
 * when each tail is the entire match of `seq`. `atTop`: `seq` is a top-level alternative, so its
 * beginning is the subject's start.
 */
function literalTails(seq: readonly RegexNode[], atTop: boolean): { tails: LiteralTail[]; complete: boolean } {
  let texts = [''];
  const stop = (labelStart: boolean): { tails: LiteralTail[]; complete: boolean } => ({
    tails: texts.map((text) => ({ text, labelStart })),
    complete: false,
  });
  for (let i = seq.length - 1; i >= 0; i--) {
    const node = seq[i] as RegexNode;
    if (node.kind === 'assert') {
      if (node.text === '^') return stop(true);
      continue;
    }
    if (node.kind === 'chars' && node.literal !== null) {
      const literal = node.literal;
      texts = texts.map((t) => literal + t);
      continue;
    }
    if (node.kind === 'group') {
      const parts = node.alternatives.map((alt) => literalTails(alt, false));
      if (parts.reduce((n, p) => n + p.tails.length, 0) * texts.length > MAX_LITERAL_SUFFIXES) {
        return stop(endsAtLabelStart(seq, i + 1, atTop));
      }
      if (parts.every((p) => p.complete)) {
        texts = parts.flatMap((p) => p.tails.flatMap((head) => texts.map((t) => head.text + t)));
        continue;
      }
      const before = endsAtLabelStart(seq, i, atTop);
      const tails = parts.flatMap((p) =>
        p.tails.flatMap((head) => texts.map((t) => ({ text: head.text + t, labelStart: p.complete ? before : head.labelStart }))),
      );
      return { tails, complete: false };
    }
    return stop(endsAtLabelStart(seq, i + 1, atTop));
  }
  return { tails: texts.map((text) => ({ text, labelStart: atTop })), complete: true };
}

/**
 * The literal heads of `seq` (`host[0-9]+\..+` -> `host`, `(api|www)\.x` -> `api.x`, `www.x`);
 * `complete` when each head is the entire match of `seq`. Zero-width assertions consume nothing,
 * so they neither end nor extend a head.
 */
function literalHeads(seq: readonly RegexNode[]): { heads: string[]; complete: boolean } {
  let texts = [''];
  for (const node of seq) {
    if (node.kind === 'assert') continue;
    if (node.kind === 'chars' && node.literal !== null) {
      const literal = node.literal;
      texts = texts.map((t) => t + literal);
      continue;
    }
    if (node.kind !== 'group') return { heads: texts, complete: false };
    const parts = node.alternatives.map(literalHeads);
    if (parts.reduce((n, p) => n + p.heads.length, 0) * texts.length > MAX_LITERAL_SUFFIXES) return { heads: texts, complete: false };
    const joined = texts.flatMap((t) => parts.flatMap((p) => p.heads.map((head) => t + head)));
    if (!parts.every((p) => p.complete)) return { heads: joined, complete: false };
    texts = joined;
  }
  return { heads: texts, complete: true };
}

export type RegexAnalysis =
  | {
      readonly ok: true;
      /**
       * Every match ends with one of these tails (lowercased when case-insensitive); null when
       * some way of matching ends in something other than a literal.
       */
      readonly literalTails: readonly LiteralTail[] | null;
      /**
       * Every match starts with one of these heads (lowercased when case-insensitive); null when
       * some way of matching starts with something other than a literal.
       */
      readonly literalHeads: readonly string[] | null;
      readonly regex: RegExp;
    }
  | { readonly ok: false; readonly reason: string };

/**
 * Checks `source` against the rules above and compiles it as a full-match regex. `ok: false`
 * carries a one-line reason that names the problem and how to fix it.
 */
export function analyzeRegex(
  source: string,
  options: { readonly caseInsensitive: boolean; readonly maxAmbiguousUnboundedRepeats?: number },
): RegexAnalysis {
  const maxUnbounded = options.maxAmbiguousUnboundedRepeats ?? MAX_AMBIGUOUS_UNBOUNDED_REPEATS;
  if (source.length > MAX_REGEX_LENGTH_CHARS) {
    return { ok: false, reason: `is longer than ${MAX_REGEX_LENGTH_CHARS} characters` };
  }
  let regex: RegExp;
  try {
    regex = new RegExp(`^(?:${source})$`, options.caseInsensitive ? 'i' : '');
  } catch (err) {
    return { ok: false, reason: `is not a valid regular expression (${err instanceof Error ? err.message : String(err)})` };
  }
  try {
    const alternatives = new Parser(source, options.caseInsensitive).parse();
    const top: RegexNode = { kind: 'group', alternatives };
    checkNesting(top);
    const acc: Ambiguity = { unbounded: 0, choices: 1 };
    walkNode(top, CharSet.EMPTY, acc);
    if (acc.unbounded > maxUnbounded) {
      throw new Refusal(
        `${acc.unbounded} unbounded repetition${acc.unbounded === 1 ? '' : 's'} overlap${acc.unbounded === 1 ? 's' : ''} ` +
          `what follows (like ".*x.*y"), which risks catastrophic backtracking; at most ${maxUnbounded} allowed here — ` +
          `use narrower classes such as "[^.]*", "[^/]*" or "[a-z0-9-]+"`,
      );
    }
    if (acc.choices > MAX_AMBIGUOUS_CHOICES) {
      throw new Refusal(
        `optional parts and overlapping alternatives give ${acc.choices} ambiguous combinations, which risks ` +
          `catastrophic backtracking; at most ${MAX_AMBIGUOUS_CHOICES} are allowed`,
      );
    }
    const tails = alternatives.flatMap((alt) => literalTails(alt, true).tails);
    const unique = new Map(tails.map((t) => [`${t.labelStart ? 1 : 0}${t.text}`, t]));
    const literalTailsFound = tails.some((t) => t.text === '') ? null : [...unique.values()];
    const heads = alternatives.flatMap((alt) => literalHeads(alt).heads);
    const literalHeadsFound = heads.includes('') ? null : [...new Set(heads)];
    return { ok: true, literalTails: literalTailsFound, literalHeads: literalHeadsFound, regex };
  } catch (err) {
    if (err instanceof Refusal) return { ok: false, reason: `is refused: ${err.message}` };
    throw err;
  }
}
