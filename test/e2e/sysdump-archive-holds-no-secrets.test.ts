import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { NodeProcess, runCli, tempDir } from './harness.js';
import { assertNoSecrets, jwtSecret, pemSecret, tokenSecret, unpackArchive, type Secret } from './archive-helpers.js';

/** One sysdump run is bounded by the live probe, the snapshots and the command timeouts. */
const SYSDUMP_RUN_TIMEOUT_MS = 25_000;
describe('a sysdump never holds private keys, bootstrap tokens, JWTs or signing keys', () => {
  const dir = tempDir('neuwerk-sysdump-secrets-');
  const dataDir = join(dir.path, 'data');
  let node: NodeProcess;
  const secrets: Secret[] = [];
  let elsewhereTokenPath = '';

  const api = async (method: string, path: string, token: string, body?: unknown): Promise<{ status: number; json: unknown }> =>
    node.api(method, path, body, { authorization: `Bearer ${token}` });

  before(async () => {
    node = await NodeProcess.start(dataDir);

    const created = await runCli(['cluster', 'token', 'create', '--path', join(dataDir, 'bootstrap-token')]);
    assert.equal(created.code, 0, created.stderr);
    const tokenFile = JSON.parse(readFileSync(join(dataDir, 'bootstrap-token'), 'utf8')) as { tokens: { token: string }[] };
    secrets.push(tokenSecret('bootstrap token', (tokenFile.tokens[0] as { token: string }).token));
    // A token file somewhere else, named only by the --bootstrap-token-path flag.
    elsewhereTokenPath = join(dir.path, 'secrets', 'join.json');
    assert.equal((await runCli(['cluster', 'token', 'create', '--path', elsewhereTokenPath])).code, 0);
    const elsewhereToken = (JSON.parse(readFileSync(elsewhereTokenPath, 'utf8')) as { tokens: { token: string }[] }).tokens[0]?.token as string;
    secrets.push(tokenSecret('bootstrap token at a non-default path', elsewhereToken));

    const bootstrap = await runCli(['auth', 'bootstrap', '--data-dir', dataDir]);
    assert.equal(bootstrap.code, 0, bootstrap.stderr);
    const admin = bootstrap.stdout.trim();
    secrets.push(jwtSecret('admin JWT from auth bootstrap', admin));

    const account = await api('POST', '/api/v1/service-accounts', admin, { name: 'terraform', role: 'admin', description: `careless operator pasted: Bearer ${admin}` });
    assert.equal(account.status, 201);
    const accountId = (account.json as { id: string }).id;
    const minted = await api('POST', `/api/v1/service-accounts/${accountId}/tokens`, admin, { name: 'ci', ttl: '1h' });
    assert.equal(minted.status, 201);
    const saToken = (minted.json as { token: string }).token;
    secrets.push(jwtSecret('service-account token', saToken));
    assert.equal((await api('GET', '/api/v1/auth/whoami', saToken)).status, 200, 'the node has seen the token');
    // A failed login with the token in the body, the kind of request that ends up in logs.
    await node.api('POST', '/api/v1/auth/token-login', { token: `Bearer ${saToken}x` });

    const db = new Database(join(dataDir, 'cluster', 'raft.db'), { readonly: true });
    const signingKeys = db.prepare('SELECT kid, private_key_pem FROM auth_keys').all() as { kid: string; private_key_pem: string }[];
    db.close();
    assert.ok(signingKeys.length >= 1);
    for (const key of signingKeys) secrets.push(pemSecret(`signing key ${key.kid}`, key.private_key_pem));

    // Secrets planted where the allow-listed summaries do read: account descriptions (free text).
    const signingPem = (signingKeys[0] as { private_key_pem: string }).private_key_pem;
    for (const [name, description] of [['pem-paster', signingPem], ['token-paster', `join with ${tokenFile.tokens[0]?.token} or ${elsewhereToken}`]] as const) {
      assert.equal((await api('POST', '/api/v1/service-accounts', admin, { name, role: 'readonly', description })).status, 201);
    }

    secrets.push(pemSecret('HTTP TLS server.key', readFileSync(join(dataDir, 'http-tls', 'server.key'), 'utf8')));
    const nodeKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    mkdirSync(join(dataDir, 'cluster', 'tls'), { recursive: true, mode: 0o700 });
    writeFileSync(join(dataDir, 'cluster', 'tls', 'node.key'), nodeKey, { mode: 0o600 });
    secrets.push(pemSecret('cluster/tls/node.key', nodeKey));
  });
  after(async () => {
    await node.stop('SIGKILL');
    dir.cleanup();
  });

  it('running node: no secret anywhere in the archive, which is mode 0600; planted ones were scrubbed', async () => {
    const output = join(dir.path, 'running.tar.gz');
    const result = await runCli(['sysdump', '--data-dir', dataDir, '--bootstrap-token-path', elsewhereTokenPath, '--output', output], { timeoutMs: SYSDUMP_RUN_TIMEOUT_MS });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(statSync(output).mode & 0o777, 0o600);
    const files = await unpackArchive(output, join(dir.path, 'running'));
    assert.equal((JSON.parse((files.get('manifest.json') as Buffer).toString()) as { mode: string }).mode, 'running');
    assert.ok(files.has('logs/neuwerk.jsonl'), 'logs were collected and searched');
    assertNoSecrets(files, secrets);
    for (const secret of secrets) for (const needle of secret.needles) assert.ok(!result.stdout.includes(needle) && !result.stderr.includes(needle), 'nor in the command output');

    const accounts = (files.get('summary/service-accounts.json') as Buffer).toString();
    assert.match(accounts, /careless operator pasted: Bearer <redacted/);
    assert.match(accounts, /<redacted-private-key>/);
    assert.match(accounts, /join with <redacted> or <redacted>/);
    assert.match(accounts, /"name": "ci"/, 'token metadata is kept');
  });

  it('stopped node: the same holds for the archive built from the data dir alone', async () => {
    assert.equal((await node.stop('SIGTERM')).code, 0);
    const output = join(dir.path, 'stopped.tar.gz');
    const result = await runCli(['sysdump', '--data-dir', dataDir, '--bootstrap-token-path', elsewhereTokenPath, '--output', output], { timeoutMs: SYSDUMP_RUN_TIMEOUT_MS });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(statSync(output).mode & 0o777, 0o600);
    const files = await unpackArchive(output, join(dir.path, 'stopped'));
    assert.equal((JSON.parse((files.get('manifest.json') as Buffer).toString()) as { mode: string }).mode, 'stopped');
    assertNoSecrets(files, secrets);
  });
});
