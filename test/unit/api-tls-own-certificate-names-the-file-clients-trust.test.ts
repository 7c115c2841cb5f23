import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ensureHttpTls, generateSelfSignedTls } from '../../src/api/tls.js';

describe("management TLS with the operator's own certificate", () => {
  const dir = mkdtempSync(join(tmpdir(), 'neuwerk-byo-tls-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const own = generateSelfSignedTls('node-1', ['127.0.0.1']);
  const certPath = join(dir, 'own.crt');
  const keyPath = join(dir, 'own.key');
  writeFileSync(certPath, own.certPem);
  writeFileSync(keyPath, own.keyPem, { mode: 0o600 });

  it('names the certificate itself as what clients trust when no ca.crt sits in the TLS dir', () => {
    const tlsDir = join(dir, 'empty-tls');
    mkdirSync(tlsDir);
    const material = ensureHttpTls({ dir: tlsDir, certPath, keyPath, commonName: 'node-1', hosts: ['127.0.0.1'] });
    assert.equal(material.caPath, certPath);
    assert.equal(material.caPem, own.certPem);
  });

  it('names the ca.crt of the TLS dir when there is one', () => {
    const tlsDir = join(dir, 'with-ca');
    mkdirSync(tlsDir);
    writeFileSync(join(tlsDir, 'ca.crt'), own.caPem);
    const material = ensureHttpTls({ dir: tlsDir, certPath, keyPath, commonName: 'node-1', hosts: ['127.0.0.1'] });
    assert.equal(material.caPath, join(tlsDir, 'ca.crt'));
    assert.equal(material.caPem, own.caPem);
  });
});
