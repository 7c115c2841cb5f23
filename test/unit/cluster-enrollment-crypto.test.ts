import assert from 'node:assert/strict';
import { randomBytes, X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { certificateNodeId, createClusterCa, createNodeCsr, signNodeCertificate } from '../../src/cluster/ca.js';
import { joinRequestMacValid, openCaKey, openJoinResponse, sealCaKey, sealJoinResponse, signJoinRequest, type JoinGrant, type JoinRequestFields } from '../../src/cluster/crypto.js';

const ca = createClusterCa('test');
const token = { kid: 'k1', secret: randomBytes(32) };

describe('cluster CA and node certificates', () => {
  it('signs a CSR into a certificate chained to the CA, CN = node id, SAN = advertised host, client and server use', () => {
    const { csrPem } = createNodeCsr('node-a', '127.0.0.5');
    const cert = new X509Certificate(signNodeCertificate(ca, csrPem, 'node-a', '127.0.0.5'));
    assert.ok(cert.verify(new X509Certificate(ca.certPem).publicKey));
    assert.equal(certificateNodeId(cert.toString()), 'node-a');
    assert.ok(cert.checkIP('127.0.0.5'));
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
  });

  it('refuses a CSR for another node id, and garbage', () => {
    const { csrPem } = createNodeCsr('node-a', '127.0.0.5');
    assert.throws(() => signNodeCertificate(ca, csrPem, 'node-b', '127.0.0.5'), /names "node-a", not node node-b/);
    assert.throws(() => signNodeCertificate(ca, 'nonsense', 'node-a', '127.0.0.5'), /not a valid PEM CSR/);
  });
});

describe('CA key envelopes', () => {
  it('round-trip with the right token and fail with another token or on tampering', () => {
    const envelope = sealCaKey(ca.keyPem, token);
    assert.ok(!JSON.stringify(envelope).includes('PRIVATE KEY'));
    assert.equal(openCaKey(envelope, token.secret), ca.keyPem);
    assert.throws(() => openCaKey(envelope, randomBytes(32)), /does not open/);
    const tampered = { ...envelope, ciphertext: Buffer.from(Buffer.from(envelope.ciphertext, 'base64').map((b, i) => (i === 3 ? b ^ 1 : b))).toString('base64') };
    assert.throws(() => openCaKey(tampered, token.secret), /does not open/);
    assert.throws(() => openCaKey({ ...envelope, kid: 'k2' }, token.secret), /does not open/, 'the kid is bound as associated data');
  });
});

describe('join request and response', () => {
  const fields: JoinRequestFields = {
    node_id: 'node-j', cluster_advertise: '127.0.0.1:9700', http_advertise: '127.0.0.1:8500', proxy_advertise: '127.0.0.1:3128', dns_advertise: '', csr: 'csr-pem', http_csr: 'http-csr-pem', kid: 'k1', nonce: randomBytes(16).toString('base64'), timestamp: 1_800_000_000_000,
  };
  const grant: JoinGrant = { node_cert: 'cert', http_cert: 'http-cert', ca_cert: ca.certPem, cluster_id: 'c1', members: [] };

  it('the request MAC verifies with the token and covers every field', () => {
    const request = signJoinRequest(fields, token.secret);
    assert.ok(joinRequestMacValid(request, token.secret));
    assert.ok(!joinRequestMacValid(request, randomBytes(32)));
    for (const key of Object.keys(fields) as (keyof JoinRequestFields)[]) {
      const changed = { ...request, [key]: key === 'timestamp' ? request.timestamp + 1 : `${String(request[key])}x` };
      assert.ok(!joinRequestMacValid(changed, token.secret), `changing ${key} breaks the MAC`);
    }
  });

  it('the response opens only for the request it answers, and only with the token', () => {
    const request = signJoinRequest(fields, token.secret);
    const response = sealJoinResponse(grant, request, token.secret);
    assert.ok(!response.ciphertext.includes('BEGIN'), 'the payload is encrypted');
    assert.deepEqual(openJoinResponse(response, request, token.secret), grant);
    const otherRequest = signJoinRequest({ ...fields, nonce: randomBytes(16).toString('base64') }, token.secret);
    assert.throws(() => openJoinResponse(response, otherRequest, token.secret), /HMAC mismatch/);
    assert.throws(() => openJoinResponse(response, request, randomBytes(32)), /HMAC mismatch/);
    // Change the first character for certain (a fixed "A" would be no change 1 time in 64).
    const tampered = `${response.ciphertext.startsWith('A') ? 'B' : 'A'}${response.ciphertext.slice(1)}`;
    assert.throws(() => openJoinResponse({ ...response, ciphertext: tampered }, request, token.secret), /HMAC mismatch/);
  });
});
