/** How much of a client-supplied value an error message repeats. */
export const EXCERPT_CHARS = 100;

/**
 * `value` JSON-quoted for an error message, cut to `max` characters with an ellipsis.
 * Echoing a header or manifest field whole would let one request make every error body
 * and log line as large as the request itself (a 5 KB Range header came back in a 416).
 */
export function excerpt(value: string, max = EXCERPT_CHARS): string {
  return JSON.stringify(value.length > max ? `${value.slice(0, max)}…` : value);
}
