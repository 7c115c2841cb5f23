/**
 * Extracts the server name (SNI, RFC 6066 §3) from the first bytes a client sends into a CONNECT
 * tunnel: TLS records (RFC 8446 §5.1) carrying a ClientHello handshake message (RFC 8446 §4.1.2,
 * the same layout in TLS 1.0–1.2). The ClientHello may be split across several handshake records;
 * they are reassembled up to TLS_CLIENT_HELLO_MAX_BYTES.
 *
 * Every read is bounds-checked against the bytes actually present and against the lengths the
 * enclosing structures declare; the function never throws on any input (a fuzz test holds it to
 * that) and never reads more than `TLS_CLIENT_HELLO_MAX_BYTES` of handshake data.
 */

/** Largest ClientHello (handshake body plus its 4-byte header) accepted; larger ones are malformed. */
export const TLS_CLIENT_HELLO_MAX_BYTES = 32_768;
/** Largest TLSPlaintext fragment (RFC 8446 §5.1: 2^14). */
export const TLS_RECORD_MAX_FRAGMENT_BYTES = 16_384;
/** Longest host name accepted in SNI (RFC 6066 §3 allows up to 2^16 - 1; DNS names are at most 253). */
export const TLS_SNI_MAX_CHARS = 253;
/**
 * Bytes a caller buffers at most while waiting for a complete ClientHello: the largest accepted
 * hello plus generous room for record headers. A hello still incomplete beyond it is refused (a
 * client splitting its hello into tiny records gets no more buffer than this).
 */
export const TLS_PEEK_MAX_BYTES = 2 * TLS_CLIENT_HELLO_MAX_BYTES;

const RECORD_TYPE_HANDSHAKE = 0x16;
const HANDSHAKE_TYPE_CLIENT_HELLO = 0x01;
const EXTENSION_SERVER_NAME = 0x0000;
const NAME_TYPE_HOST_NAME = 0x00;
const RECORD_HEADER_BYTES = 5;
const HANDSHAKE_HEADER_BYTES = 4;
const RANDOM_BYTES = 32;
const SESSION_ID_MAX_BYTES = 32;

/** What the first bytes of a tunnel say. */
export type ClientHelloResult =
  /** More bytes are needed to decide. */
  | { readonly kind: 'incomplete' }
  /** The stream does not start with a TLS handshake record. */
  | { readonly kind: 'not-tls' }
  /** It starts like TLS but is not a well-formed ClientHello (or is larger than the bound). */
  | { readonly kind: 'malformed'; readonly reason: string }
  /** A complete ClientHello; `sni` is its host_name, lowercased, or null when it has none. */
  | { readonly kind: 'client-hello'; readonly sni: string | null };

const INCOMPLETE: ClientHelloResult = Object.freeze({ kind: 'incomplete' });
const NOT_TLS: ClientHelloResult = Object.freeze({ kind: 'not-tls' });

function malformed(reason: string): ClientHelloResult {
  return { kind: 'malformed', reason };
}

function u16(bytes: Uint8Array, at: number): number {
  return ((bytes[at] as number) << 8) | (bytes[at + 1] as number);
}

/**
 * Concatenates the fragments of the leading handshake records until `needed` bytes are present.
 * Returns the reassembled handshake bytes, 'incomplete', or a failure.
 */
function reassemble(input: Uint8Array, needed: number): Uint8Array | ClientHelloResult {
  const out = new Uint8Array(Math.min(needed, TLS_CLIENT_HELLO_MAX_BYTES));
  let filled = 0;
  let at = 0;
  while (filled < out.length) {
    if (input.length - at < RECORD_HEADER_BYTES) return INCOMPLETE;
    if (input[at] !== RECORD_TYPE_HANDSHAKE) return filled === 0 ? NOT_TLS : malformed('a non-handshake record interrupts the ClientHello');
    if (input[at + 1] !== 3) return filled === 0 ? NOT_TLS : malformed('record version is not 3.x');
    const length = u16(input, at + 3);
    if (length === 0 || length > TLS_RECORD_MAX_FRAGMENT_BYTES) return malformed(`record length ${length} out of range`);
    const available = Math.min(length, input.length - at - RECORD_HEADER_BYTES);
    const take = Math.min(available, out.length - filled);
    out.set(input.subarray(at + RECORD_HEADER_BYTES, at + RECORD_HEADER_BYTES + take), filled);
    filled += take;
    if (filled >= out.length) break;
    if (available < length) return INCOMPLETE;
    at += RECORD_HEADER_BYTES + length;
  }
  return out;
}

/** Parses the server_name extension body; returns the host name, null (no host_name entry), or a failure. */
function parseServerName(data: Uint8Array, start: number, end: number): string | null | ClientHelloResult {
  if (end - start < 2) return malformed('server_name extension too short');
  const listLength = u16(data, start);
  if (listLength !== end - start - 2 || listLength === 0) return malformed('server_name list length mismatch');
  let at = start + 2;
  let hostName: string | null = null;
  while (at < end) {
    if (end - at < 3) return malformed('server_name entry truncated');
    const nameType = data[at] as number;
    const nameLength = u16(data, at + 1);
    at += 3;
    if (nameLength > end - at) return malformed('server_name entry overruns the extension');
    if (nameType === NAME_TYPE_HOST_NAME) {
      if (hostName !== null) return malformed('more than one host_name in server_name');
      if (nameLength === 0 || nameLength > TLS_SNI_MAX_CHARS) return malformed(`host_name length ${nameLength} out of range`);
      let name = '';
      for (let i = at; i < at + nameLength; i++) {
        let c = data[i] as number;
        const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x5f;
        if (!ok) return malformed('host_name has a character outside letters, digits, "-", "_" and "."');
        if (c >= 0x41 && c <= 0x5a) c += 0x20;
        name += String.fromCharCode(c);
      }
      hostName = name;
    }
    at += nameLength;
  }
  return hostName;
}

/** Parses a complete ClientHello handshake message (header included). */
function parseHello(hello: Uint8Array): ClientHelloResult {
  const bodyEnd = hello.length;
  let at = HANDSHAKE_HEADER_BYTES;
  if (bodyEnd - at < 2 + RANDOM_BYTES + 1) return malformed('ClientHello too short');
  if (hello[at] !== 3) return malformed('ClientHello legacy_version is not 3.x');
  at += 2 + RANDOM_BYTES;
  const sessionIdLength = hello[at] as number;
  at += 1;
  if (sessionIdLength > SESSION_ID_MAX_BYTES || sessionIdLength > bodyEnd - at) return malformed('bad session id length');
  at += sessionIdLength;
  if (bodyEnd - at < 2) return malformed('cipher suites missing');
  const suitesLength = u16(hello, at);
  at += 2;
  if (suitesLength < 2 || suitesLength % 2 !== 0 || suitesLength > bodyEnd - at) return malformed('bad cipher suites length');
  at += suitesLength;
  if (bodyEnd - at < 1) return malformed('compression methods missing');
  const compressionLength = hello[at] as number;
  at += 1;
  if (compressionLength < 1 || compressionLength > bodyEnd - at) return malformed('bad compression methods length');
  at += compressionLength;
  if (at === bodyEnd) return { kind: 'client-hello', sni: null }; // TLS 1.0-1.2 without extensions
  if (bodyEnd - at < 2) return malformed('extensions length truncated');
  const extensionsLength = u16(hello, at);
  at += 2;
  if (extensionsLength !== bodyEnd - at) return malformed('extensions length does not match the ClientHello');
  let sni: string | null = null;
  let sawServerName = false;
  while (at < bodyEnd) {
    if (bodyEnd - at < 4) return malformed('extension header truncated');
    const type = u16(hello, at);
    const length = u16(hello, at + 2);
    at += 4;
    if (length > bodyEnd - at) return malformed('extension overruns the ClientHello');
    if (type === EXTENSION_SERVER_NAME) {
      if (sawServerName) return malformed('server_name extension appears twice');
      sawServerName = true;
      const parsed = parseServerName(hello, at, at + length);
      if (parsed !== null && typeof parsed === 'object') return parsed;
      sni = parsed;
    }
    at += length;
  }
  return { kind: 'client-hello', sni };
}

/**
 * Classifies the first bytes of a tunnel: `incomplete` (feed more bytes), `not-tls`, `malformed`,
 * or a complete ClientHello with its SNI. Pure and total: never throws, for any input.
 */
export function parseClientHello(input: Uint8Array): ClientHelloResult {
  if (input.length === 0) return INCOMPLETE;
  if (input[0] !== RECORD_TYPE_HANDSHAKE || (input.length >= 2 && input[1] !== 3)) return NOT_TLS;
  // The handshake header (type + 24-bit length) comes first; it may itself span records.
  const header = reassemble(input, HANDSHAKE_HEADER_BYTES);
  if (!(header instanceof Uint8Array)) return header;
  if (header[0] !== HANDSHAKE_TYPE_CLIENT_HELLO) return malformed('first handshake message is not a ClientHello');
  const bodyLength = ((header[1] as number) << 16) | ((header[2] as number) << 8) | (header[3] as number);
  const total = HANDSHAKE_HEADER_BYTES + bodyLength;
  if (total > TLS_CLIENT_HELLO_MAX_BYTES) return malformed(`ClientHello of ${total} bytes exceeds ${TLS_CLIENT_HELLO_MAX_BYTES}`);
  const hello = reassemble(input, total);
  if (!(hello instanceof Uint8Array)) return hello;
  return parseHello(hello);
}
