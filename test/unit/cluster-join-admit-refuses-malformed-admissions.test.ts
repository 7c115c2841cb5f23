import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { sealCaKey } from '../../src/cluster/crypto.js';
import { parseAdmission, type Admission } from '../../src/cluster/join-service.js';
import { NeuwerkError } from '../../src/errors.js';

const VALID: Admission = {
  node_id: 'node-4',
  cluster_addr: '127.0.0.1:9630',
  http_addr: '127.0.0.1:8446',
  proxy_addr: null,
  dns_addr: '127.0.0.1:5353',
  envelope: { ...sealCaKey('-----BEGIN PRIVATE KEY-----\nnot a real key\n-----END PRIVATE KEY-----\n', { kid: 'lab', secret: randomBytes(32) }) },
};

function refusal(body: unknown): string {
  try {
    parseAdmission(body);
  } catch (err) {
    assert.ok(err instanceof NeuwerkError, String(err));
    assert.equal(err.code, 'NW_ERR_COMMAND_INVALID');
    return err.message;
  }
  assert.fail(`accepted ${JSON.stringify(body)}`);
}

describe('join.admit (a member forwarding a checked join to the leader)', () => {
  it('takes a well-formed admission as it is, and nothing beyond its fields', () => {
    assert.deepEqual(parseAdmission(VALID), VALID);
    assert.deepEqual(parseAdmission({ ...VALID, extra: 'ignored' }), VALID);
  });

  it('refuses anything else, naming the field', () => {
    assert.equal(refusal(null), 'join.admit: the admission is missing or malformed');
    assert.equal(refusal([]), 'join.admit: the admission is missing or malformed');
    assert.equal(refusal({ ...VALID, node_id: { a: 1 } }), 'join.admit: node_id is missing or malformed');
    assert.equal(refusal({ ...VALID, node_id: 'has space' }), 'join.admit: node_id is missing or malformed');
    assert.equal(refusal({ ...VALID, cluster_addr: 'nowhere' }), 'join.admit: cluster_addr is missing or malformed');
    assert.equal(refusal({ ...VALID, http_addr: undefined }), 'join.admit: http_addr is missing or malformed');
    assert.equal(refusal({ ...VALID, proxy_addr: 5 }), 'join.admit: proxy_addr is missing or malformed');
    assert.equal(refusal({ ...VALID, dns_addr: 'x:y' }), 'join.admit: dns_addr is missing or malformed');
    assert.equal(refusal({ ...VALID, envelope: 'sealed' }), 'join.admit: envelope is missing or malformed');
    assert.equal(refusal({ ...VALID, envelope: { ...VALID.envelope, tag: '' } }), 'join.admit: envelope.tag is missing or malformed');
  });
});
