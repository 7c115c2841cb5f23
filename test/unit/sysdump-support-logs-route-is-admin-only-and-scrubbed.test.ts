import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { addSupportRoutes, SUPPORT_LOGS_PATH } from '../../src/api/routes/support.js';
import { Router } from '../../src/api/router.js';
import { createApiServer } from '../../src/api/server.js';
import { generateSelfSignedTls } from '../../src/api/tls.js';
import type { Identity } from '../../src/auth/tokens.js';
import { NeuwerkError } from '../../src/errors.js';
import { LogRing } from '../../src/log/logger.js';
import { NodeMetrics } from '../../src/metrics/registry.js';

const JWT = 'eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.eyJzdWIiOiJhZG1pbiIsInJvbGVzIjpbImFkbWluIl19.c2lnbmF0dXJlLWJ5dGVz';
const PEM = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

function writeLines(ring: LogRing, lines: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => ring.write(`${lines.join('\n')}\n`, (err) => (err ? reject(err) : resolve())));
}

function identity(roles: Identity['roles']): Identity {
  return { sub: roles.join('+'), roles, exp: null, sa_id: null } as unknown as Identity;
}

describe('GET /api/v1/support/logs', () => {
  const ring = new LogRing(4);
  const router = new Router();
  addSupportRoutes(router, { ring, nodeId: 'node-1', config: { configPath: null } });
  const tls = generateSelfSignedTls('node-1', ['127.0.0.1']);
  const server = createApiServer({
    tls: { ...tls, certPath: 'server.crt', keyPath: 'server.key', caPath: 'ca.crt' },
    router,
    logger: pino({ level: 'silent' }),
    metrics: new NodeMetrics('node-1'),
    nodeId: 'node-1',
    authenticate: (token) => {
      if (token === 'admin-token') return Promise.resolve(identity(['admin']));
      if (token === 'reader-token') return Promise.resolve(identity(['readonly']));
      return Promise.reject(new NeuwerkError('NW_ERR_AUTH_INVALID', 'invalid token'));
    },
  });
  const dispatcher = new Agent({ connect: { ca: tls.caPem } });
  let base = '';

  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await dispatcher.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const get = async (token: string | null): Promise<{ status: number; json: unknown; text: string }> => {
    const response = await request(`${base}${SUPPORT_LOGS_PATH}`, { dispatcher, headers: token === null ? {} : { authorization: `Bearer ${token}` } });
    const text = await response.body.text();
    return { status: response.statusCode, json: JSON.parse(text) as unknown, text };
  };

  it('is declared admin-only and served by the node itself', () => {
    const match = router.match('GET', SUPPORT_LOGS_PATH);
    assert.ok(!(match instanceof NeuwerkError));
    assert.equal(match.route.access, 'admin');
    assert.equal(match.route.routing, 'local');
  });

  it('answers 401 without a token and 403 to a readonly token', async () => {
    assert.equal((await get(null)).status, 401);
    const reader = await get('reader-token');
    assert.equal(reader.status, 403);
    assert.equal((reader.json as { code: string }).code, 'NW_ERR_AUTH_FORBIDDEN');
  });

  it('returns the ring lines oldest first, scrubbed of bearer credentials, JWTs and private keys', async () => {
    await writeLines(ring, [
      '{"msg":"dropped by the ring"}',
      JSON.stringify({ msg: 'request', authorization: `Bearer ${JWT}` }),
      JSON.stringify({ msg: 'token in text', detail: `got ${JWT} from client` }),
      JSON.stringify({ msg: 'opaque credential', header: 'Bearer opaque-credential-123' }),
      JSON.stringify({ msg: 'a key', pem: PEM }),
    ]);
    const answer = await get('admin-token');
    assert.equal(answer.status, 200);
    const body = answer.json as { node_id: string; generated_at: string; lines: string[] };
    assert.equal(body.node_id, 'node-1');
    assert.ok(!Number.isNaN(Date.parse(body.generated_at)));
    assert.deepEqual(body.lines.map((line) => (JSON.parse(line) as { msg: string }).msg), ['request', 'token in text', 'opaque credential', 'a key']);
    for (const secret of [JWT, JWT.split('.')[1] as string, 'opaque-credential-123', PEM.split('\n')[1] as string, 'PRIVATE KEY']) {
      assert.ok(!answer.text.includes(secret), `the answer does not contain ${secret.slice(0, 12)}...`);
    }
  });

  it('answers an empty list when the node keeps no ring', async () => {
    const bare = new Router();
    addSupportRoutes(bare, { ring: undefined, nodeId: 'node-2', config: { configPath: null } });
    const match = bare.match('GET', SUPPORT_LOGS_PATH);
    assert.ok(!(match instanceof NeuwerkError));
    const result = await match.route.handler({} as never);
    assert.deepEqual((result?.body as { lines: string[] }).lines, []);
  });
});
