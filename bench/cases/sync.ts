/**
 * Sync `small` (20 images) registry → registry, then the same sync again (a no-op: everything is
 * there), `skiff sync` vs `skopeo sync`, into two destinations: a freshly started, empty `skiff serve`
 * (issue 14's target rows) and a freshly started, empty CNCF registry (reported beside them). All
 * read the shared CNCF source, so only the client (and the destination) differs, and every first
 * sync copies all 60 layers. The four contestants run interleaved in the same rounds.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { skiffSync, skopeoSync } from '../clients.ts';
import type { Context } from '../context.ts';
import { bytesFloor, loopbackLimit, nodeStartLimit, startFloor } from '../measure/limits.ts';
import { series, type Row, type Series } from '../model.ts';
import type { RunResult } from '../proc.ts';
import { expectSet } from '../registry.ts';
import { interleave, type Contestant } from '../rounds.ts';
import { startCncf } from '../servers/cncf.ts';
import type { Server } from '../servers/server.ts';
import { startSkiff } from '../servers/skiff.ts';

type Sync = (dir: string, src: string, dest: string) => Promise<RunResult>;

export async function syncCase(ctx: Context): Promise<Row[]> {
  const small = await ctx.set('small');
  const source = await ctx.source('small');
  await loopbackLimit(ctx);
  await nodeStartLimit(ctx);
  const make = (id: string, title: string): Row => ({ id, title, unit: 's', better: 'lower', skiff: series(), peerName: 'skopeo sync', peer: series() });
  const toSkiff = make('sync-small-serve', 'sync small (20 images × 3 MiB) CNCF → skiff serve');
  const toCncf = make('sync-small', 'sync small (20 images × 3 MiB) CNCF → CNCF registry');
  const noopSkiff = make('sync-noop-serve', 'no-op re-sync of small, CNCF → skiff serve');
  const noopCncf = make('sync-noop', 'no-op re-sync of small, CNCF → CNCF registry');
  toSkiff.note = `fresh empty \`skiff serve\` destination per round (its own data dir, default settings); ${(small.bytes / 1e6).toFixed(1)} MB; \`skiff sync -p 5\`, \`skopeo sync --src yaml\``;
  toCncf.note = 'fresh empty CNCF registry destination per round';
  noopSkiff.note = 'both no-op rows: the same command again right after the first sync, into the same destination';
  const floor = bytesFloor(ctx.limits, small.bytes);
  const noopFloor = startFloor();
  for (const row of [toSkiff, toCncf]) if (floor) row.limit = floor;
  for (const row of [noopSkiff, noopCncf]) if (noopFloor) row.limit = noopFloor;

  let counter = 0;
  const contestant = (name: string, sync: Sync, start: () => Promise<Server>, first: Series, again: Series): Contestant => ({
    name,
    series: [first, again],
    async round() {
      const dir = join(ctx.runDir, `sync-${++counter}`);
      await mkdir(dir, { recursive: true });
      const dest = await start();
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
  const skiffClient: Sync = (dir, src, dest) => skiffSync(ctx.skiff, dir, small.images, src, dest);
  const skopeoClient: Sync = (dir, src, dest) => skopeoSync(dir, small.images, src, dest);
  const serve = (): Promise<Server> => startSkiff(ctx.skiff, ctx.runDir);
  const cncf = (): Promise<Server> => startCncf(ctx.runDir, 'destination');
  await interleave(
    ctx.options.rounds,
    [
      contestant('skiff sync → skiff serve', skiffClient, serve, toSkiff.skiff, noopSkiff.skiff),
      contestant('skopeo sync → skiff serve', skopeoClient, serve, toSkiff.peer, noopSkiff.peer),
      contestant('skiff sync → CNCF', skiffClient, cncf, toCncf.skiff, noopCncf.skiff),
      contestant('skopeo sync → CNCF', skopeoClient, cncf, toCncf.peer, noopCncf.peer),
    ],
    ctx.log,
  );
  return [toSkiff, toCncf, noopSkiff, noopCncf];
}
