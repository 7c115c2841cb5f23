import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { NeuwerkError } from '../errors.js';
import type { Role } from '../store/commands.js';

/** The `iss` of every neuwerk token; verification requires it. */
export const TOKEN_ISSUER = 'neuwerk';
/** Allowed clock difference when checking `exp`/`iat` (issue: at most 30 s). */
export const CLOCK_SKEW_SECONDS = 30;
/** The only signing algorithm; pinned at verification so `alg: none` or HS256 never verify. */
export const TOKEN_ALGORITHM = 'EdDSA';
export const BOOTSTRAP_TTL_DEFAULT_MS = 30 * 60_000;
export const BOOTSTRAP_TTL_MAX_MS = 24 * 3_600_000;
export const MINT_TTL_DEFAULT_MS = 3_600_000;
/** Upper bound for `auth token mint` and service-account tokens with a TTL. */
export const MINT_TTL_MAX_MS = 366 * 86_400_000;

/** Who a verified token speaks for. */
export interface Identity {
  readonly sub: string;
  readonly roles: readonly Role[];
  /** Seconds since the epoch; null for an eternal service-account token. */
  readonly exp: number | null;
  readonly sa_id: string | null;
  readonly jti: string;
  readonly kid: string;
}

export interface NewSigningKey {
  readonly kid: string;
  readonly publicKeyPem: string;
  readonly privateKeyPem: string;
}

/** Generates an Ed25519 signing key with a fresh random kid. */
export function generateSigningKey(): NewSigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    kid: `k-${randomBytes(6).toString('hex')}`,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

export interface MintRequest {
  readonly sub: string;
  readonly roles: readonly Role[];
  /** Null mints a token without `exp` (eternal service-account tokens only). */
  readonly ttlMs: number | null;
  readonly saId?: string;
  /** The token id (`jti`); random when absent. Service-account tokens use their record id. */
  readonly jti?: string;
}

/** Signs a token with the given key (EdDSA, `kid` in the header). */
export async function signToken(key: { kid: string; privateKeyPem: string }, request: MintRequest, nowMs = Date.now()): Promise<string> {
  const nowSeconds = Math.floor(nowMs / 1000);
  const claims: Record<string, unknown> = { roles: [...request.roles] };
  if (request.saId !== undefined) claims.sa_id = request.saId;
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: TOKEN_ALGORITHM, kid: key.kid, typ: 'JWT' })
    .setIssuer(TOKEN_ISSUER)
    .setSubject(request.sub)
    .setIssuedAt(nowSeconds)
    .setJti(request.jti ?? randomUUID());
  if (request.ttlMs !== null) jwt.setExpirationTime(nowSeconds + Math.ceil(request.ttlMs / 1000));
  return jwt.sign(createPrivateKey(key.privateKeyPem));
}

/** Looks up a verification key by kid; null for unknown or retired kids. */
export type KeyResolver = (kid: string) => KeyObject | null;

function invalid(message: string): NeuwerkError {
  return new NeuwerkError('NW_ERR_AUTH_INVALID', message);
}

/**
 * Verifies signature, algorithm, issuer and expiry (with CLOCK_SKEW_SECONDS) and returns the
 * identity. Revocation of service-account tokens is the caller's second step.
 */
export async function verifyToken(token: string, resolveKey: KeyResolver, nowMs = Date.now()): Promise<Identity> {
  let kid: string;
  try {
    const header = decodeProtectedHeader(token);
    if (header.alg !== TOKEN_ALGORITHM) throw invalid(`token algorithm ${JSON.stringify(header.alg ?? null)} is not accepted`);
    if (typeof header.kid !== 'string') throw invalid('token has no key id');
    kid = header.kid;
  } catch (err) {
    if (err instanceof NeuwerkError) throw err;
    throw invalid('malformed token');
  }
  const key = resolveKey(kid);
  if (key === null) throw invalid('token signed by an unknown or retired key');
  try {
    const { payload } = await jwtVerify(token, key, {
      algorithms: [TOKEN_ALGORITHM],
      issuer: TOKEN_ISSUER,
      clockTolerance: CLOCK_SKEW_SECONDS,
      currentDate: new Date(nowMs),
    });
    const roles = payload.roles;
    if (typeof payload.sub !== 'string' || typeof payload.jti !== 'string' || !Array.isArray(roles) || !roles.every((r) => r === 'admin' || r === 'readonly')) {
      throw invalid('token claims are incomplete');
    }
    return {
      sub: payload.sub,
      roles: roles as Role[],
      exp: typeof payload.exp === 'number' ? payload.exp : null,
      sa_id: typeof payload.sa_id === 'string' ? payload.sa_id : null,
      jti: payload.jti,
      kid,
    };
  } catch (err) {
    if (err instanceof NeuwerkError) throw err;
    if (err instanceof joseErrors.JWTExpired) throw new NeuwerkError('NW_ERR_AUTH_EXPIRED', 'token has expired');
    if (err instanceof joseErrors.JWSSignatureVerificationFailed) throw invalid('token signature does not verify');
    throw invalid(`token rejected: ${(err as Error).message}`);
  }
}

/** Parses a PEM public key once for repeated verification. */
export function publicKeyFromPem(pem: string): KeyObject {
  return createPublicKey(pem);
}
