import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { NodeProcess, tempDir } from './harness.js';

describe('the management API refuses hostile input with 4xx answers and keeps serving', () => {
  const dir = tempDir();
  let node: NodeProcess;
  let headers: Record<string, string>;
  before(async () => {
    node = await NodeProcess.start(join(dir.path, 'data'));
    headers = { authorization: `Bearer ${await node.adminToken()}` };
  });
  after(async () => {
    await node.stop('SIGKILL');
    dir.cleanup();
  });

  it('JSON nested a million levels deep is a 400 before it is parsed, also on the public login route', async () => {
    const deep = `{"token":${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}}`;
    const put = await node.api('PUT', '/api/v1/keyval/z/k', deep, headers);
    assert.equal(put.status, 400);
    assert.deepEqual(put.json, { error: 'request body nests arrays and objects deeper than 64 levels', code: 'NW_ERR_HTTP_BAD_REQUEST' });
    const small = `{"token":${'['.repeat(100)}${']'.repeat(100)}}`;
    const login = await node.api('POST', '/api/v1/auth/token-login', small);
    assert.equal(login.status, 400);
    assert.equal((login.json as { code: string }).code, 'NW_ERR_HTTP_BAD_REQUEST');
  });

  it('a token-login body above 16 KiB is a 413, and refused login bodies count toward the per-address limit', async () => {
    const big = await node.api('POST', '/api/v1/auth/token-login', JSON.stringify({ token: 'x'.repeat(17 * 1024) }));
    assert.equal(big.status, 413);
    let status = 0;
    for (let i = 0; i < 25 && status !== 429; i++) status = (await node.api('POST', '/api/v1/auth/token-login', '[')).status;
    assert.equal(status, 429, 'malformed bodies run into the login limit');
  });

  it('a YAML alias bomb and a YAML nesting bomb are refused policies (400), the active policy stays', async () => {
    const before = (await node.api('GET', '/api/v1/policy', undefined, headers)).headers['x-neuwerk-policy-version'];
    const laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 9; i++) laughs.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
    const yamlHeaders = { ...headers, 'content-type': 'application/yaml' };
    const bomb = await node.api('PUT', '/api/v1/policy', laughs.join('\n'), yamlHeaders);
    assert.equal(bomb.status, 400, JSON.stringify(bomb.json));
    assert.equal((bomb.json as { code: string }).code, 'NW_ERR_POLICY_INVALID');
    assert.match((bomb.json as { error: string }).error, /YAML: .*alias/i);
    const nested = await node.api('PUT', '/api/v1/policy', `default_policy: ${'['.repeat(200_000)}${']'.repeat(200_000)}`, yamlHeaders);
    assert.equal(nested.status, 400, JSON.stringify(nested.json));
    assert.equal((nested.json as { code: string }).code, 'NW_ERR_POLICY_INVALID');
    assert.equal((await node.api('GET', '/api/v1/policy', undefined, headers)).headers['x-neuwerk-policy-version'], before);
  });

  it('plain HTTP to the HTTPS port is told to use HTTPS, in plain HTTP', async () => {
    const answer = await node.rawHttp('GET /health HTTP/1.1\r\nHost: x\r\n\r\n', { tls: false });
    assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/);
    const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { error: string; code: string };
    assert.deepEqual(body, { error: `this port speaks HTTPS only; use https://${node.httpAddress}`, code: 'NW_ERR_HTTP_BAD_REQUEST' });
  });

  it('a request target the URL parser refuses is a 400', async () => {
    const answer = await node.rawHttp('GET http://[ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(answer, /^HTTP\/1\.1 400 /);
    const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { error: string; code: string };
    assert.deepEqual(body, { error: 'request target "http://[" is not a valid path or URL', code: 'NW_ERR_HTTP_BAD_REQUEST' });
  });

  it('a client that goes away in the middle of its body is not a handler failure', async () => {
    const at = node.httpAddress.lastIndexOf(':');
    await new Promise<void>((resolve, reject) => {
      const socket = tlsConnect({ host: node.httpAddress.slice(0, at), port: Number(node.httpAddress.slice(at + 1)), ca: readFileSync(join(node.dataDir, 'http-tls', 'ca.crt')) }, () => {
        socket.write(`PUT /api/v1/keyval/z/k HTTP/1.1\r\nHost: x\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{"value":"`);
        setTimeout(() => {
          socket.destroy();
          resolve();
        }, 200);
      });
      socket.on('error', reject);
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
  });

  it('none of it was logged as a handler failure, and the node still answers', async () => {
    assert.equal((await node.api('GET', '/health')).status, 200);
    const failures = node.logLines().filter((line) => line.msg === 'management API handler failed');
    assert.deepEqual(failures, []);
    assert.ok(!/Warning:/.test(node.stderr), 'no process warnings on stderr');
  });
});
