/**
 * Pull `big-0` from the shared CNCF source into a local store: `skiff pull` (its image store, DiffIDs
 * checked) vs `skopeo copy … oci:` (an OCI layout), each into a fresh directory per round. One row
 * per size in --pull-mib (issue 14: the 200 and the 64 MiB gzip image), all interleaved in the same
 * rounds. The --big-mib image is the source's `bench/big-0`; another size is pushed into the same
 * source as `bench/big-0-<N>mib`. The floor is the slowest of loopback transfer, sha256 and the
 * fsync'd disk write of the image's bytes.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { skiff, skiffPull, skopeoPull } from '../clients.ts';
import type { Context } from '../context.ts';
import { imageSet, type BenchImage } from '../gen/sets.ts';
import { bytesFloor, loopbackLimit } from '../measure/limits.ts';
import { series, type Row, type Series } from '../model.ts';
import type { RunResult } from '../proc.ts';
import { expectImage, pushImage } from '../registry.ts';
import { interleave, type Contestant } from '../rounds.ts';

/** big-0 at `mib` MiB, present in the source registry: the image to pull (under its repository there). */
async function sourceImage(ctx: Context, mib: number, host: string): Promise<BenchImage> {
  if (mib === ctx.options.bigMiB) {
    await ctx.source('big');
    return (await ctx.set('big')).images[0]!;
  }
  const set = await imageSet('big', mib, ctx.log);
  const image = { ...set.images[0]!, repo: `${set.images[0]!.repo}-${mib}mib` };
  ctx.log(`  loading ${image.repo} (${mib} MiB) into the source registry ${host}`);
  await pushImage(set, image, host);
  await expectImage(host, image);
  return image;
}

/** Throws unless the store or layout holds the image's manifest: a pull that exits 0 but stores nothing counts for nothing. */
async function expectPulled(ctx: Context, who: 'skiff' | 'skopeo', dir: string, image: BenchImage): Promise<void> {
  const listing =
    who === 'skopeo'
      ? await readFile(join(dir, 'index.json'), 'utf8')
      : (await skiff(ctx.skiff, ['images', '--digests', '--no-trunc', '--root', dir], ctx.runDir)).stdout;
  if (!listing.includes(image.manifest.digest)) throw new Error(`${who}: ${dir} does not hold ${image.manifest.digest}:\n${listing.slice(0, 500)}`);
}

export async function pullCase(ctx: Context): Promise<Row[]> {
  const source = await ctx.source();
  await loopbackLimit(ctx);
  const rows: Row[] = [];
  const contestants: Contestant[] = [];
  let counter = 0;
  const contestant = (name: string, who: 'skiff' | 'skopeo', image: BenchImage, pull: (dir: string) => Promise<RunResult>, target: Series): Contestant => ({
    name,
    series: [target],
    async round() {
      const dir = join(ctx.runDir, `pull-${++counter}`);
      try {
        const result = await pull(dir);
        await expectPulled(ctx, who, dir, image);
        target.samples.push(result.ms / 1000);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  });

  for (const mib of ctx.options.pullMiB) {
    const image = await sourceImage(ctx, mib, source.host);
    const bytes = image.manifest.size + image.blobs.reduce((sum, blob) => sum + blob.size, 0);
    const row: Row = {
      id: `pull-${mib}mib`,
      title: `pull big-0 (${mib} MiB gzip layer) into a local store`,
      unit: 's',
      better: 'lower',
      skiff: series(),
      peerName: 'skopeo copy oci:',
      peer: series(),
      note: `fresh store per round; ${(bytes / 1e6).toFixed(1)} MB (manifest, config, layer); skiff checks DiffIDs (a gunzip and a second sha256 of the layer, not in the floor)`,
    };
    const floor = bytesFloor(ctx.limits, bytes);
    if (floor) row.limit = floor;
    rows.push(row);
    contestants.push(
      contestant(`skiff pull ${mib} MiB`, 'skiff', image, (dir) => skiffPull(ctx.skiff, ctx.runDir, dir, image, source.host), row.skiff),
      contestant(`skopeo copy ${mib} MiB`, 'skopeo', image, (dir) => skopeoPull(dir, image, source.host), row.peer),
    );
  }
  await interleave(ctx.options.rounds, contestants, ctx.log);
  return rows;
}
