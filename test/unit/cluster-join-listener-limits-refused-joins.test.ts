import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { request } from 'undici';
import { LOGIN_FAILURES_MAX, LoginLimiter } from '../../src/auth/login-limiter.js';
import { createBootstrapToken } from '../../src/cluster/bootstrap-token.js';
import { createJoinServer, JOIN_PATH, JoinService } from '../../src/cluster/join-service.js';
import { LogRing } from '../../src/log/logger.js';
import { tempDir } from '../e2e/harness.js';

describe('the join listener limits refused joins per address', () => {
  const dir = tempDir('neuwerk-join-limit-');
  const ring = new LogRing(1000);
  const logger = pino({ level: 'info' }, ring);
  let base = '';
  const server = createJoinServer(
    new JoinService({
      nodeId: 'seed',
      tokenPath: join(dir.path, 'bootstrap-token'),
      logger,
      ca: () => assert.fail('a refused join never needs the CA'),
      clusterId: () => 'c',
      members: () => [],
      isRemoved: () => false,
      admit: () => assert.fail('a refused join is never admitted'),
    }),
    logger,
    new LoginLimiter(),
  );
  before(async () => {
    createBootstrapToken(join(dir.path, 'bootstrap-token'), { kid: 'lab' });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    dir.cleanup();
  });

  const post = async (body: string): Promise<{ status: number; error: string }> => {
    const response = await request(`${base}${JOIN_PATH}`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    return { status: response.statusCode, error: ((await response.body.json()) as { error: string }).error };
  };

  it(`answers ${LOGIN_FAILURES_MAX} refusals, then 429 without reading or logging each request`, async () => {
    const guess = JSON.stringify({ node_id: 'x', cluster_advertise: '127.0.0.1:1', http_advertise: '127.0.0.1:2', proxy_advertise: '', dns_advertise: '', csr: 'c', http_csr: 'c', kid: 'guess', nonce: 'n', timestamp: Date.now(), hmac: 'h' });
    for (let i = 0; i < LOGIN_FAILURES_MAX; i++) {
      const refused = await post(i % 2 === 0 ? guess : 'not json');
      assert.equal(refused.status, 403, refused.error);
    }
    const limited = await post(guess);
    assert.equal(limited.status, 429);
    assert.match(limited.error, /^too many refused joins from 127\.0\.0\.1; retry in \d+ s$/);
    for (let i = 0; i < 50; i++) assert.equal((await post(guess)).status, 429);
    const lines = ring.snapshot().map((line) => JSON.parse(line) as { msg: string });
    assert.equal(lines.filter((l) => l.msg === 'join: refused').length, LOGIN_FAILURES_MAX / 2, 'one line per checked request (the JSON ones), none per 429');
    assert.equal(lines.filter((l) => l.msg.startsWith('join: too many refused joins')).length, 1);
  });
});
