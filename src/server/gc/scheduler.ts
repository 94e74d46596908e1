import type { Logger } from 'pino';
import type { KeyedLock } from '../../content/keyed-lock.ts';
import type { ServerMetrics } from '../metrics.ts';
import type { MetadataStore } from '../storage/metadata.ts';
import type { GarbageCollector } from './collector.ts';
import { runGcCycle, type GcCycleReport, type GcSettings } from './cycle.ts';

/** How often the cycle also walks the blob files for ones no metadata knows. */
const FILE_SWEEP_EVERY_MS = 24 * 3600_000;
/**
 * The first walk comes this long after start, not at once: the files it looks for must be an hour
 * old anyway, and a start is when clients come back all at once (on 100k blobs under full GET
 * load the walk made the first cycle 15 s instead of ~2).
 */
const FIRST_SWEEP_AFTER_MS = 3600_000;

/**
 * `skiff serve`'s background collection: one cycle every `interval` (never two at once), the first
 * soon after start. Each cycle's summary is one log line and the gc_* metrics; a failed cycle is
 * logged and retried at the next tick. One cycle an hour after start, and then one a day, also
 * sweeps the files.
 */
export class GcScheduler {
  private readonly settings: GcSettings;
  private readonly collector: GarbageCollector;
  private readonly metadata: MetadataStore;
  private readonly log: Logger;
  private readonly metrics: ServerMetrics | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private lastSweep = Date.now() - FILE_SWEEP_EVERY_MS + FIRST_SWEEP_AFTER_MS;
  private readonly lease: KeyedLock | undefined;

  /**
   * `lease`: replicas share one (PostgreSQL's advisory lock, else a Redis lease), and a cycle runs only under it: while another replica's
   * collector runs, this one skips its turn instead of reviewing the same digests at once.
   */
  constructor(options: { settings: GcSettings; collector: GarbageCollector; metadata: MetadataStore; log: Logger; metrics?: ServerMetrics; lease?: KeyedLock | undefined }) {
    this.settings = options.settings;
    this.collector = options.collector;
    this.metadata = options.metadata;
    this.log = options.log;
    this.metrics = options.metrics;
    this.lease = options.lease;
  }

  start(firstDelayMs = Math.min(this.settings.interval, 60_000)): this {
    this.schedule(firstDelayMs);
    return this;
  }

  /** Runs one cycle now (or waits for the one running) and resolves with its report. */
  async runNow(): Promise<GcCycleReport | undefined> {
    if (this.running) {
      await this.running;
      return undefined;
    }
    let report: GcCycleReport | undefined;
    this.running = (async () => {
      const sweepFiles = Date.now() - this.lastSweep >= FILE_SWEEP_EVERY_MS;
      try {
        const cycle = () => runGcCycle(this.collector, this.metadata, this.settings, { sweepFiles, log: this.log });
        report = this.lease ? await this.lease.tryRun('gc', cycle) : await cycle();
        if (!report) {
          this.log.debug('gc: another replica is collecting; this one skips its turn');
          return;
        }
        if (sweepFiles) this.lastSweep = report.collect.startedAt;
        this.metrics?.gcCycle({
          reviewed: report.collect.reviewed,
          deletedBlobs: report.collect.deleted.length,
          freedBytes: report.collect.freedBytes,
          prunedLinks: report.collect.prunedLinks,
          deletedManifests: report.retention.manifests.length,
          deletedTags: report.retention.tags.length,
          seconds: report.ms / 1000,
          queued: report.queued,
        });
      } catch (error) {
        this.metrics?.gcCycle('failed');
        this.log.error({ err: error }, 'gc: cycle failed; the next one retries');
      }
    })();
    try {
      await this.running;
    } finally {
      this.running = undefined;
    }
    return report;
  }

  /** Stops scheduling and waits for a cycle in progress (each batch is a transaction; stopping between them is safe). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
  }

  private schedule(delay: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.runNow().finally(() => this.schedule(this.settings.interval));
    }, delay);
    this.timer.unref();
  }
}
