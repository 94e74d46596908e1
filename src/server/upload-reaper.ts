import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Registry } from './registry.ts';

export interface UploadReaperOptions {
  /** Sessions with no activity (creation or a chunk received) for this many ms are purged. */
  expiry: number;
  log: Logger;
  /** Sessions taken per query; the pass yields to the event loop between batches. */
  batchSize?: number;
  /** The clock; tests move it forward instead of sleeping. */
  now?: () => number;
}

/** Passes at most this far apart, so a long expiry still frees space within minutes of it. */
const MAX_INTERVAL = 10 * 60_000;

/**
 * Purges abandoned upload sessions: their ingest bytes and their row. Without it every
 * `POST …/blobs/uploads/` (and every `?mount=` miss) that is never finished stays forever.
 * The decision per session is Registry.expireUpload's, under the session's lock.
 */
export class UploadReaper {
  private readonly registry: Registry;
  private readonly expiry: number;
  private readonly log: Logger;
  private readonly batchSize: number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private current: Promise<number> | undefined;
  private stopped = false;

  constructor(registry: Registry, options: UploadReaperOptions) {
    this.registry = registry;
    this.expiry = options.expiry;
    this.log = options.log;
    this.batchSize = options.batchSize ?? 500;
    this.now = options.now ?? Date.now;
  }

  /** How often passes run: a quarter of the expiry, so a session outlives it by at most 25 %. */
  get interval(): number {
    return Math.min(Math.max(1, Math.floor(this.expiry / 4)), MAX_INTERVAL);
  }

  /** Runs a first pass now (sessions left from before a restart) and then every `interval`. */
  start(): this {
    if (this.timer || this.stopped) return this;
    this.timer = setInterval(() => void this.sweep(), this.interval);
    this.timer.unref(); // never the reason the process stays up
    void this.sweep();
    return this;
  }

  /**
   * One pass over every stale session, in batches. Overlapping calls share the running pass.
   * Never rejects: a failure is logged and the next pass tries again. Resolves to the count purged.
   */
  sweep(): Promise<number> {
    this.current ??= this.pass().finally(() => {
      this.current = undefined;
    });
    return this.current;
  }

  private async pass(): Promise<number> {
    // One cut-off for the whole pass: sessions that go stale meanwhile wait for the next one.
    const idleSince = this.now() - this.expiry;
    let purged = 0;
    try {
      while (!this.stopped) {
        const stale = await this.registry.metadata.staleUploads(idleSince, this.batchSize);
        let purgedNow = 0;
        for (const session of stale) {
          if (this.stopped) break;
          try {
            if (await this.registry.expireUpload(session.id, idleSince)) purgedNow++;
          } catch (error) {
            this.log.warn({ err: error, upload: session.id, repository: session.repository }, 'could not purge an expired upload session');
          }
        }
        purged += purgedNow;
        // A short batch was the last; a batch of only busy or failing sessions would come back
        // unchanged, so stop there too rather than spin.
        if (stale.length < this.batchSize || purgedNow === 0) break;
        await yieldToLoop();
      }
    } catch (error) {
      this.log.error({ err: error }, 'upload expiry pass failed; retrying at the next one');
    }
    if (purged > 0) this.log.info({ purged, uploadExpiry: this.expiry }, `purged ${purged} upload session(s) idle longer than uploadExpiry`);
    return purged;
  }

  /** Stops the timer and waits for a pass in progress to finish its current session. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    await this.current;
  }
}
