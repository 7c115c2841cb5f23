import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { SignJWT } from 'jose';
import {
  findSecretLeaks,
  isSecretBearingKey,
  KnownSecrets,
  KNOWN_SECRET_MIN_CHARS,
  REDACTED,
  REDACTED_JWT,
  REDACTED_PRIVATE_KEY,
  redactConfiguration,
  scrubText,
} from '../../src/sysdump/redaction.js';

async function realJwt(): Promise<string> {
  const { privateKey } = generateKeyPairSync('ed25519');
  return new SignJWT({ roles: ['admin'] })
    .setProtectedHeader({ alg: 'EdDSA', kid: 'k1', typ: 'JWT' })
    .setIssuer('neuwerk').setSubject('someone').setJti('jti-1').setIssuedAt().setExpirationTime('10m')
    .sign(privateKey);
}

function pems(): Record<string, string> {
  const ed = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const rsaPkcs1 = rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'sec1', format: 'pem' }).toString();
  const encrypted = rsa.privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' }).toString();
  return { ed, rsaPkcs1, ec, encrypted };
}

describe('sysdump redaction: scrubText', () => {
  it('replaces a real JWT, an alg:none JWT and one inside JSON with a marker', async () => {
    const jwt = await realJwt();
    const [header, payload] = jwt.split('.') as [string, string];
    const none = `${header}.${payload}.`;
    const text = `token=${jwt} none=${none} json=${JSON.stringify({ token: jwt })}`;
    const out = scrubText(text);
    assert.ok(!out.includes(jwt));
    assert.ok(!out.includes(payload), 'no JWT payload survives');
    assert.equal(out.split(REDACTED_JWT).length - 1, 3);
    assert.deepEqual(findSecretLeaks(out), []);
  });

  it('replaces Bearer credentials in headers, logs and JSON, case-insensitively, and the auth cookie', () => {
    const out = scrubText('Authorization: Bearer abc.def-123 {"authorization":"bearer s3cr3t-Opaque"} cookie: neuwerk_auth=xyz; other=1');
    assert.equal(out, `Authorization: Bearer ${REDACTED} {"authorization":"bearer ${REDACTED}"} cookie: neuwerk_auth=${REDACTED}; other=1`);
    assert.deepEqual(findSecretLeaks(out), []);
  });

  it('keeps the hint "Bearer <token>" and ordinary diagnostic text unchanged', () => {
    const text = [
      'authentication required: send Authorization: Bearer <token>',
      'node 3f2a8c1e-1d2b-4c3d-9e8f-0a1b2c3d4e5f applied index 42 at 2026-01-01T00:00:00.000Z',
      'neuwerk_raft_term{node_id="n1"} 3',
      'inet 10.0.0.1/24 brd 10.0.0.255 scope global eth0',
      'base64 but not a JWT: QUJDREVGRw==.abc.def',
    ].join('\n');
    assert.equal(scrubText(text), text);
    assert.deepEqual(findSecretLeaks(text), []);
  });

  for (const [name, pem] of Object.entries(pems())) {
    it(`replaces a whole ${name} PEM private key block, also with JSON-escaped newlines`, () => {
      const raw = `before\n${pem}after`;
      const escaped = JSON.stringify({ private_key: pem });
      for (const text of [raw, escaped]) {
        const out = scrubText(text);
        assert.ok(out.includes(REDACTED_PRIVATE_KEY), out);
        assert.ok(!/PRIVATE KEY/.test(out), out);
        const bodyLine = pem.split('\n')[1] as string;
        assert.ok(!out.includes(bodyLine), 'no key material line survives');
      }
    });
  }

  it('replaces a truncated PEM block that has no END marker', () => {
    const pem = pems().ed;
    const truncated = pem.slice(0, pem.indexOf('-----END'));
    const out = scrubText(`x ${truncated}`);
    assert.ok(!/PRIVATE KEY/.test(out));
    assert.ok(!out.includes((truncated.split('\n')[1] as string).slice(0, 20)));
  });

  it('replaces known secrets by value, longest first, and ignores ones too short to be distinctive', () => {
    const known = new KnownSecrets();
    const token = 'a'.repeat(8) + 'f00dfeedcafebabe'.repeat(4);
    known.addToken('bootstrap token', `hex:${token}`);
    known.add('tiny', 'abc');
    assert.equal(known.entries().some(([value]) => value === 'abc'), false);
    assert.ok('abc'.length < KNOWN_SECRET_MIN_CHARS);
    const out = scrubText(`file: {"token":"hex:${token}"} bare ${token} abc`, known);
    assert.ok(!out.includes(token));
    assert.ok(out.includes(' abc'), 'short strings are not touched');
  });
});

describe('sysdump redaction: the final scan (findSecretLeaks)', () => {
  it('finds PEM markers, JWTs, bearer credentials and known secrets, naming the origin but never the value', async () => {
    const jwt = await realJwt();
    const pem = pems().ed;
    const known = new KnownSecrets();
    known.addPem('signing key k1', pem);
    const bodyLine = pem.split('\n')[1] as string;
    assert.deepEqual(findSecretLeaks(pem).map((f) => f.kind), ['pem-private-key']);
    assert.deepEqual(findSecretLeaks(pem, known).map((f) => f.kind).sort(), ['known-secret', 'known-secret', 'pem-private-key'], 'the whole PEM and its one-line body');
    assert.deepEqual(findSecretLeaks(`x ${jwt} y`).map((f) => f.kind), ['jwt']);
    assert.deepEqual(findSecretLeaks('Authorization: Bearer opaque-credential').map((f) => f.kind), ['bearer-credential']);
    const rsa = pems().rsaPkcs1;
    known.addPem('server.key', rsa);
    const middleLine = rsa.split('\n')[3] as string;
    const leak = findSecretLeaks(Buffer.from(`a single line of key material: ${middleLine}`), known);
    assert.deepEqual(leak, [{ kind: 'known-secret', label: 'server.key (body line)' }]);
    assert.ok(!JSON.stringify(leak).includes(middleLine));
    assert.ok(findSecretLeaks(`ed25519 body alone: ${bodyLine}`, known).some((f) => f.kind === 'known-secret'));
  });
});

describe('sysdump redaction: configuration', () => {
  const cases: [string, boolean][] = [
    ['token', true], ['bootstrap_token', true], ['secret', true], ['client_secret', true], ['password', true], ['private_key', true],
    ['key', true], ['tls_key', true], ['api_key', true], ['hmac', true], ['cookie', true],
    ['bootstrap_token_path', false], ['key_path', false], ['tls_dir', false], ['keyPath', false], ['bootstrapTokenPath', false],
    ['bind', false], ['data_dir', false], ['level', false], ['upstreams', false], ['node_id_path', false],
  ];
  for (const [key, secret] of cases) {
    it(`${key} is ${secret ? '' : 'not '}secret-bearing`, () => assert.equal(isSecretBearingKey(key), secret));
  }

  it('replaces secret-bearing values anywhere (nested, in arrays), keeps paths, and scrubs other strings', async () => {
    const jwt = await realJwt();
    const document = {
      version: 1,
      cluster: { bootstrap_token_path: '/var/lib/neuwerk/bootstrap-token', token: 'raw-token-value', bind: '127.0.0.1:9600' },
      http: { key_path: '/etc/neuwerk/server.key', tls: { private_key: '-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----' } },
      integrations: [{ name: 'x', api_key: 'k-123', note: `uses ${jwt}` }],
      policy: { default: 'deny' },
      empty: { secret: null },
    };
    const out = redactConfiguration(document) as typeof document;
    assert.equal(out.cluster.token, REDACTED);
    assert.equal(out.cluster.bootstrap_token_path, '/var/lib/neuwerk/bootstrap-token');
    assert.equal(out.cluster.bind, '127.0.0.1:9600');
    assert.equal(out.http.key_path, '/etc/neuwerk/server.key');
    assert.equal(out.http.tls.private_key, REDACTED);
    assert.equal(out.integrations[0]?.api_key, REDACTED);
    assert.equal(out.integrations[0]?.note, `uses ${REDACTED_JWT}`);
    assert.equal(out.policy.default, 'deny');
    assert.equal(out.empty.secret, null, 'an unset secret stays visibly unset');
    assert.equal(document.cluster.token, 'raw-token-value', 'the input is not modified');
  });
});
