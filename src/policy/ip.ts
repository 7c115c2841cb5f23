/**
 * IP address and CIDR parsing for the policy engine, as 32-bit words so that the CIDR trie can
 * compare prefixes with integer operations: an IPv4 address is one word, an IPv6 address four
 * (most significant first).
 *
 * Documents are parsed strictly (no zone ids, no leading zeros in IPv4 octets, no host bits in a
 * CIDR, no IPv4-mapped IPv6 forms). Decision inputs are parsed leniently the way sockets report
 * them: `[...]` brackets and `%zone` suffixes are dropped and an IPv4-mapped IPv6 address
 * (`::ffff:10.0.0.1`, as a dual-stack socket reports an IPv4 client) is the IPv4 address.
 */

export interface IpAddress {
  readonly v6: boolean;
  /** One word for IPv4, four for IPv6; each an unsigned 32-bit integer. */
  readonly words: readonly number[];
}

export interface IpPrefix extends IpAddress {
  /** 0–32 for IPv4, 0–128 for IPv6; the words have no bits set beyond it. */
  readonly prefixLength: number;
}

const IPV4_MAX_TEXT_CHARS = 15;
/** `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255` */
const IPV6_MAX_TEXT_CHARS = 45;

/** Parses a dotted-quad IPv4 address (no leading zeros) into a uint32, or -1. */
export function parseIpv4Word(text: string): number {
  const length = text.length;
  if (length < 7 || length > IPV4_MAX_TEXT_CHARS) return -1;
  let word = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  let leadingZero = false;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0) return -1;
      word = word * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
      if (dots > 3) return -1;
    } else if (c >= 48 && c <= 57) {
      if (digits === 0) leadingZero = c === 48;
      else if (leadingZero) return -1;
      octet = octet * 10 + (c - 48);
      digits++;
      if (octet > 255) return -1;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return word * 256 + octet;
}

function parseHexGroup(part: string): number {
  if (part.length === 0 || part.length > 4) return -1;
  let value = 0;
  for (let i = 0; i < part.length; i++) {
    const c = part.charCodeAt(i);
    let digit: number;
    if (c >= 48 && c <= 57) digit = c - 48;
    else if (c >= 97 && c <= 102) digit = c - 87;
    else if (c >= 65 && c <= 70) digit = c - 55;
    else return -1;
    value = value * 16 + digit;
  }
  return value;
}

/** Parses colon-separated groups into 16-bit values; an IPv4 tail counts as two groups. */
function parseGroups(text: string, allowIpv4Tail: boolean): number[] | null {
  if (text === '') return [];
  const parts = text.split(':');
  const groups: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    if (allowIpv4Tail && i === parts.length - 1 && part.includes('.')) {
      const v4 = parseIpv4Word(part);
      if (v4 < 0) return null;
      groups.push(Math.floor(v4 / 65536), v4 % 65536);
    } else {
      const group = parseHexGroup(part);
      if (group < 0) return null;
      groups.push(group);
    }
  }
  return groups;
}

/** Parses an IPv6 address without zone id into four words, or null. */
export function parseIpv6Words(text: string): number[] | null {
  if (text.length < 2 || text.length > IPV6_MAX_TEXT_CHARS) return null;
  const gap = text.indexOf('::');
  let groups: number[];
  if (gap < 0) {
    const all = parseGroups(text, true);
    if (all === null || all.length !== 8) return null;
    groups = all;
  } else {
    if (text.indexOf('::', gap + 1) >= 0) return null;
    const head = parseGroups(text.slice(0, gap), false);
    const tail = parseGroups(text.slice(gap + 2), true);
    if (head === null || tail === null || head.length + tail.length > 7) return null;
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  }
  const words: number[] = [];
  for (let i = 0; i < 8; i += 2) words.push((groups[i] as number) * 65536 + (groups[i + 1] as number));
  return words;
}

/** Strict parse of an address written in a policy document. */
export function parseIp(text: string): IpAddress | null {
  if (text.includes(':')) {
    const words = parseIpv6Words(text);
    return words === null ? null : { v6: true, words };
  }
  const word = parseIpv4Word(text);
  return word < 0 ? null : { v6: false, words: [word] };
}

/** Whether an IPv6 address is IPv4-mapped (`::ffff:0:0/96`). */
export function isIpv4Mapped(words: readonly number[]): boolean {
  return words.length === 4 && words[0] === 0 && words[1] === 0 && words[2] === 0xffff;
}

/**
 * Lenient parse of an address given to a decision (from a socket or a resolver): brackets and a
 * zone id are dropped, IPv4-mapped IPv6 becomes IPv4. Returns null for anything else.
 */
export function parseInputIp(text: string): IpAddress | null {
  let t = text;
  if (t.length > 0 && t.charCodeAt(0) === 91 /* [ */ && t.charCodeAt(t.length - 1) === 93 /* ] */) t = t.slice(1, -1);
  if (!t.includes(':')) {
    const word = parseIpv4Word(t);
    return word < 0 ? null : { v6: false, words: [word] };
  }
  const zone = t.indexOf('%');
  if (zone >= 0) t = t.slice(0, zone);
  const words = parseIpv6Words(t);
  if (words === null) return null;
  if (isIpv4Mapped(words)) return { v6: false, words: [words[3] as number] };
  return { v6: true, words };
}

/** A reusable IPv4 address for `parseInputIpReusing`. */
export interface Ipv4Scratch {
  readonly v6: false;
  readonly words: [number];
}

/** A new scratch address for `parseInputIpReusing` (one per role, e.g. client and destination). */
export function ipv4Scratch(): Ipv4Scratch {
  return { v6: false, words: [0] };
}

/**
 * `parseInputIp` without allocating in the common case: a plain dotted-quad IPv4 address is
 * written into `scratch`, which is returned and stays valid only until the next call with it.
 */
export function parseInputIpReusing(text: string, scratch: Ipv4Scratch): IpAddress | null {
  const word = parseIpv4Word(text);
  if (word >= 0) {
    scratch.words[0] = word;
    return scratch;
  }
  return parseInputIp(text);
}

/** Formats an address in its usual text form (IPv6 with the longest zero run compressed). */
export function formatIp(address: IpAddress): string {
  if (!address.v6) {
    const w = address.words[0] as number;
    return `${Math.floor(w / 16777216)}.${Math.floor(w / 65536) % 256}.${Math.floor(w / 256) % 256}.${w % 256}`;
  }
  const groups: number[] = [];
  for (const w of address.words) groups.push(Math.floor(w / 65536), w % 65536);
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength && j - i >= 2) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** Keeps the first `prefixLength` bits of the words and clears the rest. */
export function maskWords(words: readonly number[], prefixLength: number): number[] {
  return words.map((w, i) => {
    const keep = prefixLength - i * 32;
    if (keep >= 32) return w;
    if (keep <= 0) return 0;
    return (w & ~(0xffffffff >>> keep)) >>> 0;
  });
}

export type ParseResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

/** Why a document's IP address is refused, or the parsed address. */
export function parseDocumentIp(text: string): ParseResult<IpAddress> {
  const address = parseIp(text);
  if (address === null) return { ok: false, reason: 'is not a valid IPv4 or IPv6 address' };
  if (address.v6 && isIpv4Mapped(address.words)) {
    const v4 = formatIp({ v6: false, words: [address.words[3] as number] });
    return { ok: false, reason: `is an IPv4-mapped IPv6 address; write it as IPv4 (${v4})` };
  }
  return { ok: true, value: address };
}

const PREFIX_LENGTH_PATTERN = /^(0|[1-9][0-9]{0,2})$/;

/** Why a document's CIDR is refused, or the parsed prefix. */
export function parseDocumentCidr(text: string): ParseResult<IpPrefix> {
  const slash = text.indexOf('/');
  if (slash < 0) return { ok: false, reason: 'is not a valid CIDR (expected address/prefix-length, e.g. 10.0.0.0/8)' };
  const addressText = text.slice(0, slash);
  const lengthText = text.slice(slash + 1);
  const address = parseIp(addressText);
  if (address === null || !PREFIX_LENGTH_PATTERN.test(lengthText)) {
    return { ok: false, reason: 'is not a valid CIDR (expected address/prefix-length, e.g. 10.0.0.0/8)' };
  }
  const prefixLength = Number(lengthText);
  const maxLength = address.v6 ? 128 : 32;
  if (prefixLength > maxLength) return { ok: false, reason: `is not a valid CIDR (prefix length above ${maxLength})` };
  const masked = maskWords(address.words, prefixLength);
  if (masked.some((w, i) => w !== address.words[i])) {
    return { ok: false, reason: `has host bits set (did you mean ${formatIp({ v6: address.v6, words: masked })}/${prefixLength}?)` };
  }
  if (address.v6 && prefixLength >= 96 && isIpv4Mapped(address.words)) {
    const v4 = formatIp({ v6: false, words: [address.words[3] as number] });
    return { ok: false, reason: `is an IPv4-mapped IPv6 prefix; write it as IPv4 (${v4}/${prefixLength - 96})` };
  }
  return { ok: true, value: { v6: address.v6, words: masked, prefixLength } };
}
