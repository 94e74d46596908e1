import type { Command } from 'commander';
import { humanSize } from '../images/human.ts';
import { tabwrite } from '../images/tabwriter.ts';
import type { GcCycleReport } from '../server/gc/cycle.ts';

/**
 * `skiff gc`: one collection cycle against a data directory, safe beside a running `skiff serve`.
 * The serve config (`--config`) gives the grace period and the retention rules; `--grace` beats it.
 */
export function registerGc(program: Command): void {
  program
    .command('gc')
    .description('delete blobs nothing uses any more (and what retention rules say), safely beside a running skiff serve')
    .option('--data <dir>', 'the registry data directory (default $SKIFF_DATA or ~/.local/share/skiff-registry)')
    .option('--config <file.yaml>', 'the skiff serve config: its gc.grace and gc.retention apply, and its storage, metadata and redis (replicas: docs/scale-out.md)')
    .option('--grace <duration>', 'keep blobs that became unreferenced (or were pushed) less than this ago (default 24h; 0s collects at once)')
    .option('--dry-run', 'list what would be deleted; delete nothing')
    .option('--no-sweep', 'skip the walk of the blob files for ones no metadata knows')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (default warn)')
    .action(async (options: { data?: string; config?: string; grace?: string; dryRun?: boolean; sweep: boolean; logLevel?: string }) => {
      // The server's modules load only when gc runs, not for every command's help.
      const [{ pino }, { resolveServeConfig }, { runGcCycle }, { openCollector }] = await Promise.all([
        import('pino'),
        import('../server/config.ts'),
        import('../server/gc/cycle.ts'),
        import('../server/gc/open-collector.ts'),
      ]);
      const config = await resolveServeConfig({ data: options.data, gc: options.grace !== undefined ? { grace: options.grace } : undefined }, options.config);
      const log = pino({ level: options.logLevel ?? 'warn' }, pino.destination(2));
      const opened = await openCollector(config, log);
      try {
        const cycle = () => runGcCycle(opened.collector, opened.metadata, config.gc, { dryRun: options.dryRun ?? false, sweepFiles: options.sweep, log });
        // skiff serve's collector takes the same lock (SQLite's lock file, PostgreSQL's advisory lock, or the replicas' Redis lease): wait for a cycle of its to end rather than run beside it.
        const report = opened.lease ? await opened.lease.run('gc', cycle) : await cycle();
        process.stdout.write(renderGcReport(report));
      } finally {
        await opened.close();
      }
    });
}

/** The table of what went (or would go) and one summary line, as `skiff gc` prints them. */
export function renderGcReport(report: GcCycleReport): string {
  const { retention, collect } = report;
  const rows = ['KIND\tREPOSITORY\tTARGET\tSIZE\tREASON'];
  for (const tag of retention.tags) rows.push(`tag\t${tag.repository}\t${tag.tag} → ${short(tag.digest)}\t\t${'reason' in tag ? String(tag.reason) : 'retention'}`);
  for (const manifest of retention.manifests) rows.push(`manifest\t${manifest.repository}\t${short(manifest.digest)}\t\t${manifest.reason}`);
  for (const blob of collect.deleted) rows.push(`blob\t-\t${blob.digest}\t${humanSize(blob.size)}\tunreferenced`);
  const verb = report.collect.dryRun ? 'would delete' : 'deleted';
  const parts = [
    `reviewed ${collect.reviewed} digests`,
    `${verb} ${retention.tags.length} tags, ${retention.manifests.length} manifests, ${collect.deleted.length} blobs (${humanSize(collect.freedBytes)})`,
    `${collect.prunedLinks} repository links ${report.collect.dryRun ? 'to prune' : 'pruned'}`,
    `${collect.later} in their grace period`,
  ];
  if (collect.revived > 0) parts.push(`${collect.revived} pushed again meanwhile and kept`);
  if (collect.recovered > 0) parts.push(`${collect.recovered} finished from an interrupted cycle`);
  if (collect.orphans > 0) parts.push(`${collect.orphans} files no metadata knew`);
  const table = rows.length > 1 ? tabwrite(`${rows.join('\n')}\n`) : '';
  return `${table}gc${report.collect.dryRun ? ' (dry run)' : ''}: ${parts.join('; ')}; ${report.queued} queued; ${report.ms} ms\n`;
}

function short(digest: string): string {
  return digest.length > 19 ? `${digest.slice(0, 19)}…` : digest;
}
