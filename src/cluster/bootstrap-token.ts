import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { NeuwerkError } from '../errors.js';
import { makeDirectory, writeFileAtomic } from '../fs-util.js';

/** Shortest accepted bootstrap token secret (DESIGN §5). */
export const BOOTSTRAP_TOKEN_MIN_BYTES = 32;
/** Secret length written by `neuwerk cluster token create`. */
export const BOOTSTRAP_TOKEN_CREATE_BYTES = 32;

/** One entry of the bootstrap token file, with its secret decoded. */
export interface BootstrapToken {
  readonly kid: string;
  readonly secret: Buffer;
  /** Milliseconds since the epoch; null = unbounded. */
  readonly validFromMs: number | null;
  readonly validUntilMs: number | null;
}

interface TokenEntryJson {
  kid: string;
  token: string;
  valid_from?: string;
  valid_until?: string;
}

function refuse(path: string, reason: string): NeuwerkError {
  return new NeuwerkError('NW_ERR_BOOTSTRAP_TOKEN', `bootstrap token file ${path}: ${reason}`, {
    actions: [`Fix ${path} (JSON {"tokens":[{"kid","token","valid_from?","valid_until?"}]}, mode 0600), or create one with: neuwerk cluster token create --path ${path}`],
  });
}

/**
 * Decodes a token secret: `hex:<hex>`, `b64:<base64>`, or bare hex (even length, hex digits only),
 * else bare base64. Returns null when it decodes to nothing.
 */
export function decodeTokenSecret(text: string): Buffer | null {
  const value = text.trim();
  let decoded: Buffer;
  if (value.startsWith('hex:')) {
    const hex = value.slice(4);
    if (!/^(?:[0-9a-fA-F]{2})+$/.test(hex)) return null;
    decoded = Buffer.from(hex, 'hex');
  } else if (value.startsWith('b64:')) {
    const b64 = value.slice(4);
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(b64)) return null;
    decoded = Buffer.from(b64, 'base64');
  } else if (/^(?:[0-9a-fA-F]{2})+$/.test(value)) {
    decoded = Buffer.from(value, 'hex');
  } else if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(value)) {
    decoded = Buffer.from(value, 'base64');
  } else {
    return null;
  }
  return decoded.length === 0 ? null : decoded;
}

function parseTime(path: string, kid: string, field: string, value: unknown): number | null {
  if (value === undefined || value === null) return null;
  const ms = typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) throw refuse(path, `${field} of kid ${JSON.stringify(kid)} is not an RFC 3339 time: ${JSON.stringify(value)}`);
  return ms;
}

/** True when the token may be used at `nowMs` (both bounds inclusive). */
export function tokenValidAt(token: BootstrapToken, nowMs: number): boolean {
  return (token.validFromMs === null || nowMs >= token.validFromMs) && (token.validUntilMs === null || nowMs <= token.validUntilMs);
}

/**
 * Loads and checks the token file. Refused, naming the path: group/other access (must be 0600 or
 * stricter), invalid JSON, a missing field, a duplicate kid, a secret shorter than 32 bytes,
 * `valid_from` after `valid_until`, and a file with no currently valid token.
 */
export function loadBootstrapTokens(path: string, nowMs = Date.now()): BootstrapToken[] {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (err) {
    throw refuse(path, (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message);
  }
  if ((mode & 0o077) !== 0) {
    throw refuse(path, `permissions ${(mode & 0o777).toString(8).padStart(4, '0')} are too open: the file must be readable by its owner only (chmod 600)`);
  }
  let document: unknown;
  try {
    document = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw refuse(path, `not valid JSON (${(err as Error).message})`);
  }
  const entries = (document as { tokens?: unknown } | null)?.tokens;
  if (!Array.isArray(entries)) throw refuse(path, 'missing field "tokens" (an array)');
  const seen = new Set<string>();
  const tokens: BootstrapToken[] = [];
  entries.forEach((entry: unknown, position) => {
    const e = entry as Partial<TokenEntryJson> | null;
    if (e === null || typeof e !== 'object') throw refuse(path, `tokens[${position}] is not an object`);
    if (typeof e.kid !== 'string' || e.kid.length === 0) throw refuse(path, `tokens[${position}]: missing field "kid"`);
    if (typeof e.token !== 'string' || e.token.length === 0) throw refuse(path, `tokens[${position}] (kid ${JSON.stringify(e.kid)}): missing field "token"`);
    if (seen.has(e.kid)) throw refuse(path, `duplicate kid ${JSON.stringify(e.kid)}`);
    seen.add(e.kid);
    const secret = decodeTokenSecret(e.token);
    if (secret === null) throw refuse(path, `token of kid ${JSON.stringify(e.kid)} is neither hex nor base64`);
    if (secret.length < BOOTSTRAP_TOKEN_MIN_BYTES) {
      throw refuse(path, `token of kid ${JSON.stringify(e.kid)} is ${secret.length} bytes; at least ${BOOTSTRAP_TOKEN_MIN_BYTES} random bytes are required`);
    }
    const validFromMs = parseTime(path, e.kid, 'valid_from', e.valid_from);
    const validUntilMs = parseTime(path, e.kid, 'valid_until', e.valid_until);
    if (validFromMs !== null && validUntilMs !== null && validFromMs > validUntilMs) {
      throw refuse(path, `kid ${JSON.stringify(e.kid)}: valid_from is after valid_until`);
    }
    tokens.push({ kid: e.kid, secret, validFromMs, validUntilMs });
  });
  if (!tokens.some((t) => tokenValidAt(t, nowMs))) throw refuse(path, 'no token is valid now (check valid_from and valid_until)');
  return tokens;
}

/**
 * The token a node uses for its own requests and envelopes: among tokens valid now, the latest
 * `valid_from`; then the later `valid_until` (unbounded beats bounded); then the larger kid.
 */
export function currentToken(tokens: readonly BootstrapToken[], nowMs = Date.now()): BootstrapToken | null {
  const valid = tokens.filter((t) => tokenValidAt(t, nowMs));
  valid.sort((a, b) => {
    const from = (a.validFromMs ?? 0) - (b.validFromMs ?? 0);
    if (from !== 0) return from;
    const until = (a.validUntilMs ?? Number.POSITIVE_INFINITY) - (b.validUntilMs ?? Number.POSITIVE_INFINITY);
    if (until !== 0 && !Number.isNaN(until)) return until;
    return a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0;
  });
  return valid[valid.length - 1] ?? null;
}

/**
 * Creates the token file, or appends an entry to it (mode 0600), and returns the new kid. An
 * existing file must itself pass the loader's checks, so a broken file is never extended.
 */
export function createBootstrapToken(path: string, options: { kid?: string; validForMs?: number | null; nowMs?: number } = {}): { kid: string; created: boolean } {
  const nowMs = options.nowMs ?? Date.now();
  const existing: TokenEntryJson[] = [];
  const created = !existsSync(path);
  if (!created) {
    loadBootstrapTokensForAppend(path);
    existing.push(...(JSON.parse(readFileSync(path, 'utf8')) as { tokens: TokenEntryJson[] }).tokens);
  }
  const kid = options.kid ?? `t-${new Date(nowMs).toISOString().slice(0, 10).replace(/-/g, '')}-${randomBytes(3).toString('hex')}`;
  if (!/^[A-Za-z0-9._:-]{1,64}$/.test(kid)) throw new NeuwerkError('NW_ERR_USAGE', `--kid: ${JSON.stringify(kid)} must be 1-64 characters of A-Z a-z 0-9 . _ : -`);
  if (existing.some((e) => e.kid === kid)) throw new NeuwerkError('NW_ERR_USAGE', `--kid: ${kid} already exists in ${path}`);
  const entry: TokenEntryJson = { kid, token: `hex:${randomBytes(BOOTSTRAP_TOKEN_CREATE_BYTES).toString('hex')}`, valid_from: new Date(nowMs).toISOString() };
  if (options.validForMs !== null && options.validForMs !== undefined) entry.valid_until = new Date(nowMs + options.validForMs).toISOString();
  makeDirectory(dirname(path), 0o700);
  writeFileAtomic(path, `${JSON.stringify({ tokens: [...existing, entry] }, null, 2)}\n`, 0o600);
  return { kid, created };
}

/** The append path accepts a file whose tokens have all expired (that is why one appends). */
function loadBootstrapTokensForAppend(path: string): void {
  try {
    loadBootstrapTokens(path);
  } catch (err) {
    if (err instanceof NeuwerkError && /no token is valid now/.test(err.message)) return;
    throw err;
  }
}
