/**
 * Sync `small` (20 images) registry → registry, then the same sync again (a no-op: everything is
 * there), `skiff sync` vs `skopeo sync`. Both read the shared CNCF source and write into a freshly
 * started, empty CNCF registry per round, so only the client differs and every first sync copies
 * all 60 layers.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { skiffSync, skopeoSync } from '../clients.ts';
import type { Context } from '../context.ts';
import { series, type Row, type Series } from '../model.ts';
import type { RunResult } from '../proc.ts';
import { expectSet } from '../registry.ts';
import { interleave, type Contestant } from '../rounds.ts';
import { startCncf } from '../servers/cncf.ts';

type Sync = (dir: string, src: string, dest: string) => Promise<RunResult>;

export async function syncCase(ctx: Context): Promise<Row[]> {
  const small = await ctx.set('small');
  const source = await ctx.source('small');
  const make = (id: string, title: string): Row => ({ id, title, unit: 's', better: 'lower', skiff: series(), peerName: 'skopeo sync', peer: series() });
  const full = make('sync-small', 'sync small (20 images × 3 MiB) registry → registry');
  const noop = make('sync-noop', 'no-op re-sync of small');
  full.note = 'fresh empty CNCF destination per round; `skiff sync -p 5`, `skopeo sync --src yaml`';

  let counter = 0;
  const contestant = (name: string, sync: Sync, first: Series, again: Series): Contestant => ({
    name,
    series: [first, again],
    async round() {
      const dir = join(ctx.runDir, `sync-${++counter}`);
      await mkdir(dir, { recursive: true });
      const dest = await startCncf(ctx.runDir, 'destination');
      try {
        const copied = await sync(dir, source.host, dest.host);
        await expectSet(dest.host, small);
        first.samples.push(copied.ms / 1000);
        const repeated = await sync(dir, source.host, dest.host);
        again.samples.push(repeated.ms / 1000);
      } finally {
        await dest.stop();
        await rm(dir, { recursive: true, force: true });
      }
    },
  });
  await interleave(
    ctx.options.rounds,
    [
      contestant('skiff sync', (dir, src, dest) => skiffSync(ctx.skiff, dir, small.images, src, dest), full.skiff, noop.skiff),
      contestant('skopeo sync', (dir, src, dest) => skopeoSync(dir, small.images, src, dest), full.peer, noop.peer),
    ],
    ctx.log,
  );
  return [full, noop];
}
