import type { Digest } from '../digest/digest.ts';
import type { BlobOutcome, ImageOutcome, SyncEvent } from './sync-events.ts';
import { compareText, taskKey, taskKeyParts } from './sync-task.ts';

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

/** Bytes of one chunk of the record log; a record bigger than this gets a chunk of its own. */
const LOG_CHUNK_BYTES = 64 * 1024;

/**
 * Append-only lines in Buffer chunks: memory outside the JavaScript heap, exactly the bytes written
 * (~230 per image). V8 sizes its heap at a few times what is live in it, so what an image leaves in
 * the heap for the rest of the run costs several times its size in RSS: the map of report objects
 * this replaces kept ~750 bytes of heap per image, ~25 MB of RSS at 10,000 images (issue 14).
 */
class RecordLog {
  private readonly full: Buffer[] = [];
  private chunk = Buffer.allocUnsafe(LOG_CHUNK_BYTES);
  private used = 0;

  append(line: string): void {
    const bytes = Buffer.byteLength(line) + 1;
    if (this.used + bytes > this.chunk.length) {
      if (this.used > 0) this.full.push(this.chunk.subarray(0, this.used));
      this.chunk = Buffer.allocUnsafe(Math.max(LOG_CHUNK_BYTES, bytes));
      this.used = 0;
    }
    this.used += this.chunk.write(line, this.used);
    this.chunk[this.used++] = 0x0a;
  }

  /** Every line, in the order written (a line never spans two chunks). */
  *lines(): Generator<string> {
    for (const chunk of [...this.full, this.chunk.subarray(0, this.used)]) {
      const text = chunk.toString('utf8');
      let start = 0;
      for (let end = text.indexOf('\n'); end >= 0; start = end + 1, end = text.indexOf('\n', start)) yield text.slice(start, end);
    }
  }
}

/** One finished attempt at an image, as the log keeps it. */
type Attempt = [key: string, rule: string, outcome: ImageOutcome, digest: string, note: string, reason: string];

/**
 * Collects a run's events into the honest end-of-run account. Each finished attempt at an image is
 * one line in a log outside the JavaScript heap; the images in flight, and those whose last attempt
 * failed, are the only ones kept as objects. The per-image results are rebuilt from the log when the
 * summary is asked for, once, at the end.
 */
export class SyncReport {
  private readonly started = new Date();
  private readonly log = new RecordLog();
  /** Images started and not finished (`taskKey` → rule): an attempt that never ended counts as failed. */
  private readonly open = new Map<string, string>();
  /** Images whose last attempt failed. */
  private readonly failed = new Set<string>();
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
      case 'image-start':
        this.open.set(event.key ?? taskKey(event.task), event.task.rule);
        break;
      case 'image-done': {
        const key = event.key ?? taskKey(event.task);
        this.open.delete(key);
        if (event.outcome === 'failed') this.failed.add(key);
        else this.failed.delete(key);
        const attempt: Attempt = [key, event.task.rule, event.outcome, event.digest ?? '', event.note ?? '', event.reason ?? ''];
        this.log.append(JSON.stringify(attempt));
        break;
      }
      case 'blob-done':
        this.blobs[event.outcome].count++;
        this.blobs[event.outcome].bytes += event.size;
        break;
      case 'bytes':
        this.bytesMoved += event.bytes;
        break;
      case 'tally':
        for (const outcome of ['copied', 'mounted', 'existing'] as const) {
          this.blobs[outcome].count += event.blobs[outcome].count;
          this.blobs[outcome].bytes += event.blobs[outcome].bytes;
        }
        this.bytesMoved += event.bytes;
        break;
      default:
    }
  };

  /** Images whose last attempt failed or never finished, and rules that could not be expanded. */
  get failures(): number {
    let unfinished = 0;
    for (const key of this.open.keys()) if (!this.failed.has(key)) unfinished++;
    return this.failed.size + unfinished + this.ruleFailures.size;
  }

  /**
   * Every image's line of the report, rebuilt from the log: the last attempt's outcome and reason,
   * the last digest and note any attempt gave, one attempt per line (and one for an attempt that
   * never finished).
   */
  private results(): ImageReport[] {
    const byKey = new Map<string, ImageReport>();
    const entry = (key: string, rule: string): ImageReport => {
      let result = byKey.get(key);
      if (!result) {
        result = { ...taskKeyParts(key), rule, outcome: 'failed', attempts: 0 };
        byKey.set(key, result);
      }
      return result;
    };
    for (const line of this.log.lines()) {
      const [key, rule, outcome, digest, note, reason] = JSON.parse(line) as Attempt;
      const result = entry(key, rule);
      result.attempts++;
      result.outcome = outcome;
      if (digest) result.digest = digest as Digest;
      if (reason) result.reason = reason;
      else delete result.reason;
      if (note) result.note = note;
    }
    for (const [key, rule] of this.open) {
      const result = entry(key, rule);
      result.attempts++;
      result.outcome = 'failed';
    }
    return [...byKey.values()];
  }

  summary(): SyncSummary {
    const finished = new Date();
    const durationSeconds = (finished.getTime() - this.started.getTime()) / 1000;
    const results = this.results().sort((a, b) => compareText(a.source, b.source) || compareText(a.destination, b.destination));
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
