import type { GcCycleReport } from '../gc/cycle.ts';
import type { GcDryRun, GcRow } from './api-types.ts';

/** A dry run's report as the table `skiff gc --dry-run` prints (cli/gc.ts renderGcReport), as rows. */
export function gcDryRunView(report: GcCycleReport): GcDryRun {
  const rows: GcRow[] = [
    ...report.retention.tags.map((tag): GcRow => ({ kind: 'tag', repository: tag.repository, target: `${tag.tag} → ${tag.digest}`, size: null, reason: tag.reason })),
    ...report.retention.manifests.map((manifest): GcRow => ({ kind: 'manifest', repository: manifest.repository, target: manifest.digest, size: null, reason: manifest.reason })),
    ...report.collect.deleted.map((blob): GcRow => ({ kind: 'blob', repository: null, target: blob.digest, size: blob.size, reason: 'unreferenced' })),
  ];
  const { collect } = report;
  return { rows, reviewed: collect.reviewed, later: collect.later, prunedLinks: collect.prunedLinks, freedBytes: collect.freedBytes, queued: report.queued, ms: report.ms };
}
