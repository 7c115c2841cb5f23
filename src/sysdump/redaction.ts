/**
 * Redaction for sysdump archives (DESIGN §9: never private keys, bootstrap tokens, raw JWTs or
 * signing keys). Two layers, on purpose:
 *
 * 1. `scrubText` rewrites every text that enters an archive: PEM private-key blocks, JWT-shaped
 *    strings, `Bearer` credentials, the auth cookie, and the node's own known secrets.
 * 2. `findSecretLeaks` is the final check over every finished entry. It only detects; a finding
 *    means a scrubber missed something, and the builder refuses to write the archive.
 *
 * The archive itself is built only from summaries the builder constructs (an allow-list), never by
 * copying files, so these layers are a safety net, not the primary defence.
 */

/** What replaces a redacted value everywhere (configuration values, log fragments). */
export const REDACTED = '<redacted>';
/** What replaces a JWT-shaped string. */
export const REDACTED_JWT = '<redacted-jwt>';
/** What replaces a PEM private-key block. */
export const REDACTED_PRIVATE_KEY = '<redacted-private-key>';

/**
 * Known secrets shorter than this are not searched for: short strings would match by accident and
 * every real secret (32-byte tokens, key material lines) is far longer.
 */
export const KNOWN_SECRET_MIN_CHARS = 16;

/** A whole PEM private-key block (any key type, encrypted or not, JSON-escaped newlines too). */
const PEM_PRIVATE_KEY_BLOCK = /-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?-----END ([A-Z0-9]+ )*PRIVATE KEY-----/g;
/** A PEM private-key marker on its own, e.g. a truncated block with no END line. */
const PEM_PRIVATE_KEY_MARKER = /-----(BEGIN|END) ([A-Z0-9]+ )*PRIVATE KEY-----/;
/** A truncated block: BEGIN marker and whatever base64 follows it, when no END marker came. */
const PEM_PRIVATE_KEY_OPEN = /-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY-----[A-Za-z0-9+/=\s\\n]*/g;
/**
 * A JWT: base64url header starting with `eyJ` (`{"`), base64url payload, and a possibly empty
 * signature (`alg: none`). Compact JWS/JWE both start this way.
 */
const JWT_SHAPE = /eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g;
/** `Bearer <credential>` in headers, logs or error text. */
const BEARER_CREDENTIAL = /\b(Bearer)\s+(?!<redacted)[^\s"'\\,;<>]+/gi;
/** The auth cookie set by token-login (DESIGN §6). */
const AUTH_COOKIE_VALUE = /\b(neuwerk_auth=)(?!<redacted|;|\s|"|$)[^\s;"'\\,]+/g;

/** The node's own secrets, gathered so the archive can be checked for them by value. */
export class KnownSecrets {
  private readonly values = new Map<string, string>();

  /** Adds a secret string under a label naming where it came from (never the value). */
  add(label: string, value: string): void {
    const trimmed = value.trim();
    if (trimmed.length >= KNOWN_SECRET_MIN_CHARS && !this.values.has(trimmed)) this.values.set(trimmed, label);
  }

  /**
   * Adds a PEM document: the whole text, its base64 body as one string, and each body line, so a
   * single leaked line of key material is still found.
   */
  addPem(label: string, pem: string): void {
    const body = pem
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line.length > 0 && !line.startsWith('-----') && !line.includes(':'));
    this.add(label, pem);
    this.add(`${label} (base64 body)`, body.join(''));
    for (const line of body) this.add(`${label} (body line)`, line);
  }

  /** Adds a bootstrap-token secret as written (`hex:`/`b64:` prefixes) and its bare form. */
  addToken(label: string, token: string): void {
    this.add(label, token);
    const bare = token.replace(/^(hex|b64):/, '');
    this.add(label, bare);
  }

  get size(): number {
    return this.values.size;
  }

  /** Secrets longest first, so a longer secret is replaced before any of its substrings. */
  entries(): [value: string, label: string][] {
    return [...this.values.entries()].sort((a, b) => b[0].length - a[0].length);
  }
}

/**
 * Removes credentials from text that goes into an archive: PEM private-key blocks, JWT-shaped
 * strings, `Bearer` credentials, the auth cookie value, and every known secret value.
 */
export function scrubText(text: string, known?: KnownSecrets): string {
  let out = text
    .replace(PEM_PRIVATE_KEY_BLOCK, REDACTED_PRIVATE_KEY)
    .replace(PEM_PRIVATE_KEY_OPEN, REDACTED_PRIVATE_KEY)
    .replace(JWT_SHAPE, REDACTED_JWT)
    .replace(BEARER_CREDENTIAL, `$1 ${REDACTED}`)
    .replace(AUTH_COOKIE_VALUE, `$1${REDACTED}`);
  if (known !== undefined) {
    for (const [value] of known.entries()) {
      if (out.includes(value)) out = out.split(value).join(REDACTED);
    }
  }
  return out;
}

/** Keys whose values are credentials wherever they appear in a configuration document. */
const SECRET_KEY_NAME = /(secret|password|passphrase|passwd|private|token|credential|api[_-]?key|auth[_-]?key|^key$|_key$|cookie|bearer|hmac|signature)/i;
/** Keys that name a file or directory hold a location, not the secret itself, and are kept. */
const PATH_KEY_NAME = /(_?path|_?dir|_?file|_?url)$/i;

/** True when a configuration key's value must be replaced by `"<redacted>"`. */
export function isSecretBearingKey(key: string): boolean {
  return SECRET_KEY_NAME.test(key) && !PATH_KEY_NAME.test(key);
}

/**
 * A deep copy of a configuration document with every secret-bearing value (by key name, see
 * `isSecretBearingKey`) replaced by `"<redacted>"`, and every remaining string scrubbed.
 */
export function redactConfiguration(value: unknown, known?: KnownSecrets): unknown {
  if (Array.isArray(value)) return value.map((item) => redactConfiguration(item, known));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value as Record<string, unknown>)) {
      out[key] = isSecretBearingKey(key) && inner !== null && inner !== undefined ? REDACTED : redactConfiguration(inner, known);
    }
    return out;
  }
  if (typeof value === 'string') return scrubText(value, known);
  return value;
}

/** One thing the final scan found; names the kind and, for known secrets, their origin label. */
export interface SecretFinding {
  readonly kind: 'pem-private-key' | 'jwt' | 'bearer-credential' | 'known-secret';
  /** For known secrets: where the secret came from (e.g. "http-tls server.key"); never the value. */
  readonly label: string | null;
}

/**
 * Detects secrets in finished archive content: PEM private-key markers, JWT-shaped strings, an
 * unredacted `Bearer` credential, and known secret values. Never returns the secret itself.
 */
export function findSecretLeaks(content: Buffer | string, known?: KnownSecrets): SecretFinding[] {
  const text = typeof content === 'string' ? content : content.toString('latin1');
  const findings: SecretFinding[] = [];
  if (PEM_PRIVATE_KEY_MARKER.test(text)) findings.push({ kind: 'pem-private-key', label: null });
  if (new RegExp(JWT_SHAPE.source).test(text)) findings.push({ kind: 'jwt', label: null });
  if (new RegExp(BEARER_CREDENTIAL.source, 'i').test(text)) findings.push({ kind: 'bearer-credential', label: null });
  if (known !== undefined) {
    const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
    const labels = new Set<string>();
    for (const [value, label] of known.entries()) {
      if (!labels.has(label) && bytes.includes(value)) labels.add(label);
    }
    for (const label of labels) findings.push({ kind: 'known-secret', label });
  }
  return findings;
}
