import { ERROR_CODES, type ErrorCode } from './codes.ts';

/** The JSON error body every OCI registry speaks. */
export interface ErrorBody {
  errors: { code: string; message: string; detail?: unknown }[];
}

/**
 * A failure with an OCI error code. The server turns it into the spec's JSON body;
 * the client builds one from such a body.
 */
export class RegistryError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: unknown;
  /** Extra response headers, for example Range on a 416 or Retry-After on a 429. */
  readonly headers: Record<string, string>;

  constructor(
    code: ErrorCode,
    message?: string,
    options: { status?: number; detail?: unknown; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message ?? ERROR_CODES[code].message, { cause: options.cause });
    this.name = 'RegistryError';
    this.code = code;
    this.status = options.status ?? ERROR_CODES[code].status;
    this.detail = options.detail;
    this.headers = options.headers ?? {};
  }

  get temporary(): boolean {
    return ERROR_CODES[this.code].temporary;
  }

  toBody(): ErrorBody {
    const entry: ErrorBody['errors'][number] = { code: this.code, message: this.message };
    if (this.detail !== undefined) entry.detail = this.detail;
    return { errors: [entry] };
  }
}
