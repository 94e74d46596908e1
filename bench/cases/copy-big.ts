/**
 * Copy `big-0` registry → registry: `skiff sync` vs `skopeo copy --preserve-digests`, from the shared
 * CNCF source into two destinations, each fresh and empty per round: `skiff serve` (issue 14's
 * target row) and the CNCF registry (reported beside it). The four contestants run interleaved in
 * the same rounds. The floor is the slowest of loopback transfer, sha256 and the fsync'd disk write
 * of the image's bytes.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { skiffSync, skopeoCopy } from '../clients.ts';
import type { Context } from '../context.ts';
import { bytesFloor, loopbackLimit } from '../measure/limits.ts';
import { series, type Row, type Series } from '../model.ts';
import type { RunResult } from '../proc.ts';
import { expectImage } from '../registry.ts';
import { interleave, type Contestant } from '../rounds.ts';
import { startCncf } from '../servers/cncf.ts';
import type { Server } from '../servers/server.ts';
import { startSkiff } from '../servers/skiff.ts';

type Copy = (dir: string, dest: string) => Promise<RunResult>;

export async function copyBigCase(ctx: Context): Promise<Row[]> {
  const big = await ctx.set('big');
  const image = big.images[0]!;
  const source = await ctx.source('big');
  await loopbackLimit(ctx);
  const bytes = image.manifest.size + image.blobs.reduce((sum, blob) => sum + blob.size, 0);
  const make = (id: string, destination: string, note: string): Row => ({
    id,
    title: `copy big-0 (${ctx.options.bigMiB} MiB) CNCF → ${destination}`,
    unit: 's',
    better: 'lower',
    skiff: series(),
    peerName: 'skopeo copy',
    peer: series(),
    note,
  });
  const toSkiff = make('copy-big-serve', 'skiff serve', `fresh empty \`skiff serve\` destination per round (its own data dir, default settings); ${(bytes / 1e6).toFixed(1)} MB; \`skiff sync\` of one image vs \`skopeo copy --preserve-digests\``);
  const toCncf = make('copy-big', 'CNCF registry', 'fresh empty CNCF registry destination per round');
  const floor = bytesFloor(ctx.limits, bytes);
  for (const row of [toSkiff, toCncf]) if (floor) row.limit = floor;

  let counter = 0;
  const contestant = (name: string, copy: Copy, start: () => Promise<Server>, target: Series): Contestant => ({
    name,
    series: [target],
    async round() {
      const dir = join(ctx.runDir, `copy-${++counter}`);
      await mkdir(dir, { recursive: true });
      const dest = await start();
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
  const skiffClient: Copy = (dir, dest) => skiffSync(ctx.skiff, dir, [image], source.host, dest);
  const skopeoClient: Copy = (_dir, dest) => skopeoCopy(image, source.host, dest);
  const serve = (): Promise<Server> => startSkiff(ctx.skiff, ctx.runDir);
  const cncf = (): Promise<Server> => startCncf(ctx.runDir, 'destination');
  await interleave(
    ctx.options.rounds,
    [
      contestant('skiff sync → skiff serve', skiffClient, serve, toSkiff.skiff),
      contestant('skopeo copy → skiff serve', skopeoClient, serve, toSkiff.peer),
      contestant('skiff sync → CNCF', skiffClient, cncf, toCncf.skiff),
      contestant('skopeo copy → CNCF', skopeoClient, cncf, toCncf.peer),
    ],
    ctx.log,
  );
  return [toSkiff, toCncf];
}
