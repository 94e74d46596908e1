import { mkdir, readdir, realpath } from 'node:fs/promises';
import { DigestingStream } from '../digest/digesting-stream.ts';
import { decompressLayer } from './decompress.ts';
import { selectImage } from './image-selection.ts';
import { LayerApplier, type SkippedEntry } from './layer-apply.ts';
import { DiffIdMismatchError } from './record.ts';
import type { ImageRecord, ImageStore } from './store.ts';

export interface UnpackOptions {
  /** Keep the layers' uid/gid; the default is to do so only when running as root. */
  preserveOwnership?: boolean;
}

export interface UnpackResult {
  record: ImageRecord;
  /** The root filesystem directory (real path). */
  root: string;
  /** Entries left out (devices, FIFOs). */
  skipped: SkippedEntry[];
}

export class UnpackTargetError extends Error {
  readonly code = 'UNPACK_TARGET';
  constructor(message: string) {
    super(message);
    this.name = 'UnpackTargetError';
  }
}

/**
 * Unpacks image `ref` into `dir` as a root filesystem: its layers applied in order (see
 * LayerApplier for the rules and the escape guards). `dir` must be new or empty, so that
 * whiteouts can never delete anything that was not unpacked here. Each layer's decompressed
 * stream is hashed as it is applied and must equal the DiffID the store recorded; a mismatch
 * fails with DiffIdMismatchError (the directory is then incomplete and should be removed).
 */
export async function unpack(store: ImageStore, ref: string, dir: string, options: UnpackOptions = {}): Promise<UnpackResult> {
  const { record } = await selectImage(store, ref);
  if (record.diffIds.length !== record.layers.length) {
    throw new DiffIdMismatchError(`the image lists ${record.layers.length} layers but ${record.diffIds.length} DiffIDs`);
  }
  await mkdir(dir, { recursive: true });
  if ((await readdir(dir)).length > 0) throw new UnpackTargetError(`${dir} is not empty; unpack needs a new or empty directory`);
  const root = await realpath(dir);
  const applier = new LayerApplier(root, { preserveOwnership: options.preserveOwnership ?? process.getuid?.() === 0 });
  for (const [i, layer] of record.layers.entries()) {
    const expected = record.diffIds[i]!;
    const reader = await store.blobs.reader(layer.digest);
    const decompressed = decompressLayer(reader);
    const digester = new DigestingStream();
    decompressed.on('error', (error) => digester.destroy(error));
    decompressed.pipe(digester);
    try {
      await applier.apply(digester, `layer ${i} (${layer.digest})`);
    } finally {
      reader.destroy(); // on failure, close the blob file now rather than at garbage collection
    }
    const actual = digester.digest();
    if (actual !== expected) throw new DiffIdMismatchError(`layer ${i} (${layer.digest}) unpacks to ${actual}, the image says ${expected}`);
  }
  await applier.finish();
  return { record, root, skipped: applier.skipped };
}
