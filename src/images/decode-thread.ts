import { createHash } from 'node:crypto';
import type { Transform } from 'node:stream';
import { isMainThread, parentPort, Worker, workerData, type MessagePort } from 'node:worker_threads';
import type { Digest } from '../digest/digest.ts';
import { createDecoder, type Compression } from './decompress.ts';
import { DecoderSink, type DecodeSink, type LayerMeasurement } from './layer-digester.ts';

/** Bytes in one batch for the decode thread (a message per 64 KiB would cost more than the copy). */
const THREAD_BATCH = 1024 * 1024;
/**
 * The decode thread's zlib output chunk. Each one is a thread-pool round trip of the decoder: with
 * 64 KiB chunks the writer waited on this thread for ~40 % of a 200 MiB pull (236 ms of a 420 ms
 * loop); with 1 MiB, not at all, and the pull took 0.52 s instead of 0.68 s. Its garbage is bounded
 * by V8's external-memory limit either way (peak RSS the same with 256 KiB).
 */
const THREAD_OUTPUT_CHUNK = 1024 * 1024;
/**
 * Bytes sent to the decode thread and not yet decoded, beyond which the writer waits. 16 MiB lets
 * the two threads drift apart instead of taking turns: pulls of 64 and 200 MiB layers took 8 % less
 * time than with 4 MiB (interleaved runs, medians 0.494 against 0.535 s and 0.963 against 1.045 s).
 */
const THREAD_QUEUE = 16 * 1024 * 1024;
const THREAD_MARK = 'skiff-layer-decode-thread';

type ToThread =
  | { id: number; type: 'start'; kind: Exclude<Compression, 'none'> }
  | { id: number; type: 'data'; chunk: ArrayBuffer; length: number }
  | { id: number; type: 'end' }
  | { id: number; type: 'abort' };

type FromThread =
  /** `chunk`: the batch's buffer, handed back for another batch. */
  | { id: number; type: 'ack'; bytes: number; chunk: ArrayBuffer }
  | { id: number; type: 'done'; diffId: Digest; size: number }
  | { id: number; type: 'error'; message: string; code?: string };

/**
 * A worker thread that decodes and hashes layers for this one (several at once, by id). Starting
 * it takes tens of milliseconds, so `warm()` it as soon as a big layer is known to be coming. It
 * keeps the process alive only while a layer is in flight.
 */
export class DecodeThread {
  private worker: Worker | undefined;
  private readonly sinks = new Map<number, ThreadSink>();
  private nextId = 1;

  /** Starts the worker now, if it is not running. False when it cannot be started. */
  warm(): boolean {
    if (this.worker) return true;
    let worker: Worker;
    try {
      worker = new Worker(new URL(import.meta.url), { workerData: THREAD_MARK });
    } catch {
      return false; // layers are then decoded on this thread
    }
    worker.on('message', (message: FromThread) => this.sinks.get(message.id)?.receive(message));
    const fail = (error: Error) => {
      if (this.worker === worker) this.worker = undefined;
      for (const sink of this.sinks.values()) sink.fail(error);
      this.sinks.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the layer decode thread exited (code ${code})`)));
    // Only after the listeners: adding a 'message' listener refs the worker again, and an idle
    // thread that is never open()ed would then keep the process alive forever (issue 10).
    worker.unref();
    this.worker = worker;
    return true;
  }

  /** Stops the worker (layers in flight fail). */
  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }

  /** @internal a decoder on the thread for one layer */
  open(kind: Exclude<Compression, 'none'>): DecodeSink {
    if (!this.warm()) return new DecoderSink(kind);
    const worker = this.worker!;
    const id = this.nextId++;
    const sink = new ThreadSink((message, transfer) => worker.postMessage(message, transfer ?? []), () => {
      this.sinks.delete(id);
      if (this.sinks.size === 0) worker.unref();
    }, id);
    this.sinks.set(id, sink);
    worker.ref();
    worker.postMessage({ id, type: 'start', kind } satisfies ToThread);
    return sink;
  }
}

/**
 * One layer's bytes on their way to the decode thread: copied into 1 MiB batches whose buffers are
 * moved (transferred) to the thread and come back with its ack, a fixed pool of them per layer.
 */
class ThreadSink implements DecodeSink {
  /** Chunks are copied into the batch at once. */
  readonly keepsChunks = false;
  private readonly post: (message: ToThread, transfer?: ArrayBuffer[]) => void;
  private readonly release: () => void;
  private readonly id: number;
  private batch: Buffer | undefined;
  private batchLength = 0;
  /** Buffers back from the thread, for the next batches. */
  private readonly spare: ArrayBuffer[] = [];
  private unacked = 0;
  private failure: Error | undefined;
  private finished = false;
  private waiters: (() => void)[] = [];
  private result: { resolve: (m: LayerMeasurement) => void; reject: (e: Error) => void } | undefined;
  private measurement: LayerMeasurement | undefined;

  constructor(post: (message: ToThread, transfer?: ArrayBuffer[]) => void, release: () => void, id: number) {
    this.post = post;
    this.release = release;
    this.id = id;
  }

  get error(): Error | undefined {
    return this.failure;
  }

  write(chunk: Buffer): boolean {
    if (this.failure || this.finished) return true;
    for (let offset = 0; offset < chunk.length; ) {
      this.batch ??= Buffer.from(this.spare.pop() ?? (Buffer.allocUnsafeSlow(THREAD_BATCH).buffer as ArrayBuffer));
      const copied = chunk.copy(this.batch, this.batchLength, offset);
      this.batchLength += copied;
      offset += copied;
      if (this.batchLength === THREAD_BATCH) this.send();
    }
    return this.unacked < THREAD_QUEUE;
  }

  drained(): Promise<void> {
    if (this.unacked < THREAD_QUEUE || this.failure || this.finished) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  end(): Promise<LayerMeasurement> {
    if (!this.failure && !this.finished) {
      this.send();
      this.post({ id: this.id, type: 'end' });
    }
    return new Promise((resolve, reject) => {
      this.result = { resolve, reject };
      this.settle();
    });
  }

  destroy(): void {
    if (this.finished) return;
    if (!this.failure) this.post({ id: this.id, type: 'abort' });
    this.fail(new Error('layer decoding was stopped'));
  }

  /** @internal */
  receive(message: FromThread): void {
    if (message.type === 'ack') {
      this.unacked -= message.bytes;
      if (this.spare.length < THREAD_QUEUE / THREAD_BATCH) this.spare.push(message.chunk);
      if (this.unacked < THREAD_QUEUE) this.wake();
    } else if (message.type === 'done') {
      this.measurement = { diffId: message.diffId, size: message.size };
      this.finish();
    } else {
      this.fail(Object.assign(new Error(message.message), message.code ? { code: message.code } : {}));
    }
  }

  /** @internal */
  fail(error: Error): void {
    if (this.finished) return;
    this.failure ??= error;
    this.finish();
  }

  private send(): void {
    if (!this.batch || this.batchLength === 0) return;
    const chunk = this.batch.buffer as ArrayBuffer;
    this.post({ id: this.id, type: 'data', chunk, length: this.batchLength }, [chunk]);
    this.unacked += this.batchLength;
    this.batch = undefined;
    this.batchLength = 0;
  }

  private finish(): void {
    this.finished = true;
    this.release();
    this.wake();
    this.settle();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  private settle(): void {
    if (!this.result || !this.finished) return;
    if (this.failure) this.result.reject(this.failure);
    else this.result.resolve(this.measurement!);
  }
}

/** The decode thread's side: one decoder and hash per layer id. */
function serveDecodes(port: MessagePort): void {
  const decoders = new Map<number, Transform>();
  port.on('message', (message: ToThread) => {
    const { id } = message;
    if (message.type === 'start') {
      const decoder = createDecoder(message.kind, { chunkSize: THREAD_OUTPUT_CHUNK });
      const hash = createHash('sha256');
      let size = 0;
      decoder.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        size += chunk.length;
      });
      decoder.on('end', () => {
        decoders.delete(id);
        port.postMessage({ id, type: 'done', diffId: `sha256:${hash.digest('hex')}`, size } satisfies FromThread);
      });
      decoder.on('error', (error: NodeJS.ErrnoException) => {
        if (!decoders.has(id)) return; // aborted
        decoders.delete(id);
        port.postMessage({ id, type: 'error', message: error.message, ...(error.code ? { code: error.code } : {}) } satisfies FromThread);
      });
      decoders.set(id, decoder);
    } else if (message.type === 'data') {
      const bytes = message.length;
      // The write callback means zlib consumed the batch: its buffer goes back for reuse.
      decoders.get(id)?.write(Buffer.from(message.chunk, 0, bytes), (error) => {
        if (!error) port.postMessage({ id, type: 'ack', bytes, chunk: message.chunk } satisfies FromThread, [message.chunk]);
      });
    } else if (message.type === 'end') {
      decoders.get(id)?.end();
    } else {
      const decoder = decoders.get(id);
      decoders.delete(id);
      decoder?.destroy();
    }
  });
}

if (!isMainThread && workerData === THREAD_MARK) serveDecodes(parentPort!);
