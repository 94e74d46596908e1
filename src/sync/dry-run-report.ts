import type { DryRunEntry } from './sync-runner.ts';

/** The totals of `skiff sync --dry-run`. */
export interface DryRunSummary {
  images: number;
  toCopy: number;
  upToDate: number;
  /** Images whose plan could not be made (a 401, a missing tag): neither to copy nor up to date. */
  failed: number;
  /** Rules that could not even be expanded (their tags could not be listed). */
  failedRules: number;
  /** Bytes that would move, each blob counted once per destination registry. */
  bytes: number;
}

/**
 * Counts a dry run's plan. An image without a plan failed: counting it as up to date (as the
 * first version did) told a cron job that a registry answering 401 was in sync (issue 10).
 */
export function summarizeDryRun(entries: DryRunEntry[], ruleErrors: readonly unknown[]): DryRunSummary {
  const seen = new Map<string, number>(); // a blob moves once per destination registry
  let toCopy = 0;
  let upToDate = 0;
  let failed = 0;
  for (const { task, plan, error } of entries) {
    if (error !== undefined || !plan) failed++;
    else if (plan.upToDate) upToDate++;
    else {
      toCopy++;
      for (const blob of plan.missing) seen.set(`${task.destination.registry} ${blob.digest}`, blob.size);
    }
  }
  const bytes = [...seen.values()].reduce((a, b) => a + b, 0);
  return { images: entries.length, toCopy, upToDate, failed, failedRules: ruleErrors.length, bytes };
}

/** Bytes the copy of this entry would add, beyond blobs already counted for an earlier entry. */
export function newBytes(entry: DryRunEntry, counted: Set<string>): number {
  let bytes = 0;
  for (const blob of entry.plan?.missing ?? []) {
    const key = `${entry.task.destination.registry} ${blob.digest}`;
    if (!counted.has(key)) bytes += blob.size;
    counted.add(key);
  }
  return bytes;
}
