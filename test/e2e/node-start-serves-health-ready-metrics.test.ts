import assert from 'node:assert/strict';
import { statSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { NodeProcess, tempDir } from './harness.js';
import { assertMatchesPublishedSchema } from './openapi-check.js';

describe('neuwerk start (single node)', () => {
  const dir = tempDir();
  let node: NodeProcess;

  before(async () => {
    node = await NodeProcess.start(join(dir.path, 'data'));
  });
  after(async () => {
    await node.stop('SIGKILL');
    dir.cleanup();
  });

  it('answers /health with {"status":"ok"}', async () => {
    const response = await node.api('GET', '/health');
    assert.equal(response.status, 200);
    assert.deepEqual(response.json, { status: 'ok' });
    assert.equal(response.headers['x-neuwerk-served-by'], node.nodeId);
  });

  it('answers /ready with the store check passing', async () => {
    const response = await node.api('GET', '/ready');
    assert.equal(response.status, 200);
    const body = response.json as { ready: boolean; checks: { name: string; ok: boolean; detail: string | null }[] };
    assert.equal(body.ready, true);
    assert.deepEqual(body.checks.find((c) => c.name === 'store'), { name: 'store', ok: true, detail: null });
  });

  it('serves Prometheus metrics over plain HTTP, process metrics included', async () => {
    const response = await request(`http://${node.metricsAddress}/metrics`);
    assert.equal(response.statusCode, 200);
    const text = await response.body.text();
    assert.match(text, /^# HELP neuwerk_process_cpu_user_seconds_total/m);
    assert.match(text, /neuwerk_raft_applied_index\{node_id="[0-9a-f-]{36}"\} [1-9]/);
    assert.match(text, /neuwerk_api_requests_total\{route="\/health",method="GET",status="200"/);
    // Readiness as metrics, for alerting: the whole and each check.
    assert.match(text, /^neuwerk_ready\{node_id="[0-9a-f-]{36}"\} 1$/m);
    assert.match(text, /^neuwerk_readiness_check\{check="store",node_id="[0-9a-f-]{36}"\} 1$/m);
    assert.match(text, /^neuwerk_readiness_check\{check="policy_ready",node_id="[0-9a-f-]{36}"\} 1$/m);
  });

  it('answers unknown paths with a JSON 404 carrying an error code', async () => {
    const response = await node.api('GET', '/api/v1/nope');
    assert.equal(response.status, 404);
    assert.deepEqual(response.json, { error: 'no such endpoint: /api/v1/nope', code: 'NW_ERR_HTTP_NOT_FOUND' });
    const wrongMethod = await node.api('DELETE', '/health');
    assert.equal(wrongMethod.status, 405);
    assert.equal((wrongMethod.json as { code: string }).code, 'NW_ERR_HTTP_METHOD');
  });

  it('answers HEAD on the public probes, and a request its HTTP parser refuses with the JSON error body', async () => {
    const ca = readFileSync(join(node.dataDir, 'http-tls', 'ca.crt'));
    const dispatcher = new Agent({ connect: { ca } });
    const head = await request(`https://${node.httpAddress}/ready`, { method: 'HEAD', dispatcher });
    assert.equal(head.statusCode, 200);
    assert.equal(await head.body.text(), '');
    await dispatcher.close();
    // A Content-Length that is not a number: Node's parser refuses it before any handler runs.
    const raw = await node.rawHttp('GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n');
    assert.match(raw, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(raw, /\r\ncontent-type: application\/json\r\n/);
    const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as { error: string; code: string };
    assert.equal(body.code, 'NW_ERR_HTTP_BAD_REQUEST');
    assert.match(body.error, /^malformed HTTP request \(HPE_/);
  });

  it('publishes an OpenAPI document listing its routes', async () => {
    const response = await node.api('GET', '/api/v1/openapi.json');
    assert.equal(response.status, 200);
    const document = response.json as { openapi: string; paths: Record<string, unknown> };
    assert.match(document.openapi, /^3\./);
    assert.ok(document.paths['/health']);
    assert.ok(document.paths['/ready']);
    const queryOf = (path: string, method: string): string[] =>
      ((document.paths[path] as Record<string, { parameters: { name: string; in: string }[] }>)[method]?.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
    assert.deepEqual(queryOf('/api/v1/keyval/{zone}', 'get').sort(), ['after', 'limit', 'local', 'prefix', 'stale']);
    assert.ok(queryOf('/api/v1/policy', 'get').includes('format'));
    assert.ok(queryOf('/api/v1/cluster/members/{node_id}', 'delete').includes('force'));
    assert.deepEqual(queryOf('/api/v1/audit/findings/local', 'get').sort(), ['finding_type', 'limit', 'since', 'source_group', 'until']);
    // 3.1 (JSON Schema types): nullable fields are type arrays, never the 3.0 `nullable` keyword.
    assert.equal(document.openapi, '3.1.0');
    assert.ok(!JSON.stringify(document).includes('"nullable"'));
  });

  it('every GET route without path parameters answers as its published schema says, with no undeclared field', async () => {
    const document = (await node.api('GET', '/api/v1/openapi.json')).json as { paths: Record<string, { get?: { responses: Record<string, { content?: Record<string, unknown> }> } }> };
    const bearer = { authorization: `Bearer ${await node.adminToken()}` };
    const checked: string[] = [];
    for (const [path, operations] of Object.entries(document.paths)) {
      if (operations.get === undefined || path.includes('{') || path === '/api/v1/openapi.json') continue;
      assert.ok(operations.get.responses['200']?.content?.['application/json'] !== undefined, `GET ${path} publishes a JSON response schema`);
      const answer = await node.api('GET', path, undefined, bearer);
      assert.equal(answer.status, 200, `GET ${path}: ${JSON.stringify(answer.json)}`);
      await assertMatchesPublishedSchema(node, path, answer.json);
      checked.push(path);
    }
    assert.ok(checked.includes('/api/v1/stats') && checked.includes('/api/v1/cluster/status') && checked.length >= 14, checked.join(' '));
  });

  it('creates the data dir 0700, the node id, the store and self-signed TLS files', () => {
    const data = join(dir.path, 'data');
    assert.equal(statSync(data).mode & 0o777, 0o700);
    assert.equal(readFileSync(join(data, 'node_id'), 'utf8').trim(), node.nodeId);
    assert.equal(statSync(join(data, 'cluster', 'raft.db')).mode & 0o777, 0o600);
    assert.equal(statSync(join(data, 'http-tls', 'server.key')).mode & 0o777, 0o600);
    const cert = new X509Certificate(readFileSync(join(data, 'http-tls', 'server.crt')));
    const ca = new X509Certificate(readFileSync(join(data, 'http-tls', 'ca.crt')));
    assert.ok(cert.verify(ca.publicKey), 'server.crt is signed by ca.crt');
    assert.ok(cert.checkIP('127.0.0.1'), 'server.crt names 127.0.0.1');
    assert.equal(cert.subject, `CN=${node.nodeId}`);
  });
});
