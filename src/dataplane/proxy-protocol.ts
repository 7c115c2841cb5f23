/**
 * The PROXY protocol header (HAProxy's `proxy-protocol.txt`, version 1 text and version 2 binary)
 * that a load balancer such as HAProxy (`send-proxy`, `send-proxy-v2`) puts in front of the bytes
 * of a relayed TCP connection to tell the receiver the original client's address.
 *
 * `parseProxyHeader` is pure and total: it classifies the bytes received so far, never throws, and
 * reads nothing beyond the bounds below. It returns `incomplete` only while fewer than
 * PROXY_HEADER_MAX_BYTES bytes are present, so a caller that buffers until the answer is something
 * else never holds more than that.
 *
 * Accepted: v1 `PROXY TCP4|TCP6 <src> <dst> <srcport> <dstport>\r\n` (strict: single spaces, no
 * leading zeros, at most 107 bytes) and `PROXY UNKNOWN ...\r\n`; v2 with the PROXY command over
 * TCP/IPv4 or TCP/IPv6 (TLVs are checked for framing and skipped), and the LOCAL command. A v2
 * PROXY command for a family or transport other than TCP over IPv4/IPv6 (UNSPEC, UNIX, UDP) is,
 * as the specification asks, treated like v1 UNKNOWN: the connection is valid and the receiver
 * uses the real connection endpoints. Addresses are returned canonical (an IPv4-mapped IPv6
 * address as IPv4), the way the policy compares client IPs.
 */
import { formatIp, isIpv4Mapped, parseIpv4Word, parseIpv6Words, type IpAddress } from '../policy/ip.js';

/** Longest v1 line including its CRLF (`PROXY UNKNOWN` with two full IPv6 addresses and ports). */
export const PROXY_HEADER_V1_MAX_BYTES = 107;
/** Fixed part of a v2 header: signature, version/command, family/transport, length. */
export const PROXY_HEADER_V2_FIXED_BYTES = 16;
/** Largest v2 header accepted (fixed part, addresses and TLVs); larger ones are invalid. */
export const PROXY_HEADER_V2_MAX_BYTES = 2_048;
/** Most bytes a caller buffers before `parseProxyHeader` answers something other than `incomplete`. */
export const PROXY_HEADER_MAX_BYTES = Math.max(PROXY_HEADER_V1_MAX_BYTES, PROXY_HEADER_V2_MAX_BYTES);

/** The 12-byte v2 signature `\r\n\r\n\0\r\nQUIT\n`. */
export const PROXY_V2_SIGNATURE: Readonly<Uint8Array> = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a);
const V1_PREFIX: Readonly<Uint8Array> = Uint8Array.of(0x50, 0x52, 0x4f, 0x58, 0x59, 0x20); // "PROXY "
const V2_COMMAND_LOCAL = 0x0;
const V2_COMMAND_PROXY = 0x1;
const V2_FAMILY_UNSPEC = 0x0;
const V2_FAMILY_INET = 0x1;
const V2_FAMILY_INET6 = 0x2;
const V2_FAMILY_UNIX = 0x3;
const V2_TRANSPORT_UNSPEC = 0x0;
const V2_TRANSPORT_STREAM = 0x1;
const V2_TRANSPORT_DGRAM = 0x2;
const V2_INET_ADDRESS_BYTES = 12;
const V2_INET6_ADDRESS_BYTES = 36;
const TLV_HEADER_BYTES = 3;
const CR = 0x0d;
const LF = 0x0a;
const PORT_PATTERN = /^(0|[1-9][0-9]{0,4})$/;

/** What the first bytes of a connection from a trusted balancer say. */
export type ProxyHeaderResult =
  /** Not enough bytes yet to decide; feed more (fewer than PROXY_HEADER_MAX_BYTES are present). */
  | { readonly kind: 'incomplete' }
  /** A header naming the original connection; the first `headerBytes` bytes are the header. */
  | {
      readonly kind: 'proxied';
      readonly version: 1 | 2;
      readonly sourceIp: string;
      readonly sourcePort: number;
      readonly destIp: string;
      readonly destPort: number;
      readonly headerBytes: number;
    }
  /**
   * A valid header that names no usable address: v2 LOCAL (the balancer's own connection, e.g. a
   * health check), v1 UNKNOWN, or v2 PROXY for an unsupported family/transport. The receiver uses
   * the socket's own peer address.
   */
  | { readonly kind: 'local'; readonly version: 1 | 2; readonly command: 'LOCAL' | 'UNKNOWN'; readonly headerBytes: number }
  /** Not a PROXY header, or a malformed or oversized one: the connection must be closed. */
  | { readonly kind: 'invalid'; readonly reason: string };

const INCOMPLETE: ProxyHeaderResult = Object.freeze({ kind: 'incomplete' });

function invalid(reason: string): ProxyHeaderResult {
  return { kind: 'invalid', reason };
}

/** Whether the first `min(input.length, prefix.length)` bytes of `input` equal `prefix`. */
function startsLike(input: Uint8Array, prefix: Readonly<Uint8Array>): boolean {
  const n = Math.min(input.length, prefix.length);
  for (let i = 0; i < n; i++) if (input[i] !== prefix[i]) return false;
  return true;
}

/** The address in the form the policy compares: IPv4-mapped IPv6 becomes IPv4. */
function canonical(address: IpAddress): string {
  if (address.v6 && isIpv4Mapped(address.words)) return formatIp({ v6: false, words: [address.words[3] as number] });
  return formatIp(address);
}

function u16(bytes: Uint8Array, at: number): number {
  return ((bytes[at] as number) << 8) | (bytes[at + 1] as number);
}

function u32(bytes: Uint8Array, at: number): number {
  return (((bytes[at] as number) << 24) | ((bytes[at + 1] as number) << 16) | ((bytes[at + 2] as number) << 8) | (bytes[at + 3] as number)) >>> 0;
}

function parsePort(text: string): number | null {
  if (!PORT_PATTERN.test(text)) return null;
  const port = Number(text);
  return port <= 65535 ? port : null;
}

function parseV1Address(text: string, v6: boolean): IpAddress | null {
  if (!v6) {
    const word = parseIpv4Word(text);
    return word < 0 ? null : { v6: false, words: [word] };
  }
  if (!text.includes(':')) return null;
  const words = parseIpv6Words(text);
  return words === null ? null : { v6: true, words };
}

function parseV1(input: Uint8Array): ProxyHeaderResult {
  const limit = Math.min(input.length, PROXY_HEADER_V1_MAX_BYTES);
  let lineEnd = -1;
  for (let i = 0; i < limit; i++) {
    const byte = input[i] as number;
    if (byte === LF) {
      if (i === 0 || input[i - 1] !== CR) return invalid('v1 line ends with LF without CR');
      lineEnd = i - 1;
      break;
    }
    if (byte === CR && i + 1 < input.length && input[i + 1] !== LF) return invalid('v1 line has a CR without LF');
  }
  if (lineEnd < 0) {
    return input.length >= PROXY_HEADER_V1_MAX_BYTES ? invalid(`v1 line has no CRLF within ${PROXY_HEADER_V1_MAX_BYTES} bytes`) : INCOMPLETE;
  }
  const headerBytes = lineEnd + 2;
  const line = Buffer.from(input.buffer, input.byteOffset, lineEnd).toString('latin1');
  const fields = line.split(' ');
  const protocol = fields[1] ?? '';
  // "For UNKNOWN, the receiver must ignore anything presented before the CRLF."
  if (protocol === 'UNKNOWN') return { kind: 'local', version: 1, command: 'UNKNOWN', headerBytes };
  if (protocol !== 'TCP4' && protocol !== 'TCP6') return invalid(`v1 protocol ${JSON.stringify(protocol.slice(0, 16))} is not TCP4, TCP6 or UNKNOWN`);
  if (fields.length !== 6) return invalid(`v1 ${protocol} line needs exactly 6 fields separated by single spaces (has ${fields.length})`);
  const v6 = protocol === 'TCP6';
  const source = parseV1Address(fields[2] as string, v6);
  const dest = parseV1Address(fields[3] as string, v6);
  if (source === null || dest === null) return invalid(`v1 ${protocol} line has an address that is not ${v6 ? 'IPv6' : 'dotted-quad IPv4'}`);
  const sourcePort = parsePort(fields[4] as string);
  const destPort = parsePort(fields[5] as string);
  if (sourcePort === null || destPort === null) return invalid(`v1 ${protocol} line has a port that is not 0-65535 without leading zeros`);
  return { kind: 'proxied', version: 1, sourceIp: canonical(source), sourcePort, destIp: canonical(dest), destPort, headerBytes };
}

function v6Words(bytes: Uint8Array, at: number): number[] {
  return [u32(bytes, at), u32(bytes, at + 4), u32(bytes, at + 8), u32(bytes, at + 12)];
}

function parseV2(input: Uint8Array): ProxyHeaderResult {
  if (input.length < PROXY_HEADER_V2_FIXED_BYTES) return INCOMPLETE;
  const versionCommand = input[12] as number;
  if (versionCommand >> 4 !== 2) return invalid(`v2 version nibble is ${versionCommand >> 4}, not 2`);
  const command = versionCommand & 0x0f;
  if (command !== V2_COMMAND_LOCAL && command !== V2_COMMAND_PROXY) return invalid(`v2 command ${command} is neither LOCAL nor PROXY`);
  const family = (input[13] as number) >> 4;
  const transport = (input[13] as number) & 0x0f;
  const listed = family === V2_FAMILY_UNSPEC ? transport === V2_TRANSPORT_UNSPEC : family <= V2_FAMILY_UNIX && (transport === V2_TRANSPORT_STREAM || transport === V2_TRANSPORT_DGRAM);
  if (!listed) return invalid(`v2 family/transport byte 0x${(input[13] as number).toString(16).padStart(2, '0')} is not one the specification lists`);
  const length = u16(input, 14);
  const headerBytes = PROXY_HEADER_V2_FIXED_BYTES + length;
  if (headerBytes > PROXY_HEADER_V2_MAX_BYTES) return invalid(`v2 header of ${headerBytes} bytes exceeds ${PROXY_HEADER_V2_MAX_BYTES}`);
  if (input.length < headerBytes) return INCOMPLETE;
  // LOCAL: "the receiver must accept this connection ... and discard the protocol block".
  if (command === V2_COMMAND_LOCAL) return { kind: 'local', version: 2, command: 'LOCAL', headerBytes };
  const tcp = transport === V2_TRANSPORT_STREAM && (family === V2_FAMILY_INET || family === V2_FAMILY_INET6);
  // UNSPEC, UNIX or UDP: fall back to the real endpoints, as the specification requires of a receiver that does not support them.
  if (!tcp) return { kind: 'local', version: 2, command: 'UNKNOWN', headerBytes };
  const v6 = family === V2_FAMILY_INET6;
  const addressBytes = v6 ? V2_INET6_ADDRESS_BYTES : V2_INET_ADDRESS_BYTES;
  if (length < addressBytes) return invalid(`v2 ${v6 ? 'TCP/IPv6' : 'TCP/IPv4'} needs ${addressBytes} address bytes, the header has ${length}`);
  const at = PROXY_HEADER_V2_FIXED_BYTES;
  const source: IpAddress = v6 ? { v6: true, words: v6Words(input, at) } : { v6: false, words: [u32(input, at)] };
  const dest: IpAddress = v6 ? { v6: true, words: v6Words(input, at + 16) } : { v6: false, words: [u32(input, at + 4)] };
  const portsAt = at + (v6 ? 32 : 8);
  // TLVs (type, 16-bit length, value) fill the rest exactly; they are skipped, not interpreted.
  let tlv = at + addressBytes;
  while (tlv < headerBytes) {
    if (headerBytes - tlv < TLV_HEADER_BYTES) return invalid('v2 TLV header truncated');
    tlv += TLV_HEADER_BYTES + u16(input, tlv + 1);
    if (tlv > headerBytes) return invalid('v2 TLV overruns the header');
  }
  return { kind: 'proxied', version: 2, sourceIp: canonical(source), sourcePort: u16(input, portsAt), destIp: canonical(dest), destPort: u16(input, portsAt + 2), headerBytes };
}

/**
 * Classifies the bytes received so far on a connection that must begin with a PROXY header.
 * Pure and total: never throws, for any input.
 */
export function parseProxyHeader(input: Uint8Array): ProxyHeaderResult {
  if (input.length === 0) return INCOMPLETE;
  if (input[0] === PROXY_V2_SIGNATURE[0]) {
    if (!startsLike(input, PROXY_V2_SIGNATURE)) return invalid('not a PROXY protocol header (bad v2 signature)');
    return parseV2(input);
  }
  if (!startsLike(input, V1_PREFIX)) return invalid('not a PROXY protocol header (expected "PROXY " or the v2 signature)');
  if (input.length < V1_PREFIX.length) return INCOMPLETE;
  return parseV1(input);
}
