import { parseActions, type Action } from './actions.ts';

/** One resource a token grants or a request needs, as the docker token spec writes it. */
export interface ResourceScope {
  /** `repository`, or `registry` for `registry:catalog:*`. */
  type: string;
  name: string;
  actions: string[];
}

/**
 * Scopes from a token request: each `scope` parameter may itself hold several, space-separated.
 * The name is everything between the first and the last `:` (`repository:org/app:pull,push`); a
 * resource class (`repository(plugin)`) is kept in the type. Malformed scopes are dropped, as the
 * CNCF token servers do: asking for nothing grants nothing.
 */
export function parseScopes(values: Iterable<string>): ResourceScope[] {
  const scopes: ResourceScope[] = [];
  for (const value of values) {
    for (const text of value.split(' ')) {
      const first = text.indexOf(':');
      const last = text.lastIndexOf(':');
      if (first <= 0 || last === first || last === text.length - 1) continue;
      const name = text.slice(first + 1, last);
      if (name === '') continue;
      scopes.push({ type: text.slice(0, first), name, actions: text.slice(last + 1).split(',').filter(Boolean) });
    }
  }
  return scopes;
}

/** `repository:<name>:pull,push`: the challenge's `scope` parameter for what a request needs. */
export function formatScope(type: string, name: string, actions: Iterable<string>): string {
  return `${type}:${name}:${[...actions].join(',')}`;
}

/** The repository actions a scope list asks for, merged per repository name. */
export function repositoryActions(scopes: ResourceScope[]): Map<string, Set<Action>> {
  const wanted = new Map<string, Set<Action>>();
  for (const scope of scopes) {
    if (scope.type !== 'repository') continue;
    const actions = wanted.get(scope.name) ?? new Set<Action>();
    for (const action of parseActions(scope.actions.join(','))) actions.add(action);
    wanted.set(scope.name, actions);
  }
  return wanted;
}
