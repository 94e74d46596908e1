import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import bcrypt from 'bcryptjs';
import { ConfigError } from '../errors/config-error.ts';

const BCRYPT = /^\$2[aby]\$(\d{2})\$[./A-Za-z0-9]{53}$/;

/** Hashes for unknown users, one per cost, so that "no such user" costs the bcrypt time of "wrong password". */
const dummyHashes = new Map<number, string>();

function dummyHash(cost: number): string {
  let hash = dummyHashes.get(cost);
  if (hash === undefined) {
    hash = bcrypt.hashSync('skiff: no such user', cost);
    dummyHashes.set(cost, hash);
  }
  return hash;
}

/** The cost most entries use (htpasswd -B writes 5 by default; 10 when the file is empty). */
function usualCost(users: Map<string, string>): number {
  const counts = new Map<number, number>();
  for (const hash of users.values()) {
    const cost = Number(hash.slice(4, 6));
    counts.set(cost, (counts.get(cost) ?? 0) + 1);
  }
  let best = 10;
  let most = 0;
  for (const [cost, count] of counts) {
    if (count > most) [best, most] = [cost, count];
  }
  return best;
}

/** What the password file says of a user: its name and a fingerprint of its entry (changes with the password). */
export interface VerifiedUser {
  name: string;
  /** First bytes of a SHA-256 of the stored hash: refresh tokens carry it, so a new password ends them. */
  entry: string;
}

/**
 * An htpasswd file of bcrypt entries (`htpasswd -B`, `$2y$`/`$2a$`/`$2b$`), the one hash the CNCF
 * registry accepts too. Other hash types (MD5 `$apr1$`, `{SHA}`, crypt, plain text) are refused at
 * load with the line number: they are fast to brute-force, and accepting them silently would make
 * a weak file look safe. The file is re-read when its modification time changes (checked at most
 * once a second), so `htpasswd -B file user` takes effect without a restart.
 */
export class Htpasswd {
  readonly file: string;
  private users = new Map<string, string>();
  private unknownUserHash = dummyHash(10);
  private mtimeMs = 0;
  private checkedAt = 0;
  private reloading: Promise<void> | undefined;
  private generation = 0;

  private constructor(file: string) {
    this.file = file;
  }

  static async load(file: string): Promise<Htpasswd> {
    const htpasswd = new Htpasswd(file);
    await htpasswd.reload();
    return htpasswd;
  }

  /** Bumped on every successful reload: caches of verified credentials key on it. */
  get version(): number {
    return this.generation;
  }

  has(user: string): boolean {
    return this.users.has(user);
  }

  names(): string[] {
    return [...this.users.keys()];
  }

  /**
   * The user when `password` matches, otherwise undefined. bcrypt runs for unknown users as well,
   * and bcryptjs compares the final hashes in constant time, so timing says nothing of which users exist.
   */
  async verify(user: string, password: string): Promise<VerifiedUser | undefined> {
    await this.refresh();
    const hash = this.users.get(user);
    // bcrypt reads at most 72 bytes; longer passwords are compared on their first 72, as everywhere.
    const matches = await bcrypt.compare(password, hash ?? this.unknownUserHash);
    return matches && hash !== undefined ? { name: user, entry: fingerprint(hash) } : undefined;
  }

  /** The entry's fingerprint, if the user still exists: checks a refresh token without a password. */
  async entryOf(user: string): Promise<string | undefined> {
    await this.refresh();
    const hash = this.users.get(user);
    return hash === undefined ? undefined : fingerprint(hash);
  }

  /** Re-reads the file now; throws ConfigError on an unreadable file or a bad entry (the old users stay). */
  async reload(): Promise<void> {
    let text: string;
    let mtimeMs: number;
    try {
      mtimeMs = (await stat(this.file)).mtimeMs;
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      throw new ConfigError(`htpasswd ${this.file}: cannot read: ${(error as Error).message}`);
    }
    this.users = parseHtpasswd(text, this.file);
    this.unknownUserHash = dummyHash(usualCost(this.users));
    this.mtimeMs = mtimeMs;
    this.generation++;
  }

  /**
   * Reloads when the file changed (checked at most once a second); a broken edit keeps the
   * previous users. Callers that cache verdicts call it before trusting one.
   */
  async refresh(): Promise<void> {
    const now = Date.now();
    if (now - this.checkedAt < 1000) return;
    this.checkedAt = now;
    this.reloading ??= (async () => {
      try {
        const { mtimeMs } = await stat(this.file);
        if (mtimeMs !== this.mtimeMs) await this.reload();
      } catch {
        // a file being replaced or briefly broken: keep serving the users we have
      } finally {
        this.reloading = undefined;
      }
    })();
    await this.reloading;
  }
}

/** `user:hash` lines; blank lines and `#` comments are skipped. */
export function parseHtpasswd(text: string, file: string): Map<string, string> {
  const users = new Map<string, string>();
  const problems: string[] = [];
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    const where = `${file}:${index + 1}`;
    if (colon <= 0) {
      problems.push(`${where}: expected user:hash`);
      continue;
    }
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    const bcryptEntry = BCRYPT.exec(hash);
    if (!bcryptEntry) {
      problems.push(`${where}: user ${user}: ${hashKind(hash)} is not supported; only bcrypt entries are (htpasswd -B ${file} ${user})`);
      continue;
    }
    const cost = Number(bcryptEntry[1]);
    if (cost < 4 || cost > 31) {
      problems.push(`${where}: user ${user}: bcrypt cost ${cost} is outside 4–31 (htpasswd -B -C 10 ${file} ${user})`);
      continue;
    }
    if (users.has(user)) problems.push(`${where}: user ${user} appears twice`);
    users.set(user, hash);
  }
  if (problems.length > 0) throw new ConfigError(`htpasswd ${file}:\n${problems.join('\n')}`);
  return users;
}

function hashKind(hash: string): string {
  if (hash.startsWith('$apr1$')) return 'an MD5 ($apr1$) hash';
  if (hash.startsWith('{SHA}')) return 'a SHA-1 ({SHA}) hash';
  if (hash.startsWith('$2')) return 'a malformed bcrypt hash';
  if (/^\$[156]\$/.test(hash)) return 'a crypt(3) hash';
  return 'a plain-text or crypt password';
}

function fingerprint(hash: string): string {
  return createHash('sha256').update(hash).digest('base64url').slice(0, 16);
}
