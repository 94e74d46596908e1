/**
 * GET of one `big` blob, 1 stream and 8 parallel streams, from skiff, the CNCF registry and nginx
 * (the sendfile limit), interleaved per round; skiff's and CNCF's resident memory is sampled during
 * the 8-stream GETs. Both registries hold the blob after a skopeo push; one warm-up GET each puts
 * every copy in the page cache, so the disk is out of the picture.
 */
import type { Context } from '../context.ts';
import { blobPath } from '../gen/blob-writer.ts';
import { downloadMany } from '../measure/curl-get.ts';
import { rssMiB, sampleRss } from '../measure/rss.ts';
import { series, type Row, type Series } from '../model.ts';
import { expectImage, pushImage } from '../registry.ts';
import { interleave, type Contestant } from '../rounds.ts';
import { startCncf } from '../servers/cncf.ts';
import { startNginx } from '../servers/nginx.ts';
import type { Server } from '../servers/server.ts';
import { startSkiff } from '../servers/skiff.ts';
import { summarize } from '../stats.ts';

export async function blobGetCase(ctx: Context): Promise<Row[]> {
  const big = await ctx.set('big');
  const image = big.images[0]!;
  const layer = image.blobs.find((blob) => blob.size > 1024 * 1024)!;
  const rows = {
    one: row('blob-get-1', `blob GET, 1 stream (${ctx.options.bigMiB} MiB, repeated to ~1 GiB per sample)`, 'MB/s', 'higher'),
    eight: row('blob-get-8', `blob GET, 8 parallel streams (${ctx.options.bigMiB} MiB each)`, 'MB/s', 'higher'),
    rss: row('rss-blob-get-8', 'server peak RSS during the 8-stream GETs', 'MiB', 'lower'),
  };
  const nginxOne = series();
  const nginxEight = series();

  const servers: Server[] = [];
  try {
    const skiff = await startSkiff(ctx.skiff, ctx.runDir);
    servers.push(skiff);
    const cncf = await startCncf(ctx.runDir);
    servers.push(cncf);
    // nginx serves the layout's own blob file: the same bytes, without any registry in between.
    const nginx = await startNginx(ctx.runDir, big.layout);
    servers.push(nginx);
    for (const server of [skiff, cncf]) {
      await pushImage(big, image, server.host);
      await expectImage(server.host, image);
    }
    const url = (server: Server): string =>
      server === nginx ? `${server.url}/${blobPath('', layer.digest)}` : `${server.url}/v2/${image.repo}/blobs/${layer.digest}`;
    for (const server of servers) await downloadMany(url(server), 1, layer.size); // warm-up
    // About 1 GiB per one-stream sample: a 64 MiB GET alone lasts ~25 ms, within scheduler noise.
    const repeat = Math.max(1, Math.round(1024 / ctx.options.bigMiB));
    const idle = { skiff: rssMiB(skiff.pid), cncf: rssMiB(cncf.pid) };

    const getter = (name: string, server: Server, streams: number, target: Series, rss?: Series): Contestant => ({
      name: `${name} ×${streams}`,
      series: rss ? [target, rss] : [target],
      async round() {
        const sampler = rss ? sampleRss(server.pid) : undefined;
        try {
          const result = await downloadMany(url(server), streams, layer.size, streams === 1 ? repeat : 1);
          target.samples.push(result.mbps);
          target.extra.push({ seconds: result.seconds, bytes: result.bytes });
        } finally {
          const memory = sampler?.stop();
          if (memory && rss) {
            rss.samples.push(memory.peakMiB);
            rss.extra.push({ anonPeakMiB: memory.peakAnonMiB, hwmMiB: memory.hwmMiB, samples: memory.samples });
          }
        }
      },
    });
    await interleave(
      ctx.options.rounds,
      [
        getter('skiff serve', skiff, 1, rows.one.skiff),
        getter('docker-registry', cncf, 1, rows.one.peer),
        getter('nginx', nginx, 1, nginxOne),
        getter('skiff serve', skiff, 8, rows.eight.skiff, rows.rss.skiff),
        getter('docker-registry', cncf, 8, rows.eight.peer, rows.rss.peer),
        getter('nginx', nginx, 8, nginxEight),
      ],
      ctx.log,
    );
    rows.rss.skiff.extra.push({ idleMiB: idle.skiff.rss, idleAnonMiB: idle.skiff.anon });
    rows.rss.peer.extra.push({ idleMiB: idle.cncf.rss, idleAnonMiB: idle.cncf.anon });
    const anon = (s: Series): string => summarize(s.extra.flatMap((e) => (typeof e.anonPeakMiB === 'number' ? [e.anonPeakMiB] : [])))?.median.toFixed(0) ?? '?';
    rows.rss.note =
      `VmRSS sampled every 5 ms. Idle before the GETs: skiff ${idle.skiff.rss.toFixed(0)} MiB (anon ${idle.skiff.anon.toFixed(0)}), ` +
      `CNCF ${idle.cncf.rss.toFixed(0)} MiB (anon ${idle.cncf.anon.toFixed(0)}); peak RssAnon (heap and buffers, without mapped code): ` +
      `skiff ${anon(rows.rss.skiff)} MiB, CNCF ${anon(rows.rss.peer)} MiB`;
  } finally {
    for (const server of servers.reverse()) await server.stop();
  }
  const limit = (name: string, s: Series) => {
    const median = summarize(s.samples)?.median;
    return median === undefined ? undefined : { name, value: median, samples: s.samples };
  };
  const one = limit('nginx sendfile, 1 stream', nginxOne);
  const eight = limit('nginx sendfile, 8 streams', nginxEight);
  if (one) rows.one.limit = one;
  if (eight) rows.eight.limit = eight;
  for (const [r, nginx] of [[rows.one, nginxOne], [rows.eight, nginxEight]] as const) {
    const notes: string[] = [];
    if (nginx.errors.length) notes.push(`nginx: ${nginx.errors.join('; ')}`);
    const skiffMedian = summarize(r.skiff.samples)?.median;
    if (r.limit && skiffMedian !== undefined && skiffMedian > r.limit.value) {
      notes.push('skiff beat nginx here: on this VM loopback nginx sendfile is no hard ceiling (% of limit over 100%)');
    }
    if (notes.length) r.note = notes.join('; ');
  }
  return [rows.one, rows.eight, rows.rss];
}

function row(id: string, title: string, unit: string, better: Row['better']): Row {
  return { id, title, unit, better, skiff: series(), peerName: 'CNCF registry', peer: series() };
}
