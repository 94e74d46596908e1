import type { ImageRule } from './image-rule.ts';
import type { SyncClients } from './sync-clients.ts';
import { formatAddress, type SyncTask } from './sync-task.ts';

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
