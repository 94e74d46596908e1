import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { ERROR_CODES, isErrorCode, type ErrorCode } from '../../src/errors/codes.ts';
import { RegistryError } from '../../src/errors/registry-error.ts';

/** The OCI distribution-spec v1.1 error codes and their statuses. */
const SPEC: [ErrorCode, number][] = [
  ['BLOB_UNKNOWN', 404],
  ['BLOB_UPLOAD_INVALID', 400],
  ['BLOB_UPLOAD_UNKNOWN', 404],
  ['DIGEST_INVALID', 400],
  ['MANIFEST_BLOB_UNKNOWN', 400],
  ['MANIFEST_INVALID', 400],
  ['MANIFEST_UNKNOWN', 404],
  ['NAME_INVALID', 400],
  ['NAME_UNKNOWN', 404],
  ['SIZE_INVALID', 400],
  ['UNAUTHORIZED', 401],
  ['DENIED', 403],
  ['UNSUPPORTED', 405],
  ['TOOMANYREQUESTS', 429],
];

describe('ERROR_CODES', () => {
  for (const [code, status] of SPEC) {
    test(`${code} → ${status}`, () => {
      assert.ok(Object.hasOwn(ERROR_CODES, code), `${code} missing`);
      assert.equal(ERROR_CODES[code].status, status);
      assert.equal(typeof ERROR_CODES[code].message, 'string');
      assert.ok(ERROR_CODES[code].message.length > 0);
      assert.equal(isErrorCode(code), true);
    });
  }

  test('only TOOMANYREQUESTS and server-side failures are temporary among spec codes', () => {
    for (const [code] of SPEC) assert.equal(ERROR_CODES[code].temporary, code === 'TOOMANYREQUESTS', code);
    assert.equal(ERROR_CODES.UNAVAILABLE.temporary, true);
    assert.equal(ERROR_CODES.UNAVAILABLE.status, 503);
  });

  test('every entry is a 4xx or 5xx status', () => {
    for (const [code, info] of Object.entries(ERROR_CODES)) assert.ok(info.status >= 400 && info.status <= 599, code);
  });

  test('isErrorCode rejects non-codes, including prototype keys', () => {
    for (const value of ['', 'blob_unknown', 'NOPE', 'toString', '__proto__', 'constructor', 404, null, undefined, {}]) {
      assert.equal(isErrorCode(value), false, String(value));
    }
  });
});

describe('RegistryError', () => {
  test('defaults come from the table', () => {
    const error = new RegistryError('BLOB_UNKNOWN');
    assert.ok(error instanceof Error);
    assert.equal(error.name, 'RegistryError');
    assert.equal(error.code, 'BLOB_UNKNOWN');
    assert.equal(error.status, 404);
    assert.equal(error.message, 'blob unknown to registry');
    assert.equal(error.temporary, false);
    assert.deepEqual(error.headers, {});
    assert.equal(error.detail, undefined);
  });

  test('toBody without detail has exactly code and message', () => {
    const body = new RegistryError('MANIFEST_UNKNOWN', 'no such manifest').toBody();
    assert.deepEqual(body, { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'no such manifest' }] });
    assert.equal(Object.hasOwn(body.errors[0]!, 'detail'), false);
    assert.deepEqual(JSON.parse(JSON.stringify(body)), body);
  });

  test('toBody with detail carries it', () => {
    const detail = { digest: 'sha256:abc', reasons: ['x'] };
    const body = new RegistryError('DIGEST_INVALID', undefined, { detail }).toBody();
    assert.deepEqual(body, { errors: [{ code: 'DIGEST_INVALID', message: ERROR_CODES.DIGEST_INVALID.message, detail }] });
  });

  test('a falsy detail is still carried', () => {
    assert.deepEqual(new RegistryError('NAME_INVALID', 'bad', { detail: 0 }).toBody().errors[0], { code: 'NAME_INVALID', message: 'bad', detail: 0 });
    assert.deepEqual(new RegistryError('NAME_INVALID', 'bad', { detail: null }).toBody().errors[0], { code: 'NAME_INVALID', message: 'bad', detail: null });
  });

  test('status, headers and cause can be overridden', () => {
    const cause = new Error('root');
    const error = new RegistryError('TOOMANYREQUESTS', 'slow down', { status: 503, headers: { 'Retry-After': '30' }, cause });
    assert.equal(error.status, 503);
    assert.deepEqual(error.headers, { 'Retry-After': '30' });
    assert.equal(error.cause, cause);
    assert.equal(error.temporary, true);
    assert.equal(error.toBody().errors[0]!.code, 'TOOMANYREQUESTS');
  });

  test('UNSUPPORTED may be sent as 400 for disabled deletes', () => {
    const error = new RegistryError('UNSUPPORTED', 'deletes are disabled', { status: 400 });
    assert.equal(error.status, 400);
    assert.deepEqual(error.toBody(), { errors: [{ code: 'UNSUPPORTED', message: 'deletes are disabled' }] });
  });
});
