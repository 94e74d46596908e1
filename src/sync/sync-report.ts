import type { Digest } from '../digest/digest.ts';
import type { BlobOutcome, ImageOutcome, SyncEvent } from './sync-events.ts';
import { compareText, formatAddress, taskKey, type SyncTask } from './sync-task.ts';

export interface ImageReport {
  source: string;
  destination: string;
  rule: string;
  outcome: ImageOutcome;
  digest?: Digest;
  /** Why it failed (the last attempt's error). */
  reason?: string;
  /** Up to date, or what changed (a filtered index). */
  note?: string;
  attempts: number;
}

export interface SyncSummary {
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  images: { total: number; synced: number; skipped: number; failed: number };
  failedRules: { rule: string; reason: string }[];
  blobs: Record<BlobOutcome, { count: number; bytes: number }>;
  /** Bytes read from sources and sent to destinations (resent bytes count again). */
  bytesMoved: number;
  bytesPerSecond: number;
  passes: number;
  results: ImageReport[];
}

/** Collects a run's events into the honest end-of-run account. */
export class SyncReport {
  private readonly started = new Date();
  private readonly images = new Map<string, ImageReport>();
  private readonly ruleFailures = new Map<string, string>();
  private readonly blobs: SyncSummary['blobs'] = { copied: { count: 0, bytes: 0 }, mounted: { count: 0, bytes: 0 }, existing: { count: 0, bytes: 0 } };
  private passes = 0;
  bytesMoved = 0;

  readonly listener = (event: SyncEvent): void => {
    switch (event.type) {
      case 'pass':
        this.passes = event.pass + 1;
        break;
      case 'planned':
        this.ruleFailures.delete(event.rule);
        break;
      case 'rule-failed':
        this.ruleFailures.set(event.rule, event.reason);
        break;
      case 'image-start': {
        const entry = this.entry(event.task);
        entry.attempts++;
        break;
      }
      case 'image-done': {
        const entry = this.entry(event.task);
        entry.outcome = event.outcome;
        if (event.digest) entry.digest = event.digest;
        if (event.reason) entry.reason = event.reason;
        else delete entry.reason;
        if (event.note) entry.note = event.note;
        break;
      }
      case 'blob-done':
        this.blobs[event.outcome].count++;
        this.blobs[event.outcome].bytes += event.size;
        break;
      case 'bytes':
        this.bytesMoved += event.bytes;
        break;
      default:
    }
  };

  private entry(task: SyncTask): ImageReport {
    const key = taskKey(task);
    let entry = this.images.get(key);
    if (!entry) {
      entry = { source: formatAddress(task.source), destination: formatAddress(task.destination), rule: task.rule, outcome: 'failed', attempts: 0 };
      this.images.set(key, entry);
    }
    return entry;
  }

  get failures(): number {
    return [...this.images.values()].filter((i) => i.outcome === 'failed').length + this.ruleFailures.size;
  }

  summary(): SyncSummary {
    const finished = new Date();
    const durationSeconds = (finished.getTime() - this.started.getTime()) / 1000;
    const results = [...this.images.values()].sort((a, b) => compareText(a.source, b.source) || compareText(a.destination, b.destination));
    const count = (outcome: ImageOutcome) => results.filter((r) => r.outcome === outcome).length;
    return {
      startedAt: this.started.toISOString(),
      finishedAt: finished.toISOString(),
      durationSeconds,
      images: { total: results.length, synced: count('synced'), skipped: count('skipped'), failed: count('failed') },
      failedRules: [...this.ruleFailures].map(([rule, reason]) => ({ rule, reason })),
      blobs: structuredClone(this.blobs),
      bytesMoved: this.bytesMoved,
      bytesPerSecond: durationSeconds > 0 ? this.bytesMoved / durationSeconds : 0,
      passes: this.passes,
      results,
    };
  }
}

/** The successful images as an images file (source → destination), reusable as `--images`. */
export function successImages(summary: SyncSummary): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const result of summary.results) {
    if (result.outcome === 'failed') continue;
    const existing = out[result.source];
    out[result.source] = existing === undefined ? result.destination : [...(Array.isArray(existing) ? existing : [existing]), result.destination];
  }
  return out;
}
