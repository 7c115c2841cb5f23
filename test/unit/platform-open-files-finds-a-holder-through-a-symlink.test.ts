import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { processesHoldingFile } from '../../src/platform/open-files.js';

describe('processesHoldingFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nw-open-files-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('finds the process holding a file, also when the path goes through a symbolic link, and nobody once it exits', async () => {
    const file = join(dir, 'store.db');
    writeFileSync(file, 'x');
    symlinkSync(dir, join(dir, 'link'));
    // A child that opens the file, says so, and keeps it open until its stdin closes.
    const child = spawn(process.execPath, ['-e', `const fd = require('fs').openSync(${JSON.stringify(file)}, 'r'); process.stdout.write('open'); process.stdin.resume(); process.stdin.on('end', () => process.exit(0));`], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
      assert.deepEqual(processesHoldingFile(file), [child.pid]);
      assert.deepEqual(processesHoldingFile(join(dir, 'link', 'store.db')), [child.pid], 'through the symlink');
    } finally {
      child.stdin.end();
      await new Promise((resolve) => child.once('exit', resolve));
    }
    assert.deepEqual(processesHoldingFile(file), []);
  });
});
