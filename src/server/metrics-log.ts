import type { Logger } from 'pino';
import type { MetricsCounts, ServerMetrics } from './metrics.ts';

/** Every 5 minutes: 288 lines a day, against one per request. */
export const SUMMARY_INTERVAL_MS = 5 * 60_000;

/**
 * Logs the server's metrics at info every `intervalMs` (the change over the window, and the
 * gauges now) and once more at shutdown, so the counts are in the log without a Prometheus.
 * The timer is unref'd: it never keeps the process alive.
 */
export class MetricsSummaryLog {
  private timer: NodeJS.Timeout | undefined;
  private last: MetricsCounts | undefined;
  private lastAt = Date.now();
  private pending: Promise<void> = Promise.resolve();
  private readonly metrics: ServerMetrics;
  private readonly log: Logger;
  private readonly intervalMs: number;

  constructor(metrics: ServerMetrics, log: Logger, intervalMs = SUMMARY_INTERVAL_MS) {
    this.metrics = metrics;
    this.log = log;
    this.intervalMs = intervalMs;
  }

  /** The first window runs from the server's start: its metrics begin at zero. */
  start(): this {
    this.timer = setInterval(() => void this.write(false), this.intervalMs);
    this.timer.unref();
    return this;
  }

  /** Stops the timer and logs the last window. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.write(true);
  }

  /** One summary line now (also what the timer does). */
  write(final: boolean): Promise<void> {
    this.pending = this.pending.then(() => this.writeNow(final)).catch((error: unknown) => this.log.warn({ err: error }, 'could not summarize the metrics'));
    return this.pending;
  }

  private async writeNow(final: boolean): Promise<void> {
    const now = Date.now();
    const counts = await this.metrics.counts();
    const gauges = await this.metrics.gauges();
    const window = difference(counts, this.last);
    const line: Record<string, unknown> = {
      seconds: Math.round((now - this.lastAt) / 1000),
      requests: window.requests,
      statuses: window.statuses,
      incomplete: window.incomplete,
      receivedBytes: window.receivedBytes,
      sentBytes: window.sentBytes,
      connectionsRefused: window.connectionsRefused,
      inFlight: gauges.inFlight,
      uploadsInProgress: gauges.uploadsInProgress,
      connectionsOpen: gauges.connectionsOpen,
      totalRequests: counts.requests,
    };
    // A registry that is not a mirror says nothing about a cache.
    if (Object.values(counts.mirror).some((n) => n > 0) || gauges.mirrorCacheSizeBytes > 0) {
      line.mirror = { ...window.mirror, cacheSizeBytes: gauges.mirrorCacheSizeBytes };
    }
    this.last = counts;
    this.lastAt = now;
    this.log.info(line, final ? 'metrics summary at shutdown' : 'metrics summary');
  }
}

function difference(now: MetricsCounts, before: MetricsCounts | undefined): MetricsCounts {
  if (!before) return now;
  const statuses: Record<string, number> = {};
  for (const [key, value] of Object.entries(now.statuses)) {
    const delta = value - (before.statuses[key] ?? 0);
    if (delta > 0) statuses[key] = delta;
  }
  const mirror = { ...now.mirror };
  for (const key of Object.keys(mirror) as (keyof typeof mirror)[]) mirror[key] -= before.mirror[key];
  return {
    requests: now.requests - before.requests,
    statuses,
    incomplete: now.incomplete - before.incomplete,
    receivedBytes: now.receivedBytes - before.receivedBytes,
    sentBytes: now.sentBytes - before.sentBytes,
    connectionsRefused: now.connectionsRefused - before.connectionsRefused,
    mirror,
  };
}
