import { ClientError } from './errors.ts';
import { StalledError } from './transport.ts';

/** Error bodies, token responses: anything more is a hostile or broken server (DESIGN §2.2). */
export const ERROR_BODY_LIMIT = 64 * 1024;

export interface BodyLabel {
  /** What the body is, with the request it answers: `the manifest from GET ghcr.io/v2/o/app/manifests/v1`. */
  what: string;
  /** Host named in ClientError.registry. */
  registry: string;
  status: number;
  /** What to do when the body is too large (strict reads). */
  tooLargeAdvice?: string;
}

/** `65536` → `64 KiB`; the limits are powers of two. */
function humanLimit(bytes: number): string {
  if (bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}

/**
 * Reads a response body whole, never more than `limit` bytes (the rest is not even received: the
 * connection is closed). Strict: more is an error naming the server and the request; otherwise
 * the body is cut (an error body only feeds a message). A body whose connection breaks midway is
 * a status-0 ClientError (a network failure: retried, or a reason to try the next endpoint).
 */
export async function readBody(body: AsyncIterable<Buffer> & { destroy?: () => void }, limit: number, label: BodyLabel, strict = true): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of body) {
      total += chunk.length;
      if (total > limit) {
        body.destroy?.();
        if (strict) {
          throw new ClientError(`${label.what}: the response is larger than ${humanLimit(limit)}, the most skiff reads${label.tooLargeAdvice ? `; ${label.tooLargeAdvice}` : ''}`, {
            status: label.status,
            registry: label.registry,
          });
        }
        chunks.push(chunk.subarray(0, chunk.length - (total - limit)));
        return Buffer.concat(chunks);
      }
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof ClientError) throw error;
    if (error instanceof StalledError) throw new ClientError(`${label.what}: ${error.reason}`, { status: 0, registry: label.registry, cause: error });
    const code = (error as NodeJS.ErrnoException).code;
    throw new ClientError(`${label.what}: the connection broke after ${total} bytes of the response (${(error as Error).message}${code ? `, ${code}` : ''}); check the network and try again`, {
      status: 0,
      registry: label.registry,
      cause: error,
    });
  }
  return Buffer.concat(chunks);
}
