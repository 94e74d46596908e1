import type { Logger } from 'pino';
import type { MetadataStore } from '../storage/metadata.ts';
import type { CollectReport, GarbageCollector } from './collector.ts';
import { applyRetention, type RetentionReport, type RetentionRule } from './retention.ts';

/** The `gc:` settings of `skiff serve` (and of `skiff gc`). */
export interface GcSettings {
  /** Milliseconds between background cycles; 0 turns the background collector off. */
  interval: number;
  /** Milliseconds a blob stays after it last became unreferenced, or was linked. */
  grace: number;
  /** Retention rules (YAML `retention:`); none by default: nothing is deleted that a client did not delete. */
  retention?: RetentionRule[];
}

export interface GcCycleReport {
  retention: RetentionReport;
  collect: CollectReport;
  /** Digests still queued after the cycle. */
  queued: number;
  ms: number;
}

/**
 * One cycle: retention rules first (they delete tags and manifests, which queues blobs), then the
 * collector. One log line says what it reviewed, deleted and freed.
 */
export async function runGcCycle(
  collector: GarbageCollector,
  metadata: MetadataStore,
  settings: Pick<GcSettings, 'grace' | 'retention'>,
  options: { dryRun?: boolean; sweepFiles?: boolean; log?: Logger; now?: number } = {},
): Promise<GcCycleReport> {
  const started = Date.now();
  const dryRun = options.dryRun ?? false;
  const retention = await applyRetention(metadata, settings.retention ?? [], { now: options.now ?? started, dryRun });
  const collect = await collector.collect({ graceMs: settings.grace, dryRun, sweepFiles: options.sweepFiles ?? false });
  const { queued } = await metadata.gcQueue(Date.now() - settings.grace);
  const report: GcCycleReport = { retention, collect, queued, ms: Date.now() - started };
  options.log?.info(
    {
      dryRun,
      ms: report.ms,
      reviewed: collect.reviewed,
      kept: collect.kept,
      later: collect.later,
      deletedBlobs: collect.deleted.length,
      freedBytes: collect.freedBytes,
      prunedLinks: collect.prunedLinks,
      revived: collect.revived,
      recovered: collect.recovered,
      orphans: collect.orphans,
      deletedTags: retention.tags.length,
      deletedManifests: retention.manifests.length,
      queued,
    },
    dryRun ? 'gc: dry run' : 'gc: cycle done',
  );
  return report;
}
