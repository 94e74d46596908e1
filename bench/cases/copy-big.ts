/**
 * Copy `big-0` registry → registry: `skiff sync` vs `skopeo copy --preserve-digests`, from the shared
 * CNCF source into a fresh, empty CNCF registry per round. The limit is hashing the bytes once at
 * one core's sha256 rate (a copy must verify what it moves).
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { skiffSync, skopeoCopy } from '../clients.ts';
import type { Context } from '../context.ts';
import { series, type Row, type Series } from '../model.ts';
import type { RunResult } from '../proc.ts';
import { expectImage } from '../registry.ts';
import { interleave, type Contestant } from '../rounds.ts';
import { startCncf } from '../servers/cncf.ts';

export async function copyBigCase(ctx: Context): Promise<Row[]> {
  const big = await ctx.set('big');
  const image = big.images[0]!;
  const source = await ctx.source('big');
  const bytes = image.manifest.size + image.blobs.reduce((sum, blob) => sum + blob.size, 0);
  const row: Row = {
    id: 'copy-big',
    title: `copy big-0 (${ctx.options.bigMiB} MiB) registry → registry`,
    unit: 's',
    better: 'lower',
    skiff: series(),
    peerName: 'skopeo copy',
    peer: series(),
    note: 'fresh empty CNCF destination per round',
  };
  if (ctx.limits.sha256MBps) row.limit = { name: 'sha256, one core', value: bytes / 1e6 / ctx.limits.sha256MBps };

  let counter = 0;
  const contestant = (name: string, copy: (dir: string, dest: string) => Promise<RunResult>, target: Series): Contestant => ({
    name,
    series: [target],
    async round() {
      const dir = join(ctx.runDir, `copy-${++counter}`);
      await mkdir(dir, { recursive: true });
      const dest = await startCncf(ctx.runDir, 'destination');
      try {
        const result = await copy(dir, dest.host);
        await expectImage(dest.host, image);
        target.samples.push(result.ms / 1000);
      } finally {
        await dest.stop();
        await rm(dir, { recursive: true, force: true });
      }
    },
  });
  await interleave(
    ctx.options.rounds,
    [
      contestant('skiff sync', (dir, dest) => skiffSync(ctx.skiff, dir, [image], source.host, dest), row.skiff),
      contestant('skopeo copy', (_dir, dest) => skopeoCopy(image, source.host, dest), row.peer),
    ],
    ctx.log,
  );
  return [row];
}
