import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startStubDns, type StubDns } from '../bench/dataplane-fixtures.js';
import { askUdp, rcode } from './dns-client.js';
import { NodeProcess, tempDir } from './harness.js';

/** The store's files may not grow past this (a stand-in for a full disk; see `NodeProcess.start`). */
const FILE_SIZE_LIMIT_BYTES = 3 * 1024 * 1024;
const VALUE = 'v'.repeat(60 * 1024);
const NOERROR = 0;
const NXDOMAIN = 3;

const POLICY = {
  default_policy: 'deny',
  source_groups: [{ id: 'lab', sources: { cidrs: ['127.0.0.0/8'] }, rules: [{ id: 'allow-ok', action: 'allow', match: { dns_hostname: { exact: ['ok.example.test'] } } }] }],
};

describe('a node whose store cannot be written (disk full) keeps enforcing and says why', () => {
  const dir = tempDir();
  const dataDir = join(dir.path, 'data');
  let node: NodeProcess;
  let upstream: StubDns;
  let headers: Record<string, string>;
  const acknowledged: string[] = [];
  let refusal: { status: number; json: unknown } | null = null;

  before(async () => {
    upstream = await startStubDns({ 'ok.example.test': { A: ['192.0.2.1'], ttl: 60 }, 'other.example.test': { A: ['192.0.2.2'], ttl: 60 } });
    const args = ['--dns-bind', '127.0.0.1:0', '--dns-upstream', `127.0.0.1:${upstream.address.port}`];
    node = await NodeProcess.start(dataDir, args, { fileSizeLimitBytes: FILE_SIZE_LIMIT_BYTES });
    headers = { authorization: `Bearer ${await node.adminToken()}` };
    assert.equal((await node.api('PUT', '/api/v1/policy', POLICY, headers)).status, 200);
    // Write until the store's files reach the limit (a few dozen writes); every 200 is recorded.
    for (let i = 0; i < 400 && refusal === null; i++) {
      const answer = await node.api('PUT', `/api/v1/keyval/bulk/k${i}`, { value: VALUE }, headers);
      if (answer.status === 200) acknowledged.push(`k${i}`);
      else refusal = answer;
    }
  });
  after(async () => {
    await node?.stop('SIGKILL');
    await upstream?.close();
    dir.cleanup();
  });

  it('the write that cannot be stored gets 503 naming the store, the cause and the fix; later writes get the same at once', async () => {
    assert.ok(acknowledged.length > 0, 'some writes fit');
    assert.equal(refusal?.status, 503, JSON.stringify(refusal?.json));
    const error = refusal?.json as { error: string; code: string };
    assert.equal(error.code, 'NW_ERR_STORE_UNAVAILABLE');
    assert.ok(error.error.startsWith(`the store ${join(dataDir, 'cluster', 'raft.db')} cannot be written: `), error.error);
    assert.match(error.error, /\((EFBIG|SQLITE_FULL|SQLITE_IOERR[A-Z_]*)\); this node stopped replicating and refuses writes until it is restarted with space to write$/);
    const started = Date.now();
    const later = await node.api('PUT', '/api/v1/keyval/bulk/later', { value: 'x' }, headers);
    assert.equal(later.status, 503);
    assert.equal((later.json as { code: string }).code, 'NW_ERR_STORE_UNAVAILABLE');
    assert.ok(Date.now() - started < 2_000, 'answered at once, not at a timeout');
  });

  it('the process stays up: /ready fails with the reason, /health answers, and the DNS proxy still enforces the policy it applied', async () => {
    assert.equal(node.child.exitCode, null, node.stderr.slice(-2000));
    const ready = await node.api('GET', '/ready');
    assert.equal(ready.status, 503);
    const store = (ready.json as { checks: { name: string; ok: boolean; detail: string | null }[] }).checks.find((c) => c.name === 'store');
    assert.equal(store?.ok, false);
    assert.match(store?.detail ?? '', /cannot be written/);
    assert.equal((await node.api('GET', '/health')).status, 200);
    const metrics = await fetch(`http://${node.metricsAddress}/metrics`).then((r) => r.text());
    assert.match(metrics, /^neuwerk_ready\{node_id="[^"]+"\} 0$/m);
    assert.match(metrics, /^neuwerk_readiness_check\{check="store",node_id="[^"]+"\} 0$/m);
    assert.match(metrics, /^neuwerk_readiness_check\{check="policy_ready",node_id="[^"]+"\} 1$/m);
    assert.equal(rcode(await askUdp(node.dnsAddress, 'ok.example.test')), NOERROR);
    assert.equal(rcode(await askUdp(node.dnsAddress, 'other.example.test')), NXDOMAIN);
    const own = (await node.api('GET', '/api/v1/cluster/status', undefined, headers)).json as { role: string; leader_id: string | null };
    assert.deepEqual([own.role, own.leader_id], ['follower', null], 'it claims no leadership');
    const stale = await node.api('GET', `/api/v1/keyval/bulk/${acknowledged[0]}?stale=true`, undefined, headers);
    assert.equal(stale.status, 200, 'the local replica can still be read');
    const lines = node.logLines().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('raft loop stopped'));
    assert.deepEqual(lines.map((l) => l.level), [50], 'one error line, not a fatal exit');
  });

  it('restarted without the limit, the node starts and holds every acknowledged write', async () => {
    await node.stop('SIGTERM');
    node = await NodeProcess.start(dataDir, []);
    headers = { authorization: `Bearer ${await node.adminToken()}` };
    for (const key of acknowledged) {
      const answer = await node.api('GET', `/api/v1/keyval/bulk/${key}`, undefined, headers);
      assert.equal(answer.status, 200, `${key}: ${JSON.stringify(answer.json)}`);
      assert.equal((answer.json as { value: string }).value, VALUE);
    }
    assert.equal((await node.api('PUT', '/api/v1/keyval/bulk/after', { value: 'x' }, headers)).status, 200);
  });
});
