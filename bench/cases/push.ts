/**
 * Push `big` (both images) from an OCI layout with skopeo into skiff vs the CNCF registry.
 * Each round pushes into a freshly started, empty server: a registry that already holds the blobs
 * answers skopeo's HEAD with 200 and the push becomes a no-op, so reusing a server (or a repo name)
 * would time nothing after round 1. Server start-up is outside the timing; a `sync` before each push
 * flushes the previous round's dirty pages so no round pays for another's writeback.
 */
import type { Context } from '../context.ts';
import { series, type Row } from '../model.ts';
import { run } from '../proc.ts';
import { expectImage, pushImage } from '../registry.ts';
import { interleave } from '../rounds.ts';
import { startCncf } from '../servers/cncf.ts';
import type { Server } from '../servers/server.ts';
import { startSkiff } from '../servers/skiff.ts';

export async function pushCase(ctx: Context): Promise<Row[]> {
  const big = await ctx.set('big');
  const row: Row = {
    id: 'push-big',
    title: `push big (2 × ${ctx.options.bigMiB} MiB, skopeo oci: → registry)`,
    unit: 's',
    better: 'lower',
    skiff: series(),
    peerName: 'CNCF registry',
    peer: series(),
    note: 'fresh empty server per round',
  };
  if (ctx.limits.ddWriteMBps) row.limit = { name: 'dd fdatasync', value: big.bytes / 1e6 / ctx.limits.ddWriteMBps };

  const contestant = (name: string, target: typeof row.skiff, start: () => Promise<Server>) => ({
    name,
    series: [target],
    async round() {
      const server = await start();
      try {
        await run('sync', [], { timeoutMs: 120_000 });
        let ms = 0;
        for (const image of big.images) ms += (await pushImage(big, image, server.host)).ms;
        for (const image of big.images) await expectImage(server.host, image);
        target.samples.push(ms / 1000);
      } finally {
        await server.stop();
      }
    },
  });
  await interleave(
    ctx.options.rounds,
    [contestant('skiff serve', row.skiff, () => startSkiff(ctx.skiff, ctx.runDir)), contestant('docker-registry', row.peer, () => startCncf(ctx.runDir))],
    ctx.log,
  );
  return [row];
}
