import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runSystemCommand, runSystemCommands, SYSTEM_COMMANDS, systemCommandPath } from '../../src/sysdump/system-commands.js';

/** Short timeout for the command that must time out, so the test stays fast. */
const SHORT_TIMEOUT_MS = 300;

describe('sysdump system commands', () => {
  it('cover the DESIGN §9 list, each with its own file under system/commands/', () => {
    assert.deepEqual(SYSTEM_COMMANDS.map(systemCommandPath), [
      'system/commands/uname-a.txt', 'system/commands/ip-addr.txt', 'system/commands/ip-route.txt', 'system/commands/ss-tlnp.txt',
      'system/commands/df-h.txt', 'system/commands/free-m.txt', 'system/commands/node-version.txt',
    ]);
  });

  it('record the command line, exit status, stdout and stderr of a command that worked', async () => {
    const result = await runSystemCommand({ name: 'node-version', file: process.execPath, args: ['--version'] });
    assert.equal(result.error, null);
    assert.equal(result.text, `$ ${process.execPath} --version\nexit_status: 0\n--- stdout ---\n${process.version}\n--- stderr ---\n`);
  });

  it('record a missing command as "not found" instead of throwing', async () => {
    const result = await runSystemCommand({ name: 'missing', file: 'neuwerk-no-such-command-xyz', args: ['-a'] });
    assert.match(result.text, /^\$ neuwerk-no-such-command-xyz -a\nexit_status: not found\n/);
    assert.match(result.error ?? '', /command not found/);
  });

  it('record a non-zero exit with its stderr', async () => {
    const result = await runSystemCommand({ name: 'fails', file: process.execPath, args: ['-e', 'process.stderr.write("bad thing"); process.exit(3)'] });
    assert.match(result.text, /exit_status: 3\n--- stdout ---\n--- stderr ---\nbad thing\n$/);
    assert.match(result.error ?? '', /exit status 3/);
  });

  it('stop a command at its timeout and say so', async () => {
    const started = Date.now();
    const result = await runSystemCommand({ name: 'slow', file: process.execPath, args: ['-e', 'setTimeout(() => {}, 60000)'] }, SHORT_TIMEOUT_MS);
    assert.ok(Date.now() - started < 5_000, 'bounded by the timeout and the kill grace');
    assert.match(result.text, /exit_status: timed out after 300 ms/);
    assert.match(result.error ?? '', /timed out/);
  });

  it('run concurrently and always return one result per command', async () => {
    const results = await runSystemCommands([
      { name: 'a', file: 'neuwerk-no-such-command-xyz', args: [] },
      { name: 'b', file: process.execPath, args: ['--version'] },
    ]);
    assert.deepEqual(results.map((r) => [r.command.name, r.error === null]), [['a', false], ['b', true]]);
  });
});
