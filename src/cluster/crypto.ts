import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { NeuwerkError } from '../errors.js';

/**
 * Cryptography of enrollment (DESIGN §5): CA-key envelopes, and the join request and response.
 * Every key is derived with HKDF-SHA256 from a bootstrap token secret; AES-256-GCM provides
 * confidentiality and integrity; MACs are compared in constant time.
 */

const ENVELOPE_INFO = 'neuwerk ca-key envelope v1';
const JOIN_REQUEST_LABEL = 'neuwerk join request v1';
const JOIN_RESPONSE_KEY_INFO = 'neuwerk join response key v1';
const JOIN_RESPONSE_LABEL = 'neuwerk join response v1';
const GCM_NONCE_BYTES = 12;

/** The CA private key encrypted under a key derived from one bootstrap token. */
export interface CaKeyEnvelope {
  readonly kid: string;
  readonly salt: string;
  readonly nonce: string;
  readonly ciphertext: string;
  readonly tag: string;
}

function deriveKey(secret: Buffer, salt: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, salt, info, 32));
}

/** Encrypts the CA private key for storage in the replicated store. */
export function sealCaKey(caKeyPem: string, token: { kid: string; secret: Buffer }): CaKeyEnvelope {
  const salt = randomBytes(32);
  const nonce = randomBytes(GCM_NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', deriveKey(token.secret, salt, ENVELOPE_INFO), nonce);
  cipher.setAAD(Buffer.from(token.kid));
  const ciphertext = Buffer.concat([cipher.update(caKeyPem, 'utf8'), cipher.final()]);
  return { kid: token.kid, salt: salt.toString('base64'), nonce: nonce.toString('base64'), ciphertext: ciphertext.toString('base64'), tag: cipher.getAuthTag().toString('base64') };
}

/** Decrypts an envelope; a wrong token or a tampered envelope fails authentication. */
export function openCaKey(envelope: CaKeyEnvelope, secret: Buffer): string {
  try {
    const decipher = createDecipheriv('aes-256-gcm', deriveKey(secret, Buffer.from(envelope.salt, 'base64'), ENVELOPE_INFO), Buffer.from(envelope.nonce, 'base64'));
    decipher.setAAD(Buffer.from(envelope.kid));
    decipher.setAuthTag(Buffer.from(envelope.tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(envelope.ciphertext, 'base64')), decipher.final()]).toString('utf8');
  } catch {
    throw new NeuwerkError('NW_ERR_CLUSTER_TLS', `the CA key envelope for token ${envelope.kid} does not open with this node's token`);
  }
}

/** Length-prefixed concatenation: unambiguous, so no two field lists share a MAC input. */
function framed(parts: readonly (string | Buffer)[]): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const bytes = typeof part === 'string' ? Buffer.from(part, 'utf8') : part;
    const length = Buffer.alloc(8);
    length.writeBigUInt64BE(BigInt(bytes.length));
    chunks.push(length, bytes);
  }
  return Buffer.concat(chunks);
}

/** The fields a joiner sends; `hmac` covers all the others. */
export interface JoinRequestFields {
  readonly node_id: string;
  readonly cluster_advertise: string;
  readonly http_advertise: string;
  /** Where clients reach the joiner's forward proxy and DNS proxy; '' when it runs none or binds port 0. */
  readonly proxy_advertise: string;
  readonly dns_advertise: string;
  readonly csr: string;
  /** CSR for the node's management API certificate (same CA, so peers can verify it). */
  readonly http_csr: string;
  readonly kid: string;
  /** 16+ random bytes, base64. */
  readonly nonce: string;
  /** Milliseconds since the epoch. */
  readonly timestamp: number;
}

export interface JoinRequest extends JoinRequestFields {
  readonly hmac: string;
}

function requestMaterial(fields: JoinRequestFields): Buffer {
  return framed([JOIN_REQUEST_LABEL, fields.node_id, fields.cluster_advertise, fields.http_advertise, fields.proxy_advertise, fields.dns_advertise, fields.csr, fields.http_csr, fields.kid, fields.nonce, String(fields.timestamp)]);
}

export function signJoinRequest(fields: JoinRequestFields, secret: Buffer): JoinRequest {
  return { ...fields, hmac: createHmac('sha256', secret).update(requestMaterial(fields)).digest('base64') };
}

/** Constant-time check of the request MAC. */
export function joinRequestMacValid(request: JoinRequest, secret: Buffer): boolean {
  const expected = createHmac('sha256', secret).update(requestMaterial(request)).digest();
  const given = Buffer.from(request.hmac, 'base64');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** What the joiner learns when admitted (encrypted in transit). */
export interface JoinGrant {
  readonly node_cert: string;
  readonly http_cert: string;
  readonly ca_cert: string;
  readonly cluster_id: string;
  readonly members: readonly { node_id: string; cluster_addr: string | null; http_addr: string; role: string }[];
}

export interface JoinResponse {
  readonly iv: string;
  readonly ciphertext: string;
  readonly tag: string;
  /** HMAC over the request's MAC and the encrypted payload: binds the answer to this request. */
  readonly hmac: string;
}

function responseKey(secret: Buffer, request: JoinRequest): Buffer {
  return deriveKey(secret, Buffer.from(request.nonce, 'base64'), JOIN_RESPONSE_KEY_INFO);
}

function responseMac(secret: Buffer, request: JoinRequest, iv: string, ciphertext: string, tag: string): Buffer {
  return createHmac('sha256', secret).update(framed([JOIN_RESPONSE_LABEL, request.hmac, iv, ciphertext, tag])).digest();
}

export function sealJoinResponse(grant: JoinGrant, request: JoinRequest, secret: Buffer): JoinResponse {
  const iv = randomBytes(GCM_NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', responseKey(secret, request), iv);
  cipher.setAAD(Buffer.from(request.hmac, 'base64'));
  const ciphertext = Buffer.concat([cipher.update(JSON.stringify(grant), 'utf8'), cipher.final()]).toString('base64');
  const tag = cipher.getAuthTag().toString('base64');
  const ivText = iv.toString('base64');
  return { iv: ivText, ciphertext, tag, hmac: responseMac(secret, request, ivText, ciphertext, tag).toString('base64') };
}

/** Verifies and decrypts the answer to our own request; anything forged or replayed fails. */
export function openJoinResponse(response: JoinResponse, request: JoinRequest, secret: Buffer): JoinGrant {
  const expected = responseMac(secret, request, response.iv, response.ciphertext, response.tag);
  const given = Buffer.from(response.hmac ?? '', 'base64');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new NeuwerkError('NW_ERR_JOIN_FAILED', 'join response failed authentication (response HMAC mismatch)');
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', responseKey(secret, request), Buffer.from(response.iv, 'base64'));
    decipher.setAAD(Buffer.from(request.hmac, 'base64'));
    decipher.setAuthTag(Buffer.from(response.tag, 'base64'));
    const plain = Buffer.concat([decipher.update(Buffer.from(response.ciphertext, 'base64')), decipher.final()]).toString('utf8');
    return JSON.parse(plain) as JoinGrant;
  } catch {
    throw new NeuwerkError('NW_ERR_JOIN_FAILED', 'join response could not be decrypted');
  }
}
