import { RegistryError } from '../errors/registry-error.ts';

/**
 * Bytes that request bodies held whole in memory (manifests, up to 4 MiB each) may take together.
 * Without it, 300 clients each sending most of a 4 MiB manifest and then stalling pinned 1.1 GB
 * until the idle timeout. Past the budget a body is refused with 503 and Retry-After, so a
 * well-behaved client retries a moment later; the bodies already held are unaffected.
 */
export class BodyBudget {
  private used = 0;
  readonly limit: number;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Takes `bytes` from the budget, or throws 503 UNAVAILABLE when they do not fit. */
  claim(bytes: number): void {
    if (this.used + bytes > this.limit) {
      throw new RegistryError('UNAVAILABLE', `the registry is receiving too many manifests at once (manifestBodyMemory ${this.limit} bytes in use); retry shortly`, {
        status: 503,
        headers: { 'Retry-After': '1' },
      });
    }
    this.used += bytes;
  }

  release(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }
}
