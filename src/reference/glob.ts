/**
 * Repository globs (an upstream's allow/deny lists, access rules), matched against the whole upstream
 * repository name: `*` and `?` stay within one path component (as path.Match), `**` crosses `/`.
 * `library/*` matches `library/alpine`, not `library/a/b`; `org/**` matches both `org/a` and `org/a/b`.
 */

const GLOB_CHARS = /^[a-z0-9._\-/*?]+$/;

export function globProblem(glob: string): string | undefined {
  if (glob.length === 0) return 'an empty pattern matches nothing';
  if (!GLOB_CHARS.test(glob)) return `pattern ${JSON.stringify(glob)} may hold only lowercase repository characters, "/", "*", "**" and "?"`;
  if (/\*{3,}/.test(glob)) return `pattern ${JSON.stringify(glob)}: use * (one path component) or ** (any depth), not ***`;
  return undefined;
}

export function globToRegExp(glob: string): RegExp {
  let source = '';
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i]!;
    if (char === '*' && glob[i + 1] === '*') {
      // `**/` also matches no component at all: `org/**/app` matches `org/app`.
      if (glob[i + 2] === '/') {
        source += '(?:.*/)?';
        i += 2;
      } else {
        source += '.*';
        i++;
      }
    } else if (char === '*') source += '[^/]*';
    else if (char === '?') source += '[^/]';
    else source += char.replace(/[.\-]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

/** Allowed when no deny pattern matches and, if there are allow patterns, one of them does. */
export class RepositoryFilter {
  private readonly allow: RegExp[];
  private readonly deny: RegExp[];

  constructor(allow: string[], deny: string[]) {
    this.allow = allow.map(globToRegExp);
    this.deny = deny.map(globToRegExp);
  }

  allows(repository: string): boolean {
    if (this.deny.some((pattern) => pattern.test(repository))) return false;
    return this.allow.length === 0 || this.allow.some((pattern) => pattern.test(repository));
  }
}
