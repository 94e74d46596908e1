import { execFile } from 'node:child_process';
import { constants, rmSync } from 'node:fs';
import { access, chown, mkdtemp, readFile, readdir, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort, hasCommand } from './peers.ts';

const run = promisify(execFile);

/** The superuser's password on the throwaway server: TCP connections need it (scram), so tests see real credentials and their redaction. */
export const TEST_PG_PASSWORD = 'skiff-test-secret';

export interface TestPostgres {
  /** `postgresql://postgres:<password>@127.0.0.1:<port>/skiff`: a database created at start. */
  url: string;
  /** The same server with another database name in the URL (the database need not exist). */
  urlFor(database: string): string;
  /** Creates an empty database (from template0) and resolves to its URL. */
  createDatabase(name: string): Promise<string>;
  /** Drops a database, disconnecting whoever is still on it. */
  dropDatabase(name: string): Promise<void>;
  /** The postmaster's PID. */
  pid: number;
  /** `pg_ctl stop -m immediate`, then the data directory goes. */
  stop(): Promise<void>;
}

/**
 * Where initdb and pg_ctl live: $PGBIN, else Debian's /usr/lib/postgresql/<newest>/bin (not on
 * PATH), else PATH. Undefined when there is no PostgreSQL server installed.
 */
async function postgresBin(): Promise<string | undefined> {
  const usable = async (dir: string): Promise<boolean> =>
    (await access(join(dir, 'initdb'), constants.X_OK).then(() => true, () => false)) && (await access(join(dir, 'pg_ctl'), constants.X_OK).then(() => true, () => false));
  if (process.env.PGBIN && (await usable(process.env.PGBIN))) return process.env.PGBIN;
  const versions = await readdir('/usr/lib/postgresql').catch(() => [] as string[]);
  for (const version of versions.filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a))) {
    const dir = join('/usr/lib/postgresql', version, 'bin');
    if (await usable(dir)) return dir;
  }
  if ((await hasCommand('initdb')) && (await hasCommand('pg_ctl'))) {
    const { stdout } = await run('sh', ['-c', 'dirname "$(command -v initdb)"']);
    return stdout.trim();
  }
  return undefined;
}

const isRoot = (): boolean => process.getuid?.() === 0;

/**
 * Where the throwaway cluster lives: /dev/shm when it is a RAM filesystem with room to spare
 * (CREATE DATABASE drops from about 300 ms to 20 ms there when the disk is busy; with fsync off
 * nothing is lost that a test would keep), else the temp folder.
 */
async function scratchRoot(): Promise<string> {
  const shm = await statfs('/dev/shm').catch(() => undefined);
  const TMPFS_MAGIC = 0x01021994;
  if (shm && shm.type === TMPFS_MAGIC && shm.bavail * shm.bsize >= 1024 ** 3) return '/dev/shm';
  return tmpdir();
}

/**
 * As nginxSkipReason (nginx.ts) for PostgreSQL: in CI a missing server fails the test file,
 * locally it skips with a loud message. As root, initdb must run as the `postgres` user (it
 * refuses root), so that user and runuser are needed too.
 */
export async function postgresSkipReason(): Promise<string | false> {
  const missing: string[] = [];
  if ((await postgresBin()) === undefined) missing.push('initdb/pg_ctl (apt-get install -y postgresql-15)');
  if (isRoot()) {
    if (!(await hasCommand('runuser'))) missing.push('runuser (util-linux)');
    if (!(await run('id', ['-u', 'postgres']).then(() => true, () => false))) missing.push("the 'postgres' user (created by the postgresql package)");
  }
  if (missing.length === 0) return false;
  const message = `PostgreSQL test server missing: ${missing.join(', ')}`;
  if (process.env.CI) throw new Error(`${message}; CI must run the PostgreSQL tests`);
  process.stderr.write(`\n!!! SKIPPING: ${message}\n\n`);
  return message;
}

/** Runs a PostgreSQL binary, as `postgres` when we are root; failures carry its stderr. */
async function runAsOwner(bin: string, args: string[]): Promise<string> {
  const [command, argv] = isRoot() ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  try {
    const { stdout } = await run(command, argv, { maxBuffer: 4 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    const e = error as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${bin} ${args.join(' ')} failed: ${e.stderr || e.stdout || e.message}`);
  }
}

const quoteIdent = (name: string): string => `"${name.replaceAll('"', '""')}"`;

/**
 * A throwaway PostgreSQL on a free loopback port: initdb in a temp folder (owned by `postgres`
 * when we are root; in RAM when there is room, see scratchRoot), started by pg_ctl with fsync
 * off (test data only) and a socket in that folder; local connections are trusted, TCP ones need
 * the password (scram-sha-256). One per test file; each test takes a fresh database
 * (createDatabase, about 20 ms), which is much cheaper than a server (about 1 s).
 */
export async function startPostgres(): Promise<TestPostgres> {
  const bin = await postgresBin();
  if (bin === undefined) throw new Error('PostgreSQL is not installed (apt-get install -y postgresql-15)');
  const dir = await mkdtemp(join(await scratchRoot(), 'skiff-pg-'));
  const data = join(dir, 'data');
  let pid = 0;
  // A test process that ends without stop() (a failure, Ctrl-C, the runner's SIGTERM) must not
  // leave a postmaster behind: pg_ctl detached it, so nothing else would stop it.
  const cleanUp = (): void => {
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGQUIT'); // the postmaster's immediate shutdown
      } catch {
        // already gone
      }
      pid = 0;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const onSignal = (signal: NodeJS.Signals): void => {
    cleanUp();
    forget();
    process.kill(process.pid, signal); // then die of it as if no one had listened
  };
  const forget = (): void => {
    process.removeListener('exit', cleanUp);
    for (const signal of signals) process.removeListener(signal, onSignal);
  };
  process.once('exit', cleanUp);
  for (const signal of signals) process.once(signal, onSignal);
  try {
    const pwfile = join(dir, 'pwfile');
    await writeFile(pwfile, `${TEST_PG_PASSWORD}\n`);
    if (isRoot()) {
      const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
      const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
      await chown(dir, uid, gid);
      await chown(pwfile, uid, gid);
    }
    await runAsOwner(join(bin, 'initdb'), [
      '-D', data, '-U', 'postgres', '--pwfile', pwfile, '--auth-local=trust', '--auth-host=scram-sha-256',
      '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync', '--no-instructions',
    ]);
    const port = await freePort();
    const settings = [
      `-p ${port}`, `-k ${dir}`, '-c listen_addresses=127.0.0.1',
      // Test data only: nothing here has to survive a power loss.
      '-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off',
      '-c max_connections=300',
    ].join(' ');
    await runAsOwner(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '30', '-o', settings, 'start']);
    pid = Number((await readFile(join(data, 'postmaster.pid'), 'utf8')).split('\n')[0]);
    const urlFor = (database: string): string => `postgresql://postgres:${TEST_PG_PASSWORD}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
    // One admin connection, over the socket, for CREATE/DROP DATABASE: they run one at a time anyway.
    const admin = new pg.Client({ host: dir, port, user: 'postgres', database: 'postgres' });
    await admin.connect();
    admin.on('error', () => {}); // the server going away at stop() is expected
    const createDatabase = async (name: string): Promise<string> => {
      // template0 with C collation: the tests never depend on template1's contents or locale.
      await admin.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'`);
      return urlFor(name);
    };
    const url = await createDatabase('skiff');
    let stopped = false;
    return {
      url,
      urlFor,
      createDatabase,
      async dropDatabase(name) {
        await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
      },
      pid,
      async stop() {
        if (stopped) return;
        stopped = true;
        await admin.end().catch(() => {});
        await runAsOwner(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']);
        pid = 0;
        forget();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    if (pid > 0) await runAsOwner(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
    pid = 0;
    forget();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
