import { createWriteStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { Option, type Command } from 'commander';
import { sleep } from '../client/retry.ts';
import { humanSize } from '../images/human.ts';
import { ConfigError } from '../errors/config-error.ts';
import { parseInterval } from '../sync/interval.ts';
import { parsePlatformFilter } from '../sync/platform-filter.ts';
import { newBytes, summarizeDryRun } from '../sync/dry-run-report.ts';
import { loadSyncConfig, type SyncConfig } from '../sync/sync-config.ts';
import { SyncReport, successImages } from '../sync/sync-report.ts';
import { SyncRunner, type SyncOptions } from '../sync/sync-runner.ts';
import { formatAddress } from '../sync/sync-task.ts';
import { SyncQueue } from '../sync/task-queue.ts';
import { loadAuthOnly } from '../sync/sync-config.ts';
import { SyncProgress, formatSummary } from './sync-progress.ts';

interface SyncFlags {
  config?: string;
  auth?: string;
  images?: string;
  log?: string;
  proc: number;
  retries: number;
  os: string[];
  arch: string[];
  force?: boolean;
  outputSuccessImages?: string;
  outputImagesFormat: 'yaml' | 'json';
  exclude: string[];
  dryRun?: boolean;
  report?: string;
  watch?: string;
  referrers?: boolean;
  registry?: string;
  namespace?: string;
  records?: string;
  queue?: string;
  queueName?: string;
  queueLease?: string;
  worker?: boolean;
  work: boolean;
}

const collect = (value: string, all: string[]) => [...all, value];

function count(name: string, min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new ConfigError(`${name} must be an integer ≥ ${min}, got ${JSON.stringify(value)}`);
    return n;
  };
}

function regexes(patterns: string[]): RegExp[] {
  return patterns.map((pattern) => {
    try {
      return new RegExp(pattern);
    } catch (error) {
      throw new ConfigError(`--exclude ${JSON.stringify(pattern)}: ${(error as Error).message}`);
    }
  });
}

async function writeSuccessImages(file: string, format: 'yaml' | 'json', images: Record<string, string | string[]>): Promise<void> {
  const text = format === 'json' ? `${JSON.stringify(images, null, 2)}\n` : (await import('yaml')).stringify(images);
  await writeFile(file, text);
}

/**
 * One sync run with its progress view and outputs; resolves to the number of failures. With
 * `--queue`, the images go to the queue's workers (this process among them unless `--no-work`),
 * and the report adds up what every worker did.
 */
async function runOnce(config: SyncConfig, flags: SyncFlags, base: Omit<SyncOptions, 'auth' | 'onEvent'>, log: Writable): Promise<number> {
  const report = new SyncReport();
  const progress = new SyncProgress(log, log === process.stderr ? process.stderr : undefined);
  const runner = new SyncRunner({ ...base, auth: config.auth, onEvent: (event) => (report.listener(event), progress.handle(event)) });
  const queue = flags.queue !== undefined ? openQueue(flags) : undefined;
  // This process's share of the queue's work: its own runner, whose moves reach the report through the jobs' results, as any worker's.
  const worker = queue && flags.work ? new SyncRunner({ ...base, auth: config.auth }) : undefined;
  try {
    if (queue) {
      if (worker) await worker.serve(queue);
      await runner.dispatch(config.rules, queue);
    } else await runner.run(config.rules);
  } finally {
    progress.finish();
    await queue?.close();
    await worker?.close();
    await runner.close();
  }
  const summary = report.summary();
  process.stdout.write(formatSummary(summary));
  if (flags.report) await writeFile(flags.report, `${JSON.stringify(summary, null, 2)}\n`);
  if (flags.outputSuccessImages) await writeSuccessImages(flags.outputSuccessImages, flags.outputImagesFormat, successImages(summary));
  return report.failures;
}

async function dryRun(config: SyncConfig, base: Omit<SyncOptions, 'auth' | 'onEvent'>): Promise<number> {
  const runner = new SyncRunner({ ...base, auth: config.auth });
  try {
    const { entries, ruleErrors } = await runner.dryRun(config.rules);
    const counted = new Set<string>();
    for (const entry of entries) {
      const { task, plan, error } = entry;
      const what = `${formatAddress(task.source)} -> ${formatAddress(task.destination)}`;
      const note = plan?.note ? ` (${plan.note})` : '';
      if (error !== undefined || !plan) process.stdout.write(`failed     ${what}: ${error ?? 'no plan'}\n`);
      else if (plan.upToDate) process.stdout.write(`up to date ${what} ${plan.digest}${note}\n`);
      else process.stdout.write(`copy       ${what} ${plan.digest}: ${plan.missing.length} blob(s) missing, ${humanSize(newBytes(entry, counted))} to move${note}\n`);
    }
    for (const { rule, reason } of ruleErrors) process.stdout.write(`failed     rule ${rule}: ${reason}\n`);
    const summary = summarizeDryRun(entries, ruleErrors);
    const failures = `${summary.failed > 0 ? `, ${summary.failed} failed` : ''}${summary.failedRules > 0 ? `, ${summary.failedRules} rule(s) failed` : ''}`;
    process.stdout.write(`dry run: ${summary.images} image(s), ${summary.toCopy} to copy, ${summary.upToDate} up to date${failures}, ${humanSize(summary.bytes)} would move; nothing was copied\n`);
    return summary.failed + summary.failedRules;
  } finally {
    await runner.close();
  }
}

/**
 * `skiff sync`: image-syncer's flags and files (./images.json and ./auth.json by default;
 * --registry/--namespace or DEFAULT_REGISTRY/DEFAULT_NAMESPACE for empty destinations; --records
 * accepted and ignored), plus --exclude, --dry-run, --report, --watch, --referrers.
 */
export function registerSync(program: Command): void {
  program
    .command('sync')
    .description("copy images between registries; reads image-syncer's auth and images files unchanged")
    .option('--auth <file>', 'auth file (JSON, or YAML by extension): registry[/namespace] → {username, password, insecure} (default: ./auth.json if it exists)')
    .option('--images <file>', 'image rules (JSON, or YAML by extension): source → destination(s) (default: ./images.json)')
    .option('--config <file>', 'deprecated combined file {"auth": …, "images": …}')
    .option('--log <file>', 'write log lines to this file instead of stderr')
    .option('-p, --proc <n>', 'concurrent blob transfers', count('--proc', 1), 5)
    .option('-r, --retries <n>', 'passes over failed tasks after the first', count('--retries', 0), 2)
    .option('--os <os[:osversion]>', 'keep only these OSes from multi-platform images (repeatable)', collect, [] as string[])
    .option('--arch <arch[:variant]>', 'keep only these architectures (repeatable)', collect, [] as string[])
    .option('--force', 'push manifests even when the destination already has the same digest')
    .option('--output-success-images <file>', 'write the images that synced (or were up to date) as an images file')
    .addOption(new Option('--output-images-format <format>', 'format of --output-success-images').choices(['yaml', 'json']).default('yaml'))
    .option('--exclude <regex>', 'leave out source images (registry/repository:tag) matching this (repeatable)', collect, [] as string[])
    .option('--dry-run', 'print the plan (images, tags, bytes that would move) and copy nothing')
    .option('--report <file>', 'write the run report as JSON')
    .option('--watch <interval>', 'run again every interval (e.g. 10m) until SIGTERM')
    .option('--referrers', 'also copy referrers (signatures, SBOMs, attestations)')
    .option('--registry <host>', 'default destination registry for rules whose destination is "" (else $DEFAULT_REGISTRY)')
    .option('--namespace <namespace>', 'default destination namespace for rules whose destination is "" (else $DEFAULT_NAMESPACE)')
    .addOption(new Option('--records <file>', 'ignored, as image-syncer has ignored it since v1.1.0').hideHelp())
    .option('--queue <redis-url>', 'spread the images over worker processes through this Redis (BullMQ); this process plans, works too, and reports')
    .option('--queue-name <name>', 'the queue shared by a run and its workers (default skiff-sync)')
    .option('--queue-lease <interval>', "how long a worker's image waits, after that worker died, before another worker takes it (default 30s)")
    .option('--worker', 'with --queue: work on queued images (credentials from --auth) until SIGTERM or SIGINT')
    .option('--no-work', 'with --queue: only plan, queue and report; the workers copy')
    .action(async (flags: SyncFlags) => {
      if (flags.worker) {
        await serveQueue(flags);
        return;
      }
      if (flags.records !== undefined) process.stderr.write('skiff: warning: --records is deprecated and ignored (image-syncer has not used a records file since v1.1.0; a destination is checked by digest instead); remove it\n');
      const files = { ...(flags.auth ? { auth: flags.auth } : {}), ...(flags.images ? { images: flags.images } : {}), ...(flags.config ? { config: flags.config } : {}) };
      const config = await loadSyncConfig(files, process.env, { cwd: process.cwd(), registry: flags.registry, namespace: flags.namespace });
      let filter;
      let interval: number | undefined;
      try {
        filter = parsePlatformFilter(flags.os, flags.arch);
        interval = flags.watch ? parseInterval(flags.watch) : undefined;
      } catch (error) {
        throw new ConfigError((error as Error).message);
      }
      const base = { proc: flags.proc, retries: flags.retries, filter, force: flags.force ?? false, referrers: flags.referrers ?? false, exclude: regexes(flags.exclude) };
      if (flags.dryRun) {
        process.exitCode = (await dryRun(config, base)) > 0 ? 1 : 0;
        return;
      }
      const log: Writable = flags.log ? createWriteStream(flags.log, { flags: 'a' }) : process.stderr;
      try {
        if (interval === undefined) {
          process.exitCode = (await runOnce(config, flags, base, log)) > 0 ? 1 : 0;
          return;
        }
        // Watch mode: a stop signal aborts the run in progress (manifests go last, so the
        // destination stays consistent) or ends the wait, and the process exits 0.
        const stop = new AbortController();
        const onSignal = () => stop.abort();
        process.once('SIGTERM', onSignal);
        process.once('SIGINT', onSignal);
        while (!stop.signal.aborted) {
          await runOnce(config, flags, { ...base, signal: stop.signal }, log);
          await sleep(interval, stop.signal).catch(() => undefined);
        }
        log.write(`${new Date().toISOString()} stopped by signal\n`);
        process.exitCode = 0;
      } finally {
        if (log !== process.stderr) await new Promise((resolve) => log.end(resolve));
      }
    });
}

function openQueue(flags: SyncFlags): SyncQueue {
  let lockMs: number | undefined;
  try {
    lockMs = flags.queueLease !== undefined ? parseInterval(flags.queueLease) : undefined;
  } catch (error) {
    throw new ConfigError(`--queue-lease: ${(error as Error).message}`);
  }
  if (lockMs !== undefined && lockMs < 1000) throw new ConfigError('--queue-lease must be at least 1s: workers renew it every half of it while they copy');
  return new SyncQueue({ url: flags.queue!, ...(flags.queueName ? { name: flags.queueName } : {}), ...(lockMs !== undefined ? { lockMs } : {}) });
}

/**
 * `skiff sync --queue <url> --worker`: takes image jobs until SIGTERM or SIGINT, then finishes the
 * ones it holds and exits 0. A worker killed instead (kill -9) loses nothing: its jobs go back to
 * the queue once their locks run out, and another worker copies them.
 */
async function serveQueue(flags: SyncFlags): Promise<void> {
  if (flags.queue === undefined) throw new ConfigError('--worker needs --queue <redis-url>: the queue to take images from');
  const auth = await loadAuthOnly(flags.auth, process.env, { cwd: process.cwd() });
  let filter;
  try {
    filter = parsePlatformFilter(flags.os, flags.arch);
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  const log: Writable = flags.log ? createWriteStream(flags.log, { flags: 'a' }) : process.stderr;
  const progress = new SyncProgress(log, log === process.stderr ? process.stderr : undefined);
  const runner = new SyncRunner({ auth, proc: flags.proc, retries: flags.retries, filter, force: flags.force ?? false, referrers: flags.referrers ?? false, onEvent: (event) => progress.handle(event) });
  const queue = openQueue(flags);
  const stop = new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  try {
    await runner.serve(queue);
    log.write(`${new Date().toISOString()} worker on queue ${flags.queueName ?? 'skiff-sync'} ready\n`);
    await stop;
  } finally {
    await queue.close(); // lets the images in hand finish first
    progress.finish();
    await runner.close();
    log.write(`${new Date().toISOString()} worker stopped\n`);
    if (log !== process.stderr) await new Promise((resolve) => log.end(resolve));
  }
}
