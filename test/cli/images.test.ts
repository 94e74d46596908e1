import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { Command } from 'commander';
import { registerImages, type CliIO } from '../../src/cli/images.ts';
import { shortId } from '../../src/digest/digest.ts';
import type { ImageStore } from '../../src/images/store.ts';
import type { TestImage } from '../../src/testing/images.ts';
import { buildImage, dockerTwin, put, tempStore } from '../images/fixtures.ts';

interface Run {
  out: string;
  err: string;
  exitCode: number;
  questions: string[];
}

/** Runs `skiff <args>` in-process with captured output. */
async function skiff(args: string[], options: { confirm?: boolean; program?: Command } = {}): Promise<Run> {
  const run: Run = { out: '', err: '', exitCode: 0, questions: [] };
  const io: CliIO = {
    out: (text) => void (run.out += text),
    err: (text) => void (run.err += text),
    confirm: async (question) => {
      run.questions.push(question);
      return options.confirm ?? false;
    },
    setExitCode: (code) => void (run.exitCode = code),
  };
  const program = options.program ?? new Command('skiff');
  program.exitOverride().configureOutput({ writeOut: (t) => void (run.out += t), writeErr: (t) => void (run.err += t) });
  registerImages(program, io);
  await program.parseAsync(['node', 'skiff', ...args]);
  return run;
}

describe('skiff images commands (CLI, in-process)', () => {
  let store: ImageStore;
  let dir: string;
  let close: () => Promise<void>;
  let alpine: TestImage;
  let app: TestImage;
  let dangling: TestImage;
  const root = () => ['--root', dir];

  beforeEach(async () => {
    ({ store, dir, close } = await tempStore());
    alpine = await buildImage({ layers: [{ seed: 'cli-base' }, { seed: 'cli-a' }], created: '2026-01-01T01:00:00Z', labels: { tier: 'base' } });
    app = await buildImage({ layers: [{ seed: 'cli-base' }, { seed: 'cli-b' }], created: '2026-01-01T00:30:00Z' });
    dangling = await buildImage({ layers: [{ seed: 'cli-d' }], created: '2025-12-01T00:00:00Z' });
    await put(store, alpine, ['docker.io/library/alpine:3.20', 'docker.io/library/alpine:latest'], [`docker.io/library/alpine@sha256:${'a'.repeat(64)}`]);
    await put(store, app, ['docker.io/user/app:v1']);
    await put(store, dangling);
  });
  afterEach(() => close());

  const id = (image: TestImage) => shortId(image.config.descriptor.digest);

  test('images: the docker table', async () => {
    const { out, exitCode } = await skiff(['images', ...root()]);
    assert.equal(exitCode, 0);
    const lines = out.trimEnd().split('\n').map((l) => l.split(/ {3,}/).slice(0, 3));
    assert.deepEqual(lines, [
      ['REPOSITORY', 'TAG', 'IMAGE ID'],
      ['alpine', '3.20', id(alpine)],
      ['alpine', 'latest', id(alpine)],
      ['user/app', 'v1', id(app)],
      ['<none>', '<none>', id(dangling)],
    ]);
  });

  test('images flags: -q, positional reference, --digests, --filter (repeatable), --format, --no-trunc, -a', async () => {
    assert.equal((await skiff(['images', '-q', ...root()])).out, `${id(alpine)}\n${id(app)}\n${id(dangling)}\n`);
    assert.equal((await skiff(['images', 'alpine:latest', '--format', '{{.Repository}}:{{.Tag}}', ...root()])).out, 'alpine:latest\n');
    assert.match((await skiff(['images', '--digests', 'alpine:3.20', ...root()])).out, new RegExp(`^alpine\\s+3.20\\s+sha256:a{64}\\s+${id(alpine)}`, 'm'));
    assert.equal((await skiff(['images', '-f', 'dangling=false', '--filter', 'label=tier=base', '-q', ...root()])).out, `${id(alpine)}\n`);
    assert.equal((await skiff(['images', '--no-trunc', '-q', '--filter', 'dangling=true', ...root()])).out, `${dangling.config.descriptor.digest}\n`);
    const json = (await skiff(['image', 'ls', '--format', 'json', ...root()])).out.trimEnd().split('\n');
    assert.equal(json.length, 4);
    assert.equal((JSON.parse(json[0] as string) as { Repository: string }).Repository, 'alpine');
    assert.equal((await skiff(['images', '-a', '-q', ...root()])).out, (await skiff(['image', 'list', '-q', ...root()])).out);
  });

  test('images: an unknown filter key is an error naming it', async () => {
    await assert.rejects(skiff(['images', '--filter', 'color=red', ...root()]), /invalid filter 'color'/);
  });

  test('images: the store root defaults to $SKIFF_ROOT', async () => {
    const saved = process.env.SKIFF_ROOT;
    process.env.SKIFF_ROOT = dir;
    try {
      assert.equal((await skiff(['images', '-q'])).out, `${id(alpine)}\n${id(app)}\n${id(dangling)}\n`);
    } finally {
      if (saved === undefined) delete process.env.SKIFF_ROOT;
      else process.env.SKIFF_ROOT = saved;
    }
  });

  test('rmi: Untagged/Deleted lines; each failure on stderr, the rest still done, exit 1', async () => {
    const run = await skiff(['rmi', 'alpine:3.20', 'nothere', 'user/app:v1', ...root()]);
    assert.equal(run.exitCode, 1);
    assert.equal(run.err, 'skiff: No such image: nothere:latest\n');
    assert.match(run.out, /^Untagged: alpine:3\.20\nUntagged: user\/app:v1\nDeleted: sha256:[0-9a-f]{64}\nDeleted: sha256:[0-9a-f]{64}\n$/);
    assert.equal((await skiff(['images', '-q', ...root()])).out, `${id(alpine)}\n${id(dangling)}\n`);
  });

  test('rmi by ID of a multi-tag image needs -f; image rm is the same command', async () => {
    const refused = await skiff(['rmi', id(alpine), ...root()]);
    assert.equal(refused.exitCode, 1);
    assert.match(refused.err, /image is referenced in multiple repositories/);
    const forced = await skiff(['image', 'rm', '-f', id(alpine), ...root()]);
    assert.equal(forced.exitCode, 0);
    assert.match(forced.out, /^Untagged: alpine:3\.20\nUntagged: alpine:latest\nUntagged: alpine@sha256:a{64}\nDeleted: /);
  });

  test('rmi <ID> of one image stored twice (v2s2 and OCI) needs -f; the Deleted line is true', async () => {
    await put(store, dockerTwin(app), ['docker.io/user/app:v1-docker']);
    const refused = await skiff(['rmi', id(app), ...root()]);
    assert.equal(refused.exitCode, 1);
    assert.equal(refused.out, '');
    assert.match(refused.err, new RegExp(`conflict: unable to delete ${id(app)} \\(must be forced\\) - image is referenced in multiple repositories`));
    assert.ok((await skiff(['images', '-q', ...root()])).out.includes(id(app)), 'nothing was removed');
    const forced = await skiff(['rmi', '-f', id(app), ...root()]);
    assert.equal(forced.exitCode, 0);
    assert.match(forced.out, new RegExp(`^Untagged: user/app:v1\nUntagged: user/app:v1-docker\nDeleted: ${app.config.descriptor.digest}\n`));
    assert.equal(forced.out.split(`Deleted: ${app.config.descriptor.digest}`).length, 2, 'the ID is deleted once');
    assert.ok(!(await skiff(['images', '-q', ...root()])).out.includes(id(app)), 'the deleted ID is no longer listed');
  });

  test('image prune asks first; "no" removes nothing', async () => {
    const declined = await skiff(['image', 'prune', ...root()], { confirm: false });
    assert.deepEqual(declined.questions, ['WARNING! This will remove all dangling images.\nAre you sure you want to continue?']);
    assert.equal(declined.out, 'Total reclaimed space: 0B\n');
    assert.equal((await skiff(['images', '-q', ...root()])).out.split('\n').length, 4);
    const accepted = await skiff(['image', 'prune', ...root()], { confirm: true });
    assert.match(accepted.out, new RegExp(`^Deleted Images:\ndeleted: ${dangling.config.descriptor.digest}\ndeleted: sha256:[0-9a-f]{64}\n\nTotal reclaimed space: [0-9.]+kB\n$`));
    assert.equal((await skiff(['images', '-q', ...root()])).out, `${id(alpine)}\n${id(app)}\n`);
  });

  test('image prune -a -f removes everything without asking', async () => {
    const run = await skiff(['image', 'prune', '-a', '-f', ...root()]);
    assert.deepEqual(run.questions, []);
    assert.match(run.out, /untagged: alpine:latest\n/);
    assert.match(run.out, /Total reclaimed space: /);
    assert.equal((await skiff(['images', '-q', ...root()])).out, '');
  });

  test('tag and image tag', async () => {
    assert.equal((await skiff(['tag', 'alpine', 'mine/alpine:v1', ...root()])).out, '');
    await skiff(['image', 'tag', id(app), 'ghcr.io/o/app', ...root()]);
    const out = (await skiff(['images', '--format', '{{.Repository}}:{{.Tag}}', ...root()])).out;
    assert.equal(out, 'alpine:3.20\nalpine:latest\nmine/alpine:v1\nghcr.io/o/app:latest\nuser/app:v1\n<none>:<none>\n');
    await assert.rejects(skiff(['tag', 'nothere', 'x', ...root()]), /No such image: nothere:latest/);
  });

  test('inspect: JSON array; -f template; unknown images → stderr and exit 1', async () => {
    const run = await skiff(['inspect', 'alpine', ...root()]);
    const parsed = JSON.parse(run.out) as { Id: string; RepoTags: string[] }[];
    assert.equal(parsed[0]?.Id, alpine.config.descriptor.digest);
    assert.deepEqual(parsed[0]?.RepoTags, ['alpine:3.20', 'alpine:latest']);
    const mixed = await skiff(['image', 'inspect', '-f', '{{.Id}}', 'user/app:v1', 'nothere', ...root()]);
    assert.equal(mixed.out, `${app.config.descriptor.digest}\n`);
    assert.equal(mixed.err, 'skiff: No such image: nothere:latest\n');
    assert.equal(mixed.exitCode, 1);
    const none = await skiff(['inspect', 'nothere', ...root()]);
    assert.equal(none.out, '[]\n');
    assert.equal(none.exitCode, 1);
  });

  test('history: table, -q, --no-trunc, --human=false, --format', async () => {
    const table = (await skiff(['history', 'user/app:v1', ...root()])).out.split('\n');
    assert.deepEqual(table[0]?.split(/ {3,}/).map((c) => c.trim()), ['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT']);
    assert.equal((await skiff(['history', '-q', 'user/app:v1', ...root()])).out, `${id(app)}\n<missing>\n`);
    assert.equal((await skiff(['image', 'history', '-q', '--no-trunc', 'user/app:v1', ...root()])).out, `${app.config.descriptor.digest}\n<missing>\n`);
    assert.equal(
      (await skiff(['history', '--human=false', '--format', '{{.CreatedSince}} {{.CreatedBy}}', 'user/app:v1', ...root()])).out,
      '2026-01-01T00:30:00Z ADD cli-b\n2026-01-01T00:30:00Z ADD cli-base\n',
    );
    assert.match((await skiff(['history', '-H', '--format', '{{.Size}}', 'user/app:v1', ...root()])).out, /^[0-9.]+kB\n[0-9.]+kB\n$/);
    assert.match((await skiff(['history', '--human', 'true', '--format', '{{.Size}}', 'user/app:v1', ...root()])).out, /^[0-9.]+kB\n[0-9.]+kB\n$/);
    assert.match((await skiff(['history', '--human=0', '--format', '{{.Size}}', 'user/app:v1', ...root()])).out, /^\d+\n\d+\n$/);
  });

  test('joins an existing `image` command instead of adding a second one', async () => {
    const program = new Command('skiff');
    const image = program.command('image');
    image.command('save').action(() => undefined);
    const run = await skiff(['image', 'ls', '-q', ...root()], { program });
    assert.equal(program.commands.filter((c) => c.name() === 'image').length, 1);
    assert.deepEqual(image.commands.map((c) => c.name()).sort(), ['history', 'inspect', 'ls', 'prune', 'rm', 'save', 'tag']);
    assert.equal(run.out.split('\n').length, 4);
  });
});
