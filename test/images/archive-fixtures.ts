import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { extract } from 'tar-stream';
import { save, type SaveResult } from '../../src/images/save.ts';
import { ImageStore } from '../../src/images/store.ts';
import { layerTar, type LayerEntry } from '../../src/testing/layers.ts';

/** A temp dir that hands out fresh stores. */
export interface ArchiveBench {
  dir: string;
  newStore(name?: string): Promise<ImageStore>;
  cleanup(): Promise<void>;
}

let counter = 0;

export async function archiveBench(): Promise<ArchiveBench> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-archive-'));
  return {
    dir,
    newStore: (name) => ImageStore.open(join(dir, name ?? `store-${++counter}`)),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Runs `save` into memory. */
export async function saveToBuffer(store: ImageStore, refs: string[]): Promise<{ tar: Buffer; result: SaveResult }> {
  const sink = new PassThrough();
  const chunks: Buffer[] = [];
  sink.on('data', (chunk: Buffer) => chunks.push(chunk));
  const result = await save(store, refs, sink);
  return { tar: Buffer.concat(chunks), result };
}

export interface TarFile {
  name: string;
  type: string;
  data: Buffer;
  linkname?: string;
}

/** Every entry of a (small, test-made) tar, in order. */
export async function readTar(tar: Buffer): Promise<TarFile[]> {
  const archive = extract();
  Readable.from([tar]).pipe(archive as unknown as NodeJS.WritableStream);
  const out: TarFile[] = [];
  for await (const entry of archive) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    out.push({ name: entry.header.name, type: entry.header.type, data: Buffer.concat(chunks), ...(entry.header.linkname ? { linkname: entry.header.linkname } : {}) });
  }
  return out;
}

export function fileOf(files: TarFile[], name: string): Buffer {
  const file = files.find((f) => f.name === name);
  if (!file) throw new Error(`${name} not in the tar (has ${files.map((f) => f.name).join(', ')})`);
  return file.data;
}

export function jsonOf<T>(files: TarFile[], name: string): T {
  return JSON.parse(fileOf(files, name).toString('utf8')) as T;
}

/** Packs entries back into a tar (any order, any names: hostile ones included). */
export async function toTar(files: TarFile[]): Promise<Buffer> {
  return layerTar(
    files.map((f) => ({
      name: f.name,
      type: f.type as LayerEntry['type'],
      data: f.data,
      ...(f.linkname !== undefined ? { linkname: f.linkname } : {}),
    })),
  );
}
