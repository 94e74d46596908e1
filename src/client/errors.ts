import { isErrorCode, type ErrorCode } from '../errors/codes.ts';
import { StalledError } from './transport.ts';

/**
 * A registry said no. Carries what failed, where, the OCI code when the registry sent one,
 * and what the registry reported about rate limits, so the message can say what to do.
 */
export class ClientError extends Error {
  readonly status: number;
  readonly code: ErrorCode | undefined;
  readonly registry: string;
  readonly retryAfterMs: number | undefined;

  constructor(message: string, options: { status: number; code?: ErrorCode; registry: string; retryAfterMs?: number; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.name = 'ClientError';
    this.status = options.status;
    this.code = options.code;
    this.registry = options.registry;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** Reads the first OCI error code and message out of a (capped) error body. */
export function parseErrorBody(text: string): { code?: ErrorCode; message?: string } {
  try {
    const body = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
    const first = body.errors?.[0];
    if (!first) return {};
    return {
      ...(isErrorCode(first.code) ? { code: first.code } : {}),
      ...(typeof first.message === 'string' ? { message: first.message } : {}),
    };
  } catch {
    return {};
  }
}

const TLS_CODES = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_)/;

/** The error code of a failed connection, looking through undici's `cause` chain. */
function errnoCode(error: unknown): string | undefined {
  for (let e = error as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && !e.code.startsWith('UND_ERR_')) return e.code;
  }
  return undefined;
}

/**
 * Says what a connection failure means, and what to do, for TLS problems in particular. `host` is
 * the host actually dialled (`registry-1.docker.io` for docker.io, a redirect's storage host, a
 * token server); `registry`, when different, is what the user asked for.
 */
export function describeNetworkError(error: unknown, host: string, registry: string = host): string {
  const code = errnoCode(error);
  const detail = (error as Error).message;
  const forRegistry = registry !== host ? ` (for ${registry})` : '';
  if (code && TLS_CODES.test(code)) {
    return `TLS problem talking to ${host}${forRegistry} (${code}: ${detail}); give its CA with --ca-file or $SKIFF_CA_FILE, or, for a test registry, allow plain HTTP with --insecure-registry ${registry}`;
  }
  if (code === 'ECONNREFUSED') return `cannot connect to ${host}${forRegistry} (connection refused): is the registry running and the port right?`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `cannot resolve ${host}${forRegistry} (${code}): check the network and DNS${registry === host ? ', and the registry host name' : ''}`;
  if (error instanceof StalledError) return error.reason;
  return `${detail}${code ? ` (${code})` : ''}`;
}

/** The 401 hint of a client that does not know where its credentials came from. */
const CREDENTIALS_ADVICE = 'check the credentials (skiff login, or ~/.docker/config.json)';

/**
 * The failure's message with the generic 401 hint replaced by `advice`, said by a caller that
 * knows where the credentials came from (sync: auth.json, `$DOCKER_CONFIG`, a helper). Any other
 * failure is left as it is. Looks through `cause`, since callers wrap ("cannot list the tags…").
 */
export function withCredentialsAdvice(error: unknown, advice: string): string {
  const message = (error as Error).message;
  if (!unauthorizedIn(error)) return message;
  const generic = `(${CREDENTIALS_ADVICE})`;
  return message.includes(generic) ? message.replace(generic, `(${advice})`) : `${message} (${advice})`;
}

/** The 401 from a registry or its token service behind this failure (possibly wrapped), if any. */
export function unauthorizedIn(error: unknown): ClientError | undefined {
  for (let e = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof ClientError && e.status === 401) return e;
  }
  return undefined;
}

/** A hint for the user, by status and code. */
export function adviceFor(status: number, code: ErrorCode | undefined, rateRemaining?: string): string {
  if (status === 401) return CREDENTIALS_ADVICE;
  if (status === 403) return 'the credentials lack permission for this repository';
  if (status === 429) return `rate-limited by the registry${rateRemaining ? ` (ratelimit-remaining: ${rateRemaining})` : ''}; wait, or log in for a higher limit`;
  if (code === 'NAME_UNKNOWN') return 'check the repository name';
  if (code === 'MANIFEST_UNKNOWN') return 'check the tag or digest';
  if (status >= 500) return 'the registry failed; try again later';
  return '';
}
