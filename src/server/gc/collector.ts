import type { Logger } from 'pino';
import type { FsBlobStore } from '../../content/fs-blob-store.ts';
import type { Digest } from '../../digest/digest.ts';
import { Limiter } from '../../graph/limiter.ts';
import type { MetadataStore } from '../storage/metadata.ts';

/** What the collector needs of the blob store: moving a condemned blob aside, then deleting or restoring it. */
export type CollectableStore = Pick<FsBlobStore, 'list' | 'stat' | 'quarantine' | 'restore' | 'purge' | 'trashed' | 'modifiedAt'>;

export interface CollectOptions {
  /** How long a blob stays after it last became unreferenced (or was linked): the push's window. */
  graceMs: number;
  /** Report what would go; write and delete nothing. */
  dryRun?: boolean;
  /**
   * Also walk the blob files for ones no metadata knows (crash leftovers, blobs deleted before the
   * collector existed), and queue those older than `max(grace, 1 h)`. A walk of the whole store:
   * at start, daily, and in `skiff gc`.
   */
  sweepFiles?: boolean;
  /** Digests decided per metadata transaction (default 256). */
  batch?: number;
}

/** One blob the cycle deleted (or, in a dry run, would delete). */
export interface CollectedBlob {
  digest: Digest;
  size: number;
}

/** What one cycle did: the log line, the metrics and `skiff gc`'s table. */
export interface CollectReport {
  dryRun: boolean;
  startedAt: number;
  ms: number;
  /** Digests reviewed (due in the queue). */
  reviewed: number;
  /** Still in use (by a manifest, or the mirror's cache). */
  kept: number;
  /** Protected by a link younger than the grace period; reviewed again when it is older. */
  later: number;
  /** Blobs deleted (or that a dry run would delete). */
  deleted: CollectedBlob[];
  freedBytes: number;
  /** Repository links removed (of deleted blobs, and kept blobs' links that nothing in their repository uses). */
  prunedLinks: number;
  /** Condemned blobs that a push linked again before their file went: put back. */
  revived: number;
  /** Files left in quarantine by an interrupted cycle, finished now. */
  recovered: number;
  /** Files no metadata knew, queued by the file sweep. */
  orphans: number;
}

/** File operations (moves, deletes) in flight at once. */
const FILE_CONCURRENCY = 32;

async function inParallel<T>(items: T[], work: (item: T) => Promise<void>): Promise<void> {
  const limiter = new Limiter(FILE_CONCURRENCY);
  await Promise.all(items.map((item) => limiter.run(() => work(item))));
}

/** Files no metadata knows are left alone this long at least, whatever the grace: an upload commits its file before linking it. */
const ORPHAN_MIN_AGE_MS = 3600_000;

/**
 * Online garbage collection: a metadata query plus a grace period, never a walk of the files under
 * a lock (DESIGN.md §7). Each cycle reviews the digests whose last event (link, unlink, manifest
 * deleted) is older than the grace period; the metadata store decides each in a transaction, so a
 * blob a manifest PUT references is either kept (the PUT committed first) or gone from the
 * repository before the PUT's own transaction checks it (MANIFEST_BLOB_UNKNOWN, never a manifest
 * over a missing blob). A condemned blob's file is moved aside, then the metadata says whether a
 * push linked it again meanwhile (put back) or not (deleted). A trash entry recorded with the
 * decision lets the next cycle finish what a crash interrupted. Safe to run from another process
 * on the same data directory (`skiff gc`): every decision is a SQLite transaction.
 */
export class GarbageCollector {
  private readonly metadata: MetadataStore;
  private readonly blobs: CollectableStore;
  private readonly log: Logger | undefined;

  constructor(metadata: MetadataStore, blobs: CollectableStore, log?: Logger) {
    this.metadata = metadata;
    this.blobs = blobs;
    this.log = log;
  }

  async collect(options: CollectOptions): Promise<CollectReport> {
    const dryRun = options.dryRun ?? false;
    const batch = Math.max(1, options.batch ?? 256);
    const startedAt = Date.now();
    const report: CollectReport = { dryRun, startedAt, ms: 0, reviewed: 0, kept: 0, later: 0, deleted: [], freedBytes: 0, prunedLinks: 0, revived: 0, recovered: 0, orphans: 0 };
    if (!dryRun) report.recovered = await this.finishInterrupted(report);
    if (options.sweepFiles) {
      const orphans = await this.sweepFiles(startedAt, options.graceMs, dryRun, batch);
      report.orphans = orphans.length;
      // A dry run queues nothing, so what the sweep found is listed here.
      if (dryRun) for (const digest of orphans) this.noteDeleted(report, digest, (await this.blobs.stat(digest)) ?? 0);
    }
    const cutoff = startedAt - options.graceMs;
    let after: Digest | undefined;
    for (;;) {
      const due = await this.metadata.gcDue(cutoff, batch, after);
      if (due.length === 0) break;
      after = due.at(-1);
      report.reviewed += due.length;
      const decidedAt = Date.now();
      const verdicts = await this.metadata.gcCondemn(due, cutoff, decidedAt, { dryRun });
      const condemned: Digest[] = [];
      for (const verdict of verdicts) {
        report.prunedLinks += verdict.prunedLinks;
        if (verdict.verdict === 'kept') report.kept++;
        else if (verdict.verdict === 'later') report.later++;
        else condemned.push(verdict.digest);
      }
      if (dryRun) {
        for (const digest of condemned) this.noteDeleted(report, digest, (await this.blobs.stat(digest)) ?? 0);
      } else {
        await this.dispose(condemned, decidedAt, report);
      }
      // Let requests in between batches: the metadata work above ran on this thread.
      await new Promise((resolve) => setImmediate(resolve));
    }
    report.ms = Date.now() - startedAt;
    return report;
  }

  /**
   * Moves condemned files aside, asks the metadata which came back (linked or referenced since the
   * decision), restores those and deletes the rest. A file whose modification time is after
   * `decidedAt` carries a writer's wanted mark (FsBlobStore.touch): a writer found it stored and
   * is about to link it (its touch comes before its link, the move before this check). It is put
   * back, the mark cleared, and reviewed again later.
   */
  private async dispose(condemned: Digest[], decidedAt: number, report: CollectReport): Promise<void> {
    if (condemned.length === 0) return;
    const wanted = new Set<Digest>();
    // File operations run several at once: one at a time, each waits a whole event-loop turn,
    // which under request load made a cycle of 11,000 blobs take minutes (bench/README.md, gc).
    await inParallel(condemned, async (digest) => {
      const modified = await this.blobs.quarantine(digest);
      if (modified !== undefined && modified > decidedAt) wanted.add(digest);
    });
    const { revived, gone } = await this.metadata.gcSettle(condemned);
    for (const digest of revived) wanted.add(digest);
    await inParallel([...wanted], async (digest) => {
      await this.blobs.restore(digest);
      report.revived++;
    });
    const touchedOnly = gone.filter((digest) => wanted.has(digest));
    if (touchedOnly.length > 0) await this.metadata.gcQueueDigests(touchedOnly, Date.now());
    await inParallel(
      gone.filter((digest) => !wanted.has(digest)),
      async (digest) => this.noteDeleted(report, digest, await this.blobs.purge(digest)),
    );
  }

  private noteDeleted(report: CollectReport, digest: Digest, size: number): void {
    report.deleted.push({ digest, size });
    report.freedBytes += size;
  }

  /**
   * What a crash left: trash entries (decided, file maybe not moved yet) and quarantined files
   * (moved, maybe settled already). Each is settled again from the metadata as it is now.
   */
  private async finishInterrupted(report: CollectReport): Promise<number> {
    const pending = new Set<Digest>(await this.metadata.gcTrash());
    for await (const digest of this.blobs.trashed()) pending.add(digest);
    if (pending.size === 0) return 0;
    this.log?.warn({ blobs: pending.size }, 'gc: finishing what an interrupted cycle left');
    await this.dispose([...pending], Date.now(), report);
    return pending.size;
  }

  private async sweepFiles(now: number, graceMs: number, dryRun: boolean, batch: number): Promise<Digest[]> {
    const oldEnough = now - Math.max(graceMs, ORPHAN_MIN_AGE_MS);
    const found: Digest[] = [];
    let chunk: Digest[] = [];
    const flush = async (): Promise<void> => {
      const unknown = await this.metadata.gcUnknown(chunk);
      chunk = [];
      const old: Digest[] = [];
      for (const digest of unknown) {
        const modified = await this.blobs.modifiedAt(digest);
        if (modified !== undefined && modified <= oldEnough) old.push(digest);
      }
      found.push(...old);
      // Queued as if their last event were the epoch: due in this very cycle.
      if (!dryRun) await this.metadata.gcQueueDigests(old, 0);
    };
    for await (const digest of this.blobs.list()) {
      chunk.push(digest);
      if (chunk.length >= batch) await flush();
    }
    if (chunk.length > 0) await flush();
    return found;
  }
}
