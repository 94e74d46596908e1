/**
 * The one table of OCI Distribution error codes, shared by server and client.
 * Code matches on `code`, never on message text.
 */
export interface ErrorCodeInfo {
  /** Default HTTP status when a handler does not say otherwise. */
  readonly status: number;
  readonly message: string;
  /** True when retrying the same request may succeed. */
  readonly temporary: boolean;
}

export const ERROR_CODES = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry', temporary: false },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid', temporary: false },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry', temporary: false },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content', temporary: false },
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: 'manifest references a manifest or blob unknown to registry', temporary: false },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid', temporary: false },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry', temporary: false },
  NAME_INVALID: { status: 400, message: 'invalid repository name', temporary: false },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry', temporary: false },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length', temporary: false },
  UNAUTHORIZED: { status: 401, message: 'authentication required', temporary: false },
  DENIED: { status: 403, message: 'requested access to the resource is denied', temporary: false },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported', temporary: false },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests', temporary: true },
  RANGE_INVALID: { status: 416, message: 'invalid content range', temporary: false },
  UNAVAILABLE: { status: 503, message: 'service unavailable', temporary: true },
  UNKNOWN: { status: 500, message: 'unknown error', temporary: true },
} as const satisfies Record<string, ErrorCodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}
