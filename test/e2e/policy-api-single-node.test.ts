import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request, Agent } from 'undici';
import { NodeProcess, runCli, tempDir } from './harness.js';

const POLICY_YAML = `default_policy: deny
source_groups:
  - id: office
    sources: { cidrs: [10.10.0.0/16] }
    rules:
      - id: allow-github
        action: allow
        match:
          dns_hostname: '^(.*\\.)?github\\.com$'
          dst_ports: [443, "8000-8100"]
`;

describe('policy API and CLI on a single node', () => {
  const dir = tempDir();
  let node: NodeProcess;
  let token: string;
  let headers: Record<string, string>;
  before(async () => {
    node = await NodeProcess.start(join(dir.path, 'data'), ['--default-policy', 'allow']);
    token = await node.adminToken();
    headers = { authorization: `Bearer ${token}` };
  });
  after(async () => {
    await node.stop('SIGKILL');
    dir.cleanup();
  });
  const cli = (args: string[]) => runCli([...args, '--http-addr', node.httpAddress, '--data-dir', node.dataDir], { env: { NEUWERK_TOKEN: token } });

  it('a fresh node starts with the --default-policy document and reports policy_ready', async () => {
    const policy = await node.api('GET', '/api/v1/policy', undefined, headers);
    assert.equal(policy.status, 200);
    assert.deepEqual(policy.json, { default_policy: 'allow', source_groups: [] });
    const ready = (await node.api('GET', '/ready')).json as { checks: { name: string; ok: boolean }[] };
    assert.ok(ready.checks.some((c) => c.name === 'policy_ready' && c.ok));
  });

  it('policy apply -f answers with the version once active; get returns the same document as YAML', async () => {
    const file = join(dir.path, 'policy.yaml');
    writeFileSync(file, POLICY_YAML);
    const before = (await node.api('GET', '/api/v1/policy', undefined, headers)).headers['x-neuwerk-policy-version'];
    const applied = await cli(['policy', 'apply', '-f', file, '--json']);
    assert.equal(applied.code, 0, applied.stderr);
    const answer = JSON.parse(applied.stdout) as { version: number; active: boolean; source_groups: number; rules: number };
    assert.equal(answer.active, true);
    assert.equal(answer.rules, 1);
    const fetched = await cli(['policy', 'get']);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.match(fetched.stdout, /id: allow-github/);
    assert.match(fetched.stdout, /- "8000-8100"|- 8000-8100/);
    const asJson = await cli(['policy', 'get', '--json']);
    assert.equal(asJson.code, 0, asJson.stderr);
    assert.equal((JSON.parse(asJson.stdout) as { source_groups: { rules: { id: string }[] }[] }).source_groups[0]?.rules[0]?.id, 'allow-github');
    const conflicting = await cli(['policy', 'get', '--json', '--format', 'yaml']);
    assert.equal(conflicting.code, 2);
    assert.match(conflicting.stderr, /--json and --format yaml/);
    const viaApi = await node.api('GET', '/api/v1/policy', undefined, headers);
    assert.equal(viaApi.headers['x-neuwerk-policy-version'], String(answer.version));
    // The audit line says which version the change replaced.
    const audit = node.logLines().find((l) => l.audit === true && l.action === 'policy.set' && l.version === answer.version);
    assert.equal(audit?.previous_version, Number(before), JSON.stringify(audit));
  });

  it('an invalid document is refused with the path named, and the previous policy stays active', async () => {
    const before = await node.api('GET', '/api/v1/policy', undefined, headers);
    const bad = await node.api('PUT', '/api/v1/policy', { default_policy: 'deny', source_groups: [{ id: 'g', sources: { cidrs: ['10.0.0.0/33'] }, rules: [] }] }, headers);
    assert.equal(bad.status, 400);
    assert.match((bad.json as { error: string }).error, /source_groups\[0\]\.sources\.cidrs\[0\]: "10\.0\.0\.0\/33"/);
    // The same through the CLI: bad input is a usage error (exit 2) naming the path and value.
    const file = join(dir.path, 'bad-policy.yaml');
    writeFileSync(file, 'default_policy: deny\nsource_groups:\n  - id: g\n    sources: { cidrs: ["10.0.0.0/33"] }\n    rules: []\n');
    const applied = await cli(['policy', 'apply', '-f', file]);
    assert.equal(applied.code, 2, applied.stderr);
    assert.equal(applied.stdout, '');
    assert.match(applied.stderr, /source_groups\[0\]\.sources\.cidrs\[0\]: "10\.0\.0\.0\/33"/);
    const after = await node.api('GET', '/api/v1/policy', undefined, headers);
    assert.deepEqual(after.json, before.json);
    assert.equal(after.headers['x-neuwerk-policy-version'], before.headers['x-neuwerk-policy-version']);
  });

  it('a document that cannot compile is refused naming the rule', async () => {
    const unsafe = { default_policy: 'deny', source_groups: [{ id: 'g', sources: { cidrs: ['10.0.0.0/8'] }, rules: [{ id: 'evil', action: 'deny', match: { dns_hostname: '(a+)+$' } }] }] };
    const answer = await node.api('PUT', '/api/v1/policy', unsafe, headers);
    assert.equal(answer.status, 400);
    assert.match((answer.json as { error: string }).error, /source_groups\[0\]\.rules\[0\].*"evil"/);
  });

  it('YAML bodies are accepted with Content-Type application/yaml; readonly tokens cannot PUT', async () => {
    const dispatcher = new Agent({ connect: { ca: node.caCert() } });
    try {
      const response = await request(`https://${node.httpAddress}/api/v1/policy`, {
        method: 'PUT', dispatcher, headers: { ...headers, 'content-type': 'application/yaml' }, body: POLICY_YAML.replace('default_policy: deny', 'default_policy: allow'),
      });
      assert.equal(response.statusCode, 200, await response.body.text());
    } finally {
      await dispatcher.close();
    }
    const reader = (await runCli(['auth', 'token', 'mint', '--sub', 'r', '--roles', 'readonly', '--data-dir', node.dataDir])).stdout.trim();
    const denied = await node.api('PUT', '/api/v1/policy', { default_policy: 'deny', source_groups: [] }, { authorization: `Bearer ${reader}` });
    assert.equal(denied.status, 403);
  });

  it('policy commands without a token exit 2 and say how to get one', async () => {
    const result = await runCli(['policy', 'get', '--http-addr', node.httpAddress, '--data-dir', node.dataDir], { env: { NEUWERK_TOKEN: '' } });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /needs a token: pass --token or set NEUWERK_TOKEN/);
  });
});
