import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NeuwerkError } from '../../src/errors.js';
import { storageFailure } from '../../src/store/database.js';

function coded(code: string, message = 'x'): Error {
  return Object.assign(new Error(message), { code });
}

describe('storageFailure', () => {
  it('names the disk faults of SQLite and of the file system', () => {
    assert.equal(storageFailure(coded('SQLITE_FULL', 'database or disk is full')), 'the disk is full (SQLITE_FULL)');
    assert.equal(storageFailure(coded('ENOSPC')), 'the disk is full (ENOSPC)');
    assert.equal(storageFailure(coded('EDQUOT')), 'the disk quota is used up (EDQUOT)');
    assert.equal(storageFailure(coded('EFBIG')), 'a file would exceed the file size limit (EFBIG)');
    assert.equal(storageFailure(coded('SQLITE_READONLY_DBMOVED')), 'the file system is read-only (SQLITE_READONLY_DBMOVED)');
    assert.equal(storageFailure(coded('EROFS')), 'the file system is read-only (EROFS)');
    assert.equal(storageFailure(coded('SQLITE_IOERR_FSYNC')), 'the disk failed a write (SQLITE_IOERR_FSYNC)');
    assert.equal(storageFailure(coded('EIO')), 'the disk failed a write (EIO)');
  });

  it('looks through the causes of a wrapped error', () => {
    const wrapped = new NeuwerkError('NW_ERR_INTERNAL', 'snapshot copy failed', { cause: coded('ENOSPC') });
    assert.equal(storageFailure(wrapped), 'the disk is full (ENOSPC)');
  });

  it('is null for anything else: a bug must not pass for a full disk', () => {
    assert.equal(storageFailure(new Error('boom')), null);
    assert.equal(storageFailure(coded('SQLITE_CONSTRAINT_UNIQUE')), null);
    assert.equal(storageFailure(coded('SQLITE_CORRUPT')), null);
    assert.equal(storageFailure(new TypeError('x is undefined')), null);
    assert.equal(storageFailure('SQLITE_FULL'), null);
    assert.equal(storageFailure(null), null);
  });
});
