import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { packArchive } from '../../src/sysdump/archive.js';
import { defaultClusterSysdumpFileName, MAX_NODE_ARCHIVE_BYTES, unpackArchive } from '../../src/sysdump/cluster-sysdump.js';
import { MAX_FRAME_BYTES } from '../../src/cluster/transport.js';

describe('cluster sysdump helpers', () => {
  it('a node archive unpacks to exactly the files that were packed (directories dropped)', async () => {
    const files = [
      { path: 'manifest.json', content: Buffer.from('{"node_id":"a"}\n') },
      { path: 'summary/state.json', content: Buffer.from('{}\n') },
      { path: 'system/commands/uname.txt', content: Buffer.alloc(70_000, 0x61) },
    ];
    const archive = await packArchive(files, { mtime: new Date('2026-01-02T03:04:05Z'), extraDirectories: ['logs'] });
    const unpacked = await unpackArchive(archive);
    assert.deepEqual(unpacked.map((f) => f.path).sort(), files.map((f) => f.path).sort());
    for (const file of files) assert.ok(unpacked.find((f) => f.path === file.path)?.content.equals(file.content), file.path);
  });

  it('garbage is refused, not unpacked', async () => {
    await assert.rejects(unpackArchive(Buffer.from('not a tar at all, not gzip either'.repeat(40))));
  });

  it('the archive cap fits a cluster RPC frame once base64-encoded inside JSON', () => {
    assert.ok(Math.ceil(MAX_NODE_ARCHIVE_BYTES / 3) * 4 + 64 * 1024 < MAX_FRAME_BYTES);
  });

  it('default file name is neuwerk-cluster-sysdump-<UTC>.tar.gz', () => {
    assert.equal(defaultClusterSysdumpFileName(new Date('2026-01-02T03:04:05.678Z')), 'neuwerk-cluster-sysdump-20260102T030405Z.tar.gz');
  });
});
