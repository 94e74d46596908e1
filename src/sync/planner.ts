import type { ImageRule } from './image-rule.ts';
import type { SyncClients } from './sync-clients.ts';
import { formatAddress, taskKey, type SyncTask } from './sync-task.ts';

export interface ExpandOptions {
  /** Source images (`registry/repository:tag`) matching any of these are left out. */
  exclude?: RegExp[];
  signal?: AbortSignal;
  /** Wraps each registry request (the run's bounded pool for manifest and listing calls). */
  request?: <T>(call: () => Promise<T>) => Promise<T>;
}

/** A rule whose tags cannot be expanded (listing failed, or renames do not line up). */
export class RuleError extends Error {
  readonly rule: string;
  constructor(rule: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.rule = rule;
    this.name = 'RuleError';
  }
}

/**
 * Expands one rule into (source, destination) tasks: lists the repository's tags (following
 * `Link` pages) when the rule takes all tags or a regex, applies `--exclude`, then pairs each
 * source tag with each destination, renaming tags in order where the destination names them.
 */
export async function expandRule(rule: ImageRule, clients: SyncClients, options: ExpandOptions = {}): Promise<SyncTask[]> {
  const { source } = rule;
  const request = options.request ?? ((call) => call());
  let references: string[];
  switch (source.select.kind) {
    case 'digest':
      references = [source.select.digest];
      break;
    case 'list':
      references = source.select.tags;
      break;
    default: {
      const client = clients.get(source.registry, source.repository);
      let tags: string[];
      try {
        tags = await request(() => client.listTags(source.repository, options.signal));
      } catch (error) {
        throw new RuleError(rule.key, `cannot list the tags of ${source.registry}/${source.repository}: ${(error as Error).message}`, { cause: error });
      }
      const { select } = source;
      references = select.kind === 'regex' ? tags.filter((tag) => select.pattern.test(tag)) : tags;
    }
  }
  const excluded = (reference: string) => (options.exclude ?? []).some((pattern) => pattern.test(formatAddress({ registry: source.registry, repository: source.repository, reference })));
  const kept = references.filter((reference) => !excluded(reference));
  const tasks: SyncTask[] = [];
  for (const destination of rule.destinations) {
    if (destination.tags && destination.tags.length !== kept.length) {
      throw new RuleError(rule.key, `the destination ${destination.registry}/${destination.repository} names ${destination.tags.length} tag(s) but the source matched ${kept.length} (${kept.join(', ') || 'none'}); they rename in order`);
    }
    kept.forEach((reference, index) => {
      tasks.push({
        rule: rule.key,
        source: { registry: source.registry, repository: source.repository, reference },
        destination: { registry: destination.registry, repository: destination.repository, reference: destination.tags?.[index] ?? destination.digest ?? reference },
      });
    });
  }
  return tasks;
}

/** What the streaming planner hands out, in rule order: a rule's outcome, then its new tasks. */
export type PlanItem =
  | { kind: 'planned'; rule: ImageRule; tasks: number }
  | { kind: 'task'; task: SyncTask; key: string }
  | { kind: 'rule-failed'; rule: ImageRule; error: unknown };

export interface PlanOptions extends ExpandOptions {
  /**
   * Task keys (`taskKey`) already handed out in this run: a task two rules produce is planned once.
   * The planner adds to it; the runner keeps it across retry passes.
   */
  seen: Set<string>;
  /**
   * The run's `overlappingPairs`: only tasks of these pairs can come from two rules, so only their
   * keys go into `seen`. Without it, every key does.
   */
  overlapping?: ReadonlySet<string>;
  /** Rules expanded ahead of the one being handed out, so tag listings overlap the copying (default 8). */
  lookahead?: number;
}

type Expansion = { tasks: SyncTask[] } | { error: unknown };

/** `registry/repository -> registry/repository`: two tasks can be the same copy only if these are equal. */
function pairOf(source: { registry: string; repository: string }, destination: { registry: string; repository: string }): string {
  return `${source.registry}/${source.repository} -> ${destination.registry}/${destination.repository}`;
}

/**
 * The (source repository, destination repository) pairs that more than one rule names (a rule's
 * destinations de-duplicated as the rule's own tasks are). Only these rules' tasks can repeat from
 * one rule to another, so a run needs to remember only their keys: a run of 10,000 rules that each
 * copy one repository to its own place remembers none.
 */
export function overlappingPairs(rules: Iterable<ImageRule>): Set<string> {
  const named = new Set<string>();
  const overlapping = new Set<string>();
  for (const rule of rules) {
    const pairs = new Set(rule.destinations.map((destination) => pairOf(rule.source, destination)));
    for (const pair of pairs) {
      if (named.has(pair)) overlapping.add(pair);
      named.add(pair);
    }
  }
  return overlapping;
}

/**
 * Streams the tasks of many rules, pulled by the consumer: up to `lookahead` rules are expanded ahead
 * (their listings run while earlier tasks are copied), and a rule's tasks are handed out one at a time.
 * Nothing proportional to the whole run is built up front, so a run of 10,000 rules holds a few
 * rules' tasks at a time, not 10,000 images in flight (issue 14).
 */
export async function* planTasks(rules: Iterable<ImageRule>, clients: SyncClients, options: PlanOptions): AsyncGenerator<PlanItem, void, undefined> {
  const lookahead = Math.max(1, options.lookahead ?? 8);
  const expand = (rule: ImageRule): Promise<Expansion> =>
    expandRule(rule, clients, options).then(
      (tasks) => ({ tasks }),
      (error: unknown) => ({ error }),
    );
  const iterator = rules[Symbol.iterator]();
  const ahead: { rule: ImageRule; expansion: Promise<Expansion> }[] = [];
  const fill = (): void => {
    while (ahead.length < lookahead && !options.signal?.aborted) {
      const next = iterator.next();
      if (next.done) return;
      ahead.push({ rule: next.value, expansion: expand(next.value) });
    }
  };
  for (fill(); ahead.length > 0; fill()) {
    const { rule, expansion } = ahead.shift()!;
    const expanded = await expansion;
    if (options.signal?.aborted) return;
    if ('error' in expanded) {
      yield { kind: 'rule-failed', rule, error: expanded.error };
      continue;
    }
    const tasks: (SyncTask | undefined)[] = [];
    const keys: string[] = [];
    const own = new Set<string>(); // one rule can name a copy twice too (`x@d: [y, y@d]`, a tag listed twice)
    for (const task of expanded.tasks) {
      const key = taskKey(task);
      if (own.has(key) || options.seen.has(key)) continue;
      own.add(key);
      if (!options.overlapping || options.overlapping.has(pairOf(task.source, task.destination))) options.seen.add(key);
      tasks.push(task);
      keys.push(key);
    }
    yield { kind: 'planned', rule, tasks: tasks.length };
    for (let i = 0; i < tasks.length; i++) {
      if (options.signal?.aborted) return;
      const task = tasks[i]!;
      tasks[i] = undefined; // handed out: the consumer holds it now
      yield { kind: 'task', task, key: keys[i]! };
    }
  }
}
