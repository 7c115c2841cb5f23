import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { extract } from 'tar';

/** Extracts a tar.gz with the tar package into `into` and returns every file by relative path. */
export async function unpackArchive(archive: string, into: string): Promise<Map<string, Buffer>> {
  mkdirSync(into, { recursive: true });
  await extract({ file: archive, cwd: into });
  const files = new Map<string, Buffer>();
  const walk = (path: string): void => {
    for (const name of readdirSync(path)) {
      const full = join(path, name);
      if (statSync(full).isDirectory()) walk(full);
      else files.set(relative(into, full), readFileSync(full));
    }
  };
  walk(into);
  return files;
}

/** Substrings shorter than this are not distinctive enough to search for. */
export const DISTINCTIVE_MIN_CHARS = 20;

export interface Secret {
  readonly label: string;
  /** The full secret and distinctive pieces of it (PEM body lines, JWT payload and signature). */
  readonly needles: readonly string[];
}

export function pemSecret(label: string, pem: string): Secret {
  const body = pem.split('\n').filter((line) => line.length >= DISTINCTIVE_MIN_CHARS && !line.startsWith('-----'));
  return { label, needles: [pem.trim(), body.join(''), ...body] };
}

export function jwtSecret(label: string, jwt: string): Secret {
  const [, payload, signature] = jwt.split('.') as [string, string, string];
  return { label, needles: [jwt, payload, signature] };
}

export function tokenSecret(label: string, token: string): Secret {
  const hex = token.replace(/^hex:/, '');
  const bytes = Buffer.from(hex, 'hex');
  return { label, needles: [token, hex, hex.slice(0, 24), hex.slice(-24), bytes.toString('base64'), bytes.toString('base64url')] };
}

/** Byte search over every extracted file: no secret, no piece of one, no PEM marker, no JWT shape. */
export function assertNoSecrets(files: Map<string, Buffer>, secrets: readonly Secret[]): void {
  assert.ok(files.size > 10, 'the archive has content to search');
  for (const [path, content] of files) {
    for (const secret of secrets) {
      for (const needle of secret.needles) {
        assert.ok(needle.length >= DISTINCTIVE_MIN_CHARS, `${secret.label}: needle long enough`);
        assert.equal(content.indexOf(needle), -1, `${path} contains (part of) the ${secret.label}`);
      }
    }
    assert.equal(content.indexOf('PRIVATE KEY'), -1, `${path} has a PEM private key marker`);
    assert.ok(!/eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/.test(content.toString('latin1')), `${path} has a JWT-shaped string`);
  }
}
