/**
 * `WWW-Authenticate` parsing (RFC 9110 §11.6.1): a scheme followed by auth-params, several
 * challenges possibly in one header. Registries send `Bearer realm="…",service="…",scope="…"`
 * or `Basic realm="…"`.
 */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

const TOKEN = /[!#$%&'*+.^_`|~0-9A-Za-z-]+/y;

export function parseChallenges(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  let i = 0;
  const skipSpace = () => {
    while (i < header.length && (header[i] === ' ' || header[i] === '\t')) i++;
  };
  const token = (): string | undefined => {
    TOKEN.lastIndex = i;
    const match = TOKEN.exec(header);
    if (!match) return undefined;
    i = TOKEN.lastIndex;
    return match[0];
  };
  const quoted = (): string => {
    let value = '';
    i++; // opening quote
    while (i < header.length && header[i] !== '"') {
      if (header[i] === '\\' && i + 1 < header.length) i++;
      value += header[i];
      i++;
    }
    i++; // closing quote
    return value;
  };
  while (i < header.length) {
    skipSpace();
    if (header[i] === ',') {
      i++;
      continue;
    }
    const scheme = token();
    if (!scheme) break;
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    challenges.push(challenge);
    for (;;) {
      skipSpace();
      const start = i;
      const name = token();
      skipSpace();
      if (!name || header[i] !== '=') {
        i = start; // the next challenge's scheme
        break;
      }
      i++;
      skipSpace();
      const value = header[i] === '"' ? quoted() : (token() ?? '');
      challenge.params[name.toLowerCase()] = value;
      skipSpace();
      if (header[i] === ',') i++;
    }
  }
  return challenges;
}
