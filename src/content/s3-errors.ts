import { StorageFailureError, StorageFullError, type StorageError } from './storage-errors.ts';

/**
 * How the S3 driver reports what its bucket did: every failed S3 call becomes a StorageError (the
 * HTTP layer's 507 for a quota, 500 otherwise) whose message names the operation, the object
 * (`s3://bucket/key`) and the S3 error code; `checkAccess` says in plain words which setting is
 * wrong. The AWS SDK's own message is often "UnknownError" with radosgw (its error bodies carry a
 * code and no message), so the code and HTTP status are what the messages are built from.
 */

/** S3 error codes that mean "no room": radosgw's user or bucket quota, MinIO's full drives. */
const FULL_CODES = new Set(['QuotaExceeded', 'XMinioStorageFull', 'InsufficientStorage']);

/** Node's codes for an endpoint that cannot be reached or dropped the connection. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ECONNABORTED']);

interface SdkErrorLike {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  $metadata?: { httpStatusCode?: number };
  cause?: unknown;
}

/** The raw SDK error behind a StorageError the driver made, or `error` itself. */
function raw(error: unknown): SdkErrorLike {
  const e = (typeof error === 'object' && error !== null ? error : {}) as SdkErrorLike;
  return (e as { code?: unknown }).code === 'STORAGE_FAILED' || (e as { code?: unknown }).code === 'STORAGE_FULL' ? raw(e.cause) : e;
}

/** The S3 error code (`NoSuchKey`, `AccessDenied`, …), a network code (`ECONNREFUSED`), or `HTTP <status>`. */
export function s3Code(error: unknown): string {
  const e = raw(error);
  if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return e.code;
  if (typeof e.name === 'string' && e.name !== 'Unknown' && e.name !== 'Error' && e.name !== 'UnknownError') return e.name;
  if (typeof e.code === 'string') return e.code;
  const status = e.$metadata?.httpStatusCode;
  return status !== undefined ? `HTTP ${status}` : 'unknown error';
}

export function s3Status(error: unknown): number | undefined {
  return raw(error).$metadata?.httpStatusCode;
}

/** True for "no such object": GET's NoSuchKey and HEAD's bare 404 (never a missing bucket or upload). */
export function isMissingObject(error: unknown): boolean {
  const code = s3Code(error);
  return code === 'NoSuchKey' || code === 'NotFound' || (s3Status(error) === 404 && code !== 'NoSuchBucket' && code !== 'NoSuchUpload');
}

/** A multipart upload that is gone (completed or aborted); radosgw answers ListParts with NoSuchKey then. */
export function isGoneUpload(error: unknown): boolean {
  const code = s3Code(error);
  return code === 'NoSuchUpload' || code === 'NoSuchKey';
}

export function isNetworkFailure(error: unknown): boolean {
  const e = raw(error);
  return (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) || e.name === 'TimeoutError';
}

/** What the SDK said beyond the code, when it said anything useful. */
function detail(error: unknown): string {
  const e = raw(error);
  const status = e.$metadata?.httpStatusCode;
  const message = typeof e.message === 'string' && e.message !== 'UnknownError' && e.message !== e.name ? e.message : '';
  return [status !== undefined ? `HTTP ${status}` : '', message].filter(Boolean).join(': ');
}

/**
 * Wraps a failed S3 call as StorageFullError / StorageFailureError naming `operation` and `where`
 * (`s3://bucket/key`). StorageError's own wording speaks of a data directory's disk, so the
 * messages are put in S3's terms here; the classes (and codes) stay, for the HTTP layer.
 */
export function s3StorageError(error: unknown, operation: string, where: string): StorageError {
  if (typeof error === 'object' && error !== null && ((error as { code?: unknown }).code === 'STORAGE_FAILED' || (error as { code?: unknown }).code === 'STORAGE_FULL')) return error as StorageError;
  const code = s3Code(error);
  const said = detail(error);
  const full = FULL_CODES.has(code);
  const wrapped = full ? new StorageFullError(code, operation, error) : new StorageFailureError(code, operation, error);
  wrapped.message = full
    ? `the registry's S3 storage is full (${code}) while ${operation} (${where}); raise the quota or free space in the bucket and retry`
    : `S3 storage failure (${code}) while ${operation} (${where})${said ? `: ${said}` : ''}; check the S3 endpoint, the bucket and its credentials`;
  (wrapped as { publicMessage: string }).publicMessage = full
    ? `the registry's storage is full (${code}) while ${operation}; retry once space is freed`
    : `storage failure (${code}) while ${operation}; the registry's operator must check its S3 storage`;
  return wrapped;
}

/** What `checkAccess` found wrong, and which setting to look at. */
export type S3AccessProblem = 'bucket-missing' | 'credentials' | 'denied' | 'unreachable' | 'failed';

/** The bucket cannot be used: says why, and names the setting (`bucket`, `accessKey`, `secretKey`, `endpoint`). */
export class S3AccessError extends Error {
  readonly code = 'S3_ACCESS';
  readonly problem: S3AccessProblem;
  readonly setting: 'bucket' | 'accessKey' | 'secretKey' | 'endpoint' | 'region';
  constructor(problem: S3AccessProblem, setting: S3AccessError['setting'], message: string, cause?: unknown) {
    super(message, { cause });
    this.name = 'S3AccessError';
    this.problem = problem;
    this.setting = setting;
  }
}
