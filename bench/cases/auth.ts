/**
 * Manifest GET by tag under load (wrk, 50 connections) with authentication on: skiff must keep its
 * lead, so a Bearer token is verified once and its verdict cached until it expires, and bcrypt runs
 * only at the token endpoint or on a Basic cache miss. One htpasswd file (bcrypt cost 10, what
 * `htpasswd -B` writes) is shared by:
 *
 * - skiff with `--htpasswd` (token scheme, the default) and `token: { ttl: 1h }`, so the one token
 *   fetched from its `/token` endpoint outlives the run; loaded with `Authorization: Bearer <token>`
 *   and, separately, with `Authorization: Basic …` on every request (its cached-verdict path);
 * - the CNCF registry with `auth: { htpasswd: { realm, path } }`, loaded with Basic on every request
 *   (its only mode without an external token server; it runs bcrypt on each one);
 * - skiff without authentication, in the same rounds: the baseline of the ratio row.
 *
 * The four loads run interleaved, their order rotating from round to round. Before any load, each
 * authenticated server must refuse a request without credentials (401) and serve the manifest with
 * them, and wrk must see only 2xx answers: a storm of fast 401s fails the sample instead of
 * looking fast.
 */
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import type { Context } from '../context.ts';
import { MANIFEST_ACCEPT } from '../gen/media-types.ts';
import { load } from '../measure/wrk.ts';
import { series, type Row, type Series } from '../model.ts';
import { pushImage } from '../registry.ts';
import { interleave, type Contestant } from '../rounds.ts';
import { startCncf } from '../servers/cncf.ts';
import type { Server } from '../servers/server.ts';
import { startSkiff } from '../servers/skiff.ts';

const CONNECTIONS = 50;
const USER = 'bench';
/** `htpasswd -B`'s default cost: what a user's file would hold. */
const BCRYPT_COST = 10;

export async function authCase(ctx: Context): Promise<Row[]> {
  const small = await ctx.set('small');
  const image = small.images[0]!;
  const seconds = ctx.options.manifestSeconds;
  const title = `manifest GET by tag, ${CONNECTIONS} conn, ${seconds} s`;
  const cncfName = 'CNCF registry, htpasswd Basic';
  const make = (id: string, title: string, peerName: string): Row => ({ id, title, unit: 'req/s', better: 'higher', skiff: series(), peerName, peer: series() });
  const rows = {
    bearer: make('auth-bearer-rps', `${title}, Bearer token`, cncfName),
    basic: make('auth-basic-rps', `${title}, Basic credentials`, cncfName),
    // The peer here is skiff itself without authentication: the ratio column is the issue's number.
    vsOpen: make('auth-bearer-vs-open', `skiff Bearer ÷ skiff unauthenticated req/s, same run (${title})`, 'skiff unauthenticated'),
  };

  const password = randomBytes(12).toString('hex');
  const htpasswd = join(ctx.runDir, 'auth-htpasswd');
  await writeFile(htpasswd, `${USER}:${bcrypt.hashSync(password, BCRYPT_COST)}\n`);
  const skiffConfig = join(ctx.runDir, 'auth-skiff.yaml');
  await writeFile(skiffConfig, 'token: { ttl: 1h }\n');
  const basic = `Basic ${Buffer.from(`${USER}:${password}`).toString('base64')}`;

  const servers: Server[] = [];
  try {
    const open = { ...(await startSkiff(ctx.skiff, ctx.runDir)), name: 'skiff (no auth)' };
    servers.push(open);
    const skiff = { ...(await startSkiff(ctx.skiff, ctx.runDir, [], ['--htpasswd', htpasswd, '--config', skiffConfig])), name: 'skiff (htpasswd)' };
    servers.push(skiff);
    const cncf = await startCncf(ctx.runDir, 'CNCF registry (htpasswd)', { htpasswd });
    servers.push(cncf);

    await pushImage(small, image, open.host);
    await pushImage(small, image, skiff.host, undefined, `${USER}:${password}`);
    await pushImage(small, image, cncf.host, undefined, `${USER}:${password}`);

    const bearer = `Bearer ${await fetchToken(skiff, image.repo, basic)}`;
    const check = (server: Server, authorization: string | undefined) => checkGet(server, image.repo, image.tag, image.manifest.digest, image.manifest.mediaType, authorization);
    await check(open, undefined);
    for (const [server, authorization] of [[skiff, bearer], [skiff, basic], [cncf, basic]] as const) {
      await checkRefused(server, image.repo, image.tag, undefined);
      await check(server, authorization);
    }
    // A token skiff did not sign must not pass: the Bearer load measures verification, not a bypass.
    await checkRefused(skiff, image.repo, image.tag, `Bearer ${forged(bearer.slice('Bearer '.length))}`);

    const url = (server: Server): string => `${server.url}/v2/${image.repo}/manifests/${image.tag}`;
    const headers = (authorization: string | undefined): Record<string, string> => ({ Accept: MANIFEST_ACCEPT, ...(authorization ? { Authorization: authorization } : {}) });
    const loads: [string, Server, string | undefined, Series[]][] = [
      ['skiff unauthenticated', open, undefined, [rows.vsOpen.peer]],
      ['skiff Bearer', skiff, bearer, [rows.bearer.skiff, rows.vsOpen.skiff]],
      ['skiff Basic', skiff, basic, [rows.basic.skiff]],
      ['CNCF Basic', cncf, basic, [rows.bearer.peer, rows.basic.peer]],
    ];
    for (const [, server, authorization] of loads) await load(url(server), { connections: CONNECTIONS, seconds: 1, headers: headers(authorization) });

    const perRound = new Map<string, Map<number, number>>();
    const contestant = ([name, server, authorization, into]: (typeof loads)[number]): Contestant => ({
      name,
      series: into,
      async round(index) {
        const result = await load(url(server), { connections: CONNECTIONS, seconds, headers: headers(authorization) });
        for (const s of into) {
          s.samples.push(result.rps);
          s.extra.push({ round: index + 1, requests: result.requests, p50ms: result.p50ms, p99ms: result.p99ms });
        }
        if (!perRound.has(name)) perRound.set(name, new Map());
        perRound.get(name)!.set(index, result.rps);
      },
    });
    await interleave(ctx.options.rounds, loads.map(contestant), ctx.log, { rotate: true });

    const ratios: string[] = [];
    for (let i = 0; i < ctx.options.rounds; i++) {
      const b = perRound.get('skiff Bearer')?.get(i);
      const o = perRound.get('skiff unauthenticated')?.get(i);
      ratios.push(b !== undefined && o !== undefined && o > 0 ? (b / o).toFixed(2) : '—');
    }
    const p99 = (s: Series): string => {
      const values = s.extra.map((e) => e.p99ms as number).sort((a, b) => a - b);
      return values.length ? `${values[Math.floor(values.length / 2)]!.toFixed(1)} ms` : '—';
    };
    rows.vsOpen.note = `per round (order rotating), skiff Bearer ÷ skiff unauthenticated: ${ratios.join(' ')}; median p99 latency — unauthenticated ${p99(rows.vsOpen.peer)}, Bearer ${p99(rows.bearer.skiff)}, skiff Basic ${p99(rows.basic.skiff)}, CNCF Basic ${p99(rows.basic.peer)}`;
    rows.bearer.note = `one htpasswd file (bcrypt cost ${BCRYPT_COST}) for both; skiff: one token from its /token endpoint (token ttl 1h) on every request; the CNCF registry has no token service of its own, so Basic on every request (bcrypt each time)`;
  } finally {
    for (const server of servers.reverse()) await server.stop();
  }
  return [rows.bearer, rows.basic, rows.vsOpen];
}

/** One token for pulling `repo`, the way a client gets one: GET /token with Basic credentials. */
async function fetchToken(server: Server, repo: string, basic: string): Promise<string> {
  const res = await fetch(`${server.url}/token?service=skiff&scope=repository:${repo}:pull`, { headers: { Authorization: basic }, signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as { token?: string; expires_in?: number; scope?: string };
  if (res.status !== 200 || !body.token) throw new Error(`${server.name} GET /token: HTTP ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
  if ((body.expires_in ?? 0) < 3600) throw new Error(`${server.name} GET /token: expires_in ${body.expires_in}, expected ≥ 3600 (token: { ttl: 1h }); it would expire during the run`);
  if (body.scope !== `repository:${repo}:pull`) throw new Error(`${server.name} GET /token: granted "${body.scope}", expected repository:${repo}:pull`);
  return body.token;
}

/** The same JWT with one signature character changed: skiff must refuse it. */
function forged(token: string): string {
  const last = token.at(-2) === 'A' ? 'B' : 'A';
  return `${token.slice(0, -2)}${last}${token.slice(-1)}`;
}

/** One GET before the load: the right bytes and media type, so wrk's 2xx count means what we think. */
async function checkGet(server: Server, repo: string, ref: string, digest: string, mediaType: string, authorization: string | undefined): Promise<void> {
  const headers: Record<string, string> = { Accept: MANIFEST_ACCEPT, ...(authorization ? { Authorization: authorization } : {}) };
  const res = await fetch(`${server.url}/v2/${repo}/manifests/${ref}`, { headers, signal: AbortSignal.timeout(10_000) });
  const body = Buffer.from(await res.arrayBuffer());
  const type = res.headers.get('content-type');
  const actual = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  const how = authorization?.split(' ')[0] ?? 'no credentials';
  if (res.status !== 200 || actual !== digest || type !== mediaType) {
    throw new Error(`${server.name} GET ${repo}:${ref} (${how}): HTTP ${res.status}, ${type}, body ${actual}; expected ${mediaType} ${digest}`);
  }
}

/** Authentication is really on: without (valid) credentials the manifest is refused with 401. */
async function checkRefused(server: Server, repo: string, ref: string, authorization: string | undefined): Promise<void> {
  const headers: Record<string, string> = { Accept: MANIFEST_ACCEPT, ...(authorization ? { Authorization: authorization } : {}) };
  const res = await fetch(`${server.url}/v2/${repo}/manifests/${ref}`, { headers, signal: AbortSignal.timeout(10_000) });
  await res.arrayBuffer();
  if (res.status !== 401) throw new Error(`${server.name} GET ${repo}:${ref} with ${authorization ? 'a forged token' : 'no credentials'}: HTTP ${res.status}, expected 401`);
}
