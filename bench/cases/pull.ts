/**
 * Pull `big-0` from the shared CNCF source into a local store: `skiff pull` (its image store) vs
 * `skopeo copy … oci:` (an OCI layout), each into a fresh directory per round. The limit is one
 * sha256 pass over the bytes.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { skiffPull, skopeoPull } from '../clients.ts';
import type { Context } from '../context.ts';
import { series, type Row, type Series } from '../model.ts';
import type { RunResult } from '../proc.ts';
import { interleave, type Contestant } from '../rounds.ts';

export async function pullCase(ctx: Context): Promise<Row[]> {
  const big = await ctx.set('big');
  const image = big.images[0]!;
  const source = await ctx.source('big');
  const bytes = image.manifest.size + image.blobs.reduce((sum, blob) => sum + blob.size, 0);
  const row: Row = {
    id: 'pull-big',
    title: `pull big-0 (${ctx.options.bigMiB} MiB) into a local store`,
    unit: 's',
    better: 'lower',
    skiff: series(),
    peerName: 'skopeo copy oci:',
    peer: series(),
    note: 'fresh store per round',
  };
  if (ctx.limits.sha256MBps) row.limit = { name: 'sha256, one core', value: bytes / 1e6 / ctx.limits.sha256MBps };

  let counter = 0;
  const contestant = (name: string, pull: (dir: string) => Promise<RunResult>, target: Series): Contestant => ({
    name,
    series: [target],
    async round() {
      const dir = join(ctx.runDir, `pull-${++counter}`);
      try {
        const result = await pull(dir);
        target.samples.push(result.ms / 1000);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  });
  await interleave(
    ctx.options.rounds,
    [
      contestant('skiff pull', (dir) => skiffPull(ctx.skiff, ctx.runDir, dir, image, source.host), row.skiff),
      contestant('skopeo copy', (dir) => skopeoPull(dir, image, source.host), row.peer),
    ],
    ctx.log,
  );
  return [row];
}
