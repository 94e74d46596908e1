/** The client commands the startup, sync, copy and pull cases time: `skiff --version`/`sync`/`pull` and their skopeo counterparts. */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BenchImage } from './gen/sets.ts';
import { run, type RunResult } from './proc.ts';
import { skopeo } from './registry.ts';
import type { SkiffCli } from './servers/skiff-cli.ts';

const TIMEOUT_MS = 300_000;

export function skiff(cli: SkiffCli, args: string[], cwd: string): Promise<RunResult> {
  return run(cli.node, [...cli.argsPrefix, ...args], { timeoutMs: TIMEOUT_MS, cwd });
}

/**
 * `skiff sync` with image-syncer's files: auth.json (empty: loopback registries are plain HTTP
 * without credentials) and images.json mapping `src/repo:tag` to `dest/repo` (tag kept).
 */
export async function skiffSync(cli: SkiffCli, dir: string, images: BenchImage[], src: string, dest: string): Promise<RunResult> {
  const auth = join(dir, 'auth.json');
  const list = join(dir, 'images.json');
  await writeFile(auth, '{}\n');
  await writeFile(list, JSON.stringify(Object.fromEntries(images.map((i) => [`${src}/${i.repo}:${i.tag}`, `${dest}/${i.repo}`])), null, 1));
  return skiff(cli, ['sync', '--auth', auth, '--images', list, '-p', '5'], dir);
}

/**
 * `skopeo sync --src yaml`: one invocation for the whole set, as a user would write it. Without
 * --scoped skopeo appends the repository's last path component, so `dest/bench` receives `bench/small-NN`.
 */
export async function skopeoSync(dir: string, images: BenchImage[], src: string, dest: string): Promise<RunResult> {
  const yaml = [`${src}:`, '  tls-verify: false', '  images:', ...images.map((i) => `    ${i.repo}: ["${i.tag}"]`)].join('\n');
  const file = join(dir, 'sync.yaml');
  await writeFile(file, `${yaml}\n`);
  const prefix = commonPrefix(images);
  return skopeo(['sync', '--src', 'yaml', '--dest', 'docker', '--dest-tls-verify=false', file, `${dest}/${prefix}`], TIMEOUT_MS);
}

function commonPrefix(images: BenchImage[]): string {
  const dirs = new Set(images.map((i) => i.repo.split('/').slice(0, -1).join('/')));
  if (dirs.size !== 1) throw new Error('skopeo sync needs every repository under one parent');
  return [...dirs][0]!;
}

export function skopeoCopy(image: BenchImage, src: string, dest: string): Promise<RunResult> {
  return skopeo(['copy', '--quiet', '--preserve-digests', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${src}/${image.repo}:${image.tag}`, `docker://${dest}/${image.repo}:${image.tag}`], TIMEOUT_MS);
}

export function skiffPull(cli: SkiffCli, cwd: string, root: string, image: BenchImage, src: string): Promise<RunResult> {
  return skiff(cli, ['pull', '-q', '--root', root, `${src}/${image.repo}:${image.tag}`], cwd);
}

export function skopeoPull(dir: string, image: BenchImage, src: string): Promise<RunResult> {
  return skopeo(['copy', '--quiet', '--src-tls-verify=false', `docker://${src}/${image.repo}:${image.tag}`, `oci:${dir}:${image.tag}`], TIMEOUT_MS);
}
