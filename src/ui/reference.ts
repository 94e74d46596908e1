/**
 * `/r/<name>`, `/r/<name>:<tag>` and `/r/<name>@<digest>`: which repository and manifest a path
 * shows. Repository names never hold ':' or '@', so a digest starts after the last '@', else a
 * tag after the last ':' of the last path component.
 */
export interface RepositoryReference {
  name: string;
  tag: string | null;
  digest: string | null;
}

export function parseReference(text: string): RepositoryReference {
  const at = text.lastIndexOf('@');
  if (at > 0) return { name: text.slice(0, at), tag: null, digest: text.slice(at + 1) };
  const colon = text.lastIndexOf(':');
  if (colon > text.lastIndexOf('/') && colon > 0) return { name: text.slice(0, colon), tag: text.slice(colon + 1), digest: null };
  return { name: text, tag: null, digest: null };
}

/** The page of a repository (its tags), of a tag, or of a manifest by digest. */
export function repositoryHref(name: string, ref?: { tag?: string; digest?: string }): string {
  if (ref?.digest) return `/r/${name}@${ref.digest}`;
  if (ref?.tag) return `/r/${name}:${ref.tag}`;
  return `/r/${name}`;
}
