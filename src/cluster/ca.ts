import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';
import { NeuwerkError } from '../errors.js';

/** Validity of the cluster CA and of node certificates it signs. */
export const CLUSTER_CA_VALIDITY_DAYS = 3650;
export const NODE_CERT_VALIDITY_DAYS = 825;
const RSA_KEY_BITS = 2048;

export interface KeyAndCert {
  readonly keyPem: string;
  readonly certPem: string;
}

/** RSA key from node:crypto (fast), in PKCS#8 PEM; node-forge signs certificates with it. */
export function generateRsaKeyPem(): string {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: RSA_KEY_BITS });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] as number) & 0x7f;
  return bytes.toString('hex');
}

function altName(host: string): { type: number; ip?: string; value?: string } {
  return isIP(host) ? { type: 7, ip: host } : { type: 2, value: host };
}

/** Creates the cluster CA on the seed's first start. */
export function createClusterCa(clusterName: string): KeyAndCert {
  const keyPem = generateRsaKeyPem();
  const key = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  cert.serialNumber = serialNumber();
  const now = Date.now();
  cert.validity.notBefore = new Date(now - 60_000);
  cert.validity.notAfter = new Date(now + CLUSTER_CA_VALIDITY_DAYS * 86_400_000);
  const subject = [{ name: 'commonName', value: `neuwerk cluster CA ${clusterName}` }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true, pathLenConstraint: 0 },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(key, forge.md.sha256.create());
  return { keyPem, certPem: forge.pki.certificateToPem(cert) };
}

/** A joiner's key and certificate signing request: CN = node id, SAN = advertised host. */
export function createNodeCsr(nodeId: string, advertiseHost: string): { keyPem: string; csrPem: string } {
  const keyPem = generateRsaKeyPem();
  const key = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.setRsaPublicKey(key.n, key.e);
  csr.setSubject([{ name: 'commonName', value: nodeId }]);
  csr.setAttributes([{ name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames: [altName(advertiseHost)] }] }]);
  csr.sign(key, forge.md.sha256.create());
  return { keyPem, csrPem: forge.pki.certificationRequestToPem(csr) };
}

/**
 * Signs a node certificate for `nodeId` from its CSR. The CSR must be self-consistent (its
 * signature verifies) and name `nodeId`; the SANs are the signer's choice (the node's advertised
 * host plus loopback names), not whatever the CSR asked for. Usable for both TLS server and client.
 */
export function signNodeCertificate(ca: KeyAndCert, csrPem: string, nodeId: string, advertiseHost: string): string {
  let csr: forge.pki.CertificateSigningRequest;
  try {
    csr = forge.pki.certificationRequestFromPem(csrPem);
  } catch (err) {
    throw new NeuwerkError('NW_ERR_JOIN_REFUSED', `certificate request is not a valid PEM CSR: ${(err as Error).message}`);
  }
  if (!csr.verify()) throw new NeuwerkError('NW_ERR_JOIN_REFUSED', 'certificate request signature does not verify');
  const cn = csr.subject.getField('CN') as { value: string } | null;
  if (cn?.value !== nodeId) throw new NeuwerkError('NW_ERR_JOIN_REFUSED', `certificate request names ${JSON.stringify(cn?.value ?? null)}, not node ${nodeId}`);
  const caKey = forge.pki.privateKeyFromPem(ca.keyPem) as forge.pki.rsa.PrivateKey;
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = csr.publicKey as forge.pki.PublicKey;
  cert.serialNumber = serialNumber();
  const now = Date.now();
  cert.validity.notBefore = new Date(now - 60_000);
  cert.validity.notAfter = new Date(now + NODE_CERT_VALIDITY_DAYS * 86_400_000);
  cert.setSubject([{ name: 'commonName', value: nodeId }]);
  cert.setIssuer(caCert.subject.attributes);
  const hosts = [...new Set([advertiseHost, '127.0.0.1', 'localhost'])];
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
    { name: 'subjectAltName', altNames: hosts.map(altName) },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

/** The node id a verified peer certificate speaks for (its CN). */
export function certificateNodeId(certPem: string | Buffer): string {
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(new X509Certificate(certPem).subject);
  if (cn === null) throw new NeuwerkError('NW_ERR_CLUSTER_TLS', 'certificate has no common name');
  return cn[1] as string;
}
