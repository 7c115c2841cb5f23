import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openStoreDatabase } from '../../src/store/database.js';
import { SNAPSHOT_TEMP_SUFFIX } from '../../src/store/snapshot.js';
import { StoreWorker } from '../../src/store/store-worker.js';

describe('StoreWorker', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nw-store-worker-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("a failed snapshot copy rejects with the worker's error code, so a full disk is told from a bug", async () => {
    const file = join(dir, 'raft.db');
    const db = openStoreDatabase(file);
    const snapshotsDir = join(dir, 'snapshots');
    // The first copy's temporary file cannot be created: a directory is in its place.
    mkdirSync(join(snapshotsDir, `snap-copy-1.db${SNAPSHOT_TEMP_SUFFIX}`), { recursive: true });
    const worker = new StoreWorker(db, file, snapshotsDir);
    try {
      const failure = await worker.copy().then(
        () => assert.fail('the copy succeeded'),
        (err: unknown) => err as Error & { code?: string },
      );
      assert.match(failure.message, /^snapshot copy failed: /);
      assert.equal(failure.code, 'ERR_FS_EISDIR', 'the code the copy failed with in the worker thread');
    } finally {
      await worker.close();
      db.close();
    }
  });
});
