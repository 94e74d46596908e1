import type { Action } from './actions.ts';

/** One entry of a token's `access` claim, as the docker token spec writes it. */
export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

/** What a verified bearer token lets its holder do. */
export interface TokenGrant {
  /** The `sub` claim; undefined (or "") for anonymous tokens. */
  subject: string | undefined;
  /** Repository name → granted actions. Shared by every request with the token: never changed after verification. */
  readonly repositories: ReadonlyMap<string, ReadonlySet<Action>>;
  /** `registry:catalog:*` was granted. */
  catalog: boolean;
  /** Milliseconds since the epoch. */
  expiresAt: number;
  /** Signed by this server's own token service (whose grants followed this server's policy). */
  builtin: boolean;
}

/** Marks refresh tokens, so that one is never accepted where an access token is due, nor the reverse. */
export const REFRESH_USE = 'refresh';
