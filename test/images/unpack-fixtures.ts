import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImageStore } from '../../src/images/store.ts';
import { unpack, type UnpackResult } from '../../src/images/unpack.ts';
import { makeImageFromLayers, type LayerEntry } from '../../src/testing/layers.ts';
import { storeTestImage } from '../../src/testing/store-image.ts';

/** A temp dir with a store; `unpackLayers` stores an image made of the given layers and unpacks it. */
export interface UnpackBench {
  dir: string;
  store: ImageStore;
  /** Unpacks into `<dir>/<name>` (a new directory each call). */
  unpackLayers(layers: LayerEntry[][], name?: string): Promise<UnpackResult>;
  cleanup(): Promise<void>;
}

let counter = 0;

export async function unpackBench(): Promise<UnpackBench> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-unpack-'));
  const store = await ImageStore.open(join(dir, 'store'));
  return {
    dir,
    store,
    async unpackLayers(layers, name) {
      const tag = `unpack/test:t${++counter}`;
      await storeTestImage(store, await makeImageFromLayers(layers, { seed: tag }), `docker.io/${tag}`);
      return unpack(store, tag, join(dir, name ?? `rootfs-${counter}`));
    },
    async cleanup() {
      await rm(dir, { recursive: true, force: true });
    },
  };
}
