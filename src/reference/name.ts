/**
 * Repository name rules from the OCI distribution spec. Pure; no I/O.
 */
const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

/** distribution/reference limits the whole name, domain included, to 255 characters. */
export const MAX_NAME_LENGTH = 255;

export function nameProblem(name: string): string | undefined {
  if (name.length === 0) return 'repository name is empty';
  if (name.length > MAX_NAME_LENGTH) return `repository name is longer than ${MAX_NAME_LENGTH} characters`;
  if (!NAME.test(name)) {
    return 'repository name must be lowercase path components of [a-z0-9] joined by ".", "_", "__" or "-", separated by "/"';
  }
  return undefined;
}

export function isValidRepositoryName(name: string): boolean {
  return nameProblem(name) === undefined;
}

export function isValidTag(tag: string): boolean {
  return TAG.test(tag);
}
