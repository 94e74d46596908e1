/**
 * Retention rules (YAML `gc.retention:`): which tags and untagged manifests a GC cycle deletes
 * before the collector frees the blobs they leave unused.
 *
 * ```yaml
 * gc:
 *   retention:
 *     - repositories: [prod/**]          # no delete key: exempt from the rules below
 *     - repositories: [ci/**, sandbox/*]
 *       keepTags: [latest, "v*"]
 *       keepLatest: 10
 *       deleteTagsOlderThan: 30d
 *       deleteUntaggedOlderThan: 7d
 * ```
 *
 * - **Which rule.** Rules are tried in order; the first one with a `repositories` glob (as in
 *   src/reference/glob.ts: `*` within one path component, `**` across them) that matches the
 *   repository applies, and no other. A repository no rule matches is left alone, and so is every
 *   mirror's cached repository, whatever the globs.
 * - **Tags.** A tag is kept when its name matches a `keepTags` glob (`*` and `?` over tag names),
 *   or when it is among the newest `keepLatest` of the tags `keepTags` did not keep (newest by push
 *   time: when the tag last moved or was pushed again; ties go to the greater tag name). Any other
 *   tag is deleted: with `deleteTagsOlderThan`, when it was pushed longer ago than that; without it
 *   but with `keepLatest`, for being beyond the newest N. With neither, no tag is deleted.
 *   Deleting a tag leaves its manifest: only `deleteUntaggedOlderThan` deletes manifests.
 * - **Untagged manifests** (`deleteUntaggedOlderThan`). After the tag decisions, a manifest is
 *   deleted when no tag names it, no manifest of the repository that stays references it (an index
 *   over it), it is not a referrer whose subject stays, and it was pushed longer ago than that. An
 *   index that goes takes its children that have no other reason to stay (untagged, old enough,
 *   in no other index that stays); a child pushed more recently stays until it is old enough.
 * - **Referrers** (signatures, SBOMs, attestations: manifests whose `subject` is a manifest of the
 *   repository) go with their subject, recursively and whatever their age, unless they are tagged
 *   themselves. A referrer whose subject is not in the repository counts as an untagged manifest.
 * - **Race with pushes.** The plan is made first, then carried out: a tag is deleted only if it
 *   still names the same manifest and was not pushed again since, and a manifest only if, in the
 *   same transaction, no tag names it, no manifest of the repository references it and its subject
 *   is gone. A push meanwhile wins; the next cycle looks again.
 * - **Dry run** (`skiff gc --dry-run`): the same plan, listed, nothing deleted.
 *
 * Deleting a manifest queues its blobs for the collector, which frees them after the grace period.
 */
import type { Digest } from '../../digest/digest.ts';
import { globProblem, globToRegExp } from '../../reference/glob.ts';
import type { ManifestRecord, MetadataStore } from '../storage/metadata.ts';
import { parseDuration } from '../units.ts';

/** One retention rule (YAML `gc.retention:`); durations in milliseconds. */
export interface RetentionRule {
  /** Repository globs; the first rule that matches a repository is the one that applies to it. */
  repositories: string[];
  /** Tags whose names match one of these globs are always kept. */
  keepTags?: string[];
  /** The newest N tags (by push time) that keepTags did not keep are kept too. */
  keepLatest?: number;
  /** Tags not kept and pushed longer ago than this are deleted. */
  deleteTagsOlderThan?: number;
  /** Untagged manifests pushed longer ago than this, that nothing keeps, are deleted (with their referrers). */
  deleteUntaggedOlderThan?: number;
}

export interface RetentionReport {
  tags: { repository: string; tag: string; digest: string; reason: string }[];
  manifests: { repository: string; digest: string; reason: string }[];
}

/** Repositories read per catalog page while looking for the ones rules match. */
const REPOSITORY_PAGE = 1000;

/** Applies retention rules to every repository one matches: see the file's comment for the rules. */
export async function applyRetention(metadata: MetadataStore, rules: RetentionRule[], options: { now: number; dryRun: boolean }): Promise<RetentionReport> {
  const report: RetentionReport = { tags: [], manifests: [] };
  if (rules.length === 0) return report;
  const compiled = rules.map((rule, index) => ({ rule, index, repositories: rule.repositories.map(globToRegExp), keepTags: (rule.keepTags ?? []).map(globToRegExp) }));
  let after: string | undefined;
  for (;;) {
    const page = await metadata.listRepositories(REPOSITORY_PAGE, after);
    for (const repository of page.items) {
      const match = compiled.find((entry) => entry.repositories.some((pattern) => pattern.test(repository)));
      if (!match || !deletes(match.rule)) continue;
      if (await metadata.isCachedRepository(repository)) continue; // the mirror's LRU owns cached content
      const plan = await planRepository(metadata, repository, match, options.now);
      await carryOut(metadata, repository, plan, options.dryRun, report);
    }
    if (!page.more || page.items.length === 0) break;
    after = page.items.at(-1);
  }
  return report;
}

function deletes(rule: RetentionRule): boolean {
  return rule.keepLatest !== undefined || rule.deleteTagsOlderThan !== undefined || rule.deleteUntaggedOlderThan !== undefined;
}

interface Plan {
  tags: { tag: string; digest: Digest; updatedAt: number; reason: string }[];
  /** Parents (indexes, subjects) before the manifests they keep alive, so that each guarded delete finds them gone. */
  manifests: { digest: Digest; reason: string }[];
}

async function planRepository(
  metadata: MetadataStore,
  repository: string,
  { rule, index, keepTags }: { rule: RetentionRule; index: number; keepTags: RegExp[] },
  now: number,
): Promise<Plan> {
  const which = `retention[${index}]`;
  const plan: Plan = { tags: [], manifests: [] };

  // Tags: newest first.
  const tags = await metadata.tagsWithTimes(repository);
  let latest = 0;
  for (const tag of tags) {
    if (keepTags.some((pattern) => pattern.test(tag.tag))) continue;
    if (rule.keepLatest !== undefined && latest < rule.keepLatest) {
      latest++;
      continue;
    }
    const beyond = rule.keepLatest !== undefined ? `beyond the newest ${rule.keepLatest} tags` : undefined;
    if (rule.deleteTagsOlderThan !== undefined) {
      if (now - tag.updatedAt <= rule.deleteTagsOlderThan) continue;
      plan.tags.push({ ...tag, reason: `older than ${formatDuration(rule.deleteTagsOlderThan)}${beyond ? `, ${beyond}` : ''} (${which})` });
    } else if (beyond) plan.tags.push({ ...tag, reason: `${beyond} (${which})` });
  }
  if (rule.deleteUntaggedOlderThan === undefined) return plan;

  // Untagged manifests: liveness after the tag decisions, decided upward (parents, subjects) and
  // remembered; the DAG of references and subjects has no cycles (a digest names its content).
  const cutoff = now - rule.deleteUntaggedOlderThan;
  const doomedTags = new Set(plan.tags.map((tag) => tag.tag));
  const tagged = new Set(tags.filter((tag) => !doomedTags.has(tag.tag)).map((tag) => tag.digest));
  const records = new Map<Digest, ManifestRecord | null>();
  const parents = new Map<Digest, Digest[]>();
  const liveness = new Map<Digest, boolean>();
  const record = async (digest: Digest): Promise<ManifestRecord | undefined> => {
    if (!records.has(digest)) records.set(digest, (await metadata.getManifest(repository, digest)) ?? null);
    return records.get(digest) ?? undefined;
  };
  /** The subject, when it is a manifest of the repository. */
  const subjectOf = async (manifest: ManifestRecord): Promise<Digest | undefined> => (manifest.subject !== undefined && (await record(manifest.subject)) ? manifest.subject : undefined);
  const live = async (digest: Digest): Promise<boolean> => {
    const known = liveness.get(digest);
    if (known !== undefined) return known;
    const manifest = await record(digest);
    let result = false;
    if (!manifest) result = false;
    else if (tagged.has(digest)) result = true;
    else {
      const over = await metadata.manifestParents(repository, digest);
      parents.set(digest, over);
      for (const parent of over) {
        if (await live(parent)) {
          result = true;
          break;
        }
      }
      if (!result) {
        const subject = await subjectOf(manifest);
        result = subject !== undefined ? await live(subject) : manifest.createdAt >= cutoff;
      }
    }
    liveness.set(digest, result);
    return result;
  };

  // Where to start: untagged, old, unreferenced manifests with no subject here, and the manifests
  // whose every tag goes in this run. The rest of what goes is reached from those: the children of
  // an index that goes, the referrers of a manifest that goes.
  const start: Digest[] = [];
  for (const manifest of await metadata.untaggedManifests(repository, cutoff)) {
    records.set(manifest.digest, manifest);
    start.push(manifest.digest);
  }
  for (const tag of plan.tags) if (!tagged.has(tag.digest)) start.push(tag.digest);
  const queue = [...start];
  const seen = new Set<Digest>();
  const dead = new Map<Digest, string>();
  const older = `older than ${formatDuration(rule.deleteUntaggedOlderThan)}`;
  while (queue.length > 0) {
    const digest = queue.shift()!;
    if (seen.has(digest)) continue;
    seen.add(digest);
    const manifest = await record(digest);
    if (!manifest || (await live(digest))) continue;
    const subject = await subjectOf(manifest);
    const container = parents.get(digest)?.[0];
    const reason = subject !== undefined ? `referrer of deleted ${short(subject)}` : container !== undefined ? `untagged, ${older}, only in deleted index ${short(container)}` : `untagged, ${older}`;
    dead.set(digest, `${reason} (${which})`);
    queue.push(...(await metadata.manifestChildren(repository, digest)));
    queue.push(...(await metadata.referrersOf(repository, digest)));
  }

  // Parents and subjects first: each manifest's guarded delete then finds nothing keeping it.
  const ordered = new Set<Digest>();
  const visit = async (digest: Digest): Promise<void> => {
    if (ordered.has(digest)) return;
    const manifest = (await record(digest))!;
    const before = [...(parents.get(digest) ?? [])];
    if (manifest.subject !== undefined) before.push(manifest.subject);
    for (const parent of before) if (dead.has(parent)) await visit(parent);
    ordered.add(digest);
  };
  for (const digest of dead.keys()) await visit(digest);
  plan.manifests = [...ordered].map((digest) => ({ digest, reason: dead.get(digest)! }));
  return plan;
}

async function carryOut(metadata: MetadataStore, repository: string, plan: Plan, dryRun: boolean, report: RetentionReport): Promise<void> {
  for (const tag of plan.tags) {
    if (dryRun || (await metadata.deleteTagIfUnchanged(repository, tag.tag, tag.digest, tag.updatedAt))) {
      report.tags.push({ repository, tag: tag.tag, digest: tag.digest, reason: tag.reason });
    }
  }
  for (const manifest of plan.manifests) {
    if (dryRun || (await metadata.deleteManifestIfUnused(repository, manifest.digest))) {
      report.manifests.push({ repository, digest: manifest.digest, reason: manifest.reason });
    }
  }
}

const RULE_KEYS = ['repositories', 'keepTags', 'keepLatest', 'deleteTagsOlderThan', 'deleteUntaggedOlderThan'];
const TAG_GLOB = /^[A-Za-z0-9_.\-*?]{1,128}$/;
/** A younger untagged manifest may be half of a push still going: an index's children come before the index. */
const MIN_UNTAGGED_AGE = 3_600_000;

/**
 * Parses `gc.retention:`. Problems come one per line, each naming the rule and the key:
 * `[1].keepLatest: …` (config.ts prefixes `gc.retention`).
 */
export function parseRetentionRules(v: unknown): { value: RetentionRule[] } | { problem: string } {
  if (!Array.isArray(v)) return { problem: ': expected a list of rules, each with repositories and keepTags, keepLatest, deleteTagsOlderThan or deleteUntaggedOlderThan' };
  const problems: string[] = [];
  const rules: RetentionRule[] = [];
  for (const [index, raw] of v.entries()) {
    const where = `[${index}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      problems.push(`${where}: expected a mapping with repositories and keepTags, keepLatest, deleteTagsOlderThan or deleteUntaggedOlderThan`);
      continue;
    }
    const input = raw as Record<string, unknown>;
    for (const key of Object.keys(input)) if (!RULE_KEYS.includes(key)) problems.push(`${where}.${key}: unknown setting (known: ${RULE_KEYS.join(', ')})`);
    const rule: RetentionRule = { repositories: [] };
    const repositories = stringList(input.repositories);
    if (repositories === undefined || repositories.length === 0) problems.push(`${where}.repositories: expected a list of repository globs such as ci/** or team-a/*`);
    for (const glob of repositories ?? []) {
      const wrong = globProblem(glob);
      if (wrong) problems.push(`${where}.repositories: ${wrong}`);
    }
    rule.repositories = repositories ?? [];
    if (input.keepTags !== undefined) {
      const keepTags = stringList(input.keepTags);
      if (keepTags === undefined) problems.push(`${where}.keepTags: expected a list of tag globs such as latest or "v*"`);
      for (const glob of keepTags ?? []) {
        if (!TAG_GLOB.test(glob)) problems.push(`${where}.keepTags: pattern ${JSON.stringify(glob)} may hold only tag characters (letters, digits, _ . -), * and ?`);
      }
      if (keepTags) rule.keepTags = keepTags;
    }
    if (input.keepLatest !== undefined) {
      const n = input.keepLatest;
      if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) {
        problems.push(`${where}.keepLatest: expected a whole number of tags, at least 1 (to delete tags by age alone, give deleteTagsOlderThan without keepLatest)`);
      } else rule.keepLatest = n;
    }
    if (input.deleteTagsOlderThan !== undefined) {
      const ms = parseDuration(input.deleteTagsOlderThan);
      if (ms === undefined || ms <= 0) problems.push(`${where}.deleteTagsOlderThan: expected a duration such as 30d or 12h`);
      else rule.deleteTagsOlderThan = ms;
    }
    if (input.deleteUntaggedOlderThan !== undefined) {
      const ms = parseDuration(input.deleteUntaggedOlderThan);
      if (ms === undefined) problems.push(`${where}.deleteUntaggedOlderThan: expected a duration such as 7d or 12h`);
      else if (ms < MIN_UNTAGGED_AGE) problems.push(`${where}.deleteUntaggedOlderThan: must be at least 1h (a younger untagged manifest may be part of a push still going)`);
      else rule.deleteUntaggedOlderThan = ms;
    }
    rules.push(rule);
  }
  return problems.length > 0 ? { problem: problems.join('\n') } : { value: rules };
}

function stringList(value: unknown): string[] | undefined {
  if (typeof value === 'string' && value.length > 0) return [value];
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string' && item.length > 0)) return undefined;
  return value as string[];
}

/** `30d`, `12h`, `90m`: the largest unit that divides the duration. */
function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

function short(digest: string): string {
  return digest.length > 19 ? `${digest.slice(0, 19)}…` : digest;
}
