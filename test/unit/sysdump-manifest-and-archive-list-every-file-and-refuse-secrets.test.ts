import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, describe, it } from 'node:test';
import { extract } from 'tar';
import { NeuwerkError } from '../../src/errors.js';
import { ARCHIVE_FILE_MODE, packArchive } from '../../src/sysdump/archive.js';
import { collectNodeSysdump, SYSDUMP_PATHS } from '../../src/sysdump/collect.js';
import { buildManifest, MANIFEST_PATH, SYSDUMP_FORMAT_VERSION, type SysdumpManifest } from '../../src/sysdump/manifest.js';
import { compactUtcTimestamp, defaultSysdumpFileName, SYSDUMP_FILE_MODE, writeArchiveFile } from '../../src/sysdump/node-sysdump.js';
import { KnownSecrets } from '../../src/sysdump/redaction.js';
import { SYSTEM_COMMANDS, systemCommandPath, type SystemCommandResult } from '../../src/sysdump/system-commands.js';

const dir = mkdtempSync(join(tmpdir(), 'neuwerk-sysdump-unit-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let extractions = 0;

/** Extracts a gzip'd tar into a fresh directory and returns every file (relative path -> bytes). */
async function unpack(archive: Buffer): Promise<Map<string, Buffer>> {
  extractions += 1;
  const target = join(dir, `x${extractions}`);
  const file = `${target}.tar.gz`;
  writeFileSync(file, archive);
  rmSync(target, { recursive: true, force: true });
  mkdirSync(target);
  await extract({ file, cwd: target });
  const files = new Map<string, Buffer>();
  const walk = (path: string): void => {
    for (const name of readdirSync(path)) {
      const full = join(path, name);
      if (statSync(full).isDirectory()) walk(full);
      else files.set(relative(target, full), readFileSync(full));
    }
  };
  walk(target);
  return files;
}

function fakeCommands(): Promise<SystemCommandResult[]> {
  return Promise.resolve(
    SYSTEM_COMMANDS.map((command) => ({
      command,
      text: `$ ${command.file} ${command.args.join(' ')}\nexit_status: ${command.name === 'ss-tlnp' ? 'not found' : '0'}\n--- stdout ---\n--- stderr ---\n`,
      error: command.name === 'ss-tlnp' ? 'ss: command not found' : null,
    })),
  );
}

describe('sysdump manifest', () => {
  const generatedAt = new Date('2026-03-04T05:06:07.089Z');

  it('lists itself first with its own final size, then every file with its size, and sorts errors by source', () => {
    const files = [
      { path: 'summary/state.json', content: Buffer.from('{}\n') },
      { path: 'logs/neuwerk.jsonl', content: Buffer.alloc(12_345, 'x') },
    ];
    const { manifest, bytes } = buildManifest(
      { nodeId: 'n1', version: '1.2.3', generatedAt, mode: 'stopped', errors: [{ source: 'z', error: 'late' }, { source: 'a', error: 'early' }] },
      files,
    );
    const parsed = JSON.parse(bytes.toString('utf8')) as SysdumpManifest;
    assert.deepEqual(parsed, manifest);
    assert.equal(parsed.format_version, SYSDUMP_FORMAT_VERSION);
    assert.equal(parsed.generated_at, '2026-03-04T05:06:07.089Z');
    assert.deepEqual(parsed.contents, [
      { path: MANIFEST_PATH, size_bytes: bytes.length },
      { path: 'summary/state.json', size_bytes: 3 },
      { path: 'logs/neuwerk.jsonl', size_bytes: 12_345 },
    ]);
    assert.deepEqual(parsed.errors.map((e) => e.source), ['a', 'z']);
  });

  it('refuses a duplicate path', () => {
    const content = Buffer.from('x');
    assert.throws(() => buildManifest({ nodeId: null, version: 'v', generatedAt, mode: 'running', errors: [] }, [{ path: 'a', content }, { path: 'a', content }]), /duplicate archive path a/);
  });

  it('names archives neuwerk-sysdump-<node_id>-<UTC YYYYMMDDTHHMMSSZ>.tar.gz', () => {
    assert.equal(compactUtcTimestamp(generatedAt), '20260304T050607Z');
    assert.equal(defaultSysdumpFileName('3f2a8c1e-1d2b-4c3d-9e8f-0a1b2c3d4e5f', generatedAt), 'neuwerk-sysdump-3f2a8c1e-1d2b-4c3d-9e8f-0a1b2c3d4e5f-20260304T050607Z.tar.gz');
  });
});

describe('sysdump archive', () => {
  it('packs in-memory files into a gzip tar with mode 0600 entries that the tar package extracts', async () => {
    const files = [
      { path: 'manifest.json', content: Buffer.from('{"a":1}\n') },
      { path: 'summary/state.json', content: Buffer.alloc(1500, 'y') },
      { path: 'system/commands/uname-a.txt', content: Buffer.from('') },
    ];
    const archive = await packArchive(files, { mtime: new Date(), extraDirectories: ['logs/'] });
    assert.equal(archive[0], 0x1f);
    assert.equal(archive[1], 0x8b, 'gzip magic');
    const extracted = await unpack(archive);
    assert.deepEqual([...extracted.keys()].sort(), files.map((f) => f.path).sort());
    for (const file of files) assert.deepEqual(extracted.get(file.path), file.content);
    const target = join(dir, `x${extractions}`);
    assert.ok(statSync(join(target, 'logs')).isDirectory(), 'the empty logs/ directory is part of the layout');
    assert.equal(statSync(join(target, 'summary', 'state.json')).mode & 0o777, ARCHIVE_FILE_MODE & ~process.umask());
  });

  it('refuses (final scan) when a private key, a JWT or a known secret slipped into an entry, naming entries but not secrets', async () => {
    const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const known = new KnownSecrets();
    known.addToken('bootstrap token', 'feedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedface');
    const jwt = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';
    const files = [
      { path: 'ok.txt', content: Buffer.from('fine') },
      { path: 'summary/leak.json', content: Buffer.from(JSON.stringify({ k: pem })) },
      { path: 'logs/neuwerk.jsonl', content: Buffer.from(`{"msg":"x","t":"${jwt}"}\n`) },
      { path: 'system/commands/x.txt', content: Buffer.from('feedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedface') },
    ];
    await assert.rejects(packArchive(files, { mtime: new Date(), known }), (err: unknown) => {
      assert.ok(err instanceof NeuwerkError);
      assert.equal(err.code, 'NW_ERR_SYSDUMP_SECRET_FOUND');
      assert.match(err.message, /summary\/leak\.json: pem-private-key/);
      assert.match(err.message, /logs\/neuwerk\.jsonl: jwt/);
      assert.match(err.message, /system\/commands\/x\.txt: known-secret \(bootstrap token\)/);
      assert.ok(!err.message.includes('feedface') && !err.message.includes(jwt) && !err.message.includes('MC4C'));
      return true;
    });
  });

  it('writes the archive file with mode 0600 even over an existing wider file, and names the path when it cannot', () => {
    const path = join(dir, 'out.tar.gz');
    writeFileSync(path, 'old', { mode: 0o644 });
    writeArchiveFile(path, Buffer.from('new'));
    assert.equal(statSync(path).mode & 0o777, SYSDUMP_FILE_MODE);
    assert.equal(readFileSync(path, 'utf8'), 'new');
    assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.tmp-')), [], 'no temporary file is left');
    const blocked = join(dir, 'out.tar.gz', 'below-a-file.tar.gz');
    assert.throws(() => writeArchiveFile(blocked, Buffer.from('x')), (err: unknown) => err instanceof NeuwerkError && err.code === 'NW_ERR_SYSDUMP_OUTPUT' && err.message.includes(blocked));
  });
});

describe('sysdump collector with a stopped node and no store', () => {
  it('still delivers the full layout and records every missing source in the manifest', async () => {
    const built = await collectNodeSysdump(
      {
        nodeId: 'n1',
        dataDir: '/nowhere',
        configuration: { configPath: null, file: { version: 1, cluster: { token: 'raw' } }, resolved: { http: { bind: { host: '127.0.0.1', port: 8443 } } } },
        store: null,
        live: null,
        notRunningReason: 'ECONNREFUSED',
        known: new KnownSecrets(),
        errors: [{ source: 'store', error: 'no store at /nowhere/cluster/raft.db' }],
        runCommands: fakeCommands,
      },
      { version: '0.0.0-test', generatedAt: new Date() },
    );
    const files = await unpack(built.archive);
    const manifest = JSON.parse((files.get('manifest.json') as Buffer).toString()) as SysdumpManifest;
    assert.equal(manifest.mode, 'stopped');
    assert.deepEqual(manifest.contents.map((c) => c.path).sort(), [...files.keys()].sort(), 'contents is exactly the archive');
    for (const entry of manifest.contents) assert.equal(entry.size_bytes, (files.get(entry.path) as Buffer).length, entry.path);
    const expected = [
      MANIFEST_PATH, SYSDUMP_PATHS.state, SYSDUMP_PATHS.cluster, SYSDUMP_PATHS.policy, SYSDUMP_PATHS.serviceAccounts,
      SYSDUMP_PATHS.configuration, SYSDUMP_PATHS.readiness, SYSDUMP_PATHS.metrics, ...SYSTEM_COMMANDS.map(systemCommandPath),
    ];
    assert.deepEqual([...files.keys()].sort(), expected.sort());
    const sources = manifest.errors.map((e) => e.source);
    for (const source of ['store', SYSDUMP_PATHS.logsDir, SYSDUMP_PATHS.metrics, SYSDUMP_PATHS.readiness, 'system/commands/ss-tlnp.txt']) {
      assert.ok(sources.includes(source), `${source} in ${sources.join(', ')}`);
    }
    assert.match(manifest.errors.find((e) => e.source === SYSDUMP_PATHS.logsDir)?.error ?? '', /node not running/);
    const readiness = JSON.parse((files.get(SYSDUMP_PATHS.readiness) as Buffer).toString()) as { node_running: boolean; detail: string };
    assert.equal(readiness.node_running, false);
    assert.match(readiness.detail, /node not running \(ECONNREFUSED\)/);
    const configuration = JSON.parse((files.get(SYSDUMP_PATHS.configuration) as Buffer).toString()) as { file: { cluster: { token: string } }; resolved: { http: { bind: string } } };
    assert.equal(configuration.file.cluster.token, '<redacted>');
    assert.equal(configuration.resolved.http.bind, '127.0.0.1:8443');
  });
});
