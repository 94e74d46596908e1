/**
 * Our own verdict that a host stopped delivering (connect, idle or throughput rule). Code
 * ETIMEDOUT, so fallback treats it as a network failure; not named TimeoutError, which means the
 * caller's own deadline (mirrors.ts: classifyFailure).
 */
export class StalledError extends Error {
  readonly code = 'ETIMEDOUT';
  /** host[:port] that stalled. */
  readonly host: string;
  /** The message without the request in front. */
  readonly reason: string;
  constructor(host: string, request: string | undefined, reason: string) {
    super(request ? `${request}: ${reason}` : reason);
    this.name = 'StalledError';
    this.host = host;
    this.reason = reason;
  }
}
