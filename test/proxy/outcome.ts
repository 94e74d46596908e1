/** What one caller of a fill got, shared by the BlobFills tests. Not a test file. */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';

/** The bytes and their digest, or the error and how many bytes came before it. */
export type Outcome = { ok: true; bytes: number; digest: string } | { ok: false; bytes: number; error: unknown };

/** Reads `stream` to its end (or error), hashing as it goes. */
export async function consume(stream: Readable, onData?: (bytes: number) => void): Promise<Outcome> {
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      hash.update(chunk);
      bytes += chunk.length;
      onData?.(bytes);
    }
  } catch (error) {
    return { ok: false, bytes, error };
  }
  return { ok: true, bytes, digest: `sha256:${hash.digest('hex')}` };
}

/** A failure before the first byte (opening the source) as an Outcome too. */
export async function outcomeOf(work: () => Promise<Outcome>): Promise<Outcome> {
  try {
    return await work();
  } catch (error) {
    return { ok: false, bytes: 0, error };
  }
}
