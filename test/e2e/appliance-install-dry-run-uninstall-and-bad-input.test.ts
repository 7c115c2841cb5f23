// appliance/install.sh --dry-run writes nothing; uninstall.sh --root keeps data unless --purge;
// unknown flags and a --root that is not a directory are usage errors (exit 2).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, tempDir } from './harness.js';

// The same helpers as appliance-install-staging-root.test.ts (a test file cannot import another
// without running its tests twice).
const INSTALL = join(REPO_ROOT, 'appliance', 'install.sh');
const UNINSTALL = join(REPO_ROOT, 'appliance', 'uninstall.sh');

function runScript(script: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(script, args, { cwd: REPO_ROOT, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 120_000 });
  if (result.error) throw result.error;
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Every path under `root` with type, mode, owner, and the sha256 of file contents (or the link target). */
function snapshot(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const relPath = `${rel}/${name}`;
      const st = lstatSync(path);
      const meta = `${relPath} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      if (st.isSymbolicLink()) out.push(`${meta} -> ${readlinkSync(path)}`);
      else if (st.isDirectory()) {
        out.push(`${meta} dir`);
        walk(path, relPath);
      } else out.push(`${meta} ${createHash('sha256').update(readFileSync(path)).digest('hex')}`);
    }
  };
  walk(root, '');
  return out;
}

/** uid:gid of the neuwerk user in the staging root's passwd file, or undefined. */
function stagedUser(root: string): { uid: number; gid: number } | undefined {
  let passwd: string;
  try {
    passwd = readFileSync(join(root, 'etc', 'passwd'), 'utf8');
  } catch {
    return undefined;
  }
  const line = passwd.split('\n').find((l) => l.startsWith('neuwerk:'));
  if (!line) return undefined;
  const fields = line.split(':');
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}


const isRoot = process.getuid?.() === 0;

describe('appliance install.sh --dry-run, uninstall.sh and bad input', () => {
  it('--dry-run prints every step and writes nothing', () => {
    const dir = tempDir('neuwerk-appliance-dry-');
    try {
      for (const extra of [['--skip-build'], []]) {
        const result = runScript(INSTALL, ['--root', dir.path, '--dry-run', ...extra]);
        assert.equal(result.code, 0, result.stderr);
        assert.deepEqual(readdirSync(dir.path), [], 'the dry run wrote into the staging root');
        for (const step of ['user', 'package', 'wrapper', 'config', 'data', 'unit', 'systemd', 'done']) {
          assert.match(result.stdout, new RegExp(`^\\[${step}\\] `, 'm'), `step ${step} not printed`);
        }
        if (isRoot) assert.match(result.stdout, /\[user\] would run: useradd --prefix .* --system .*neuwerk$/m);
        assert.match(result.stdout, /\[package\] would copy /);
        if (extra.length === 0) assert.match(result.stdout, /\[package\] would run in \/opt\/neuwerk\.new: npm ci/);
        assert.match(result.stdout, /\[config\] would write \/etc\/neuwerk\/config\.yaml/);
        assert.match(result.stdout, /\[data\] would create directory \/var\/lib\/neuwerk/);
        assert.match(result.stdout, /\[unit\] would write \/etc\/systemd\/system\/neuwerk\.service/);
        assert.match(result.stdout, /\[done\] dry run: nothing was written/);
      }
    } finally {
      dir.cleanup();
    }
  });

  it('uninstall.sh removes program and unit and keeps data; --purge removes data, config and user', () => {
    const dir = tempDir('neuwerk-appliance-un-');
    const root = dir.path;
    try {
      const install = runScript(INSTALL, ['--root', root, '--skip-build']);
      assert.equal(install.code, 0, install.stderr);
      writeFileSync(join(root, 'var/lib/neuwerk/node_id'), 'kept-node-id\n');

      const before = snapshot(root);
      const dry = runScript(UNINSTALL, ['--root', root, '--dry-run', '--purge']);
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(dry.stdout, /\[program\] would run: rm -rf -- .*\/opt\/neuwerk$/m);
      assert.deepEqual(snapshot(root), before, 'the uninstall dry run changed the tree');

      const plain = runScript(UNINSTALL, ['--root', root]);
      assert.equal(plain.code, 0, plain.stderr);
      for (const gone of ['opt/neuwerk', 'usr/local/bin/neuwerk', 'etc/systemd/system/neuwerk.service']) {
        assert.equal(existsSync(join(root, gone)), false, `${gone} still there`);
      }
      assert.equal(readFileSync(join(root, 'var/lib/neuwerk/node_id'), 'utf8'), 'kept-node-id\n');
      assert.ok(existsSync(join(root, 'etc/neuwerk/config.yaml')));
      assert.match(plain.stdout, /\[data\] kept: \/var\/lib\/neuwerk \(use --purge to remove\)/);
      if (isRoot) assert.ok(stagedUser(root), 'the user was removed without --purge');

      const again = runScript(UNINSTALL, ['--root', root]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /\[done\] nothing changed/);

      const purge = runScript(UNINSTALL, ['--root', root, '--purge']);
      assert.equal(purge.code, 0, purge.stderr);
      assert.equal(existsSync(join(root, 'var/lib/neuwerk')), false);
      assert.equal(existsSync(join(root, 'etc/neuwerk')), false);
      assert.equal(stagedUser(root), undefined, 'the user survived --purge');
    } finally {
      dir.cleanup();
    }
  });

  it('refuses unknown flags and a --root that is not a directory with exit 2', () => {
    const dir = tempDir('neuwerk-appliance-bad-');
    try {
      for (const script of [INSTALL, UNINSTALL]) {
        const unknown = runScript(script, ['--root', dir.path, '--frobnicate']);
        assert.equal(unknown.code, 2);
        assert.match(unknown.stderr, /unknown flag: --frobnicate/);
        const notDir = join(dir.path, 'no-such-dir');
        const missing = runScript(script, ['--root', notDir]);
        assert.equal(missing.code, 2);
        assert.match(missing.stderr, /--root .*no-such-dir is not a directory/);
        const file = join(dir.path, 'a-file');
        writeFileSync(file, 'x');
        const isFile = runScript(script, ['--root', file]);
        assert.equal(isFile.code, 2);
      }
      assert.deepEqual(readdirSync(dir.path), ['a-file']);
    } finally {
      dir.cleanup();
    }
  });
});
