/** Streams bytes into an OCI layout's blobs/sha256/ while hashing them, then names the file by digest. */
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Duplex, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string };
}

function blobsDir(layout: string): string {
  return join(layout, 'blobs', 'sha256');
}

/** `through` (e.g. gzip) sits between source and hashing: the digest is of the bytes written. */
export async function writeBlobStream(layout: string, mediaType: string, source: Readable, through: Duplex): Promise<Descriptor> {
  await mkdir(blobsDir(layout), { recursive: true });
  const temp = join(blobsDir(layout), `.tmp-${randomUUID()}`);
  const hash = createHash('sha256');
  let size = 0;
  await pipeline(
    source,
    through,
    async function* (chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) {
        hash.update(chunk);
        size += chunk.length;
        yield chunk;
      }
    },
    createWriteStream(temp),
  );
  const hex = hash.digest('hex');
  await rename(temp, join(blobsDir(layout), hex));
  return { mediaType, digest: `sha256:${hex}`, size };
}

export async function writeBlobBytes(layout: string, mediaType: string, data: Buffer): Promise<Descriptor> {
  await mkdir(blobsDir(layout), { recursive: true });
  const hex = createHash('sha256').update(data).digest('hex');
  await writeFile(join(blobsDir(layout), hex), data);
  return { mediaType, digest: `sha256:${hex}`, size: data.length };
}

export function blobPath(layout: string, digest: string): string {
  return join(blobsDir(layout), digest.replace(/^sha256:/, ''));
}
