/**
 * Repository quotas (YAML `quotas:`): the most bytes a repository may hold.
 *
 * ```yaml
 * quotas:
 *   - repositories: [team-a/**]
 *     maxSize: 10GiB
 *   - repositories: ["**"]
 *     maxSize: 2GiB
 * ```
 *
 * The first rule with a glob that matches a repository gives its maximum (a repository no rule
 * matches has none). Usage is every blob linked in the repository, counted once however many of
 * its images share it, plus the size of each of its manifests (MetadataStore.repositoryUsage). A
 * push that would go over is refused with 403 DENIED, naming the rule, the limit and the usage:
 * at upload start when the repository is already at its maximum, when an upload finishes (or a
 * monolithic upload, or a mount) would link a blob not linked there yet, and at a manifest PUT of
 * a manifest not there yet. Deleting images frees their share once the garbage collector has
 * removed the repository's links (after the grace period).
 */
import { RegistryError } from '../errors/registry-error.ts';
import { globProblem, globToRegExp } from '../reference/glob.ts';
import { formatBytes } from './health.ts';
import type { MetadataStore } from './storage/metadata.ts';
import { parseSize } from './units.ts';

export interface QuotaRule {
  /** Repository globs (src/reference/glob.ts); the first rule that matches a repository applies. */
  repositories: string[];
  /** Bytes. */
  maxSize: number;
}

/**
 * The quota rules, checked against the metadata's usage. The check and the link that follows it
 * are not one transaction: concurrent pushes to one repository may together overshoot its maximum
 * by what they have in flight (each saw the usage before the others linked), as a quota counted
 * at push time does in other registries too. The next push then finds the repository over it.
 */
export class Quotas {
  private readonly rules: { rule: QuotaRule; patterns: RegExp[] }[];
  private readonly metadata: MetadataStore;

  constructor(rules: QuotaRule[], metadata: MetadataStore) {
    this.rules = rules.map((rule) => ({ rule, patterns: rule.repositories.map(globToRegExp) }));
    this.metadata = metadata;
  }

  /** The rule that applies to `repository`: the first that matches. */
  ruleFor(repository: string): QuotaRule | undefined {
    return this.rules.find((entry) => entry.patterns.some((pattern) => pattern.test(repository)))?.rule;
  }

  /** Before an upload starts: refused when the repository already holds its maximum or more. */
  async checkRoom(repository: string): Promise<void> {
    const rule = this.ruleFor(repository);
    if (!rule) return;
    const used = await this.metadata.repositoryUsage(repository);
    if (used >= rule.maxSize) throw overQuota(repository, rule, used);
  }

  /** Before `bytes` more are linked (a blob not linked there yet, a new manifest): refused when the total would exceed the maximum. */
  async checkAdd(repository: string, bytes: number, what: 'blob' | 'manifest'): Promise<void> {
    const rule = this.ruleFor(repository);
    if (!rule) return;
    const used = await this.metadata.repositoryUsage(repository);
    if (used + bytes > rule.maxSize) throw overQuota(repository, rule, used, `this ${what} adds ${formatBytes(bytes)}`);
  }
}

function overQuota(repository: string, rule: QuotaRule, used: number, adding?: string): RegistryError {
  const message = `repository ${repository} is over its quota: ${formatBytes(rule.maxSize)} (${rule.repositories.join(', ')}), ${formatBytes(used)} used${adding ? `, ${adding}` : ''}; deleted images give their space back once garbage-collected`;
  return new RegistryError('DENIED', message, { detail: { repository, quota: rule.maxSize, used, rule: rule.repositories } });
}

/** Parses `quotas:`. Problems come one per line, each naming the rule and the key: `[0].maxSize: …`. */
export function parseQuotas(v: unknown): { value: QuotaRule[] } | { problem: string } {
  if (!Array.isArray(v)) return { problem: 'expected a list of rules, each with repositories and maxSize' };
  const problems: string[] = [];
  const rules: QuotaRule[] = [];
  for (const [index, raw] of v.entries()) {
    const where = `[${index}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      problems.push(`${where}: expected a mapping with repositories and maxSize`);
      continue;
    }
    const input = raw as Record<string, unknown>;
    for (const key of Object.keys(input)) if (key !== 'repositories' && key !== 'maxSize') problems.push(`${where}.${key}: unknown setting (known: repositories, maxSize)`);
    const repositories = typeof input.repositories === 'string' ? [input.repositories] : input.repositories;
    if (!Array.isArray(repositories) || repositories.length === 0 || !repositories.every((glob) => typeof glob === 'string')) {
      problems.push(`${where}.repositories: expected a list of repository globs such as team-a/** or library/*`);
    } else {
      for (const glob of repositories as string[]) {
        const wrong = globProblem(glob);
        if (wrong) problems.push(`${where}.repositories: ${wrong}`);
      }
    }
    const size = parseSize(input.maxSize);
    if (input.maxSize === undefined) problems.push(`${where}.maxSize: missing; expected a size such as 10GiB or 500MiB`);
    else if (size === undefined || 'percent' in size || size.bytes < 1) problems.push(`${where}.maxSize: expected a size such as 10GiB or 500MiB (a bare number is bytes)`);
    rules.push({ repositories: Array.isArray(repositories) ? (repositories as string[]) : [], maxSize: size && !('percent' in size) ? size.bytes : 0 });
  }
  return problems.length > 0 ? { problem: problems.join('\n') } : { value: rules };
}
