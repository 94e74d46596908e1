import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DigestMismatchError } from '../../src/digest/errors.ts';
import { digestOf } from '../../src/digest/digest.ts';
import { StorageError, StorageFailureError, StorageFullError, classifyStorageError, storageError } from '../../src/content/storage-errors.ts';
import { toRegistryError } from '../../src/server/http-util.ts';

function errno(code: string, syscall = 'write'): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: something, ${syscall}`), { code, syscall, errno: -1 });
}

function sqliteError(errcode: number, message = 'database or disk is full'): Error {
  return Object.assign(new Error(message), { code: 'ERR_SQLITE_ERROR', errcode, errstr: message });
}

describe('classifyStorageError', () => {
  const table: [string, unknown, { anyErrno?: boolean }, ReturnType<typeof classifyStorageError>][] = [
    ['ENOSPC', errno('ENOSPC'), {}, { kind: 'full', reason: 'ENOSPC' }],
    ['EDQUOT', errno('EDQUOT'), {}, { kind: 'full', reason: 'EDQUOT' }],
    ['SQLITE_FULL', sqliteError(13), {}, { kind: 'full', reason: 'SQLITE_FULL' }],
    ['EIO', errno('EIO', 'fsync'), {}, { kind: 'failed', reason: 'EIO' }],
    ['EROFS', errno('EROFS', 'open'), {}, { kind: 'failed', reason: 'EROFS' }],
    ['SQLITE_IOERR', sqliteError(10, 'disk I/O error'), {}, { kind: 'failed', reason: 'SQLITE_IOERR' }],
    ['SQLITE_IOERR_WRITE (extended 778)', sqliteError(778, 'disk I/O error'), {}, { kind: 'failed', reason: 'SQLITE_IOERR, extended code 778' }],
    ['SQLITE_CONSTRAINT is a bug, not storage', sqliteError(19, 'UNIQUE constraint failed'), {}, undefined],
    ['EACCES only inside a writer', errno('EACCES', 'open'), {}, undefined],
    ['EACCES inside a writer', errno('EACCES', 'open'), { anyErrno: true }, { kind: 'failed', reason: 'EACCES' }],
    ['a client reset is never storage', Object.assign(new Error('aborted'), { code: 'ECONNRESET' }), { anyErrno: true }, undefined],
    ['a digest mismatch', new DigestMismatchError(digestOf('a'), digestOf('b')), { anyErrno: true }, undefined],
    ['not an object', 'ENOSPC', { anyErrno: true }, undefined],
  ];
  for (const [name, error, options, expected] of table) {
    test(name, () => assert.deepEqual(classifyStorageError(error, options), expected));
  }
});

describe('storageError', () => {
  test('wraps a full disk, naming the operation and keeping the cause', () => {
    const cause = errno('ENOSPC');
    const wrapped = storageError(cause, 'writing ingest abc');
    assert.ok(wrapped instanceof StorageFullError);
    assert.ok(wrapped instanceof StorageError);
    assert.equal(wrapped.code, 'STORAGE_FULL');
    assert.equal(wrapped.cause, cause);
    assert.match(wrapped.message, /storage is full \(ENOSPC\) while writing ingest abc; free space on the data directory and retry/);
  });

  test('wraps EIO as a failure; the public message leaves out paths', () => {
    const wrapped = storageError(Object.assign(errno('EIO', 'fsync'), { message: "EIO: i/o error, fsync '/secret/path'" }), 'committing blob x');
    assert.ok(wrapped instanceof StorageFailureError);
    assert.match(wrapped.message, /storage failure \(EIO\) while committing blob x: EIO: i\/o error, fsync '\/secret\/path'/);
    assert.doesNotMatch(wrapped.publicMessage, /secret/);
  });

  test('leaves other errors and already wrapped ones alone', () => {
    const mismatch = new DigestMismatchError(digestOf('a'), digestOf('b'));
    assert.equal(storageError(mismatch, 'x'), mismatch);
    const full = new StorageFullError('ENOSPC', 'first', errno('ENOSPC'));
    assert.equal(storageError(full, 'second'), full);
  });
});

describe('toRegistryError for storage failures', () => {
  test('a full disk is 507 UNKNOWN with a message saying so', () => {
    const error = toRegistryError(new StorageFullError('ENOSPC', 'writing ingest abc', errno('ENOSPC')));
    assert.equal(error.status, 507);
    assert.equal(error.code, 'UNKNOWN');
    assert.match(error.message, /storage is full \(ENOSPC\).*free space/);
  });

  test('a raw ENOSPC or SQLITE_FULL that escaped a writer is 507 too', () => {
    assert.equal(toRegistryError(errno('ENOSPC')).status, 507);
    assert.equal(toRegistryError(errno('EDQUOT')).status, 507);
    assert.equal(toRegistryError(sqliteError(13)).status, 507);
  });

  test('EIO is 500 with a clear message; other errors stay "internal server error"', () => {
    const io = toRegistryError(errno('EIO', 'read'));
    assert.equal(io.status, 500);
    assert.match(io.message, /storage failure \(EIO\)/);
    const other = toRegistryError(new Error('boom'));
    assert.equal(other.status, 500);
    assert.equal(other.message, 'internal server error');
    assert.equal(toRegistryError(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })).message, 'internal server error');
  });
});
