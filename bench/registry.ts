/** Loading images into a registry with skopeo and checking what a registry holds. */
import { MANIFEST_ACCEPT } from './gen/media-types.ts';
import type { BenchImage, ImageSet } from './gen/sets.ts';
import { run, type RunResult } from './proc.ts';

/** skopeo with the signature policy off (synthetic images are unsigned). */
export function skopeo(args: string[], timeoutMs: number): Promise<RunResult> {
  return run('skopeo', ['--insecure-policy', ...args], { timeoutMs });
}

/**
 * Push one image of a set from its OCI layout (an index with all its platforms): what the push case
 * times. `creds` (`user:password`) for a registry with authentication on.
 */
export function pushImage(set: ImageSet, image: BenchImage, host: string, timeoutMs = 300_000, creds?: string): Promise<RunResult> {
  const login = creds === undefined ? [] : [`--dest-creds=${creds}`];
  return skopeo(['copy', '--quiet', '--all', '--preserve-digests', '--dest-tls-verify=false', ...login, `oci:${set.layout}:${image.ref}`, `docker://${host}/${image.repo}:${image.tag}`], timeoutMs);
}

export async function pushSet(set: ImageSet, host: string): Promise<void> {
  // A few at a time: 20 small images one by one would spend most of the time starting skopeo.
  const queue = [...set.images];
  const worker = async (): Promise<void> => {
    for (let image = queue.shift(); image; image = queue.shift()) await pushImage(set, image, host);
  };
  await Promise.all([worker(), worker(), worker()]);
}

/** Throws unless `host` serves the image's manifest under its tag, with the expected digest. */
export async function expectImage(host: string, image: BenchImage, repo = image.repo): Promise<void> {
  const res = await fetch(`http://${host}/v2/${repo}/manifests/${image.tag}`, { method: 'HEAD', headers: { Accept: MANIFEST_ACCEPT }, signal: AbortSignal.timeout(10_000) });
  const digest = res.headers.get('docker-content-digest');
  if (res.status !== 200 || digest !== image.manifest.digest) {
    throw new Error(`${host}/${repo}:${image.tag}: HTTP ${res.status}, digest ${digest ?? 'none'}, expected ${image.manifest.digest}`);
  }
}

export async function expectSet(host: string, set: ImageSet): Promise<void> {
  for (const image of set.images) await expectImage(host, image);
}
