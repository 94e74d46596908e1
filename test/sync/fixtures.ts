import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RegistryClient } from '../../src/client/registry-client.ts';
import type { Digest } from '../../src/digest/digest.ts';
import { parseManifest } from '../../src/oci/manifest.ts';
import { makeImage, makeIndex, type TestImage } from '../../src/testing/images.ts';
import { pushImage, pushManifest } from '../../src/testing/push.ts';

export const SKIFF = fileURLToPath(new URL('../../bin/skiff', import.meta.url));

export interface SyncRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts `skiff sync …` as a child (in `options.cwd` when given); `done` resolves when it exits. */
export function startSync(args: string[], env: NodeJS.ProcessEnv = {}, options: { cwd?: string } = {}): { child: ChildProcess; done: Promise<SyncRun> } {
  const child = spawn(SKIFF, ['sync', ...args], { env: { ...process.env, DOCKER_CONFIG: '/nonexistent-skiff-test', ...env }, stdio: ['ignore', 'pipe', 'pipe'], ...(options.cwd ? { cwd: options.cwd } : {}) });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<SyncRun>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, done };
}

export function runSync(args: string[], env: NodeJS.ProcessEnv = {}, options: { cwd?: string } = {}): Promise<SyncRun> {
  return startSync(args, env, options).done;
}

/** Writes images.json (and an empty-or-given auth.json) into a fresh directory. */
export async function writeConfig(images: Record<string, string | string[]>, auth: Record<string, unknown> = {}): Promise<{ dir: string; images: string; auth: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-sync-'));
  await writeFile(join(dir, 'images.json'), JSON.stringify(images, null, 2));
  await writeFile(join(dir, 'auth.json'), JSON.stringify(auth, null, 2));
  return { dir, images: join(dir, 'images.json'), auth: join(dir, 'auth.json') };
}

/** Pushes an amd64+arm64 index (children by digest, the index by tag). */
export async function pushMultiArch(baseUrl: string, repository: string, tag: string, seed: string, format: 'oci' | 'docker' = 'oci'): Promise<{ index: ReturnType<typeof makeIndex>; images: TestImage[] }> {
  const images = [
    await makeImage({ seed: `${seed}-amd64`, format, platform: { os: 'linux', architecture: 'amd64' } }),
    await makeImage({ seed: `${seed}-arm64`, format, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }),
  ];
  for (const image of images) await pushImage(baseUrl, repository, image);
  const index = makeIndex(images, format);
  await pushManifest(baseUrl, repository, tag, index);
  return { index, images };
}

export async function pushSimple(baseUrl: string, repository: string, tag: string, seed: string, layers = 2, layerSize = 1024): Promise<TestImage> {
  const image = await makeImage({ seed, layers, layerSize });
  await pushImage(baseUrl, repository, image, tag);
  return image;
}

/**
 * Every manifest reachable from a repository's tags, with every blob it names checked present:
 * what a destination must look like after any sync, even an interrupted one.
 */
export async function walkRepository(host: string, repository: string): Promise<{ tags: Record<string, Digest>; manifests: Set<Digest>; blobs: Set<Digest>; missing: string[] }> {
  const client = new RegistryClient({ registry: host });
  const tags: Record<string, Digest> = {};
  const manifests = new Set<Digest>();
  const blobs = new Set<Digest>();
  const missing: string[] = [];
  const visit = async (reference: string, via: string): Promise<Digest | undefined> => {
    const head = await client.headManifest(repository, reference);
    if (!head) {
      missing.push(`manifest ${reference} (from ${via})`);
      return undefined;
    }
    const { body, descriptor } = await client.getManifest(repository, reference);
    manifests.add(descriptor.digest);
    const parsed = parseManifest(body, descriptor.mediaType);
    if (parsed.kind === 'index') for (const child of parsed.manifests) await visit(child.digest, descriptor.digest);
    else
      for (const blob of [parsed.config!, ...parsed.layers]) {
        blobs.add(blob.digest);
        if ((await client.headBlob(repository, blob.digest)) === undefined) missing.push(`blob ${blob.digest} (from ${descriptor.digest})`);
      }
    return descriptor.digest;
  };
  let list: string[] = [];
  try {
    list = await client.listTags(repository);
  } catch (error) {
    if ((error as { status?: number }).status !== 404) throw error;
  }
  for (const tag of list) {
    const digest = await visit(tag, `tag ${tag}`);
    if (digest) tags[tag] = digest;
  }
  await client.close();
  return { tags, manifests, blobs, missing };
}
