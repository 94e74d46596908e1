import { createHash, randomUUID } from 'node:crypto';
import type { Job, Queue, QueueEvents, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { ConfigError } from '../errors/config-error.ts';
import { redactUrl } from '../errors/redact-url.ts';
import type { BlobOutcome } from './sync-events.ts';
import type { SyncTask } from './sync-task.ts';

/** What a worker moved, for the dispatcher's report: blob outcomes and bytes, summed. */
export interface Tally {
  blobs: Record<BlobOutcome, { count: number; bytes: number }>;
  bytes: number;
}

export function emptyTally(): Tally {
  return { blobs: { copied: { count: 0, bytes: 0 }, mounted: { count: 0, bytes: 0 }, existing: { count: 0, bytes: 0 } }, bytes: 0 };
}

/** What one image job returns. */
export interface QueuedResult {
  outcome: 'synced' | 'skipped';
  digest?: string;
  note?: string;
  /** The worker (a SyncRunner) that ran it: a dispatcher's own runner has its moves in its report already. */
  worker: string;
  /**
   * What that worker moved since its previous job ended (all its images' blobs: one blob may serve
   * several images at once, so this is not per image); summed over every job, the workers' whole.
   */
  moved: Tally;
}

interface JobData {
  task: SyncTask;
  key: string;
}

/** How often the jobs still waited for are looked up, in case their end's event was missed. */
const SWEEP_MS = 30_000;

export type JobOutcome = { ok: true; result: QueuedResult } | { ok: false; reason: string };

export interface SyncQueueOptions {
  /** `redis://…` of the Redis the dispatcher and its workers share. */
  url: string;
  /** The BullMQ queue's name (default `skiff-sync`): dispatchers and workers of one deployment use the same. */
  name?: string;
  /**
   * How long a worker holds a job without renewing it before the job counts as stalled and goes back
   * to the queue for another worker (a worker killed mid-image). Renewed every half of it meanwhile.
   */
  lockMs?: number;
}

/**
 * `skiff sync --queue`: image tasks spread over several processes through BullMQ. The dispatcher
 * adds one job per image (its id from the run and the task, so a task is queued once) and waits
 * for each job's end on the queue's events; workers take jobs with a lock that they renew while
 * the image copies. A worker that dies stops renewing: once its lock runs out, another worker's
 * stalled-job check puts the job back, and someone copies it again, which is safe because a copy
 * skips what the destination already has. Failures are retried by BullMQ with backoff
 * (image-syncer's `--retries`, as attempts); the last one is the job's failure.
 */
export class SyncQueue {
  private readonly options: Required<SyncQueueOptions>;
  private readonly connections: Redis[] = [];
  private queue: Queue | undefined;
  private events: QueueEvents | undefined;
  private worker: Worker | undefined;
  private readonly waiting = new Map<string, (outcome: JobOutcome) => void>();
  private readonly runId = randomUUID();
  private sweeper: NodeJS.Timeout | undefined;
  private sweeping = false;

  constructor(options: SyncQueueOptions) {
    this.options = { name: 'skiff-sync', lockMs: 30_000, ...options };
  }

  /** A connection of BullMQ's liking (no per-request retry limit: its blocking calls wait), checked now. */
  private async connect(): Promise<Redis> {
    const { Redis } = await import('ioredis');
    let lastError: Error | undefined;
    const redis = new Redis(this.options.url, { maxRetriesPerRequest: null, lazyConnect: true, retryStrategy: (times) => Math.min(50 * 2 ** times, 2000) });
    redis.on('error', (error: Error) => (lastError = error));
    try {
      await redis.connect();
      await redis.ping();
    } catch (error) {
      redis.disconnect();
      throw new ConfigError(`--queue ${redactUrl(this.options.url)}: cannot use Redis: ${(lastError ?? (error as Error)).message}`);
    }
    this.connections.push(redis);
    return redis;
  }

  private async openQueue(): Promise<Queue> {
    if (this.queue) return this.queue;
    const { Queue } = await import('bullmq');
    this.queue = new Queue(this.options.name, { connection: await this.connect() });
    return this.queue;
  }

  /** Starts listening for job ends; call before the first `enqueue`. */
  async listen(): Promise<void> {
    if (this.events) return;
    const { QueueEvents } = await import('bullmq');
    const events = new QueueEvents(this.options.name, { connection: await this.connect() });
    events.on('completed', ({ jobId, returnvalue }) => this.settle(jobId, { ok: true, result: (typeof returnvalue === 'string' ? JSON.parse(returnvalue) : returnvalue) as QueuedResult }));
    events.on('failed', ({ jobId, failedReason }) => this.settle(jobId, { ok: false, reason: failedReason }));
    await events.waitUntilReady();
    this.events = events;
  }

  private settle(jobId: string, outcome: JobOutcome): void {
    const resolve = this.waiting.get(jobId);
    if (!resolve) return;
    this.waiting.delete(jobId);
    resolve(outcome);
  }

  /** Queues one image and resolves when a worker finished it (or its last attempt failed). */
  async enqueue(task: SyncTask, key: string, attempts: number): Promise<JobOutcome> {
    const queue = await this.openQueue();
    const jobId = `${this.runId}-${createHash('sha256').update(key).digest('hex').slice(0, 32)}`;
    const done = new Promise<JobOutcome>((resolve) => this.waiting.set(jobId, resolve));
    const data: JobData = { task, key };
    try {
      await queue.add('image', data, {
        jobId,
        attempts,
        backoff: { type: 'exponential', delay: 1000 },
        removeOnComplete: { age: 3600 },
        removeOnFail: { age: 24 * 3600 },
      });
    } catch (error) {
      this.waiting.delete(jobId);
      throw error;
    }
    this.sweeper ??= setInterval(() => void this.sweep(), SWEEP_MS).unref();
    return done;
  }

  /**
   * A job's end normally arrives as an event; one missed while the events' connection was away
   * (the stream is trimmed meanwhile) would leave its waiter forever. Every SWEEP_MS the jobs still
   * waited for are looked up: a finished one settles from its stored state.
   */
  private async sweep(): Promise<void> {
    const queue = this.queue;
    if (!queue || this.sweeping) return;
    this.sweeping = true;
    try {
      for (const jobId of [...this.waiting.keys()]) {
        const job = await queue.getJob(jobId);
        if (!job) continue;
        const state = await job.getState();
        if (state === 'completed') this.settle(jobId, { ok: true, result: job.returnvalue as QueuedResult });
        else if (state === 'failed') this.settle(jobId, { ok: false, reason: job.failedReason });
      }
    } catch {
      // Redis away: the next sweep tries again.
    } finally {
      this.sweeping = false;
    }
  }

  /** Takes jobs, `concurrency` at a time, until `close`. */
  async work(concurrency: number, handle: (task: SyncTask, key: string) => Promise<QueuedResult>): Promise<void> {
    const { Worker } = await import('bullmq');
    this.worker = new Worker<JobData, QueuedResult>(this.options.name, async (job: Job<JobData>) => handle(job.data.task, job.data.key), {
      connection: await this.connect(),
      concurrency,
      lockDuration: this.options.lockMs,
      stalledInterval: Math.max(1000, Math.floor(this.options.lockMs / 2)),
      // A job whose worker died twice (a poison image that kills workers?) fails instead of going round forever.
      maxStalledCount: 2,
    });
    this.worker.on('error', () => undefined); // connection trouble: BullMQ reconnects; jobs' own failures come as job failures
    await this.worker.waitUntilReady();
  }

  /** Jobs of this process still waiting for their end. */
  get pending(): number {
    return this.waiting.size;
  }

  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    await this.worker?.close();
    await this.events?.close();
    await this.queue?.close();
    for (const redis of this.connections.splice(0)) redis.disconnect();
  }
}

