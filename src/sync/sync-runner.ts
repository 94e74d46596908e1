import { unauthorizedIn, withCredentialsAdvice } from '../client/errors.ts';
import type { RetryPolicy } from '../client/retry.ts';
import { Limiter } from '../graph/limiter.ts';
import type { AuthTable } from './auth-table.ts';
import { BlobMover } from './blob-mover.ts';
import type { ImageRule } from './image-rule.ts';
import { ImageCopier, type ImagePlan } from './image-copier.ts';
import { expandRule } from './planner.ts';
import type { PlatformFilter } from './platform-filter.ts';
import { SyncClients } from './sync-clients.ts';
import type { SyncListener } from './sync-events.ts';
import { compareText, taskKey, type SyncTask } from './sync-task.ts';

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
  retry?: RetryPolicy;
  dockerConfig?: boolean;
  signal?: AbortSignal;
  onEvent?: SyncListener;
}

type Job = { kind: 'rule'; rule: ImageRule } | { kind: 'image'; task: SyncTask };

export interface DryRunEntry {
  task: SyncTask;
  plan?: ImagePlan;
  error?: string;
}

/**
 * One sync run: rules expand into image tasks, every task runs concurrently (bounded by the
 * request and transfer pools), and what failed is queued again after the pass, up to
 * `retries` more passes, as image-syncer does. Outcomes reach the caller as events.
 */
export class SyncRunner {
  private readonly options: SyncOptions;
  private readonly clients: SyncClients;
  private readonly requests: Limiter;
  private readonly copier: ImageCopier;
  private readonly emit: SyncListener;

  constructor(options: SyncOptions) {
    this.options = options;
    this.emit = options.onEvent ?? (() => undefined);
    this.clients = new SyncClients({
      auth: options.auth,
      connections: Math.max(16, options.proc * 2),
      ...(options.retry ? { retry: options.retry } : {}),
      ...(options.dockerConfig !== undefined ? { dockerConfig: options.dockerConfig } : {}),
      onCredentialWarning: (message) => process.stderr.write(`skiff: warning: ${message}\n`),
    });
    this.requests = new Limiter(options.requests ?? 16);
    const signal = options.signal ? { signal: options.signal } : {};
    const mover = new BlobMover({ transfers: new Limiter(options.proc), requests: this.requests, emit: this.emit, ...signal });
    this.copier = new ImageCopier(this.clients, mover, this.requests, { filter: options.filter, force: options.force ?? false, referrers: options.referrers ?? false, ...signal });
  }

  private expand(rule: ImageRule): Promise<SyncTask[]> {
    return expandRule(rule, this.clients, { exclude: this.options.exclude ?? [], request: (call) => this.requests.run(call), ...(this.options.signal ? { signal: this.options.signal } : {}) });
  }

  /** The rule's tasks that no other rule of this run produced already (two rules may name one copy). */
  private async expandNew(rule: ImageRule, seen: Set<string>): Promise<SyncTask[]> {
    return (await this.expand(rule)).filter((task) => {
      const key = taskKey(task);
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
  }

  /** Runs every rule to the end; the caller reads the outcome from the events. */
  async run(rules: ImageRule[]): Promise<void> {
    const seen = new Set<string>();
    let pending: Job[] = rules.map((rule) => ({ kind: 'rule', rule }));
    for (let pass = 0; pending.length > 0 && pass <= this.options.retries; pass++) {
      if (this.options.signal?.aborted) break;
      this.emit({ type: 'pass', pass, jobs: pending.length });
      const final = pass === this.options.retries;
      const failed: Job[] = [];
      const runJob = async (job: Job): Promise<void> => {
        if (job.kind === 'rule') {
          try {
            const tasks = await this.expandNew(job.rule, seen);
            this.emit({ type: 'planned', rule: job.rule.key, tasks: tasks.length });
            await Promise.all(tasks.map((task) => runJob({ kind: 'image', task })));
          } catch (error) {
            if (this.options.signal?.aborted) return;
            failed.push(job);
            this.emit({ type: 'rule-failed', rule: job.rule.key, reason: await this.reason(error, [job.rule.source]), final });
          }
          return;
        }
        this.emit({ type: 'image-start', task: job.task });
        try {
          const result = await this.copier.copy(job.task);
          this.emit({ type: 'image-done', task: job.task, outcome: result.outcome, digest: result.digest, final: true, ...(result.note ? { note: result.note } : {}) });
        } catch (error) {
          if (this.options.signal?.aborted) return;
          failed.push(job);
          this.emit({ type: 'image-done', task: job.task, outcome: 'failed', reason: await this.reason(error, [job.task.source, job.task.destination]), final });
        }
      };
      await Promise.all(pending.map(runJob));
      pending = failed;
    }
  }

  /** Expands the rules and says what each image would need, copying nothing. */
  async dryRun(rules: ImageRule[]): Promise<{ entries: DryRunEntry[]; ruleErrors: { rule: string; reason: string }[] }> {
    const entries: DryRunEntry[] = [];
    const ruleErrors: { rule: string; reason: string }[] = [];
    const seen = new Set<string>();
    await Promise.all(
      rules.map(async (rule) => {
        let tasks: SyncTask[];
        try {
          tasks = await this.expandNew(rule, seen);
        } catch (error) {
          ruleErrors.push({ rule: rule.key, reason: await this.reason(error, [rule.source]) });
          return;
        }
        await Promise.all(
          tasks.map(async (task) => {
            try {
              entries.push({ task, plan: await this.copier.plan(task) });
            } catch (error) {
              entries.push({ task, error: await this.reason(error, [task.source, task.destination]) });
            }
          }),
        );
      }),
    );
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
