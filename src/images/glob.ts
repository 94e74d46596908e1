/**
 * Go's `path.Match`, which docker uses for `--filter reference=<pattern>`:
 *   `*`      any run of characters except `/`
 *   `?`      one character except `/`
 *   `[...]`  a class: `[abc]`, `[a-z]`, negated `[^a-z]` (must be non-empty)
 *   `\c`     the character c, literally
 * The whole name must match. A malformed pattern throws BadPatternError, even when the
 * name would not have matched anyway (as Go reports ErrBadPattern). Pure; no I/O.
 */
export class BadPatternError extends Error {
  readonly pattern: string;
  constructor(pattern: string) {
    super(`syntax error in pattern ${JSON.stringify(pattern)}`);
    this.name = 'BadPatternError';
    this.pattern = pattern;
  }
}

/** Signals a malformed pattern inside the helpers; turned into BadPatternError with the pattern. */
class Bad extends Error {}

export function pathMatch(pattern: string, name: string): boolean {
  try {
    return match(pattern, name);
  } catch (error) {
    if (error instanceof Bad) throw new BadPatternError(pattern);
    throw error;
  }
}

/** Throws BadPatternError when `pattern` is malformed (matching against "" parses every chunk). */
export function validatePattern(pattern: string): void {
  pathMatch(pattern, '');
}

function match(patternIn: string, nameIn: string): boolean {
  let pattern = patternIn;
  let name = nameIn;
  pattern: while (pattern.length > 0) {
    const scanned = scanChunk(pattern);
    const { star, chunk } = scanned;
    pattern = scanned.rest;
    if (star && chunk === '') {
      // A trailing * matches the rest of the name unless it has a /.
      return !name.includes('/');
    }
    const here = matchChunk(chunk, name);
    // The last chunk must use up the name; otherwise a later star position may still match.
    if (here !== undefined && (here.length === 0 || pattern.length > 0)) {
      name = here;
      continue;
    }
    if (star) {
      // Try the chunk after skipping i+1 characters; a star cannot skip a /.
      for (let i = 0; i < name.length && name[i] !== '/'; i++) {
        const rest = matchChunk(chunk, name.slice(i + 1));
        if (rest !== undefined) {
          if (pattern.length === 0 && rest.length > 0) continue;
          name = rest;
          continue pattern;
        }
      }
    }
    // No match: still report a malformed remainder of the pattern.
    while (pattern.length > 0) {
      const next = scanChunk(pattern);
      pattern = next.rest;
      matchChunk(next.chunk, '');
    }
    return false;
  }
  return name.length === 0;
}

/** Splits off leading stars and the literal chunk up to the next star outside a class. */
function scanChunk(patternIn: string): { star: boolean; chunk: string; rest: string } {
  let pattern = patternIn;
  let star = false;
  while (pattern.startsWith('*')) {
    pattern = pattern.slice(1);
    star = true;
  }
  let inRange = false;
  let i = 0;
  scan: for (; i < pattern.length; i++) {
    switch (pattern[i]) {
      case '\\':
        if (i + 1 < pattern.length) i++;
        break;
      case '[':
        inRange = true;
        break;
      case ']':
        inRange = false;
        break;
      case '*':
        if (!inRange) break scan;
        break;
    }
  }
  return { star, chunk: pattern.slice(0, i), rest: pattern.slice(i) };
}

/** One code point at the start of `s` (a surrogate pair counts as one character). */
function firstChar(s: string): string {
  const code = s.codePointAt(0);
  return code === undefined ? '' : String.fromCodePoint(code);
}

/**
 * Matches `chunk` (no unescaped stars) at the start of `s`; returns what is left of `s`, or
 * undefined when it does not match. After a failure the chunk is still parsed, so that a
 * malformed pattern is reported (throws Bad).
 */
function matchChunk(chunkIn: string, sIn: string): string | undefined {
  let chunk = chunkIn;
  let s = sIn;
  let failed = false;
  while (chunk.length > 0) {
    if (!failed && s.length === 0) failed = true;
    const head = chunk[0];
    if (head === '[') {
      let r = -1;
      if (!failed) {
        const c = firstChar(s);
        r = c.codePointAt(0) ?? -1;
        s = s.slice(c.length);
      }
      chunk = chunk.slice(1);
      let negated = false;
      if (chunk.startsWith('^')) {
        negated = true;
        chunk = chunk.slice(1);
      }
      let matched = false;
      let ranges = 0;
      for (;;) {
        if (chunk.startsWith(']') && ranges > 0) {
          chunk = chunk.slice(1);
          break;
        }
        const lo = getEsc(chunk);
        chunk = lo.rest;
        let hi = lo.char;
        if (chunk[0] === '-') {
          const upper = getEsc(chunk.slice(1));
          hi = upper.char;
          chunk = upper.rest;
        }
        if (lo.char <= r && r <= hi) matched = true;
        ranges++;
      }
      if (matched === negated) failed = true;
    } else if (head === '?') {
      if (!failed) {
        if (s[0] === '/') failed = true;
        s = s.slice(firstChar(s).length);
      }
      chunk = chunk.slice(1);
    } else {
      if (head === '\\') {
        chunk = chunk.slice(1);
        if (chunk.length === 0) throw new Bad();
      }
      if (!failed) {
        if (chunk[0] !== s[0]) failed = true;
        s = s.slice(1);
      }
      chunk = chunk.slice(1);
    }
  }
  return failed ? undefined : s;
}

/** One (possibly escaped) character of a class range; throws Bad when the class is malformed. */
function getEsc(chunkIn: string): { char: number; rest: string } {
  let chunk = chunkIn;
  if (chunk.length === 0 || chunk[0] === '-' || chunk[0] === ']') throw new Bad();
  if (chunk[0] === '\\') {
    chunk = chunk.slice(1);
    if (chunk.length === 0) throw new Bad();
  }
  const c = firstChar(chunk);
  const rest = chunk.slice(c.length);
  if (rest.length === 0) throw new Bad();
  return { char: c.codePointAt(0) ?? -1, rest };
}
