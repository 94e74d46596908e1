import { Readable } from 'node:stream';
import { extract, type Extract, type Header, type Pack } from 'tar-stream';

type StreamxWritable = ReturnType<Pack['entry']>;

/** One entry of a tar being read: a stream of its bytes, with its header. */
export type TarEntry = Extract extends AsyncIterable<infer T> ? T : never;
export type TarHeader = Header;
/** What `addTarEntry` needs: a name, and whatever else differs from tar-stream's defaults. */
export type TarHeaderInput = Partial<Header> & { name: string };

/** For each entry handed out, how to ask for the failure of the tar stream it came from. */
const streamFailure = new WeakMap<object, () => Error | undefined>();

/**
 * Streams a tar read from a Node stream, one entry at a time. The caller must consume (or
 * `drainEntry`) each entry before asking for the next. A source that ends inside an entry or a
 * header fails the iteration ("Unexpected end of data"); an error from `source` does too.
 */
export async function* tarEntries(source: Readable): AsyncGenerator<TarEntry> {
  const archive = extract();
  let failure: Error | undefined;
  archive.on('error', (error: Error) => (failure ??= error));
  const onError = (error: Error) => archive.destroy(error);
  source.on('error', onError);
  source.pipe(archive as unknown as NodeJS.WritableStream);
  try {
    for await (const entry of archive) {
      streamFailure.set(entry, () => failure);
      yield entry;
    }
  } finally {
    source.off('error', onError);
    source.unpipe(archive as unknown as NodeJS.WritableStream);
    if (!source.readableEnded) source.destroy();
    if (!archive.destroyed) archive.destroy();
  }
}

/** An entry's bytes as a Node Readable (tar-stream hands out streamx streams). */
export function entryReadable(entry: TarEntry): Readable {
  return Readable.from(entryChunks(entry), { objectMode: false });
}

/**
 * An entry's bytes, typed (streamx yields `unknown`; tar-stream's chunks are Buffers). When the
 * tar stream dies mid-entry the entry only says "Stream was destroyed"; the real cause (say,
 * "Unexpected end of data" for a truncated archive) is thrown instead.
 */
export async function* entryChunks(entry: TarEntry): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of entry) yield chunk as Buffer;
  } catch (error) {
    await new Promise((resolve) => setImmediate(resolve)); // the tar stream reports its error a turn later
    throw streamFailure.get(entry)?.() ?? error;
  }
}

/** Reads and discards the rest of an entry. */
export async function drainEntry(entry: TarEntry): Promise<void> {
  for await (const _chunk of entryChunks(entry)) {
    // discard
  }
}

/** Reads a small entry whole; refuses one larger than `limit` bytes without buffering it. */
export async function readEntry(entry: TarEntry, limit: number, what: string): Promise<Buffer> {
  if ((entry.header.size ?? 0) > limit) throw new Error(`${what} is ${entry.header.size} bytes, more than the ${limit} allowed`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of entryChunks(entry)) {
    size += chunk.length;
    if (size > limit) throw new Error(`${what} is more than the ${limit} bytes allowed`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/**
 * Adds one entry to a tar being packed. A body given as a stream is copied with backpressure,
 * so a large blob never sits in memory; `header.size` must be its exact length.
 */
export async function addTarEntry(archive: Pack, header: TarHeaderInput, body?: Buffer | AsyncIterable<Buffer>): Promise<void> {
  if (body === undefined || Buffer.isBuffer(body)) {
    await new Promise<void>((resolve, reject) => {
      const sink =
        body === undefined
          ? archive.entry(header, (error) => (error ? reject(error) : resolve()))
          : archive.entry(header, body, (error) => (error ? reject(error) : resolve()));
      sink.on('error', () => undefined); // see below
    });
    return;
  }
  let settled = false;
  let fail: (error: Error) => void = () => undefined;
  const done = new Promise<void>((resolve, reject) => {
    fail = reject;
    const sink = archive.entry(header, (error) => {
      settled = true;
      if (error) reject(error);
      else resolve();
    });
    // streamx emits 'error' on destroy even with no listener; the failure reaches us through the callback.
    sink.on('error', () => undefined);
    void copy(sink);
  });
  async function copy(sink: StreamxWritable) {
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        if (settled) return;
        if (!sink.write(chunk)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              sink.off('drain', done);
              sink.off('close', done);
              resolve();
            };
            sink.on('drain', done);
            sink.on('close', done);
          });
          if (sink.destroyed) throw new Error(`tar stream closed while writing ${header.name}`);
        }
      }
      sink.end(null);
    } catch (error) {
      archive.destroy(error as Error);
      fail(error as Error);
    }
  }
  await done;
}
