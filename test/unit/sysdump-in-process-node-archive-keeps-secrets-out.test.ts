import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { extract } from 'tar';
import { AuthService } from '../../src/auth/service.js';
import type { Identity } from '../../src/auth/tokens.js';
import { openRaftReplicator, type RaftReplicator } from '../../src/cluster/raft-host.js';
import { resolveNodeConfig, type NodeConfig } from '../../src/config/load.js';
import { createLogger, LogRing } from '../../src/log/logger.js';
import { NodeMetrics } from '../../src/metrics/registry.js';
import { Readiness } from '../../src/readiness.js';
import { openStoreDatabase, STORE_FILE_NAME, type SqliteDatabase } from '../../src/store/database.js';
import { SYSDUMP_PATHS } from '../../src/sysdump/collect.js';
import type { SysdumpManifest } from '../../src/sysdump/manifest.js';
import { buildNodeSysdumpInProcess } from '../../src/sysdump/node-sysdump.js';
import { SYSTEM_COMMANDS, systemCommandPath } from '../../src/sysdump/system-commands.js';

describe('buildNodeSysdumpInProcess (node side of the cluster fan-out)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'neuwerk-sysdump-inproc-'));
  const config: NodeConfig = resolveNodeConfig(null, null, { 'data-dir': join(dir, 'data') });
  const ring = new LogRing();
  const nodeId = '3f2a8c1e-1d2b-4c3d-9e8f-0a1b2c3d4e5f';
  let db: SqliteDatabase;
  let replicator: RaftReplicator;
  const secrets: { label: string; value: string }[] = [];

  before(async () => {
    mkdirSync(config.http.tlsDir, { recursive: true });
    const serverKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    writeFileSync(join(config.http.tlsDir, 'server.key'), serverKey, { mode: 0o600 });
    const storePath = join(config.clusterDataDir, STORE_FILE_NAME);
    db = openStoreDatabase(storePath);
    replicator = await openRaftReplicator({
      db, dbPath: storePath, nodeId, snapshotsDir: join(config.clusterDataDir, 'snapshots'), raft: { ...config.raft, tickMs: 10 },
      bootstrapVoters: [nodeId], send: () => undefined, onFatal: (err) => assert.fail(err),
    });
    const devNull = openSync('/dev/null', 'w');
    const logger = createLogger({ level: 'info', format: 'json', ring, destinationFd: devNull });
    const auth = new AuthService(replicator, pino({ level: 'silent' }));
    await auth.ensureSigningKey('test');
    const signingKey = replicator.stateMachine.auth.activeKey()?.private_key_pem as string;
    const admin = { sub: 'tester', roles: ['admin'], exp: null, sa_id: null, jti: 'j', kid: 'k' } as Identity;
    const account = await auth.createAccount(admin, { name: 'ci', description: `leaked here on purpose: ${signingKey}`, role: 'admin' });
    const { token } = await auth.createToken(admin, account.id, { name: 'pipeline', ttlMs: 3_600_000 });
    // A careless log line: the header as a whole object path the logger does not know about.
    logger.info({ upstream: { headers: `Bearer ${token}` } }, 'careless line');
    closeSync(devNull);
    secrets.push({ label: 'signing key', value: signingKey }, { label: 'server.key', value: serverKey }, { label: 'service-account token', value: token });
  });
  after(async () => {
    await replicator.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('returns an archive with the DESIGN §9 layout, live snapshots from the process, and no secret', async () => {
    const readiness = new Readiness();
    readiness.register('store', () => ({ ok: true }));
    const built = await buildNodeSysdumpInProcess({
      nodeId,
      config,
      db,
      stateMachine: replicator.stateMachine,
      readiness,
      metrics: new NodeMetrics(nodeId),
      ring,
      replicationStatus: () => replicator.status(),
      runCommands: () => Promise.resolve(SYSTEM_COMMANDS.map((command) => ({ command, text: `$ ${command.name}\nexit_status: 0\n`, error: null }))),
    });
    const target = join(dir, 'extracted');
    mkdirSync(target);
    writeFileSync(join(dir, 'a.tar.gz'), built.archive);
    await extract({ file: join(dir, 'a.tar.gz'), cwd: target });
    const files = new Map<string, Buffer>();
    const walk = (path: string): void => {
      for (const name of readdirSync(path)) {
        const full = join(path, name);
        if (statSync(full).isDirectory()) walk(full);
        else files.set(relative(target, full), readFileSync(full));
      }
    };
    walk(target);

    const manifest = JSON.parse((files.get('manifest.json') as Buffer).toString()) as SysdumpManifest;
    assert.equal(manifest.mode, 'running');
    assert.equal(manifest.node_id, nodeId);
    assert.deepEqual(manifest.errors, []);
    assert.deepEqual([...files.keys()].sort(), [
      'manifest.json', SYSDUMP_PATHS.logs, SYSDUMP_PATHS.cluster, SYSDUMP_PATHS.configuration, SYSDUMP_PATHS.metrics, SYSDUMP_PATHS.policy,
      SYSDUMP_PATHS.readiness, SYSDUMP_PATHS.serviceAccounts, SYSDUMP_PATHS.state, ...SYSTEM_COMMANDS.map(systemCommandPath),
    ].sort());
    assert.match((files.get(SYSDUMP_PATHS.metrics) as Buffer).toString(), /neuwerk_/);
    assert.match((files.get(SYSDUMP_PATHS.logs) as Buffer).toString(), /"headers":"Bearer <redacted(-jwt)?>".*"careless line"/, 'the careless line is there, scrubbed');
    const cluster = JSON.parse((files.get(SYSDUMP_PATHS.cluster) as Buffer).toString()) as { live_status: { role: string } };
    assert.equal(cluster.live_status.role, 'leader');
    const state = JSON.parse((files.get(SYSDUMP_PATHS.state) as Buffer).toString()) as { applied_index: number; raft: { log: { last_index: number } } };
    assert.ok(state.applied_index >= 3);
    assert.equal(state.raft.log.last_index, state.applied_index);
    const accounts = (files.get(SYSDUMP_PATHS.serviceAccounts) as Buffer).toString();
    assert.match(accounts, /"name": "pipeline"/, 'token metadata is there');

    for (const [path, content] of files) {
      assert.ok(!content.includes('PRIVATE KEY'), `${path} has no PEM marker`);
      for (const secret of secrets) {
        assert.ok(!content.includes(secret.value.trim()), `${path} does not contain the ${secret.label}`);
        const distinctive = secret.value.includes('\n') ? (secret.value.split('\n')[1] as string) : (secret.value.split('.')[2] as string);
        assert.ok(!content.includes(distinctive), `${path} does not contain a distinctive piece of the ${secret.label}`);
      }
    }
  });
});
