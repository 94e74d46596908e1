/**
 * The machine's own limits, measured in the same run: one core's sha256 rate, the disk's durable
 * write rate, the loopback transfer rate and a bare Node start; and the floors built from them (issue 14).
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Context, Limits } from '../context.ts';
import type { Row } from '../model.ts';
import { run } from '../proc.ts';
import { summarize } from '../stats.ts';
import { downloadMany } from './curl-get.ts';

/** `openssl speed -evp sha256` at 16 KiB blocks, in MB/s (openssl prints thousands of bytes per second). */
export async function sha256MBps(): Promise<number> {
  const result = await run('openssl', ['speed', '-evp', 'sha256', '-bytes', '16384', '-seconds', '2'], { timeoutMs: 60_000 });
  const match = /^sha256\s+([\d.]+)k\s*$/m.exec(result.stdout);
  if (!match) throw new Error(`unreadable openssl speed output:\n${result.stdout.slice(-500)}`);
  return (Number(match[1]) * 1000) / 1e6;
}

/** `dd … conv=fdatasync` of `mib` MiB of zeros into the run dir (same disk as the registries' data), in MB/s. */
export async function ddWriteMBps(runDir: string, mib: number): Promise<number> {
  const file = join(runDir, 'dd.bin');
  try {
    const result = await run('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${mib}`, 'conv=fdatasync'], { timeoutMs: 300_000 });
    const match = /(\d+) bytes .* copied, ([\d.]+) s/.exec(result.stderr);
    if (!match) throw new Error(`unreadable dd output: ${result.stderr}`);
    return Number(match[1]) / Number(match[2]) / 1e6;
  } finally {
    await rm(file, { force: true });
  }
}

/**
 * Loopback transfer: curl GETs one blob of `size` bytes from `url` into /dev/null, repeated over
 * one connection to ~1 GiB per sample (curl's own per-transfer clock, so no process start-up);
 * the best of three samples, in MB/s. The server's sending is part of it, as in every client row.
 */
export async function loopbackMBps(url: string, size: number): Promise<{ mbps: number; samples: number[] }> {
  const repeat = Math.max(1, Math.round(2 ** 30 / size));
  const samples: number[] = [];
  for (let i = 0; i < 3; i++) samples.push((await downloadMany(url, 1, size, repeat)).mbps);
  return { mbps: Math.max(...samples), samples };
}

/** Wall time (spawn to exit, as the harness times every CLI) of `node -e 0`, `runs` times. */
export async function nodeStartSamples(node: string, runs: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) samples.push((await run(node, ['-e', '0'], { timeoutMs: 30_000 })).ms);
  return samples;
}

/**
 * The limits only the client cases (startup, sync, copy-big, pull) use, measured on first use and
 * shared by them; the report header prints them beside sha256 and dd.
 */
export interface ClientLimits {
  /** curl of big-0's layer from the CNCF source into /dev/null, MB/s (best of `loopbackSamples`). */
  loopbackMBps?: number;
  loopbackSamples?: number[];
  /** Bare `node -e 0`, median of `nodeStartSamples`, ms: the process start under every skiff command. */
  nodeStartMs?: number;
  nodeStartSamples?: number[];
}

export const clientLimits: ClientLimits = {};

let loopbackRun: Promise<number | undefined> | undefined;

/** The loopback rate, measured once per run against the shared CNCF source (which then holds `big`). */
export function loopbackLimit(ctx: Context): Promise<number | undefined> {
  loopbackRun ??= (async () => {
    try {
      const big = await ctx.set('big');
      const source = await ctx.source('big');
      const image = big.images[0]!;
      const blob = image.blobs.reduce((a, b) => (b.size > a.size ? b : a));
      ctx.log(`  limit: loopback transfer (curl of ${image.repo}'s ${(blob.size / 1e6).toFixed(0)} MB layer from the CNCF source into /dev/null)`);
      const { mbps, samples } = await loopbackMBps(`http://${source.host}/v2/${image.repo}/blobs/${blob.digest}`, blob.size);
      clientLimits.loopbackMBps = mbps;
      clientLimits.loopbackSamples = samples;
      ctx.log(`    loopback ${mbps.toFixed(0)} MB/s (samples ${samples.map((s) => s.toFixed(0)).join(', ')})`);
      return mbps;
    } catch (error) {
      ctx.skiff.warnings.push(`limits: loopback transfer: ${(error as Error).message}`);
      return undefined;
    }
  })();
  return loopbackRun;
}

/** Records bare `node -e 0` samples (the startup case's, interleaved with skiff's) as the process-start floor. */
export function recordNodeStart(samples: number[]): void {
  if (samples.length === 0 || clientLimits.nodeStartMs !== undefined) return;
  clientLimits.nodeStartSamples = samples;
  clientLimits.nodeStartMs = summarize(samples)!.median;
}

/** The process-start floor: the startup case's samples if it ran first, else ten runs of its own. */
export async function nodeStartLimit(ctx: Context): Promise<number | undefined> {
  if (clientLimits.nodeStartMs === undefined) {
    try {
      recordNodeStart(await nodeStartSamples(ctx.skiff.node, 10));
    } catch (error) {
      ctx.skiff.warnings.push(`limits: node -e 0: ${(error as Error).message}`);
    }
  }
  return clientLimits.nodeStartMs;
}

export type Stage = 'loopback' | 'sha256' | 'disk';
const STAGE_NAMES: Record<Stage, string> = { loopback: 'loopback', sha256: 'sha256', disk: 'fsync write' };

/**
 * The least time in which this machine moves `bytes` through the named stages, each at its measured
 * rate (loopback transfer, one core's sha256, the disk's write with fsync). A client streams, so the
 * stages overlap: the floor is the slowest one, not their sum. Named with every stage's time, so the
 * table shows which one binds.
 */
export function bytesFloor(limits: Limits, bytes: number, stages: Stage[] = ['loopback', 'sha256', 'disk']): Row['limit'] | undefined {
  const rates: Record<Stage, number | undefined> = { loopback: clientLimits.loopbackMBps, sha256: limits.sha256MBps, disk: limits.ddWriteMBps };
  const times = stages.flatMap((stage) => {
    const rate = rates[stage];
    return rate ? [{ stage, seconds: bytes / 1e6 / rate }] : [];
  });
  if (times.length === 0) return undefined;
  const value = Math.max(...times.map((t) => t.seconds));
  return {
    name: `floor (slowest of ${times.map((t) => `${STAGE_NAMES[t.stage]} ${t.seconds.toFixed(3)} s`).join(', ')})`,
    value,
    stages: Object.fromEntries(times.map((t) => [t.stage, t.seconds])),
  };
}

/** A row that moves no bytes (a no-op re-sync): its floor is starting the process, bare `node -e 0`, in seconds. */
export function startFloor(): Row['limit'] | undefined {
  const ms = clientLimits.nodeStartMs;
  return ms === undefined ? undefined : { name: `floor (no bytes move: process start, bare node -e 0, ${ms.toFixed(0)} ms)`, value: ms / 1000 };
}
