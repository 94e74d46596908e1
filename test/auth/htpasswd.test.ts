import assert from 'node:assert/strict';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import bcrypt from 'bcryptjs';
import { Htpasswd, parseHtpasswd } from '../../src/auth/htpasswd.ts';
import { ConfigError } from '../../src/errors/config-error.ts';

// Cost 4 keeps the suite fast; the timing tests make their own hashes at the cost they compare.
const hash = (password: string, cost = 4): string => bcrypt.hashSync(password, cost);
/** bcryptjs writes `$2b$`; the same hash under another bcrypt prefix verifies the same password. */
const withPrefix = (bcryptHash: string, prefix: '$2a$' | '$2b$' | '$2y$'): string => prefix + bcryptHash.slice(4);

const ALICE = hash('alice-secret');
const BOB = hash('bob-secret');

let dir: string;
let counter = 0;

/** A fresh password file per test, so that no test sees another's edits. */
async function passwordFile(text: string): Promise<string> {
  const file = join(dir, `htpasswd-${++counter}`);
  await writeFile(file, text);
  return file;
}

/** Rewrites `file` and moves its mtime forward, so that a change is visible even on a coarse-mtime filesystem. */
let bump = 0;
async function rewrite(file: string, text: string): Promise<void> {
  await writeFile(file, text);
  const when = new Date(Date.now() + 10_000 + ++bump * 1000);
  await utimes(file, when, when);
}

/** The ConfigError that `parseHtpasswd` throws for `text`. */
function parseError(text: string, file = '/etc/skiff/htpasswd'): ConfigError {
  try {
    parseHtpasswd(text, file);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail(`expected ${JSON.stringify(text)} to be refused`);
}

/** Median durations of `a` and `b`, measured alternately so that both see the same machine load. */
async function medians(times: number, a: () => Promise<unknown>, b: () => Promise<unknown>): Promise<[number, number]> {
  const durations: [number[], number[]] = [[], []];
  for (let i = 0; i < times; i++) {
    for (const [index, run] of [a, b].entries()) {
      const start = performance.now();
      await run();
      durations[index]!.push(performance.now() - start);
    }
  }
  const middle = (list: number[]) => list.sort((x, y) => x - y)[Math.floor(list.length / 2)]!;
  return [middle(durations[0]), middle(durations[1])];
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'skiff-htpasswd-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('Htpasswd: bcrypt entries', () => {
  for (const prefix of ['$2y$', '$2a$', '$2b$'] as const) {
    test(`a ${prefix} entry is accepted and verifies its password`, async () => {
      const file = await passwordFile(`alice:${withPrefix(ALICE, prefix)}\n`);
      const htpasswd = await Htpasswd.load(file);
      assert.deepEqual(htpasswd.names(), ['alice']);
      const verified = await htpasswd.verify('alice', 'alice-secret');
      assert.equal(verified?.name, 'alice');
      assert.equal(typeof verified?.entry, 'string');
      assert.ok(verified!.entry.length > 0);
    });
  }

  test('a wrong password returns undefined', async () => {
    const htpasswd = await Htpasswd.load(await passwordFile(`alice:${ALICE}\nbob:${BOB}\n`));
    assert.equal(await htpasswd.verify('alice', 'bob-secret'), undefined);
    assert.equal(await htpasswd.verify('alice', ''), undefined);
    assert.equal(await htpasswd.verify('alice', 'alice-secret '), undefined);
    assert.equal(await htpasswd.verify('alice', 'ALICE-SECRET'), undefined);
  });

  test('user names are exact: no case folding, no trimming', async () => {
    const htpasswd = await Htpasswd.load(await passwordFile(`alice:${ALICE}\n`));
    assert.equal(await htpasswd.verify('Alice', 'alice-secret'), undefined);
    assert.equal(await htpasswd.verify('alice ', 'alice-secret'), undefined);
    assert.equal(htpasswd.has('alice'), true);
    assert.equal(htpasswd.has('Alice'), false);
  });

  test('each user verifies with its own password only', async () => {
    const htpasswd = await Htpasswd.load(await passwordFile(`alice:${ALICE}\nbob:${BOB}\n`));
    assert.equal((await htpasswd.verify('bob', 'bob-secret'))?.name, 'bob');
    assert.equal(await htpasswd.verify('bob', 'alice-secret'), undefined);
    assert.deepEqual(htpasswd.names().sort(), ['alice', 'bob']);
  });

  test('an unknown user returns undefined, even with a password some other user has', async () => {
    const htpasswd = await Htpasswd.load(await passwordFile(`alice:${ALICE}\n`));
    assert.equal(await htpasswd.verify('mallory', 'alice-secret'), undefined);
    assert.equal(await htpasswd.verify('', 'alice-secret'), undefined);
    assert.equal(await htpasswd.entryOf('mallory'), undefined);
    assert.equal(htpasswd.has('mallory'), false);
  });

  test('a password may contain colons and spaces', async () => {
    const htpasswd = await Htpasswd.load(await passwordFile(`carol:${hash('a:b c:d')}\n`));
    assert.equal((await htpasswd.verify('carol', 'a:b c:d'))?.name, 'carol');
    assert.equal(await htpasswd.verify('carol', 'a:b'), undefined);
  });

  test('the entry fingerprint of verify() equals entryOf() and names no part of the hash', async () => {
    const htpasswd = await Htpasswd.load(await passwordFile(`alice:${ALICE}\n`));
    const verified = await htpasswd.verify('alice', 'alice-secret');
    assert.equal(verified?.entry, await htpasswd.entryOf('alice'));
    assert.ok(!ALICE.includes(verified!.entry), 'the fingerprint is not a slice of the stored hash');
  });

  test('an unknown user still costs bcrypt time: within 0.3x-3x of a known user\'s wrong password (cost 10, the dummy hash\'s)', async () => {
    // The dummy hash for unknown users is cost 10, so a cost-10 entry is what it should look like.
    const htpasswd = await Htpasswd.load(await passwordFile(`timed:${hash('right', 10)}\n`));
    await htpasswd.verify('timed', 'warm-up'); // JIT, first stat
    const [known, unknown] = await medians(5, () => htpasswd.verify('timed', 'wrong'), () => htpasswd.verify('nobody-here', 'wrong'));
    const ratio = unknown / known;
    assert.ok(known > 5, `a cost-10 compare takes real time (${known.toFixed(1)} ms)`);
    assert.ok(ratio > 0.3 && ratio < 3, `unknown user ${unknown.toFixed(1)} ms vs known user ${known.toFixed(1)} ms (ratio ${ratio.toFixed(2)})`);
  });

  test(
    'an unknown user costs about what a known user does at htpasswd -B\'s default cost 5 too (no user-existence timing oracle)',
    async () => {
      const htpasswd = await Htpasswd.load(await passwordFile(`timed:${hash('right', 5)}\n`));
      await htpasswd.verify('timed', 'warm-up');
      const [known, unknown] = await medians(5, () => htpasswd.verify('timed', 'wrong'), () => htpasswd.verify('nobody-here', 'wrong'));
      const ratio = unknown / known;
      assert.ok(ratio > 0.3 && ratio < 3, `unknown user ${unknown.toFixed(1)} ms vs known user ${known.toFixed(1)} ms (ratio ${ratio.toFixed(2)})`);
    },
  );

  test('only the first 72 bytes of a password count, as everywhere bcrypt is used', async () => {
    const long = 'p'.repeat(72);
    const htpasswd = await Htpasswd.load(await passwordFile(`long:${hash(`${long}-one`)}\n`));
    assert.equal((await htpasswd.verify('long', `${long}-two`))?.name, 'long');
    assert.equal(await htpasswd.verify('long', long.slice(1)), undefined);
  });
});

describe('Htpasswd: other hash types are refused with file:line and user', () => {
  const cases: [string, string, RegExp][] = [
    ['MD5 $apr1$', 'alice:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/', /MD5 \(\$apr1\$\)/],
    ['SHA-1 {SHA}', 'alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=', /SHA-1 \(\{SHA\}\)/],
    ['crypt $6$ (SHA-512)', 'alice:$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/', /crypt\(3\)/],
    ['crypt $1$ (MD5)', 'alice:$1$saltsalt$qjXMvbEw8oaL.CzflDugX/', /crypt\(3\)/],
    ['crypt $5$ (SHA-256)', 'alice:$5$saltsalt$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZF2/cPdQ4', /crypt\(3\)/],
    ['plain text', 'alice:hunter2', /plain-text/],
    ['DES crypt', 'alice:rl0uE4PZjLh2.', /plain-text or crypt/],
    ['a truncated bcrypt hash', `alice:${ALICE.slice(0, 40)}`, /malformed bcrypt/],
    ['bcrypt with a foreign $2x$ prefix', `alice:$2x$${ALICE.slice(4)}`, /malformed bcrypt/],
    ['an empty hash', 'alice:', /plain-text/],
  ];
  for (const [kind, line, what] of cases) {
    test(`${kind} is a ConfigError naming file:line, the user and the fix`, async () => {
      const file = await passwordFile(`# users\n\nbob:${BOB}\n${line}\n`);
      await assert.rejects(Htpasswd.load(file), (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.ok(error.message.includes(`${file}:4:`), `names ${file}:4 in: ${error.message}`);
        assert.match(error.message, /user alice/);
        assert.match(error.message, what);
        assert.match(error.message, /only bcrypt/);
        assert.ok(error.message.includes(`htpasswd -B ${file} alice`), `suggests htpasswd -B in: ${error.message}`);
        return true;
      });
    });
  }

  test('every bad line is listed, not just the first', () => {
    const error = parseError(`alice:$apr1$x$y\nbob:${BOB}\ncarol:plain\n`, '/f');
    assert.match(error.message, /\/f:1: user alice: an MD5/);
    assert.match(error.message, /\/f:3: user carol: a plain-text/);
    assert.doesNotMatch(error.message, /user bob/);
  });

  test('a line without user:hash is refused with its line number', () => {
    assert.match(parseError(`alice:${ALICE}\njust-a-name\n`, '/f').message, /\/f:2: expected user:hash/);
    assert.match(parseError(`:${ALICE}\n`, '/f').message, /\/f:1: expected user:hash/);
  });

  test('the error never echoes the refused password or hash', () => {
    const error = parseError('alice:hunter2-very-secret\n');
    assert.ok(!error.message.includes('hunter2-very-secret'), error.message);
  });

  test(
    'a bcrypt entry whose cost is outside 04-31 is refused at load',
    async () => {
      const file = await passwordFile(`alice:$2y$99$${ALICE.slice(7)}\n`);
      await assert.rejects(Htpasswd.load(file), ConfigError);
    },
  );

  test('a missing file is a ConfigError naming it', async () => {
    const missing = join(dir, 'does-not-exist');
    await assert.rejects(Htpasswd.load(missing), (error: unknown) => error instanceof ConfigError && error.message.includes(missing) && /cannot read/.test(error.message));
  });
});

describe('Htpasswd: file layout', () => {
  test('comments, blank lines and indentation are skipped; line numbers still count them', async () => {
    const text = `# skiff users\n\n   \n# alice: the admin\nalice:${ALICE}\n  # indented comment\n\tbob:${BOB}  \n\n`;
    const users = parseHtpasswd(text, '/f');
    assert.deepEqual([...users.keys()], ['alice', 'bob']);
    assert.equal(users.get('bob'), BOB);
    assert.match(parseError(`${text}carol:plain\n`, '/f').message, /\/f:9: user carol/);
  });

  test('CRLF line endings are read as plain lines', async () => {
    const htpasswd = await Htpasswd.load(await passwordFile(`# windows\r\nalice:${ALICE}\r\nbob:${BOB}\r\n`));
    assert.deepEqual(htpasswd.names(), ['alice', 'bob']);
    assert.equal((await htpasswd.verify('alice', 'alice-secret'))?.name, 'alice');
    assert.equal((await htpasswd.verify('bob', 'bob-secret'))?.name, 'bob');
  });

  test('a UTF-8 byte-order mark (a file saved by Notepad) does not become part of the first user name', async () => {
    const htpasswd = await Htpasswd.load(await passwordFile(`\uFEFFalice:${ALICE}\n`));
    assert.deepEqual(htpasswd.names(), ['alice']);
    assert.equal((await htpasswd.verify('alice', 'alice-secret'))?.name, 'alice');
  });

  test('a file without a final newline, and an empty file, load', async () => {
    assert.deepEqual((await Htpasswd.load(await passwordFile(`alice:${ALICE}`))).names(), ['alice']);
    assert.deepEqual((await Htpasswd.load(await passwordFile(''))).names(), []);
  });

  test('a user listed twice is refused at its second line', () => {
    const error = parseError(`alice:${ALICE}\nbob:${BOB}\nalice:${hash('other')}\n`, '/f');
    assert.match(error.message, /\/f:3: user alice appears twice/);
  });
});

describe('Htpasswd: reloading', () => {
  test('version starts at 1 and increments on every successful reload()', async () => {
    const file = await passwordFile(`alice:${ALICE}\n`);
    const htpasswd = await Htpasswd.load(file);
    assert.equal(htpasswd.version, 1);
    await htpasswd.reload();
    assert.equal(htpasswd.version, 2);
    await rewrite(file, `alice:${ALICE}\nbob:${BOB}\n`);
    await htpasswd.reload();
    assert.equal(htpasswd.version, 3);
    assert.deepEqual(htpasswd.names(), ['alice', 'bob']);
  });

  test('reload() of a broken file throws a ConfigError and keeps the old users and version', async () => {
    const file = await passwordFile(`alice:${ALICE}\n`);
    const htpasswd = await Htpasswd.load(file);
    await rewrite(file, 'alice:plain-text-now\n');
    await assert.rejects(htpasswd.reload(), (error: unknown) => error instanceof ConfigError && error.message.includes(`${file}:1`));
    assert.equal(htpasswd.version, 1);
    assert.equal((await htpasswd.verify('alice', 'alice-secret'))?.name, 'alice');
  });

  test('reload() picks up a new password at once; entryOf changes with it', async () => {
    const file = await passwordFile(`alice:${ALICE}\nbob:${BOB}\n`);
    const htpasswd = await Htpasswd.load(file);
    const before = await htpasswd.entryOf('alice');
    const bobBefore = await htpasswd.entryOf('bob');
    await rewrite(file, `alice:${hash('new-secret')}\nbob:${BOB}\n`);
    await htpasswd.reload();
    assert.equal(await htpasswd.verify('alice', 'alice-secret'), undefined);
    assert.equal((await htpasswd.verify('alice', 'new-secret'))?.name, 'alice');
    const afterwards = await htpasswd.entryOf('alice');
    assert.notEqual(afterwards, undefined);
    assert.notEqual(afterwards, before, 'a new password gives a new entry fingerprint');
    assert.equal(await htpasswd.entryOf('bob'), bobBefore, 'an unchanged entry keeps its fingerprint');
  });

  test('the same password hashed again (new salt) is a new entry too', async () => {
    const file = await passwordFile(`alice:${ALICE}\n`);
    const htpasswd = await Htpasswd.load(file);
    const before = await htpasswd.entryOf('alice');
    await rewrite(file, `alice:${hash('alice-secret')}\n`);
    await htpasswd.reload();
    assert.notEqual(await htpasswd.entryOf('alice'), before);
  });

  test('a removed user has no entry after reload', async () => {
    const file = await passwordFile(`alice:${ALICE}\nbob:${BOB}\n`);
    const htpasswd = await Htpasswd.load(file);
    await rewrite(file, `bob:${BOB}\n`);
    await htpasswd.reload();
    assert.equal(await htpasswd.entryOf('alice'), undefined);
    assert.equal(await htpasswd.verify('alice', 'alice-secret'), undefined);
  });

  test('a changed file is picked up automatically once its mtime changes, checked at most once a second', async () => {
    const file = await passwordFile(`alice:${ALICE}\n`);
    const htpasswd = await Htpasswd.load(file);
    assert.equal((await htpasswd.verify('alice', 'alice-secret'))?.name, 'alice'); // this call did the first check
    const checked = Date.now();
    await rewrite(file, `alice:${hash('rotated')}\nbob:${BOB}\n`);
    const soon = await htpasswd.verify('alice', 'alice-secret');
    if (Date.now() - checked < 800) {
      assert.equal(soon?.name, 'alice', 'within the second the old users still answer');
      assert.equal(htpasswd.version, 1);
    }
    await sleep(1100);
    assert.equal(await htpasswd.verify('alice', 'alice-secret'), undefined);
    assert.equal((await htpasswd.verify('alice', 'rotated'))?.name, 'alice');
    assert.equal(htpasswd.has('bob'), true);
    assert.equal(htpasswd.version, 2);
  });

  test('entryOf() also triggers the automatic refresh', async () => {
    const file = await passwordFile(`alice:${ALICE}\n`);
    const htpasswd = await Htpasswd.load(file);
    const before = await htpasswd.entryOf('alice');
    await rewrite(file, `alice:${hash('rotated')}\n`);
    await sleep(1100);
    const afterwards = await htpasswd.entryOf('alice');
    assert.notEqual(afterwards, undefined);
    assert.notEqual(afterwards, before);
  });

  test('a broken edit during automatic refresh keeps the old users (and version)', async () => {
    const file = await passwordFile(`alice:${ALICE}\nbob:${BOB}\n`);
    const htpasswd = await Htpasswd.load(file);
    await htpasswd.verify('alice', 'alice-secret');
    await rewrite(file, `alice:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\nbob:${BOB}\nmallory:plain\n`);
    await sleep(1100);
    assert.equal((await htpasswd.verify('alice', 'alice-secret'))?.name, 'alice');
    assert.equal(await htpasswd.verify('mallory', 'plain'), undefined);
    assert.equal(htpasswd.version, 1);
    // Fixing the file later is picked up as usual.
    await rewrite(file, `alice:${hash('fixed')}\n`);
    await sleep(1100);
    assert.equal((await htpasswd.verify('alice', 'fixed'))?.name, 'alice');
    assert.equal(htpasswd.has('bob'), false);
    assert.equal(htpasswd.version, 2);
  });

  test('a file that disappears keeps the old users', async () => {
    const file = await passwordFile(`alice:${ALICE}\n`);
    const htpasswd = await Htpasswd.load(file);
    await htpasswd.verify('alice', 'alice-secret');
    await rm(file);
    await sleep(1100);
    assert.equal((await htpasswd.verify('alice', 'alice-secret'))?.name, 'alice');
    await assert.rejects(htpasswd.reload(), ConfigError);
    assert.equal(htpasswd.version, 1);
  });

  test('concurrent verifications during a refresh reload the file once', async () => {
    const file = await passwordFile(`alice:${ALICE}\n`);
    const htpasswd = await Htpasswd.load(file);
    await htpasswd.verify('alice', 'alice-secret');
    await rewrite(file, `alice:${hash('rotated')}\n`);
    await sleep(1100);
    // The first caller reloads; the others of the same second may still answer from the old users.
    const results = await Promise.all(Array.from({ length: 8 }, () => htpasswd.verify('alice', 'rotated')));
    assert.equal(results[0]?.name, 'alice', 'the caller that noticed the change waited for the reload');
    assert.equal(htpasswd.version, 2, 'one reload, not one per caller');
    assert.equal((await htpasswd.verify('alice', 'rotated'))?.name, 'alice');
  });
});
