import { Readable } from 'node:stream';
import type { ImageRecord, ImageStore } from '../images/store.ts';
import { recordImage } from '../images/record.ts';
import type { TestImage } from './images.ts';

/** Puts a test image straight into a local store (no registry), recorded and optionally tagged. */
export async function storeTestImage(store: ImageStore, image: TestImage, name?: string): Promise<ImageRecord> {
  for (const item of [...image.blobs, image.manifest]) await store.blobs.put(Readable.from([item.data]), item.descriptor.digest, item.descriptor.size);
  const record = await recordImage(store, image.manifest.descriptor);
  if (name) await store.tag(name, image.manifest.descriptor);
  else await store.addUntagged(image.manifest.descriptor);
  return record;
}
