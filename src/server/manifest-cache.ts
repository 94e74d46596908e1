import type { Digest } from '../digest/digest.ts';

/**
 * A byte-bounded LRU of manifest bodies. Safe without invalidation because content
 * under a digest never changes; it saves a file read on the hottest registry path.
 */
export class ManifestCache {
  private readonly entries = new Map<Digest, Buffer>();
  private bytes = 0;

  private readonly maxBytes: number;

  constructor(maxBytes = 32 * 1024 * 1024) {
    this.maxBytes = maxBytes;
  }

  get(digest: Digest): Buffer | undefined {
    const hit = this.entries.get(digest);
    if (hit) {
      this.entries.delete(digest);
      this.entries.set(digest, hit);
    }
    return hit;
  }

  set(digest: Digest, body: Buffer): void {
    if (body.length > this.maxBytes || this.entries.has(digest)) return;
    this.entries.set(digest, body);
    this.bytes += body.length;
    for (const [key, value] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(key);
      this.bytes -= value.length;
    }
  }
}
