/**
 * Manifest GET by tag and by digest under load (wrk, 50 connections), skiff vs the CNCF registry:
 * requests/s and p99 latency. Both serve `small-00` (and the `multi` index) after a skopeo push;
 * a 1 s warm-up per server and URL lets V8 optimise before anything is counted.
 */
import { createHash } from 'node:crypto';
import type { Context } from '../context.ts';
import { MANIFEST_ACCEPT } from '../gen/media-types.ts';
import { load } from '../measure/wrk.ts';
import { series, type Row, type Series } from '../model.ts';
import { expectImage, pushImage } from '../registry.ts';
import { interleave, type Contestant } from '../rounds.ts';
import { startCncf } from '../servers/cncf.ts';
import type { Server } from '../servers/server.ts';
import { startSkiff } from '../servers/skiff.ts';

const CONNECTIONS = 50;

export async function manifestGetCase(ctx: Context): Promise<Row[]> {
  const small = await ctx.set('small');
  const multi = await ctx.set('multi');
  const image = small.images[0]!;
  const seconds = ctx.options.manifestSeconds;
  const make = (id: string, title: string, unit: string, better: Row['better']): Row => ({ id, title, unit, better, skiff: series(), peerName: 'CNCF registry', peer: series() });
  const rows = {
    tagRps: make('manifest-tag-rps', `manifest GET by tag, ${CONNECTIONS} conn, ${seconds} s`, 'req/s', 'higher'),
    tagP99: make('manifest-tag-p99', 'manifest GET by tag, p99 latency', 'ms', 'lower'),
    digestRps: make('manifest-digest-rps', `manifest GET by digest, ${CONNECTIONS} conn, ${seconds} s`, 'req/s', 'higher'),
    digestP99: make('manifest-digest-p99', 'manifest GET by digest, p99 latency', 'ms', 'lower'),
  };

  const servers: Server[] = [];
  try {
    servers.push(await startSkiff(ctx.skiff, ctx.runDir));
    servers.push(await startCncf(ctx.runDir));
    for (const server of servers) {
      await pushImage(small, image, server.host);
      await pushImage(multi, multi.images[0]!, server.host);
      await expectImage(server.host, image);
      await expectImage(server.host, multi.images[0]!);
      await checkGet(server, image.repo, image.manifest.digest, image.manifest.digest, image.manifest.mediaType);
      await checkGet(server, image.repo, image.tag, image.manifest.digest, image.manifest.mediaType);
    }
    const headers = { Accept: MANIFEST_ACCEPT };
    const url = (server: Server, ref: string): string => `${server.url}/v2/${image.repo}/manifests/${ref}`;
    for (const server of servers) for (const ref of [image.tag, image.manifest.digest]) await load(url(server, ref), { connections: CONNECTIONS, seconds: 1, headers });

    const loader = (server: Server, ref: string, rps: Series, p99: Series): Contestant => ({
      name: `${server.name} ${ref === image.tag ? 'by tag' : 'by digest'}`,
      series: [rps, p99],
      async round() {
        const result = await load(url(server, ref), { connections: CONNECTIONS, seconds, headers });
        rps.samples.push(result.rps);
        rps.extra.push({ requests: result.requests, p50ms: result.p50ms });
        p99.samples.push(result.p99ms);
      },
    });
    const [skiff, cncf] = servers as [Server, Server];
    await interleave(
      ctx.options.rounds,
      [
        loader(skiff, image.tag, rows.tagRps.skiff, rows.tagP99.skiff),
        loader(cncf, image.tag, rows.tagRps.peer, rows.tagP99.peer),
        loader(skiff, image.manifest.digest, rows.digestRps.skiff, rows.digestP99.skiff),
        loader(cncf, image.manifest.digest, rows.digestRps.peer, rows.digestP99.peer),
      ],
      ctx.log,
    );
  } finally {
    for (const server of servers.reverse()) await server.stop();
  }
  return [rows.tagRps, rows.tagP99, rows.digestRps, rows.digestP99];
}

/** One GET before the load: the right bytes and media type, so wrk's 2xx count means what we think. */
async function checkGet(server: Server, repo: string, ref: string, digest: string, mediaType: string): Promise<void> {
  const res = await fetch(`${server.url}/v2/${repo}/manifests/${ref}`, { headers: { Accept: MANIFEST_ACCEPT }, signal: AbortSignal.timeout(10_000) });
  const body = Buffer.from(await res.arrayBuffer());
  const type = res.headers.get('content-type');
  const actual = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  if (res.status !== 200 || actual !== digest || type !== mediaType) {
    throw new Error(`${server.name} GET ${repo}:${ref}: HTTP ${res.status}, ${type}, body ${actual}; expected ${mediaType} ${digest}`);
  }
}
