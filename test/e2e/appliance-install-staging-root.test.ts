// appliance/install.sh into a staging root (--root, --skip-build): idempotent, config rendered and
// never overwritten, data dir 0700 owned by the staged neuwerk user, a unit that passes
// `systemd-analyze verify`, and a staged `neuwerk` wrapper that runs.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { lstatSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, tempDir } from './harness.js';
import { INSTALL, runScript, snapshot, stagedUser } from './appliance-helpers.js';

const isRoot = process.getuid?.() === 0;

describe('appliance install.sh into a staging root', () => {
  const dir = tempDir('neuwerk-appliance-');
  const root = dir.path;
  let first: ReturnType<typeof runScript>;
  let second: ReturnType<typeof runScript>;
  let snapshot1: string[];
  let snapshot2: string[];

  before(() => {
    first = runScript(INSTALL, ['--root', root, '--skip-build']);
    assert.equal(first.code, 0, `first install failed\nstdout: ${first.stdout}\nstderr: ${first.stderr}`);
    snapshot1 = snapshot(root);
    second = runScript(INSTALL, ['--root', root, '--skip-build']);
    assert.equal(second.code, 0, `second install failed\nstdout: ${second.stdout}\nstderr: ${second.stderr}`);
    snapshot2 = snapshot(root);
  });
  after(() => dir.cleanup());

  it('a second run changes nothing and says so', () => {
    assert.match(first.stdout, /\[done\] \d+ change\(s\) made/);
    assert.deepEqual(snapshot2, snapshot1);
    assert.match(second.stdout, /\[done\] nothing changed/);
    for (const step of ['user', 'package', 'wrapper', 'config', 'data', 'unit', 'systemd']) {
      assert.match(second.stdout, new RegExp(`^\\[${step}\\] `, 'm'), `step ${step} not printed`);
    }
    const writes = second.stdout.split('\n').filter((l) => /\] (run:|wrote|updated|created|installed|chmod|chown)/.test(l));
    assert.deepEqual(writes, [], 'the second run reported changes');
  });

  it('installs the program, the wrapper and the unit', () => {
    assert.ok(statSync(join(root, 'opt/neuwerk/bin/run.js')).isFile());
    assert.ok(statSync(join(root, 'opt/neuwerk/dist/commands/start.js')).isFile());
    for (const excluded of ['.git', '.neuwerk']) assert.throws(() => lstatSync(join(root, 'opt/neuwerk', excluded)));
    assert.equal(statSync(join(root, 'usr/local/bin/neuwerk')).mode & 0o777, 0o755);
    assert.equal(readFileSync(join(root, 'etc/systemd/system/neuwerk.service'), 'utf8'), readFileSync(join(REPO_ROOT, 'templates/neuwerk.service'), 'utf8'));
  });

  it('renders /etc/neuwerk/config.yaml from the template, 0640, and /var/lib/neuwerk 0700 owned by the neuwerk user', () => {
    const config = join(root, 'etc/neuwerk/config.yaml');
    assert.equal(readFileSync(config, 'utf8'), readFileSync(join(REPO_ROOT, 'templates/config.yaml'), 'utf8'));
    assert.equal(statSync(config).mode & 0o777, 0o640);
    assert.equal(statSync(join(root, 'etc/neuwerk')).mode & 0o777, 0o750);
    const data = statSync(join(root, 'var/lib/neuwerk'));
    assert.ok(data.isDirectory());
    assert.equal(data.mode & 0o777, 0o700);
    if (isRoot) {
      const user = stagedUser(root);
      assert.ok(user, 'the neuwerk user is missing from the staged /etc/passwd');
      assert.ok(user.uid > 0 && user.uid < 1000, `not a system uid: ${user.uid}`);
      assert.equal(data.uid, user.uid);
      assert.equal(data.gid, user.gid);
      assert.equal(statSync(config).gid, user.gid);
      assert.equal(statSync(config).uid, 0);
      assert.match(readFileSync(join(root, 'etc/passwd'), 'utf8'), /^neuwerk:x:\d+:\d+::\/var\/lib\/neuwerk:\/usr\/sbin\/nologin$/m);
    } else {
      assert.match(first.stdout, /\[user\] skipped: not root/);
    }
  });

  it('the staged neuwerk wrapper runs the staged package', () => {
    const result = runScript(join(root, 'usr/local/bin/neuwerk'), ['--version'], { NEUWERK_HOME: join(root, 'opt/neuwerk') });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^neuwerk\/0\.1\.0 /);
  });

  it('the unit passes systemd-analyze verify', () => {
    const which = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' });
    assert.equal(which.status, 0, 'systemd-analyze is not installed (Debian package "systemd"; .ci/run installs it): cannot verify templates/neuwerk.service');
    const unit = readFileSync(join(root, 'etc/systemd/system/neuwerk.service'), 'utf8');
    assert.match(unit, /^ExecStart=\/usr\/local\/bin\/neuwerk start --config \/etc\/neuwerk\/config\.yaml$/m);
    for (const line of ['Restart=on-failure', 'User=neuwerk', 'AmbientCapabilities=CAP_NET_BIND_SERVICE', 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ReadWritePaths=/var/lib/neuwerk', 'ProtectHome=yes', 'PrivateTmp=yes', 'LimitNOFILE=65536', 'TimeoutStopSec=30']) {
      assert.match(unit, new RegExp(`^${line}$`, 'm'), `unit lacks ${line}`);
    }
    // verify needs ExecStart's binary to exist: point a copy at the staged wrapper.
    const verifyDir = tempDir('neuwerk-unit-');
    try {
      const copy = join(verifyDir.path, 'neuwerk.service');
      writeFileSync(copy, unit.replace('ExecStart=/usr/local/bin/neuwerk', `ExecStart=${join(root, 'usr/local/bin/neuwerk')}`));
      const verify = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(verify.status, 0, `systemd-analyze verify failed\nstdout: ${verify.stdout}\nstderr: ${verify.stderr}`);
      assert.doesNotMatch(verify.stderr, /neuwerk\.service/, `systemd-analyze warned about the unit: ${verify.stderr}`);
    } finally {
      verifyDir.cleanup();
    }
  });

  it('never overwrites an operator-modified config.yaml', () => {
    const config = join(root, 'etc/neuwerk/config.yaml');
    const mine = readFileSync(config, 'utf8').replace('level: info', 'level: debug') + '# operator was here\n';
    writeFileSync(config, mine);
    const result = runScript(INSTALL, ['--root', root, '--skip-build']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /\[config\] kept: \/etc\/neuwerk\/config\.yaml exists and differs/);
    assert.match(result.stdout, /\[done\] nothing changed/);
    assert.equal(readFileSync(config, 'utf8'), mine);
  });
});
