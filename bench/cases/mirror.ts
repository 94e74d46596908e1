/**
 * The mirror rows of issue 11, side by side with the CNCF registry in proxy mode, in one run:
 * `big-0` (one `big` layer) sits in a CNCF registry of its own, the upstream, whose access log and
 * in-flight gauge count what it gives out (measure/upstream-log.ts). Each round, interleaved:
 *
 * - **direct**: skopeo pulls from the upstream itself: the floor of any pull through a mirror;
 * - **skiff**: a fresh `skiff serve --proxy <upstream>` (empty data directory), a cold pull through
 *   it, then a warm pull of the same image, then cold pulls of the 20 `small` images (3 × 1 MiB
 *   layers each) one after another, where the per-request latency of a cache shows; the server
 *   stops;
 * - **CNCF**: the same with a fresh `docker-registry` whose config has `proxy: { remoteurl }`.
 *
 * The order rotates from round to round (direct, skiff, CNCF; skiff, CNCF, direct; …).
 *
 * The client is skopeo copy into a fresh `oci:` directory every time: the same for every
 * contestant, the library podman, buildah and CRI-O pull with, and not skiff's own code. It is
 * also the lighter of the two clients on CPU (the pull rows: skiff checks DiffIDs, skopeo does
 * not), so more of the time is the server's.
 * After a cold pull the case waits until the upstream has had no request in flight for 300 ms:
 * the CNCF proxy goes on storing a blob after its client is served, and those bytes count for the
 * pull that caused them (and the warm pull must not race that fill). Cold and warm times are
 * skopeo's wall times; upstream bytes are the bodies of the 2xx blob responses in the upstream's
 * access log for the cold pull, divided by the image's blob sizes (config and layer).
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from '../../src/testing/peers.ts';
import { skopeoPull } from '../clients.ts';
import type { Context } from '../context.ts';
import type { BenchImage } from '../gen/sets.ts';
import { cpuSeconds } from '../measure/cpu.ts';
import { describeRequests, UpstreamLog, type Forwarded } from '../measure/upstream-log.ts';
import { series, type Row, type Series } from '../model.ts';
import { expectImage, expectSet, pushImage, pushSet } from '../registry.ts';
import { interleave, type Contestant } from '../rounds.ts';
import { startCncf } from '../servers/cncf.ts';
import type { Server } from '../servers/server.ts';
import { startSkiff } from '../servers/skiff.ts';
import { summarize } from '../stats.ts';

const MB = 1e6;

/** Body bytes of the 2xx blob responses: the image content an upstream gave out. */
function blobBytes(records: Forwarded[]): number {
  return records.filter((r) => r.method === 'GET' && r.status >= 200 && r.status < 300 && r.url.includes('/blobs/')).reduce((sum, r) => sum + r.bytes, 0);
}

function manifestBytes(records: Forwarded[]): number {
  return records.filter((r) => r.method === 'GET' && r.url.includes('/manifests/')).reduce((sum, r) => sum + r.bytes, 0);
}

export async function mirrorCase(ctx: Context): Promise<Row[]> {
  const big = await ctx.set('big');
  const small = await ctx.set('small');
  const image = big.images[0]!;
  const blobSizes = image.blobs.reduce((sum, blob) => sum + blob.size, 0);
  const mib = ctx.options.bigMiB;

  /** A row of skiff against the CNCF proxy, in seconds unless said. */
  const row = (id: string, title: string, extra: Partial<Row> = {}): Row => ({ id, title, unit: 's', better: 'lower', skiff: series(), peerName: 'CNCF registry proxy', peer: series(), ...extra });
  const rows = {
    cold: row('mirror-cold', `cold pull of big-0 (${mib} MiB) through a fresh mirror, skopeo copy → oci:`),
    bytes: row('mirror-cold-bytes', `upstream blob bytes of that cold pull ÷ the blob sizes (${(blobSizes / MB).toFixed(1)} MB)`, {
      unit: '×',
      limit: { name: 'the blob sizes (1×)', value: 1 },
    }),
    warm: row('mirror-warm', `warm pull of big-0 (${mib} MiB) through the same mirror, skopeo copy → oci:`),
    small: row('mirror-cold-small', `cold pulls of the 20 small images (3 × 1 MiB layers each), one after another, through the same mirror, skopeo copy → oci:`),
  };
  const direct = series();
  const directSmall = series();
  const directBytes: number[] = [];
  /** The last round's upstream requests per contestant and phase, for the notes. */
  const requests: Record<string, string> = {};

  const debugPort = await freePort();
  const counting = new UpstreamLog(`http://127.0.0.1:${debugPort}/metrics`);
  const source = await startCncf(ctx.runDir, 'upstream', { accessLog: counting.line, debugPort });
  const upstream = source.host;
  let counter = 0;

  /** skopeo into a fresh oci: directory; the wall time in seconds, after checking the digest it wrote. */
  async function pull(host: string, label: string, what = image): Promise<number> {
    const dir = join(ctx.runDir, `mirror-pull-${++counter}`);
    try {
      const result = await skopeoPull(dir, what, host);
      await expectLayout(dir, what, `${label} via ${host}`);
      return result.ms / 1000;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** The small images pulled one after another: the sum of skopeo's wall times. */
  async function pullSmall(host: string, label: string): Promise<number> {
    let seconds = 0;
    for (const each of small.images) seconds += await pull(host, label, each);
    return seconds;
  }

  const viaMirror = (name: string, key: 'skiff' | 'peer', start: () => Promise<Server>): Contestant => ({
    name,
    series: [rows.cold[key], rows.bytes[key], rows.warm[key], rows.small[key]],
    async round() {
      const server = await start();
      try {
        await counting.settle(); // nothing of the previous contestant still in flight
        const coldMark = counting.mark();
        const cpu0 = cpuSeconds(server.pid);
        const cold = await pull(server.host, `${name} cold`);
        await counting.settle();
        const cpu1 = cpuSeconds(server.pid);
        const coldRecords = counting.since(coldMark);
        const warmMark = counting.mark();
        const warm = await pull(server.host, `${name} warm`);
        const cpu2 = cpuSeconds(server.pid);
        const warmRecords = counting.since(warmMark);
        await counting.settle();
        const cpu3 = cpuSeconds(server.pid);
        rows.small[key].samples.push(await pullSmall(server.host, `${name} small`));
        rows.small[key].extra.push({ serverCpuSeconds: cpuSeconds(server.pid) - cpu3 });
        const bytes = blobBytes(coldRecords);
        rows.cold[key].samples.push(cold);
        rows.cold[key].extra.push({ serverCpuSeconds: cpu1 - cpu0 });
        rows.bytes[key].samples.push(bytes / blobSizes);
        rows.bytes[key].extra.push({ blobBytes: bytes, manifestBytes: manifestBytes(coldRecords), requests: describeRequests(coldRecords) });
        rows.warm[key].samples.push(warm);
        rows.warm[key].extra.push({ serverCpuSeconds: cpu2 - cpu1, upstreamRequests: describeRequests(warmRecords), upstreamBytes: warmRecords.reduce((s, r) => s + r.bytes, 0) });
        requests[`${key} cold`] = describeRequests(coldRecords);
        requests[`${key} warm`] = describeRequests(warmRecords);
      } finally {
        await server.stop();
      }
    },
  });

  try {
    ctx.log(`  loading big-0 into the upstream ${upstream}`);
    await pushImage(big, image, upstream);
    await expectImage(upstream, image);
    await pushSet(small, upstream);
    await expectSet(upstream, small);
    // Untimed: the path works, and the upstream's blobs are in the page cache for every round alike.
    await pull(upstream, 'warm-up');
    await pullSmall(upstream, 'warm-up');
    await interleave(
      ctx.options.rounds,
      [
        {
          name: 'direct pull',
          series: [direct, directSmall],
          async round() {
            await counting.settle();
            const mark = counting.mark();
            direct.samples.push(await pull(upstream, 'direct'));
            const records = counting.since(mark);
            directSmall.samples.push(await pullSmall(upstream, 'direct'));
            directBytes.push(blobBytes(records) / blobSizes);
            requests.direct = describeRequests(records);
          },
        },
        viaMirror('skiff mirror', 'skiff', () => startSkiff(ctx.skiff, ctx.runDir, [], ['--proxy', `http://${upstream}`])),
        viaMirror('CNCF registry proxy', 'peer', () => startCncf(ctx.runDir, 'cncf-proxy', { proxyRemote: `http://${upstream}` })),
      ],
      ctx.log,
      { rotate: true },
    );
  } finally {
    await source.stop();
  }

  const median = (samples: number[]) => summarize(samples)?.median;
  const directMedian = median(direct.samples);
  if (directMedian !== undefined) {
    // The floor of a pull through any mirror, cold or warm: the same client against the upstream itself.
    rows.cold.limit = { name: 'direct pull from the upstream', value: directMedian, samples: direct.samples };
    rows.warm.limit = { name: 'direct pull from the upstream', value: directMedian, samples: direct.samples };
  }
  const directSmallMedian = median(directSmall.samples);
  if (directSmallMedian !== undefined) rows.small.limit = { name: 'direct pulls from the upstream', value: directSmallMedian, samples: directSmall.samples };
  /** Median server CPU seconds per pull (user + system), from the rows' extras. */
  const cpu = (s: Series) => summarize(s.extra.flatMap((e) => (typeof e.serverCpuSeconds === 'number' ? [e.serverCpuSeconds] : [])))?.median.toFixed(2) ?? '?';
  const times = (s: Series, base = directMedian) => {
    const m = median(s.samples);
    return m === undefined || base === undefined ? '?' : `${(m / base).toFixed(2)}×`;
  };
  rows.cold.note =
    `fresh server and empty cache per round; direct pull ${directMedian?.toFixed(2) ?? '?'} s` +
    `${direct.errors.length ? ` (failed: ${direct.errors[0]})` : ''}; skiff ${times(rows.cold.skiff)} direct, CNCF proxy ${times(rows.cold.peer)} direct; ` +
    `server CPU per cold pull (until the upstream is idle) skiff ${cpu(rows.cold.skiff)} s, CNCF proxy ${cpu(rows.cold.peer)} s; upstream: the CNCF registry on loopback`;
  rows.bytes.note =
    `2xx blob response bodies in the upstream's access log, including what a cache fetches after its client is done; ` +
    `last round's upstream requests — direct: ${requests.direct ?? '?'}; skiff: ${requests['skiff cold'] ?? '?'}; CNCF proxy: ${requests['peer cold'] ?? '?'}; ` +
    `direct pull ${directBytes.map((x) => `${x.toFixed(2)}×`).join(' ') || '?'}` +
    (counting.unparsed.length ? `; access-log lines not understood (not counted): ${counting.unparsed.slice(0, 2).join(' | ')}` : '');
  rows.warm.note =
    `right after the cold pull, same server; upstream requests during the warm pull — skiff: ${requests['skiff warm'] ?? '?'} (tag TTL 5 min); ` +
    `CNCF proxy: ${requests['peer warm'] ?? '?'}; server CPU per warm pull skiff ${cpu(rows.warm.skiff)} s, CNCF proxy ${cpu(rows.warm.peer)} s`;
  rows.small.note =
    `right after the warm pull, same server, every image cold (${small.images.length} images, ${(small.bytes / MB).toFixed(1)} MB); the sum of skopeo's wall times; ` +
    `direct pulls ${directSmallMedian?.toFixed(2) ?? '?'} s; skiff ${times(rows.small.skiff, directSmallMedian)} direct, CNCF proxy ${times(rows.small.peer, directSmallMedian)} direct; ` +
    `server CPU skiff ${cpu(rows.small.skiff)} s, CNCF proxy ${cpu(rows.small.peer)} s`;
  return [rows.cold, rows.bytes, rows.warm, rows.small];
}

/** Throws unless skopeo's layout holds the image under the expected manifest digest. */
async function expectLayout(dir: string, image: BenchImage, what: string): Promise<void> {
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const digest = index.manifests[0]?.digest;
  if (digest !== image.manifest.digest) throw new Error(`${what}: manifest ${digest ?? 'none'}, expected ${image.manifest.digest}`);
}
