// appliance/install.sh --dry-run writes nothing; uninstall.sh --root keeps data unless --purge;
// unknown flags and a --root that is not a directory are usage errors (exit 2).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './harness.js';
import { INSTALL, UNINSTALL, runScript, snapshot, stagedUser } from './appliance-helpers.js';

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
