/**
 * What a request may do to a repository, in the words of Docker's token scopes
 * (`repository:<name>:pull,push,delete`). `*` in a scope means all three.
 */
export const ACTIONS = ['pull', 'push', 'delete'] as const;
export type Action = (typeof ACTIONS)[number];

export function isAction(value: unknown): value is Action {
  return typeof value === 'string' && (ACTIONS as readonly string[]).includes(value);
}

/** The actions a scope's action list names; `*` is all of them, unknown words are dropped. */
export function parseActions(list: string): Set<Action> {
  const actions = new Set<Action>();
  for (const word of list.split(',')) {
    const action = word.trim();
    if (action === '*') for (const each of ACTIONS) actions.add(each);
    else if (isAction(action)) actions.add(action);
  }
  return actions;
}
