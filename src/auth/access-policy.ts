import { globProblem, globToRegExp } from '../reference/glob.ts';
import { ACTIONS, isAction, type Action } from './actions.ts';

/** One permission rule: who (users, groups, anonymous) may do what (actions) on which repositories (globs). */
export interface AccessRule {
  repositories: string[];
  actions: Action[];
  /** User names; `*` is every authenticated user. */
  users: string[];
  groups: string[];
  /** The rule applies to requests without credentials too. */
  anonymous: boolean;
}

/** The `access:` section of the serve config. */
export interface AccessConfig {
  /** Group name → user names. */
  groups: Record<string, string[]>;
  rules: AccessRule[];
  /** Users who may do everything everywhere. */
  admins: string[];
}

type Parsed<T> = { value: T } | { problem: string };

const NONE: ReadonlySet<Action> = new Set();
const ALL: ReadonlySet<Action> = new Set(ACTIONS);

interface CompiledRule {
  patterns: RegExp[];
  actions: Action[];
  users: Set<string>;
  anyUser: boolean;
  groups: string[];
  anonymous: boolean;
}

/**
 * Who may pull, push and delete where: one answer per (user, repository), the union of every rule
 * that names the user (directly, by group, by `*`, or as anonymous) and matches the repository.
 *
 * Without an `access:` section an authenticated user may do everything, as with the CNCF
 * registry's htpasswd; `anonymousPull` adds pull for everyone. Repository names reach the policy
 * already validated (lowercase components, no `.`/`..` segments, no encoded slashes: the server's
 * edge refuses those), so a glob sees exactly the name the storage will use.
 */
export class AccessPolicy {
  private readonly rules: CompiledRule[] | undefined;
  private readonly admins: Set<string>;
  private readonly memberOf = new Map<string, string[]>();
  private readonly anonymousPull: boolean;
  /** (user, repository) → actions; rules are few, but a busy repository asks thousands of times a second. */
  private readonly cache = new Map<string, ReadonlySet<Action>>();

  constructor(config: AccessConfig | undefined, options: { anonymousPull?: boolean } = {}) {
    this.anonymousPull = options.anonymousPull ?? false;
    this.admins = new Set(config?.admins ?? []);
    for (const [group, members] of Object.entries(config?.groups ?? {})) {
      for (const user of members) this.memberOf.set(user, [...(this.memberOf.get(user) ?? []), group]);
    }
    // Embedders may hand over rules without the lists parseAccessConfig fills in.
    this.rules = config === undefined ? undefined : (config.rules ?? []).map((rule) => ({
      patterns: (rule.repositories ?? []).map(globToRegExp),
      actions: rule.actions ?? [],
      users: new Set((rule.users ?? []).filter((user) => user !== '*')),
      anyUser: (rule.users ?? []).includes('*'),
      groups: rule.groups ?? [],
      anonymous: rule.anonymous ?? false,
    }));
  }

  /** What `user` (undefined: anonymous) may do on `repository`. */
  actionsFor(user: string | undefined, repository: string): ReadonlySet<Action> {
    // Anonymous and a user named "" must not share an entry.
    const key = `${user === undefined ? '-' : `+${user}`}\u0000${repository}`;
    let actions = this.cache.get(key);
    if (actions === undefined) {
      actions = this.evaluate(user, repository);
      if (this.cache.size >= 10_000) this.cache.clear();
      this.cache.set(key, actions);
    }
    return actions;
  }

  allows(user: string | undefined, repository: string, action: Action): boolean {
    return this.actionsFor(user, repository).has(action);
  }

  /**
   * May do registry-wide things (the web UI's GC dry run): an admin, or, without an `access:`
   * section, every authenticated user (who may do everything anyway).
   */
  isAdmin(user: string | undefined): boolean {
    return user !== undefined && (this.rules === undefined || this.admins.has(user));
  }

  /** Anonymous requests may pull some repository: the web UI then browses without a login. */
  anonymousPullsSomewhere(): boolean {
    return this.anonymousPull || (this.rules ?? []).some((rule) => rule.anonymous && rule.actions.includes('pull'));
  }

  /** Users the rules name, to warn at start about those the password file does not know. */
  namedUsers(): string[] {
    const names = new Set<string>([...this.admins, ...this.memberOf.keys()]);
    for (const rule of this.rules ?? []) for (const user of rule.users) names.add(user);
    return [...names];
  }

  private evaluate(user: string | undefined, repository: string): ReadonlySet<Action> {
    const granted = new Set<Action>();
    if (this.anonymousPull) granted.add('pull');
    if (user !== undefined && (this.rules === undefined || this.admins.has(user))) return ALL;
    const groups = user === undefined ? [] : (this.memberOf.get(user) ?? []);
    for (const rule of this.rules ?? []) {
      const applies = user === undefined ? rule.anonymous : rule.anyUser || rule.users.has(user) || rule.groups.some((group) => groups.includes(group));
      if (!applies || !rule.patterns.some((pattern) => pattern.test(repository))) continue;
      for (const action of rule.actions) granted.add(action);
    }
    return granted.size === 0 ? NONE : granted;
  }
}

/** Parses and checks the `access:` section; every problem names its place (`rules[2].actions`). */
export function parseAccessConfig(value: unknown): Parsed<AccessConfig> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { problem: 'expected a mapping with groups, rules and admins' };
  const problems: string[] = [];
  const input = value as Record<string, unknown>;
  for (const key of Object.keys(input)) {
    if (!['groups', 'rules', 'admins'].includes(key)) problems.push(`.${key}: unknown setting (known: groups, rules, admins)`);
  }
  const groups: Record<string, string[]> = {};
  if (input.groups !== undefined) {
    if (typeof input.groups !== 'object' || input.groups === null || Array.isArray(input.groups)) problems.push('.groups: expected a mapping of group name to a list of user names');
    else {
      for (const [group, members] of Object.entries(input.groups)) {
        const list = nameList(members);
        if (list === undefined) problems.push(`.groups.${group}: expected a list of user names`);
        else groups[group] = list;
      }
    }
  }
  const admins = input.admins === undefined ? [] : nameList(input.admins);
  if (admins === undefined) problems.push('.admins: expected a list of user names');
  const rules: AccessRule[] = [];
  if (input.rules !== undefined && !Array.isArray(input.rules)) problems.push('.rules: expected a list of rules');
  for (const [index, raw] of (Array.isArray(input.rules) ? input.rules : []).entries()) {
    const where = `.rules[${index}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      problems.push(`${where}: expected a mapping with repositories, actions and users, groups or anonymous`);
      continue;
    }
    const rule = raw as Record<string, unknown>;
    for (const key of Object.keys(rule)) {
      if (!['repositories', 'actions', 'users', 'groups', 'anonymous'].includes(key)) problems.push(`${where}.${key}: unknown setting (known: repositories, actions, users, groups, anonymous)`);
    }
    const repositories = nameList(rule.repositories);
    if (repositories === undefined || repositories.length === 0) problems.push(`${where}.repositories: expected a list of repository globs such as team-a/** or library/*`);
    for (const glob of repositories ?? []) {
      const wrong = globProblem(glob);
      if (wrong) problems.push(`${where}.repositories: ${wrong}`);
    }
    const actions = nameList(rule.actions);
    const bad = actions?.filter((action) => !isAction(action) && action !== '*');
    if (actions === undefined || actions.length === 0 || (bad && bad.length > 0)) problems.push(`${where}.actions: expected a list of pull, push, delete (or *)${bad?.length ? `; not ${bad.join(', ')}` : ''}`);
    const users = rule.users === undefined ? [] : nameList(rule.users);
    if (users === undefined) problems.push(`${where}.users: expected a list of user names (* for every authenticated user)`);
    const ruleGroups = rule.groups === undefined ? [] : nameList(rule.groups);
    if (ruleGroups === undefined) problems.push(`${where}.groups: expected a list of group names`);
    for (const group of ruleGroups ?? []) if (!Object.hasOwn(groups, group)) problems.push(`${where}.groups: no group ${group} under access.groups`);
    if (rule.anonymous !== undefined && typeof rule.anonymous !== 'boolean') problems.push(`${where}.anonymous: must be true or false`);
    const anonymous = rule.anonymous === true;
    if (!anonymous && (users ?? []).length === 0 && (ruleGroups ?? []).length === 0) problems.push(`${where}: names nobody; give users, groups or anonymous: true`);
    const expanded = (actions ?? []).includes('*') ? [...ACTIONS] : (actions ?? []).filter(isAction);
    rules.push({ repositories: repositories ?? [], actions: expanded, users: users ?? [], groups: ruleGroups ?? [], anonymous });
  }
  return problems.length > 0 ? { problem: problems.join('\n') } : { value: { groups, rules, admins: admins ?? [] } };
}

function nameList(value: unknown): string[] | undefined {
  if (typeof value === 'string') return [value];
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string' && item.length > 0)) return undefined;
  return value as string[];
}
