/**
 * DNS message handling shared by the DNS proxy and the proxy's resolver, on top of `dns-packet`
 * (no hand-written DNS parsing): classifying client queries, building the proxy's own answers
 * (NXDOMAIN, SERVFAIL, ...), validating upstream replies, and reading the addresses of an answer.
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
/** UDP payload size the proxy advertises in its own EDNS answers (the DNS flag day 2020 value). */
export const DNS_EDNS_UDP_PAYLOAD_BYTES = 1232;
/** Longest CNAME chain followed when reading the addresses of an answer. */
export const DNS_CNAME_CHAIN_MAX_HOPS = 16;

/** Response codes the proxy uses (RFC 1035 §4.1.1, RFC 6895). */
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export type Rcode = (typeof RCODE)[keyof typeof RCODE];

/** Extended DNS Error codes (RFC 8914) attached to the proxy's own answers when the client speaks EDNS. */
export const EDE = { OTHER: 0, BLOCKED: 15, NOT_READY: 14, NETWORK_ERROR: 23, NO_REACHABLE_AUTHORITY: 22 } as const;

const EDE_OPTION_CODE = 15;
const EDE_TEXT_MAX_BYTES = 200;
const FLAG_RD = dnsPacket.RECURSION_DESIRED;
const FLAG_RA = dnsPacket.RECURSION_AVAILABLE;
const FLAG_CD = dnsPacket.CHECKING_DISABLED;
const FLAG_TC = dnsPacket.TRUNCATED_RESPONSE;
const OPCODE_MASK = 0x7800;

/** A client query the proxy can decide: one question, opcode QUERY. */
export interface ParsedQuery {
  readonly packet: DecodedPacket;
  readonly question: Question;
}

/** What a client message is. */
export type QueryClassification =
  | { readonly kind: 'query'; readonly query: ParsedQuery }
  /** Decodes, but is not something the proxy answers (opcode, question count): answer `rcode`. */
  | { readonly kind: 'unsupported'; readonly packet: DecodedPacket; readonly rcode: Rcode }
  /** Not a DNS query at all (undecodable, a response, non-canonical question): drop it. */
  | { readonly kind: 'malformed'; readonly reason: string };

/**
 * Whether the question section of `raw` is exactly what `question` re-encodes to. Catches what
 * the decoded text hides: dots or invalid UTF-8 inside a label, compression pointers in the
 * question, unknown classes. The proxy decides on the decoded name and forwards the raw bytes, so
 * the two must denote the same name.
 */
function questionIsCanonical(raw: Buffer, question: Question): boolean {
  let encoded: Buffer;
  try {
    encoded = dnsPacket.encode({ type: 'query', id: 0, flags: 0, questions: [question] });
  } catch {
    return false;
  }
  const length = encoded.length - DNS_HEADER_BYTES;
  if (raw.length < DNS_HEADER_BYTES + length) return false;
  return raw.compare(encoded, DNS_HEADER_BYTES, encoded.length, DNS_HEADER_BYTES, DNS_HEADER_BYTES + length) === 0;
}

/** Classifies a client message. Never throws. */
export function classifyQuery(raw: Buffer): QueryClassification {
  if (raw.length < DNS_HEADER_BYTES || raw.length > DNS_MESSAGE_MAX_BYTES) return { kind: 'malformed', reason: `length ${raw.length}` };
  let packet: DecodedPacket;
  try {
    packet = dnsPacket.decode(raw);
  } catch (err) {
    return { kind: 'malformed', reason: err instanceof Error ? err.message : 'undecodable' };
  }
  if (packet.flag_qr) return { kind: 'malformed', reason: 'a response, not a query' };
  if (opcodeOf(packet) !== OPCODE_QUERY) return { kind: 'unsupported', packet, rcode: RCODE.NOTIMP };
  const questions = packet.questions ?? [];
  if (questions.length !== 1) return { kind: 'unsupported', packet, rcode: RCODE.FORMERR };
  const question = questions[0] as Question;
  if (!questionIsCanonical(raw, question)) return { kind: 'malformed', reason: 'non-canonical question name' };
  return { kind: 'query', query: { packet, question } };
}

function optRecord(query: DecodedPacket): Answer | null {
  for (const record of query.additionals ?? []) if (record.type === 'OPT') return record;
  return null;
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
    flags: flags | FLAG_RA | rcode,
    questions: query.questions ?? [],
  };
  if (optRecord(query) !== null) {
    const options = [];
    if (ede !== undefined) {
      const text = Buffer.from(ede.text.replace(/[^\x20-\x7e]/g, '?')).subarray(0, EDE_TEXT_MAX_BYTES);
      const data = Buffer.alloc(2 + text.length);
      data.writeUInt16BE(ede.code, 0);
      text.copy(data, 2);
      options.push({ code: EDE_OPTION_CODE, data });
    }
    packet.additionals = [{ type: 'OPT', name: '.', udpPayloadSize: DNS_EDNS_UDP_PAYLOAD_BYTES, flags: 0, options } as unknown as Answer];
  }
  return dnsPacket.encode(packet);
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

/** Whether a decoded reply has the TC (truncated) bit. */
export function isTruncated(packet: DecodedPacket): boolean {
  return ((packet.flags ?? 0) & FLAG_TC) !== 0;
}

/** Outcome of `validateReply`. */
export type ReplyCheck = { readonly ok: true; readonly packet: DecodedPacket } | { readonly ok: false; readonly reason: string };

function sameName(a: string, b: string): boolean {
  return normalizeHostname(a === '.' ? '' : a) === normalizeHostname(b === '.' ? '' : b);
}

/**
 * Checks that `raw` is the reply to the query the proxy sent: decodes, is a response, carries
 * `expectedId` (the fresh ID the proxy chose, not the client's), opcode QUERY and exactly the
 * question asked (name compared case-insensitively, type and class exactly). Anything else is
 * dropped by the caller, who keeps waiting for the genuine reply until its timeout.
 */
export function validateReply(raw: Buffer, expectedId: number, question: Question): ReplyCheck {
  if (raw.length < DNS_HEADER_BYTES) return { ok: false, reason: 'shorter than a DNS header' };
  if (raw.readUInt16BE(0) !== expectedId) return { ok: false, reason: 'unexpected ID' };
  let packet: DecodedPacket;
  try {
    packet = dnsPacket.decode(raw);
  } catch (err) {
    return { ok: false, reason: `undecodable reply (${err instanceof Error ? err.message : 'error'})` };
  }
  if (!packet.flag_qr) return { ok: false, reason: 'not a response' };
  if (opcodeOf(packet) !== OPCODE_QUERY) return { ok: false, reason: `opcode ${opcodeOf(packet)}` };
  const questions = packet.questions ?? [];
  if (questions.length !== 1) return { ok: false, reason: `${questions.length} questions in the reply` };
  const q = questions[0] as Question;
  if (!sameName(q.name, question.name) || q.type !== question.type || (q.class ?? 'IN') !== (question.class ?? 'IN')) {
    return { ok: false, reason: 'the reply answers a different question' };
  }
  return { ok: true, packet };
}

/**
 * The A and AAAA addresses `packet` gives for `qname`, following the CNAME chain from `qname`
 * (at most DNS_CNAME_CHAIN_MAX_HOPS hops) so that records for unrelated names in the answer
 * section are ignored. IPv4 first. Each address carries its record's TTL.
 */
export function answerAddresses(qname: string, packet: DecodedPacket): AllowlistAddress[] {
  const answers = packet.answers ?? [];
  const names = new Set<string>([normalizeHostname(qname)]);
  for (let hop = 0; hop < DNS_CNAME_CHAIN_MAX_HOPS; hop++) {
    let grew = false;
    for (const record of answers) {
      if (record.type !== 'CNAME' || typeof record.data !== 'string') continue;
      if (names.has(normalizeHostname(record.name)) && !names.has(normalizeHostname(record.data))) {
        names.add(normalizeHostname(record.data));
        grew = true;
      }
    }
    if (!grew) break;
  }
  const v4: AllowlistAddress[] = [];
  const v6: AllowlistAddress[] = [];
  for (const record of answers) {
    if ((record.type !== 'A' && record.type !== 'AAAA') || (record.class ?? 'IN') !== 'IN') continue;
    if (typeof record.data !== 'string' || !names.has(normalizeHostname(record.name))) continue;
    (record.type === 'A' ? v4 : v6).push({ ip: record.data, ttlSeconds: record.ttl ?? 0 });
  }
  return [...v4, ...v6];
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
    const id = this.block.readUInt16BE(this.at);
    this.at += 2;
    return id;
  }
}
