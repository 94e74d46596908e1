import { unauthorizedIn, withCredentialsAdvice } from '../client/errors.ts';
import type { Digest } from '../digest/digest.ts';
import type { RetryPolicy } from '../client/retry.ts';
import { Limiter } from '../graph/limiter.ts';
import type { AuthTable } from './auth-table.ts';
import { BlobMover } from './blob-mover.ts';
import type { ImageRule } from './image-rule.ts';
import { ImageCopier, type ImagePlan } from './image-copier.ts';
import { overlappingPairs, planTasks, type PlanItem } from './planner.ts';
import type { PlatformFilter } from './platform-filter.ts';
import { SyncClients } from './sync-clients.ts';
import type { SyncListener } from './sync-events.ts';
import { compareText, taskKey, type SyncTask } from './sync-task.ts';
import { emptyTally, type QueuedResult, type SyncQueue, type Tally } from './task-queue.ts';
import { randomUUID } from 'node:crypto';

export interface SyncOptions {
  auth: AuthTable;
  /** Concurrent blob transfers across the whole run (image-syncer's `--proc`). */
  proc: number;
  /** Extra passes over failed tasks after the first (image-syncer's `--retries`). */
  retries: number;
  filter: PlatformFilter;
  force?: boolean;
  referrers?: boolean;
  exclude?: RegExp[];
  /** Concurrent manifest, HEAD, mount and listing requests (default 16). */
  requests?: number;
  /** Images copied at once (default 64): enough to keep both pools busy, few enough that memory stays flat. */
  images?: number;
  retry?: RetryPolicy;
  dockerConfig?: boolean;
  signal?: AbortSignal;
  onEvent?: SyncListener;
}

type Job = { kind: 'rule'; rule: ImageRule } | { kind: 'image'; task: SyncTask; key: string };

export interface DryRunEntry {
  task: SyncTask;
  plan?: ImagePlan;
  error?: string;
}

/** Images in flight by default: with 16 request slots and `--proc` transfers, more only waits in the pools. */
export const DEFAULT_IMAGES_IN_FLIGHT = 64;

/**
 * `limit` workers pulling from one iterator until it ends (an async generator queues concurrent
 * `next()` calls, so each item goes to exactly one worker).
 */
async function drain<T>(items: AsyncIterator<T>, limit: number, work: (item: T) => Promise<void>): Promise<void> {
  const worker = async (): Promise<void> => {
    for (let next = await items.next(); !next.done; next = await items.next()) await work(next.value);
  };
  await Promise.all(Array.from({ length: limit }, worker));
}

/**
 * One sync run: rules expand into image tasks as they are needed, a fixed number of images run at
 * once (their requests and transfers bounded by the two pools), and what failed is queued again
 * after the pass, up to `retries` more passes, as image-syncer does. Outcomes reach the caller as
 * events.
 */
export class SyncRunner {
  private readonly options: SyncOptions;
  private readonly clients: SyncClients;
  private readonly requests: Limiter;
  private readonly copier: ImageCopier;
  private readonly emit: SyncListener;
  private readonly imagesInFlight: number;

  /** Everything this runner moved so far (a queue worker reports it with its jobs). */
  private readonly tally: Tally = emptyTally();
  /** Names this runner as a queue worker in its jobs' results. */
  private readonly workerId = randomUUID();

  constructor(options: SyncOptions) {
    this.options = options;
    const listener = options.onEvent ?? (() => undefined);
    this.emit = (event) => {
      if (event.type === 'blob-done') {
        this.tally.blobs[event.outcome].count++;
        this.tally.blobs[event.outcome].bytes += event.size;
      } else if (event.type === 'bytes') this.tally.bytes += event.bytes;
      listener(event);
    };
    this.clients = new SyncClients({
      auth: options.auth,
      connections: Math.max(16, options.proc * 2),
      ...(options.retry ? { retry: options.retry } : {}),
      ...(options.dockerConfig !== undefined ? { dockerConfig: options.dockerConfig } : {}),
      onCredentialWarning: (message) => process.stderr.write(`skiff: warning: ${message}\n`),
    });
    this.requests = new Limiter(options.requests ?? 16);
    this.imagesInFlight = Math.max(1, options.images ?? DEFAULT_IMAGES_IN_FLIGHT);
    const signal = options.signal ? { signal: options.signal } : {};
    const mover = new BlobMover({ transfers: new Limiter(options.proc), requests: this.requests, emit: this.emit, ...signal });
    this.copier = new ImageCopier(this.clients, mover, this.requests, { filter: options.filter, force: options.force ?? false, referrers: options.referrers ?? false, ...signal });
  }

  /** The run's tasks, pulled as workers free up: image jobs (retries) first, then the rules' tasks as they expand. */
  private async *tasks(jobs: Job[], seen: Set<string>, overlapping: ReadonlySet<string>, failed: Job[], final: boolean): AsyncGenerator<{ task: SyncTask; key: string }, void, undefined> {
    const rules: ImageRule[] = [];
    for (const job of jobs) {
      if (job.kind === 'image') yield { task: job.task, key: job.key };
      else rules.push(job.rule);
    }
    for await (const item of this.plan(rules, seen, overlapping)) {
      if (item.kind === 'task') yield item;
      else if (item.kind === 'planned') this.emit({ type: 'planned', rule: item.rule.key, tasks: item.tasks });
      else {
        failed.push({ kind: 'rule', rule: item.rule });
        this.emit({ type: 'rule-failed', rule: item.rule.key, reason: await this.reason(item.error, [item.rule.source]), final });
      }
    }
  }

  private plan(rules: ImageRule[], seen: Set<string>, overlapping: ReadonlySet<string>): AsyncGenerator<PlanItem, void, undefined> {
    return planTasks(rules, this.clients, { seen, overlapping, exclude: this.options.exclude ?? [], request: (call) => this.requests.run(call), ...(this.options.signal ? { signal: this.options.signal } : {}) });
  }

  /**
   * Runs every rule to the end; the caller reads the outcome from the events. Tasks stream from the
   * planner into a fixed number of image workers (`images`), so memory does not grow with the
   * number of images; what each image leaves behind is its event.
   */
  async run(rules: ImageRule[]): Promise<void> {
    await this.passes(rules, (tasks, failed, final) =>
      drain(tasks, this.imagesInFlight, async ({ task, key }) => {
        this.emit({ type: 'image-start', task, key });
        try {
          const result = await this.copier.copy(task);
          this.emit({ type: 'image-done', task, key, outcome: result.outcome, digest: result.digest, final: true, ...(result.note ? { note: result.note } : {}) });
        } catch (error) {
          if (this.options.signal?.aborted) return;
          failed.push({ kind: 'image', task, key });
          this.emit({ type: 'image-done', task, key, outcome: 'failed', reason: await this.reason(error, [task.source, task.destination]), final });
        }
      }),
    );
  }

  /**
   * The passes `run` and `dispatch` share: the first plans the rules, each later one what the pass
   * before left in `failed`, up to `retries` passes after the first; `work` runs one pass's tasks.
   */
  private async passes(rules: ImageRule[], work: (tasks: AsyncGenerator<{ task: SyncTask; key: string }, void, undefined>, failed: Job[], final: boolean) => Promise<void>): Promise<void> {
    const seen = new Set<string>();
    const overlapping = overlappingPairs(rules);
    let pending: Job[] = rules.map((rule) => ({ kind: 'rule', rule }));
    for (let pass = 0; pending.length > 0 && pass <= this.options.retries; pass++) {
      if (this.options.signal?.aborted) break;
      this.emit({ type: 'pass', pass, jobs: pending.length });
      const final = pass === this.options.retries;
      const failed: Job[] = [];
      await work(this.tasks(pending, seen, overlapping, failed, final), failed, final);
      pending = failed;
    }
  }

  /**
   * `skiff sync --queue`: expands the rules here and queues each image for the workers (this
   * process among them when it also `serve`s), then waits for every job's end; outcomes reach the
   * caller as the same events as `run`'s, and what other workers moved as `tally` events. Retries
   * are the queue's (attempts = 1 + retries, with backoff), not passes. At most `images × 16` jobs
   * wait at once, so a run of 100,000 images does not hold 100,000 promises.
   */
  async dispatch(rules: ImageRule[], queue: SyncQueue): Promise<void> {
    await queue.listen();
    const cap = this.imagesInFlight * 16;
    let outstanding = 0;
    // The loop below is the only waiter: one wake-up at a time.
    let wake: (() => void) | undefined;
    const slot = () => new Promise<void>((resolve) => (wake = resolve));
    // Images are retried by the queue; a rule whose expansion failed (its tag list, say) is planned
    // again in a later pass, as `run` does, up to `retries` passes.
    await this.passes(rules, async (tasks) => {
      for await (const { task, key } of tasks) {
        if (this.options.signal?.aborted) break;
        while (outstanding >= cap) await slot();
        outstanding++;
        this.emit({ type: 'image-start', task, key });
        void this.awaitJob(queue, task, key).finally(() => {
          outstanding--;
          wake?.();
        });
      }
    });
    while (outstanding > 0) await slot();
  }

  /** Queues one image and reports its end as `run` reports an image's. */
  private async awaitJob(queue: SyncQueue, task: SyncTask, key: string): Promise<void> {
    let outcome;
    try {
      outcome = await queue.enqueue(task, key, this.options.retries + 1);
    } catch (error) {
      outcome = { ok: false as const, reason: `queueing the image failed: ${(error as Error).message}` };
    }
    if (!outcome.ok) {
      this.emit({ type: 'image-done', task, key, outcome: 'failed', reason: outcome.reason, final: true });
      return;
    }
    const { result } = outcome;
    // A worker's blobs reach this report through its results, unless this runner moved them itself.
    if (result.worker !== this.workerId) this.emit({ type: 'tally', ...result.moved });
    this.emit({ type: 'image-done', task, key, outcome: result.outcome, final: true, ...(result.digest ? { digest: result.digest as Digest } : {}), ...(result.note ? { note: result.note } : {}) });
  }

  /**
   * Works on the queue's image jobs, `images` at a time, until the queue is closed: this process's
   * part of a `skiff sync --queue` run. Each job's result carries what this worker moved since its
   * previous job ended, so the dispatcher's report adds up every worker's blobs.
   */
  async serve(queue: SyncQueue): Promise<void> {
    const tally = this.tally;
    let reported = emptyTally();
    await queue.work(this.imagesInFlight, async (task, key) => {
      this.emit({ type: 'image-start', task, key });
      let result;
      try {
        result = await this.copier.copy(task);
      } catch (error) {
        const reason = await this.reason(error, [task.source, task.destination]);
        // Not final here: the queue may give the image another attempt, here or on another worker.
        this.emit({ type: 'image-done', task, key, outcome: 'failed', reason, final: false });
        throw new Error(reason);
      }
      this.emit({ type: 'image-done', task, key, outcome: result.outcome, digest: result.digest, final: true, ...(result.note ? { note: result.note } : {}) });
      const moved = subtractTally(tally, reported);
      reported = structuredClone(tally);
      const queued: QueuedResult = { outcome: result.outcome, worker: this.workerId, moved, ...(result.digest ? { digest: result.digest } : {}), ...(result.note ? { note: result.note } : {}) };
      return queued;
    });
  }

  /** Expands the rules and says what each image would need, copying nothing. */
  async dryRun(rules: ImageRule[]): Promise<{ entries: DryRunEntry[]; ruleErrors: { rule: string; reason: string }[] }> {
    const entries: DryRunEntry[] = [];
    const ruleErrors: { rule: string; reason: string }[] = [];
    const seen = new Set<string>();
    const overlapping = overlappingPairs(rules);
    const tasks = async function* (this: SyncRunner): AsyncGenerator<SyncTask, void, undefined> {
      for await (const item of this.plan(rules, seen, overlapping)) {
        if (item.kind === 'task') yield item.task;
        else if (item.kind === 'rule-failed') ruleErrors.push({ rule: item.rule.key, reason: await this.reason(item.error, [item.rule.source]) });
      }
    }.call(this);
    await drain(tasks, this.imagesInFlight, async (task) => {
      try {
        entries.push({ task, plan: await this.copier.plan(task) });
      } catch (error) {
        entries.push({ task, error: await this.reason(error, [task.source, task.destination]) });
      }
    });
    entries.sort((a, b) => compareText(taskKey(a.task), taskKey(b.task)));
    return { entries, ruleErrors };
  }

  /**
   * A failure's message for the report. A 401 names where the credentials came from (auth.json,
   * Docker's config, a helper) rather than the client's generic hint: the registry the error
   * names, or each end when it names another host (a token service).
   */
  private async reason(error: unknown, ends: { registry: string; repository: string }[]): Promise<string> {
    const denied = unauthorizedIn(error);
    if (!denied) return (error as Error).message;
    const failing = ends.filter((end) => end.registry === denied.registry);
    const advice = await Promise.all((failing.length > 0 ? failing : ends).map((end) => this.clients.credentialsAdvice(end.registry, end.repository)));
    return withCredentialsAdvice(error, [...new Set(advice)].join('; '));
  }

  async close(): Promise<void> {
    await this.clients.close();
  }
}

/** `a - b`, outcome by outcome. */
function subtractTally(a: Tally, b: Tally): Tally {
  const out = emptyTally();
  for (const outcome of ['copied', 'mounted', 'existing'] as const) {
    out.blobs[outcome].count = a.blobs[outcome].count - b.blobs[outcome].count;
    out.blobs[outcome].bytes = a.blobs[outcome].bytes - b.blobs[outcome].bytes;
  }
  out.bytes = a.bytes - b.bytes;
  return out;
}

