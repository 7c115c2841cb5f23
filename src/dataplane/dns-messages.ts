/**
 * DNS message handling shared by the DNS proxy and the proxy's resolver: classifying client
 * queries, building the proxy's own answers (NXDOMAIN, SERVFAIL, ...), validating upstream
 * replies, and reading the addresses of an answer.
 *
 * Client queries are parsed with `dns-packet` (no hand-written query parsing): the common query
 * is decoded section by section with dns-packet's own codecs (no full packet object). The proxy's
 * own answers are the client's header and question with the fixed 12-byte header patched
 * (`buildAnswerFromQuery`).
 *
 * Upstream replies are not decoded into objects: a full decode cost more than the rest of the
 * reply's path. `checkReply` reads the header, compares the question with the bytes the proxy
 * sent, and checks that every record is framed within the message; `replyAddresses` walks only
 * the answer section for the A/AAAA records of the qname and its CNAME chain, decoding names other
 * than the usual pointer to the question with dns-packet. Both are small bounds-checked readers:
 * a malformed reply is refused (`checkReply`) or yields no addresses, never an exception.
 */
import { randomFillSync } from 'node:crypto';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet, Question } from 'dns-packet';
import { normalizeHostname } from '../policy/hostname.js';
import type { AllowlistAddress } from './allowlist.js';

/** Largest DNS message (the 2-byte TCP length prefix bounds it). */
export const DNS_MESSAGE_MAX_BYTES = 65_535;
/** DNS header size. */
export const DNS_HEADER_BYTES = 12;
/** Longest name on the wire (RFC 1035 §2.3.4), length octets included. */
const NAME_MAX_BYTES = 255;
/** UDP payload size the proxy advertises in its own EDNS answers (the DNS flag day 2020 value). */
export const DNS_EDNS_UDP_PAYLOAD_BYTES = 1232;
/** Longest CNAME chain followed when reading the addresses of an answer. */
export const DNS_CNAME_CHAIN_MAX_HOPS = 16;

/**
 * Response codes the proxy uses (RFC 1035 §4.1.1, RFC 6895). BADVERS (RFC 6891) is an extended
 * code: its upper bits travel in the answer's OPT record, so it is only sent to an EDNS query.
 */
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 } as const;
export type Rcode = (typeof RCODE)[keyof typeof RCODE];

/** Extended DNS Error codes (RFC 8914) attached to the proxy's own answers when the client speaks EDNS. */
export const EDE = { OTHER: 0, BLOCKED: 15, NOT_READY: 14, NETWORK_ERROR: 23, NO_REACHABLE_AUTHORITY: 22 } as const;

const EDE_OPTION_CODE = 15;
const EDE_TEXT_MAX_BYTES = 200;
/** One of dns-packet's section codecs (exported by the library, not declared by @types/dns-packet; nor is its name codec). */
interface SectionCodec<T> {
  readonly encode: ((value: T, buf: Buffer, offset: number) => unknown) & { readonly bytes: number };
  readonly decode: ((buf: Buffer, offset: number) => T) & { readonly bytes: number };
  encodingLength(value: T): number;
}
const codecs = dnsPacket as unknown as {
  readonly question: SectionCodec<Question>;
  readonly answer: SectionCodec<Answer>;
  readonly name: { readonly decode: (buf: Buffer, offset: number) => string };
};

const FLAG_QR = 0x8000;
const FLAG_RD = dnsPacket.RECURSION_DESIRED;
const FLAG_RA = dnsPacket.RECURSION_AVAILABLE;
const FLAG_CD = dnsPacket.CHECKING_DISABLED;
const FLAG_TC = dnsPacket.TRUNCATED_RESPONSE;
const OPCODE_MASK = 0x7800;

/**
 * The big-endian 16-bit value at `offset`, for offsets the caller has checked are inside `buf`
 * (`Buffer.readUInt16BE` checks again and was a visible share of a query's time). Every reader
 * below checks its bounds before reading.
 */
function u16(buf: Buffer, offset: number): number {
  return ((buf[offset] as number) << 8) | (buf[offset + 1] as number);
}

/** A client query the proxy can decide: one question, opcode QUERY. */
export interface ParsedQuery {
  /**
   * The decoded message: at least `id`, `flags`, `questions` and (when present) `additionals`,
   * which is all `buildResponse` reads; the other header fields may be absent.
   */
  readonly packet: DecodedPacket;
  readonly question: Question;
  /** Offset just past the question in the raw message (header and question are canonical bytes). */
  readonly questionEnd: number;
  /** Whether the client sent an OPT record (speaks EDNS). */
  readonly edns: boolean;
}

/** What a client message is. */
export type QueryClassification =
  | { readonly kind: 'query'; readonly query: ParsedQuery }
  /** Decodes, but is not something the proxy answers (opcode, question count): answer `rcode`. */
  | { readonly kind: 'unsupported'; readonly packet: DecodedPacket; readonly rcode: Rcode }
  /** Not a DNS query at all (undecodable, a response, non-canonical question): drop it. */
  | { readonly kind: 'malformed'; readonly reason: string };

/**
 * Scratch space for re-encoding one question: a name decodes to at most 254 label bytes, each of
 * which re-encodes to at most 3 bytes (invalid UTF-8 becomes U+FFFD), plus type and class.
 */
const QUESTION_SCRATCH_BYTES = 1024;
const questionScratch = Buffer.alloc(QUESTION_SCRATCH_BYTES);

/**
 * The length of the question section of `raw` when it is exactly what `question` re-encodes to,
 * else -1. Catches what the decoded text hides: dots or invalid UTF-8 inside a label, compression
 * pointers in the question, unknown classes. The proxy decides on the decoded name and forwards
 * the raw bytes, so the two must denote the same name.
 */
function canonicalQuestionLength(raw: Buffer, question: Question): number {
  const printable = printableQuestionLength(raw);
  if (printable >= 0) return printable;
  let length: number;
  try {
    codecs.question.encode(question, questionScratch, 0);
    length = codecs.question.encode.bytes;
  } catch {
    return -1;
  }
  if (raw.length < DNS_HEADER_BYTES + length) return -1;
  return raw.compare(questionScratch, 0, length, DNS_HEADER_BYTES, DNS_HEADER_BYTES + length) === 0 ? length : -1;
}

/**
 * Whether the 16-bit type (`table` 0) or class (`table` 1) `value` comes back as itself when
 * dns-packet decodes and re-encodes a question: 0 not yet known, 1 yes, 2 no. Filled on demand by
 * asking dns-packet itself.
 */
const roundTrips = [new Uint8Array(65_536), new Uint8Array(65_536)] as const;

function roundTripsAs(table: 0 | 1, value: number): boolean {
  const known = roundTrips[table];
  if (known[value] === 0) {
    const probe = Buffer.from([0, 0, 1, 0, 1]); // root name, type A, class IN
    probe.writeUInt16BE(value, table === 0 ? 1 : 3);
    let same = false;
    try {
      codecs.question.encode(codecs.question.decode(probe, 0), questionScratch, 0);
      same = codecs.question.encode.bytes === probe.length && probe.compare(questionScratch, 0, probe.length) === 0;
    } catch {
      same = false;
    }
    known[value] = same ? 1 : 2;
  }
  return known[value] === 1;
}

/**
 * `canonicalQuestionLength` without re-encoding, for the common question whose labels hold only
 * printable ASCII other than the dot (0x21-0x7e): dns-packet decodes such labels to the same
 * characters and re-encodes the joined name to the same labels, so the question is canonical
 * exactly when its type and class round-trip (`roundTripsAs`). -1 when this shortcut cannot
 * tell (a pointer, another byte, a cut-short section): the caller then re-encodes.
 */
function printableQuestionLength(raw: Buffer): number {
  let offset = DNS_HEADER_BYTES;
  for (;;) {
    if (offset >= raw.length) return -1;
    const length = raw[offset] as number;
    if (length === 0) break;
    if (length > 63 || offset + 1 + length > raw.length) return -1;
    for (let i = offset + 1; i <= offset + length; i++) {
      const byte = raw[i] as number;
      if (byte < 0x21 || byte > 0x7e || byte === 0x2e) return -1;
    }
    offset += 1 + length;
  }
  const end = offset + 5;
  if (end > raw.length || end - DNS_HEADER_BYTES > NAME_MAX_BYTES + 4) return -1;
  if (!roundTripsAs(0, u16(raw, offset + 1)) || !roundTripsAs(1, u16(raw, offset + 3))) return -1;
  return end - DNS_HEADER_BYTES;
}

function classifyDecoded(raw: Buffer, packet: DecodedPacket): QueryClassification {
  if (packet.flag_qr) return { kind: 'malformed', reason: 'a response, not a query' };
  if (opcodeOf(packet) !== OPCODE_QUERY) return { kind: 'unsupported', packet, rcode: RCODE.NOTIMP };
  const questions = packet.questions ?? [];
  if (questions.length !== 1) return { kind: 'unsupported', packet, rcode: RCODE.FORMERR };
  // EDNS (RFC 6891 §6.1.1, §6.1.3): at most one OPT record, and only version 0 is spoken here.
  // Without allocating: this runs for every query.
  let opt: Answer | null = null;
  if (packet.additionals !== undefined) {
    for (const record of packet.additionals) {
      if (record.type !== 'OPT') continue;
      if (opt !== null) return { kind: 'unsupported', packet: { ...packet, additionals: [] }, rcode: RCODE.FORMERR };
      opt = record;
    }
  }
  if (opt !== null && ((opt as { ednsVersion?: number }).ednsVersion ?? 0) !== 0) return { kind: 'unsupported', packet, rcode: RCODE.BADVERS };
  const question = questions[0] as Question;
  const length = canonicalQuestionLength(raw, question);
  if (length < 0) return { kind: 'malformed', reason: 'non-canonical question name' };
  return { kind: 'query', query: { packet, question, questionEnd: DNS_HEADER_BYTES + length, edns: opt !== null } };
}

/**
 * The common client query — flags of a query with opcode QUERY, one question, no answer or
 * authority records, at most one additional record — decoded section by section with the same
 * dns-packet decoders `dnsPacket.decode` uses, without building the full packet object. Null
 * for anything else, or when a section does not decode (the caller then takes the full path,
 * so the classification is the same either way). `raw` holds at least a header (`classifyQuery`
 * checked).
 */
function decodeCommonQuery(raw: Buffer): DecodedPacket | null {
  const flags = u16(raw, 2);
  if ((flags & (FLAG_QR | OPCODE_MASK)) !== 0 || u16(raw, 4) !== 1 || u16(raw, 6) !== 0 || u16(raw, 8) !== 0) return null;
  const additionalCount = u16(raw, 10);
  if (additionalCount > 1) return null;
  try {
    const question = codecs.question.decode(raw, DNS_HEADER_BYTES);
    const packet: DecodedPacket = { id: u16(raw, 0), type: 'query', flags, flag_qr: false, questions: [question] } as DecodedPacket;
    if (additionalCount === 1) {
      const additional = codecs.answer.decode(raw, DNS_HEADER_BYTES + codecs.question.decode.bytes);
      packet.additionals = [additional];
    }
    return packet;
  } catch {
    return null;
  }
}

/** Classifies a client message. Never throws. */
export function classifyQuery(raw: Buffer): QueryClassification {
  if (raw.length < DNS_HEADER_BYTES || raw.length > DNS_MESSAGE_MAX_BYTES) return { kind: 'malformed', reason: `length ${raw.length}` };
  const common = decodeCommonQuery(raw);
  if (common !== null) return classifyDecoded(raw, common);
  let packet: DecodedPacket;
  try {
    packet = dnsPacket.decode(raw);
  } catch (err) {
    return { kind: 'malformed', reason: err instanceof Error ? err.message : 'undecodable' };
  }
  return classifyDecoded(raw, packet);
}

function optRecord(query: DecodedPacket): Answer | null {
  for (const record of query.additionals ?? []) if (record.type === 'OPT') return record;
  return null;
}

function optAnswer(ede: { code: number; text: string } | undefined, extendedRcode = 0): Answer {
  const options = [];
  if (ede !== undefined) {
    const text = Buffer.from(ede.text.replace(/[^\x20-\x7e]/g, '?')).subarray(0, EDE_TEXT_MAX_BYTES);
    const data = Buffer.alloc(2 + text.length);
    data.writeUInt16BE(ede.code, 0);
    text.copy(data, 2);
    options.push({ code: EDE_OPTION_CODE, data });
  }
  return { type: 'OPT', name: '.', udpPayloadSize: DNS_EDNS_UDP_PAYLOAD_BYTES, extendedRcode, ednsVersion: 0, flags: 0, options } as unknown as Answer;
}

/**
 * The proxy's own answer to `query` with `rcode`: same ID, opcode and question, RD and CD echoed, RA set
 * (the proxy recurses through its upstreams). When the client sent EDNS, the answer carries an OPT
 * record, with an Extended DNS Error (`ede`, RFC 8914) when given.
 */
export function buildResponse(query: DecodedPacket, rcode: Rcode, ede?: { code: number; text: string }): Buffer {
  const flags = (query.flags ?? 0) & (OPCODE_MASK | FLAG_RD | FLAG_CD);
  const packet: Packet = {
    type: 'response',
    id: query.id ?? 0,
    flags: flags | FLAG_RA | (rcode & 0xf),
    questions: query.questions ?? [],
  };
  if (optRecord(query) !== null) packet.additionals = [optAnswer(ede, rcode >> 4)];
  return dnsPacket.encode(packet);
}

/** Encoded OPT records of the proxy's own answers, by EDE code and text (a policy has few reasons). */
const optRecordCache = new Map<string, Buffer>();
/** Bound of `optRecordCache`; it is emptied when full (denylist reasons name the hostname). */
const OPT_RECORD_CACHE_MAX_ENTRIES = 1_024;

function encodedOptRecord(ede: { code: number; text: string } | undefined): Buffer {
  const key = ede === undefined ? '' : `${ede.code} ${ede.text}`;
  let encoded = optRecordCache.get(key);
  if (encoded === undefined) {
    const answer = optAnswer(ede);
    encoded = Buffer.alloc(codecs.answer.encodingLength(answer));
    codecs.answer.encode(answer, encoded, 0);
    if (optRecordCache.size >= OPT_RECORD_CACHE_MAX_ENTRIES) optRecordCache.clear();
    optRecordCache.set(key, encoded);
  }
  return encoded;
}

/**
 * `buildResponse` for a classified query, byte for byte, without encoding a packet: the header
 * and question are the client's own bytes (`classifyQuery` checked they are canonical) with the
 * header patched — QR and RA set, the rcode, AA/TC/AD/Z cleared, the record counts of an answer
 * with no records — followed by the OPT record when the client speaks EDNS.
 *
 * With `reuseQuery`, the answer is written over `raw` itself when it fits (always without EDNS:
 * the answer is the query's header and question), so no buffer is allocated or copied; `raw`
 * then no longer holds the query. Only for a caller that owns `raw` and is done with it.
 */
export function buildAnswerFromQuery(raw: Buffer, query: ParsedQuery, rcode: Rcode, ede?: { code: number; text: string }, reuseQuery = false): Buffer {
  const opt = query.edns ? encodedOptRecord(ede) : null;
  const length = query.questionEnd + (opt === null ? 0 : opt.length);
  const flags = FLAG_QR | (u16(raw, 2) & (OPCODE_MASK | FLAG_RD | FLAG_CD)) | FLAG_RA | rcode;
  let out: Buffer;
  if (reuseQuery && raw.length >= length) {
    out = raw.length === length ? raw : raw.subarray(0, length);
  } else {
    out = Buffer.allocUnsafe(length);
    raw.copy(out, 0, 0, query.questionEnd);
  }
  // Header (RFC 1035 §4.1.1): ID kept; flags; QDCOUNT stays 1; ANCOUNT, NSCOUNT 0; ARCOUNT 0 or 1.
  out[2] = flags >>> 8;
  out[3] = flags & 0xff;
  out[6] = 0; // byte by byte: `fill` is a call into the runtime
  out[7] = 0;
  out[8] = 0;
  out[9] = 0;
  out[10] = 0;
  out[11] = opt === null ? 0 : 1;
  if (opt !== null) opt.copy(out, query.questionEnd);
  return out;
}

const OPCODE_QUERY = 0;

/** The opcode of a decoded packet (0 = QUERY). */
export function opcodeOf(packet: DecodedPacket): number {
  return ((packet.flags ?? 0) >> 11) & 0xf;
}

/** The 4-bit response code of a decoded packet. */
export function rcodeOf(packet: DecodedPacket): number {
  return (packet.flags ?? 0) & 0xf;
}

/** Outcome of `checkReply`: the reply's response code and TC bit, or why it was refused. */
export type ReplyCheck = { readonly ok: true; readonly rcode: number; readonly truncated: boolean } | { readonly ok: false; readonly reason: string };

/**
 * The `checkReply` results of valid replies, by `rcode | truncated << 4`: shared, so that accepting
 * a reply allocates nothing.
 */
const VALID_REPLY_CHECKS: readonly ReplyCheck[] = Array.from({ length: 32 }, (_, key) => Object.freeze({ ok: true as const, rcode: key & 0xf, truncated: key >= 16 }));

/** Fixed part of a resource record after its owner name: type, class, TTL, RDLENGTH. */
const RECORD_FIXED_BYTES = 10;
const TYPE_A = 1;
const TYPE_CNAME = 5;
const TYPE_AAAA = 28;
const CLASS_IN = 1;
/** The mDNS cache-flush bit of a record's class (dns-packet masks it off as well). */
const CLASS_FLUSH_BIT = 0x8000;

/**
 * Offset just past the question section of an outgoing `query` (name, type, class), or -1 when
 * the query does not hold exactly one question with an uncompressed, well-formed name.
 */
export function questionEnd(query: Buffer): number {
  if (query.length < DNS_HEADER_BYTES || u16(query, 4) !== 1) return -1;
  let offset = DNS_HEADER_BYTES;
  for (;;) {
    if (offset >= query.length || offset - DNS_HEADER_BYTES >= NAME_MAX_BYTES) return -1;
    const length = query[offset] as number;
    if (length === 0) break;
    if (length > 63) return -1;
    offset += 1 + length;
  }
  offset += 1;
  if (offset + 4 > query.length || offset - DNS_HEADER_BYTES > NAME_MAX_BYTES) return -1;
  return offset + 4;
}

function asciiLower(byte: number): number {
  return byte >= 65 && byte <= 90 ? byte | 0x20 : byte;
}

/**
 * Whether `raw` repeats the question of `query` (bytes DNS_HEADER_BYTES..`end`, see `questionEnd`)
 * at the same offset: the same labels, letters compared case-insensitively, and the same type and
 * class.
 */
function repeatsQuestion(raw: Buffer, query: Buffer, end: number): boolean {
  if (raw.length < end) return false;
  let i = DNS_HEADER_BYTES;
  for (let length = query[i] as number; length !== 0; length = query[i] as number) {
    if (raw[i] !== length) return false;
    for (let j = i + 1; j <= i + length; j++) if (asciiLower(raw[j] as number) !== asciiLower(query[j] as number)) return false;
    i += 1 + length;
  }
  for (; i < end; i++) if (raw[i] !== query[i]) return false;
  return true;
}

/**
 * Offset just past the name at `offset` — its labels up to the root label or to one compression
 * pointer, which must point before the name — or -1 when the name runs past the message, uses a
 * reserved label type or is longer than NAME_MAX_BYTES. Pointers are not followed.
 */
function skipName(raw: Buffer, offset: number): number {
  const start = offset;
  for (;;) {
    if (offset >= raw.length || offset - start >= NAME_MAX_BYTES) return -1;
    const length = raw[offset] as number;
    if (length === 0) return offset + 1;
    if (length >= 0xc0) {
      if (offset + 2 > raw.length) return -1;
      return (u16(raw, offset) & 0x3fff) < start ? offset + 2 : -1;
    }
    if (length > 63) return -1;
    offset += 1 + length;
  }
}

/**
 * Checks that `raw` is the reply to the query the proxy sent, without decoding it into objects: it
 * carries `expectedId` (the fresh ID the proxy chose, not the client's), is a response with opcode
 * QUERY and exactly one question equal to the one `query` asked (its bytes up to `questionEnd`;
 * names compared case-insensitively, type and class exactly), and every record of its three sections is framed
 * within the message (owner name well formed, RDLENGTH in bounds). Record data is not decoded
 * here: the reply goes to the client byte for byte, and `replyAddresses` reads only the answer
 * records it needs. Anything else is dropped by the caller, who keeps waiting for the genuine
 * reply until its timeout. Never throws.
 */
export function checkReply(raw: Buffer, expectedId: number, query: Buffer, questionEnd: number): ReplyCheck {
  if (raw.length < DNS_HEADER_BYTES) return { ok: false, reason: 'shorter than a DNS header' };
  if (u16(raw, 0) !== expectedId) return { ok: false, reason: 'unexpected ID' };
  const flags = u16(raw, 2);
  if ((flags & FLAG_QR) === 0) return { ok: false, reason: 'not a response' };
  const opcode = (flags & OPCODE_MASK) >> 11;
  if (opcode !== OPCODE_QUERY) return { ok: false, reason: `opcode ${opcode}` };
  const questions = u16(raw, 4);
  if (questions !== 1) return { ok: false, reason: `${questions} questions in the reply` };
  if (!repeatsQuestion(raw, query, questionEnd)) return { ok: false, reason: 'the reply answers a different question' };
  const records = u16(raw, 6) + u16(raw, 8) + u16(raw, 10);
  let offset = questionEnd;
  for (let i = 0; i < records; i++) {
    offset = skipName(raw, offset);
    if (offset < 0 || offset + RECORD_FIXED_BYTES > raw.length) return { ok: false, reason: `record ${i + 1} of ${records} is cut short or malformed` };
    offset += RECORD_FIXED_BYTES + u16(raw, offset + 8);
    if (offset > raw.length) return { ok: false, reason: `record ${i + 1} of ${records} runs past the message` };
  }
  return VALID_REPLY_CHECKS[(flags & 0xf) | ((flags & FLAG_TC) !== 0 ? 16 : 0)] as ReplyCheck;
}

/**
 * The normalized owner name of the record at `offset`: a pointer to the question's name (the
 * usual encoding) is `qname` itself without decoding; any other name is decoded with dns-packet.
 * Null when it does not decode.
 */
function ownerName(raw: Buffer, offset: number, qname: string): string | null {
  if (raw[offset] === 0xc0 && raw[offset + 1] === DNS_HEADER_BYTES) return qname;
  try {
    return normalizeHostname(codecs.name.decode(raw, offset));
  } catch {
    return null;
  }
}

/**
 * The A and AAAA addresses a reply that passed `checkReply` gives for `qname` (the name asked),
 * following the CNAME chain from `qname` (at most DNS_CNAME_CHAIN_MAX_HOPS hops) so that records
 * for unrelated names in the answer section are ignored. IPv4 first, each with its record's TTL;
 * only class IN records with the RDLENGTH of their type count. Walks the answer section only and
 * bounds-checks every read: a message that does not frame returns what was found before the
 * fault. Never throws.
 */
export function replyAddresses(raw: Buffer, qname: string): AllowlistAddress[] {
  if (raw.length < DNS_HEADER_BYTES || u16(raw, 4) !== 1) return [];
  const answerCount = u16(raw, 6);
  const question = skipName(raw, DNS_HEADER_BYTES);
  if (question < 0) return [];
  const first = question + 4;
  const asked = normalizeHostname(qname);
  const v4: AllowlistAddress[] = [];
  const v6: AllowlistAddress[] = [];
  // The usual answer has no CNAME: then one pass finds the addresses of the qname itself.
  if (collectAddresses(raw, first, answerCount, asked, null, v4, v6)) return v6.length === 0 ? v4 : [...v4, ...v6];
  // Names the answer may give addresses for: the qname and the CNAME targets reached from it.
  const names = new Set<string>([asked]);
  for (let hop = 0, grew = true; grew && hop < DNS_CNAME_CHAIN_MAX_HOPS; hop++) {
    grew = false;
    for (let i = 0, offset = first; i < answerCount; i++) {
      const fixed = skipName(raw, offset);
      if (fixed < 0 || fixed + RECORD_FIXED_BYTES > raw.length) break;
      const data = fixed + RECORD_FIXED_BYTES;
      const next = data + u16(raw, fixed + 8);
      if (next > raw.length) break;
      if (u16(raw, fixed) === TYPE_CNAME) {
        const owner = ownerName(raw, offset, asked);
        if (owner !== null && names.has(owner)) {
          const target = ownerName(raw, data, asked);
          if (target !== null && !names.has(target)) {
            names.add(target);
            grew = true;
          }
        }
      }
      offset = next;
    }
  }
  v4.length = 0;
  v6.length = 0;
  collectAddresses(raw, first, answerCount, asked, names, v4, v6);
  return v6.length === 0 ? v4 : [...v4, ...v6];
}

/**
 * Appends to `v4` and `v6` the A and AAAA records (class IN, RDLENGTH of their type) of the answer
 * section (`count` records from `first`) whose owner is `asked`, or with `names`, one of `names`.
 * Without `names`, stops at the first CNAME record and returns false (the chain must be followed
 * first); else true. Stops at the first record that does not frame.
 */
function collectAddresses(raw: Buffer, first: number, count: number, asked: string, names: Set<string> | null, v4: AllowlistAddress[], v6: AllowlistAddress[]): boolean {
  for (let i = 0, offset = first; i < count; i++) {
    const fixed = skipName(raw, offset);
    if (fixed < 0 || fixed + RECORD_FIXED_BYTES > raw.length) break;
    const data = fixed + RECORD_FIXED_BYTES;
    const length = u16(raw, fixed + 8);
    const next = data + length;
    if (next > raw.length) break;
    const type = u16(raw, fixed);
    if (type === TYPE_CNAME && names === null) return false;
    if (((type === TYPE_A && length === 4) || (type === TYPE_AAAA && length === 16)) && (u16(raw, fixed + 2) & ~CLASS_FLUSH_BIT) === CLASS_IN) {
      const owner = ownerName(raw, offset, asked);
      if (owner !== null && (names === null ? owner === asked : names.has(owner))) {
        const ttlSeconds = raw.readUInt32BE(fixed + 4);
        if (type === TYPE_A) v4.push({ ip: `${raw[data]}.${raw[data + 1]}.${raw[data + 2]}.${raw[data + 3]}`, ttlSeconds });
        else v6.push({ ip: ipv6Text(raw, data), ttlSeconds });
      }
    }
    offset = next;
  }
  return true;
}

/** The 16 bytes at `offset` as IPv6 text (eight uncompressed groups; the allowlist canonicalizes). */
function ipv6Text(raw: Buffer, offset: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(u16(raw, offset + i).toString(16));
  return groups.join(':');
}

/** Random bytes are drawn in blocks of this size (one system call per 2048 IDs). */
const RANDOM_ID_BLOCK_BYTES = 4096;

/**
 * Unpredictable 16-bit message IDs for upstream queries (RFC 5452 §9.2: the ID is part of what a
 * spoofed reply must guess), drawn from the operating system's CSPRNG in blocks.
 */
export class RandomIds {
  private readonly block = Buffer.alloc(RANDOM_ID_BLOCK_BYTES);
  private at = RANDOM_ID_BLOCK_BYTES;

  next(): number {
    if (this.at >= RANDOM_ID_BLOCK_BYTES) {
      randomFillSync(this.block);
      this.at = 0;
    }
    const id = u16(this.block, this.at);
    this.at += 2;
    return id;
  }
}
