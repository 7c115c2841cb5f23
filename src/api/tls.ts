import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import forge from 'node-forge';
import { NeuwerkError } from '../errors.js';
import { makeDirectory, writeFileAtomic } from '../fs-util.js';

/** Validity of generated management certificates. */
export const HTTP_CERT_VALIDITY_DAYS = 825;
const RSA_KEY_BITS = 2048;

export interface TlsMaterial {
  readonly certPem: string;
  readonly keyPem: string;
  readonly caPem: string;
  readonly certPath: string;
  readonly keyPath: string;
  readonly caPath: string;
}


function newRsaKeyPair(): { privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey; keyPem: string } {
  // node:crypto generates keys far faster than node-forge's pure-JS generator.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: RSA_KEY_BITS });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  return { privateKey: forgeKey, publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e), keyPem };
}

function serialNumber(): string {
  // Positive 16-byte serial (leading byte masked below 0x80).
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] as number) & 0x7f;
  return bytes.toString('hex');
}

/** The SAN list for the management certificate: every name a client may use. */
export function managementSubjectAltNames(hosts: readonly string[]): string[] {
  return [...new Set(['localhost', '127.0.0.1', '::1', ...hosts.filter((h) => h !== '0.0.0.0' && h !== '::')])];
}

/**
 * Generates a private CA and a server certificate signed by it. Clients verify the management API
 * with `--ca <http-tls-dir>/ca.crt`. The CA key is not kept: the node only needs its server key.
 */
export function generateSelfSignedTls(commonName: string, sans: readonly string[]): { certPem: string; keyPem: string; caPem: string } {
  const now = new Date();
  const notAfter = new Date(now.getTime() + HTTP_CERT_VALIDITY_DAYS * 86_400_000);
  const ca = newRsaKeyPair();
  const caCert = forge.pki.createCertificate();
  caCert.publicKey = ca.publicKey;
  caCert.serialNumber = serialNumber();
  caCert.validity.notBefore = new Date(now.getTime() - 60_000);
  caCert.validity.notAfter = notAfter;
  const caSubject = [{ name: 'commonName', value: `neuwerk management CA ${commonName}` }];
  caCert.setSubject(caSubject);
  caCert.setIssuer(caSubject);
  caCert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true, pathLenConstraint: 0 },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  caCert.sign(ca.privateKey, forge.md.sha256.create());

  const server = newRsaKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = server.publicKey;
  cert.serialNumber = serialNumber();
  cert.validity.notBefore = new Date(now.getTime() - 60_000);
  cert.validity.notAfter = notAfter;
  cert.setSubject([{ name: 'commonName', value: commonName }]);
  cert.setIssuer(caSubject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
    {
      name: 'subjectAltName',
      altNames: sans.map((san) => (isIP(san) ? { type: 7, ip: san } : { type: 2, value: san })),
    },
  ]);
  cert.sign(ca.privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: server.keyPem, caPem: forge.pki.certificateToPem(caCert) };
}

/**
 * Loads the management API's TLS material from `dir` (`server.crt`, `server.key`, `ca.crt`), or
 * generates it on first start. Explicit cert/key paths take precedence and are never generated.
 */
export function ensureHttpTls(options: {
  dir: string;
  certPath: string | null;
  keyPath: string | null;
  commonName: string;
  hosts: readonly string[];
}): TlsMaterial & { generated: boolean } {
  if (options.certPath !== null && options.keyPath !== null) {
    const certPem = readTlsFile(options.certPath);
    const keyPem = readTlsFile(options.keyPath);
    // Without a ca.crt next to it, the certificate itself is what a client trusts (self-signed).
    const caFile = join(options.dir, 'ca.crt');
    const caPath = existsSync(caFile) ? caFile : options.certPath;
    const caPem = readTlsFile(caPath);
    return { certPem, keyPem, caPem, certPath: options.certPath, keyPath: options.keyPath, caPath, generated: false };
  }
  const certPath = join(options.dir, 'server.crt');
  const keyPath = join(options.dir, 'server.key');
  const caPath = join(options.dir, 'ca.crt');
  if (existsSync(certPath) && existsSync(keyPath)) {
    const certPem = readTlsFile(certPath);
    const keyPem = readTlsFile(keyPath);
    const caPem = existsSync(caPath) ? readTlsFile(caPath) : certPem;
    try {
      new X509Certificate(certPem);
    } catch (err) {
      throw new NeuwerkError('NW_ERR_TLS_MATERIAL', `${certPath} is not a PEM certificate: ${(err as Error).message}`, {
        actions: [`Replace ${certPath} and ${keyPath}, or remove both to have new ones generated.`],
      });
    }
    return { certPem, keyPem, caPem, certPath, keyPath, caPath, generated: false };
  }
  try {
    makeDirectory(options.dir, 0o700);
    const generated = generateSelfSignedTls(options.commonName, managementSubjectAltNames(options.hosts));
    writeFileAtomic(caPath, generated.caPem, 0o644);
    writeFileAtomic(keyPath, generated.keyPem, 0o600);
    writeFileAtomic(certPath, generated.certPem, 0o644);
    return { ...generated, certPath, keyPath, caPath, generated: true };
  } catch (err) {
    throw new NeuwerkError('NW_ERR_TLS_MATERIAL', `cannot create the management TLS files in ${options.dir}: ${(err as Error).message}`, { cause: err });
  }
}

function readTlsFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new NeuwerkError('NW_ERR_TLS_MATERIAL', `cannot read TLS file ${path}: ${(err as Error).message}`);
  }
}
