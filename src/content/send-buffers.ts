/**
 * The memory blob responses read into, bounded for the whole process. Each response holds a
 * buffer from the moment it reads a chunk until the socket has taken it; a client that stops
 * reading keeps its buffer for as long as it stalls. Per-connection buffers would let N stalled
 * readers pin N × (chunk size): 2,000 stalled readers pinned 4 GB with two 1 MiB buffers each.
 *
 * So large buffers come from a fixed budget, reused without garbage; when the budget is lent
 * out, responses go on with small buffers (slower, never unbounded per stalled reader). Small
 * buffers are slices of slabs larger than glibc's largest mmap threshold (32 MiB), so each slab
 * is its own mapping: once all its slices are back it is dropped, and when collected the kernel
 * gets the memory back. Small buffers from the heap instead left ~60 MiB of
 * fragments resident after 2,000 stalled readers had gone.
 */
export class SendBuffers {
  /** Large buffers ready to lend. */
  private readonly free: Buffer[] = [];
  private allocated = 0;
  private readonly maxLarge: number;
  private readonly slabs = new Map<ArrayBufferLike, Slab>();

  readonly largeSize: number;
  readonly smallSize: number;
  private readonly slabBytes: number;

  constructor(budgetBytes: number, options: { largeSize?: number; smallSize?: number; slabBytes?: number } = {}) {
    this.largeSize = options.largeSize ?? 1024 * 1024;
    this.smallSize = options.smallSize ?? 16 * 1024;
    this.slabBytes = options.slabBytes ?? 33 * 1024 * 1024;
    this.maxLarge = Math.max(0, Math.floor(budgetBytes / this.largeSize));
  }

  /** A buffer to read the next chunk into; give it back once the destination has taken the chunk. */
  take(wanted: number): Buffer {
    // A small blob needs no more than its own size; such short-lived buffers need no pooling.
    if (wanted <= this.smallSize) return Buffer.allocUnsafe(wanted);
    const pooled = this.free.pop();
    if (pooled) return pooled;
    if (this.allocated < this.maxLarge) {
      this.allocated++;
      return Buffer.allocUnsafeSlow(this.largeSize);
    }
    return this.takeSlice();
  }

  /** The destination has taken the chunk: the buffer may be reused. */
  give(buffer: Buffer): void {
    if (buffer.length === this.largeSize) {
      if (this.free.length < this.allocated) this.free.push(buffer);
      return;
    }
    const slab = this.slabs.get(buffer.buffer);
    if (!slab) return;
    slab.freeSlices.push(buffer.byteOffset / this.smallSize);
    this.settle(slab);
  }

  /**
   * For a buffer that may still be referenced (its write failed mid-flight on a destroyed
   * socket): never reused; its place in the budget is freed and the memory left to the collector.
   */
  forget(buffer: Buffer): void {
    if (buffer.length === this.largeSize) {
      this.allocated--;
      return;
    }
    const slab = this.slabs.get(buffer.buffer);
    if (!slab) return;
    slab.lost++;
    this.settle(slab);
  }

  /** Large buffers lent out now. */
  get lent(): number {
    return this.allocated - this.free.length;
  }

  /** Small slices lent out now, and slabs mapped (for tests and metrics). */
  get smallLent(): number {
    let lent = 0;
    for (const slab of this.slabs.values()) lent += slab.lent();
    return lent;
  }

  get slabCount(): number {
    return this.slabs.size;
  }

  private takeSlice(): Buffer {
    let slab: Slab | undefined;
    for (const candidate of this.slabs.values()) {
      if (candidate.freeSlices.length > 0) {
        slab = candidate;
        break;
      }
    }
    if (!slab) {
      const memory = Buffer.allocUnsafeSlow(this.slabBytes);
      const count = Math.floor(this.slabBytes / this.smallSize);
      // Lowest slices first, and the most recently returned first: the pages already touched.
      slab = new Slab(memory, Array.from({ length: count }, (_, i) => count - 1 - i));
      this.slabs.set(memory.buffer, slab);
    }
    const index = slab.freeSlices.pop()!;
    return slab.memory.subarray(index * this.smallSize, (index + 1) * this.smallSize);
  }

  /** Drops a slab as soon as nobody uses it: its mapping goes back to the kernel when collected. */
  private settle(slab: Slab): void {
    if (slab.lent() === 0) this.slabs.delete(slab.memory.buffer);
  }
}

class Slab {
  readonly memory: Buffer;
  readonly freeSlices: number[];
  readonly total: number;
  /** Slices forgotten while possibly still referenced: never handed out again. */
  lost = 0;

  constructor(memory: Buffer, freeSlices: number[]) {
    this.memory = memory;
    this.freeSlices = freeSlices;
    this.total = freeSlices.length;
  }

  lent(): number {
    return this.total - this.freeSlices.length - this.lost;
  }
}
