import { isDigest, type Digest } from '../digest/digest.ts';
import { isValidTag } from '../reference/name.ts';
import { InvalidReferenceError, parseReference } from '../reference/reference.ts';
import { ConfigError } from '../errors/config-error.ts';
import { defaultDestination, type DefaultTarget } from './default-target.ts';
import { expandEnv } from './env-expand.ts';

/** Which source tags a rule takes. */
export type TagSelector =
  | { kind: 'all' }
  | { kind: 'list'; tags: string[] }
  | { kind: 'regex'; pattern: RegExp }
  | { kind: 'digest'; digest: Digest };

export interface RuleSource {
  registry: string;
  repository: string;
  select: TagSelector;
}

export interface RuleDestination {
  registry: string;
  repository: string;
  /** Renames the source tags, in order. */
  tags?: string[];
  digest?: Digest;
}

/** One `"source": "destination" | ["destination", …]` entry of images.json. */
export interface ImageRule {
  /** The key as written, for messages and the success-images file. */
  key: string;
  source: RuleSource;
  destinations: RuleDestination[];
}

// A registry host may carry a port only when a path follows, so `nginx:5000` stays a tag.
const SPLIT = /^(?<name>[^:/@]+(?::\d+(?=\/))?(?:\/[^:@]+)*)(?::(?<tags>[^@]*))?(?:@(?<digest>.+))?$/;

interface SplitReference {
  registry: string;
  repository: string;
  tags?: string;
  digest?: Digest;
}

function split(text: string, where: string): SplitReference {
  const match = SPLIT.exec(text.trim());
  if (!match?.groups) throw new ConfigError(`${where}: ${JSON.stringify(text)} is not registry/repository[:tags][@digest]`);
  const { name, tags, digest } = match.groups as { name: string; tags?: string; digest?: string };
  let registry: string;
  let repository: string;
  try {
    const ref = parseReference(name, { defaultTag: false });
    registry = ref.domain;
    repository = ref.path;
  } catch (error) {
    throw new ConfigError(`${where}: ${error instanceof InvalidReferenceError ? error.message : String(error)}`);
  }
  if (digest !== undefined && !isDigest(digest)) throw new ConfigError(`${where}: ${JSON.stringify(digest)} is not a digest (algorithm:hex)`);
  return { registry, repository, ...(tags !== undefined ? { tags } : {}), ...(digest !== undefined ? { digest } : {}) };
}

function tagList(text: string, where: string): string[] {
  const tags = text.split(',').map((t) => t.trim());
  for (const tag of tags) if (!isValidTag(tag)) throw new ConfigError(`${where}: ${JSON.stringify(tag)} is not a valid tag`);
  return [...new Set(tags)];
}

export function parseSource(key: string, where: string): RuleSource {
  if (key.trim() === '') throw new ConfigError(`${where}: the source is empty`);
  const parts = split(key, where);
  let select: TagSelector = { kind: 'all' };
  if (parts.digest !== undefined) {
    if (parts.tags !== undefined) throw new ConfigError(`${where}: give tags or a digest, not both`);
    select = { kind: 'digest', digest: parts.digest };
  } else if (parts.tags !== undefined) {
    const regex = /^\/(.+)\/$/.exec(parts.tags);
    if (regex) {
      try {
        select = { kind: 'regex', pattern: new RegExp(regex[1]!) };
      } catch (error) {
        throw new ConfigError(`${where}: bad tag regular expression: ${(error as Error).message}`);
      }
    } else select = { kind: 'list', tags: tagList(parts.tags, where) };
  }
  return { registry: parts.registry, repository: parts.repository, select };
}

export function parseDestination(text: string, source: RuleSource, where: string): RuleDestination {
  if (text.trim() === '') throw new ConfigError(`${where}: the destination is empty; write registry/repository[:tag]`);
  const parts = split(text, where);
  const destination: RuleDestination = { registry: parts.registry, repository: parts.repository };
  if (parts.tags !== undefined) {
    if (parts.tags.startsWith('/')) throw new ConfigError(`${where}: a destination cannot use a regular expression`);
    destination.tags = tagList(parts.tags, where);
    const { select } = source;
    const count = select.kind === 'list' ? select.tags.length : select.kind === 'digest' ? 1 : undefined;
    // For all-tags and regex sources the count is known only after listing; the planner checks it then.
    if (count !== undefined && count !== destination.tags.length) throw new ConfigError(`${where}: the destination names ${destination.tags.length} tag(s) but the source has ${count}; they rename in order`);
  }
  if (parts.digest !== undefined) {
    if (source.select.kind !== 'digest' || source.select.digest !== parts.digest) throw new ConfigError(`${where}: a destination digest must equal the source digest`);
    destination.digest = parts.digest;
  }
  return destination;
}

/**
 * Parses an images document (the file's mapping) into rules; errors name the file and key. An
 * empty destination goes to the default registry and namespace (`defaults`), as in image-syncer.
 */
export function parseImageRules(document: Record<string, unknown>, file: string, env: NodeJS.ProcessEnv = process.env, defaults: DefaultTarget = {}): ImageRule[] {
  const rules: ImageRule[] = [];
  const strings = new Strings();
  for (const [key, value] of Object.entries(document)) {
    const where = `${file}: key ${JSON.stringify(key)}`;
    const source = parseSource(key, where);
    const targets = typeof value === 'string' ? [value] : Array.isArray(value) ? value : undefined;
    if (!targets || targets.length === 0 || targets.some((t) => typeof t !== 'string')) {
      throw new ConfigError(`${where}: the destination must be a string or a non-empty list of strings, got ${JSON.stringify(value)}`);
    }
    const destinations = new Map<string, RuleDestination>();
    for (const written of targets as string[]) {
      let destination: RuleDestination;
      if (written.trim() === '') destination = defaultDestination(source, defaults, where);
      else {
        const text = expandEnv(written, env).trim();
        if (text === '') throw new ConfigError(`${where}: the destination ${JSON.stringify(written)} is empty once its variables are expanded (are they set?)`);
        destination = parseDestination(text, source, where);
      }
      // Duplicates are dropped, also when an empty destination names one written out.
      destinations.set(JSON.stringify([destination.registry, destination.repository, destination.tags, destination.digest]), destination);
    }
    rules.push(compact({ key, source, destinations: [...destinations.values()] }, strings));
  }
  return rules;
}

/**
 * One flat copy of each name and tag a file's rules use. Parsing leaves slices, each keeping the
 * whole key or value it was cut from alive, and a run keeps its rules to the end (a retry pass
 * expands them again): 10,000 one-image rules took ~510 bytes each, ~350 with this, and V8 sizes its
 * heap at a few times what is live (issue 14). The registry and a tag such as `latest` are then one
 * string for all the rules.
 */
class Strings {
  private readonly known = new Map<string, string>();

  get(text: string): string {
    let kept = this.known.get(text);
    if (kept === undefined) {
      // `join` of two non-empty parts builds a new flat string, never a slice or a rope.
      kept = text.length < 2 ? text : [text.slice(0, 1), text.slice(1)].join('');
      this.known.set(kept, kept);
    }
    return kept;
  }
}

function compact(rule: ImageRule, strings: Strings): ImageRule {
  const { source } = rule;
  source.registry = strings.get(source.registry);
  source.repository = strings.get(source.repository);
  if (source.select.kind === 'list') source.select.tags = source.select.tags.map((tag) => strings.get(tag));
  for (const destination of rule.destinations) {
    destination.registry = strings.get(destination.registry);
    destination.repository = strings.get(destination.repository);
    if (destination.tags) destination.tags = destination.tags.map((tag) => strings.get(tag));
  }
  return rule;
}
