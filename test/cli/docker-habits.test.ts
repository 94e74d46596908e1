import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Command, type Option } from 'commander';
import { registerArchive } from '../../src/cli/archive.ts';
import { registerImages } from '../../src/cli/images.ts';
import { registerPull } from '../../src/cli/pull.ts';
import { registerPush } from '../../src/cli/push.ts';
import { ROOT_HELP } from '../../src/cli/root-option.ts';
import { shortId } from '../../src/digest/digest.ts';
import { makeImage, type TestImage } from '../../src/testing/images.ts';
import { pushImage } from '../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';

/*
 * Issue 10 §3: what docker and podman users reach for, run as processes with stdout and stderr
 * going to files (as under cron, so never a TTY): push progress, an up-to-date pull, pull -a of
 * an empty repository, login -p, `skiff image …`, one error format, the dangling filter's
 * message, and the --root default.
 */

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('docker habits (issue 10 §3), as processes', { timeout: 180_000 }, () => {
  let registry: TestRegistry;
  /** A second registry, which has none of the image's blobs: a push there uploads. */
  let other: TestRegistry;
  let work: string;
  let env: NodeJS.ProcessEnv;
  let image: TestImage;
  let runs = 0;
  const root = () => ['--root', join(work, 'store')];
  const app = () => `${registry.address}/team/app:v1`;

  async function skiff(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<Run> {
    const n = ++runs;
    const paths = { out: join(work, 'logs', `${n}.out`), err: join(work, 'logs', `${n}.err`) };
    const fds = { out: openSync(paths.out, 'w'), err: openSync(paths.err, 'w') };
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', MAIN, ...args], { stdio: ['ignore', fds.out, fds.err], env: { ...env, ...extraEnv } });
    closeSync(fds.out);
    closeSync(fds.err);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    return { code, stdout: await readFile(paths.out, 'utf8'), stderr: await readFile(paths.err, 'utf8') };
  }
  const ok = (run: Run, what: string) => assert.equal(run.code, 0, `${what}:\n${run.stdout}${run.stderr}`);

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'skiff-habits-'));
    await mkdir(join(work, 'logs'));
    // No credentials, mirrors or store from the machine running the tests.
    env = { ...process.env, DOCKER_CONFIG: join(work, 'docker'), XDG_CONFIG_HOME: join(work, 'config'), SKIFF_MIRROR_CONFIG: '', SKIFF_ROOT: '', SKIFF_DEBUG: '' };
    registry = await startTestRegistry();
    other = await startTestRegistry();
    image = await makeImage({ seed: 'habits', layers: 2, layerSize: 200_000 });
    await pushImage(registry.url, 'team/app', image, 'v1');
    // A repository whose only manifest was pushed by digest: it exists and has no tags.
    await pushImage(registry.url, 'team/untagged', image);
  });
  after(async () => {
    await registry?.stop();
    await other?.stop();
    await rm(work, { recursive: true, force: true });
  });

  const layerIds = () => image.layers.map((l) => shortId(l.descriptor.digest));

  test('an up-to-date pull says "Already exists" for each layer and never "Pull complete"', async () => {
    const first = await skiff(['pull', '--progress', 'plain', ...root(), app()]);
    ok(first, 'first pull');
    for (const id of layerIds()) assert.match(first.stdout, new RegExp(`^${id}: Pull complete$`, 'm'));
    const again = await skiff(['pull', ...root(), app()]);
    ok(again, 'second pull');
    assert.equal(
      again.stdout,
      [`v1: Pulling from team/app`, ...layerIds().map((id) => `${id}: Already exists`), `Digest: ${image.manifest.descriptor.digest}`, `Status: Image is up to date for ${app()}`, ''].join('\n'),
    );
  });

  test('push off a TTY: docker\'s words per layer (top first), then `<tag>: digest: … size: N`', async () => {
    const target = `${other.address}/team/copy:v1`;
    ok(await skiff(['tag', ...root(), app(), target]), 'tag');
    const pushed = await skiff(['push', ...root(), target]);
    ok(pushed, 'push');
    const [top, bottom] = [...layerIds()].reverse() as [string, string];
    const lines = pushed.stdout.trimEnd().split('\n');
    assert.equal(lines[0], `The push refers to repository [${other.address}/team/copy]`);
    assert.deepEqual(lines.slice(1, 3), [`${top}: Preparing`, `${bottom}: Preparing`]);
    for (const id of [top, bottom]) assert.deepEqual(lines.filter((l) => l.startsWith(`${id}: `)), [`${id}: Preparing`, `${id}: Pushing`, `${id}: Pushed`]);
    assert.equal(lines.at(-1), `v1: digest: ${image.manifest.descriptor.digest} size: ${image.manifest.data.length}`);
    assert.equal(pushed.stderr, '');

    const again = await skiff(['image', 'push', ...root(), target]);
    ok(again, 'push again');
    const said = again.stdout.trimEnd().split('\n').slice(3, -1).sort();
    assert.deepEqual(said, [`${top}: Layer already exists`, `${bottom}: Layer already exists`].sort());
  });

  test('push to a new repository of the registry the image came from: "Mounted from team/app"', async () => {
    const target = `${registry.address}/team/mounted:v1`;
    ok(await skiff(['tag', ...root(), app(), target]), 'tag');
    const pushed = await skiff(['push', '--progress', 'plain', ...root(), target]);
    ok(pushed, 'push');
    for (const id of layerIds()) assert.match(pushed.stdout, new RegExp(`^${id}: Mounted from team/app$`, 'm'));
  });

  test('push --progress json prints events; an unknown --progress is refused', async () => {
    const target = `${registry.address}/team/json:v1`;
    ok(await skiff(['tag', ...root(), app(), target]), 'tag');
    const pushed = await skiff(['push', '--progress', 'json', ...root(), target]);
    ok(pushed, 'push');
    const events = pushed.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { type: string; status?: string });
    assert.deepEqual(events[0], { type: 'start', repository: `${registry.address}/team/json` });
    assert.equal(events.at(-1)?.type, 'done');
    assert.ok(events.some((e) => e.status === 'Preparing'));
    const bad = await skiff(['push', '--progress', 'fancy', ...root(), target]);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, 'skiff: invalid --progress "fancy" (choose auto, plain, json or tty)\n');
  });

  test('pull -a of a repository with no tags says so on stderr and exits 0, as docker does', async () => {
    const run = await skiff(['pull', '-a', ...root(), `${registry.address}/team/untagged`]);
    ok(run, 'pull -a');
    assert.equal(run.stdout, '');
    assert.equal(run.stderr, `skiff: warning: ${registry.address}/team/untagged has no tags; nothing was pulled\n`);
  });

  test('login -p: docker\'s warning, then Login Succeeded; with --password-stdin too: refused', async () => {
    const run = await skiff(['login', '-u', 'someone', '-p', 'secret', registry.address]);
    ok(run, 'login -p');
    assert.equal(run.stdout, 'Login Succeeded\n');
    assert.equal(run.stderr.split('\n')[0], 'WARNING! Using --password via the CLI is insecure. Use --password-stdin.');
    const both = await skiff(['login', '-u', 'someone', '-p', 'secret', '--password-stdin', registry.address]);
    assert.equal(both.code, 1);
    assert.equal(both.stderr, 'WARNING! Using --password via the CLI is insecure. Use --password-stdin.\nskiff: --password and --password-stdin are mutually exclusive\n');
  });

  test('skiff image pull|ls|tag|inspect|history|save|load|rm|prune, as docker\'s image subcommands', async () => {
    const store = ['--root', join(work, 'image-store')];
    const pulled = await skiff(['image', 'pull', '-q', ...store, app()]);
    ok(pulled, 'image pull');
    assert.equal(pulled.stdout, `${app()}\n`);
    ok(await skiff(['image', 'tag', ...store, app(), 'local/app:2']), 'image tag');
    const listed = await skiff(['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}', ...store]);
    ok(listed, 'image ls');
    assert.equal(listed.stdout, `${registry.address}/team/app:v1\nlocal/app:2\n`);
    const inspected = await skiff(['image', 'inspect', '-f', '{{.Id}}', ...store, 'local/app:2']);
    ok(inspected, 'image inspect');
    assert.equal(inspected.stdout, `${image.config.descriptor.digest}\n`);
    ok(await skiff(['image', 'history', '-q', ...store, 'local/app:2']), 'image history');
    const archive = join(work, 'app.tar');
    ok(await skiff(['image', 'save', '-o', archive, ...store, 'local/app:2']), 'image save');
    assert.ok((await stat(archive)).size > 0);
    const removed = await skiff(['image', 'rm', ...store, 'local/app:2']);
    ok(removed, 'image rm');
    assert.equal(removed.stdout, 'Untagged: local/app:2\n');
    const loaded = await skiff(['image', 'load', '-i', archive, ...store]);
    ok(loaded, 'image load');
    assert.equal(loaded.stdout, 'Loaded image: local/app:2\n');
    const pruned = await skiff(['image', 'prune', '-a', '-f', ...store]);
    ok(pruned, 'image prune');
    assert.match(pruned.stdout, /Total reclaimed space: /);
    assert.equal((await skiff(['image', 'ls', '-q', ...store])).stdout, '');
    const help = await skiff(['image', '--help']);
    ok(help, 'image --help');
    for (const sub of ['pull', 'push', 'save', 'load', 'inspect', 'history', 'tag', 'rm', 'ls', 'prune']) assert.match(help.stdout, new RegExp(`^  ${sub}\\b`, 'm'), `image --help lists ${sub}`);
  });

  test('one error format: `skiff: …` with docker\'s wording, from rmi, inspect, tag, save, images and commander', async () => {
    const expectations: [string[], string][] = [
      [['rmi', 'nothere'], 'skiff: No such image: nothere:latest\n'],
      [['image', 'rm', 'nothere:1'], 'skiff: No such image: nothere:1\n'],
      [['inspect', 'nothere'], 'skiff: No such image: nothere:latest\n'],
      [['tag', 'nothere', 'x'], 'skiff: No such image: nothere:latest\n'],
      [['save', '-o', join(work, 'no.tar'), 'nothere'], 'skiff: No such image: nothere:latest\n'],
      [['history', 'nothere'], 'skiff: No such image: nothere:latest\n'],
      [['images', '--filter', 'dangling=yes'], "skiff: invalid filter 'dangling=yes': dangling takes true or false (or 1 or 0)\n"],
      [['images', '--filter', 'color=red'], "skiff: invalid filter 'color' (accepted: dangling, label, before, since, reference)\n"],
    ];
    for (const [args, stderr] of expectations) {
      const run = await skiff([...args, ...root()]);
      assert.equal(run.code, 1, args.join(' '));
      assert.equal(run.stderr, stderr, args.join(' '));
    }
    const typo = await skiff(['images', '--bogus', ...root()]);
    assert.equal(typo.code, 1);
    assert.match(typo.stderr, /^skiff: unknown option '--bogus'\n/);
    assert.doesNotMatch(typo.stderr, /^error: /m);
    const dangling = await skiff(['images', '-q', '--filter', 'dangling=1', ...root()]);
    ok(dangling, 'dangling=1');
  });

  test('the --root default is what the help says: $SKIFF_ROOT, else $XDG_DATA_HOME/skiff, else ~/.local/share/skiff', async () => {
    const help = await skiff(['image', 'pull', '--help']);
    ok(help, 'image pull --help');
    assert.match(help.stdout.replace(/\s+/g, ' '), /--root <dir> image store directory \(default \$SKIFF_ROOT, else \$XDG_DATA_HOME\/skiff, else ~\/\.local\/share\/skiff\)/);
    const explicit = join(work, 'by-env');
    const xdg = join(work, 'xdg');
    const home = join(work, 'home');
    ok(await skiff(['images'], { SKIFF_ROOT: explicit, XDG_DATA_HOME: xdg, HOME: home }), 'SKIFF_ROOT');
    await stat(join(explicit, 'index.json'));
    ok(await skiff(['images'], { SKIFF_ROOT: '', XDG_DATA_HOME: xdg, HOME: home }), 'XDG_DATA_HOME');
    await stat(join(xdg, 'skiff', 'index.json'));
    ok(await skiff(['images'], { SKIFF_ROOT: '', XDG_DATA_HOME: '', HOME: home }), 'HOME');
    await stat(join(home, '.local', 'share', 'skiff', 'index.json'));
  });
});

describe('every --root help line is the same', () => {
  test('pull, push, images, rmi, tag, inspect, history, save, load, unpack and their `image` forms', () => {
    const program = new Command('skiff');
    for (const register of [registerPull, registerPush, registerImages, registerArchive]) register(program);
    const lines: string[] = [];
    const walk = (command: Command, path: string) => {
      const root = command.options.find((o: Option) => o.long === '--root');
      if (root) lines.push(`${path}: ${root.description}`);
      for (const sub of command.commands) walk(sub, `${path} ${sub.name()}`.trim());
    };
    walk(program, '');
    const paths = lines.map((l) => l.split(':')[0]);
    for (const expected of ['pull', 'push', 'images', 'rmi', 'tag', 'inspect', 'history', 'save', 'load', 'unpack', 'image pull', 'image push', 'image ls', 'image rm', 'image prune', 'image tag', 'image inspect', 'image history', 'image save', 'image load']) {
      assert.ok(paths.includes(expected), `${expected} has --root`);
    }
    assert.deepEqual(new Set(lines.map((l) => l.slice(l.indexOf(': ') + 2))), new Set([ROOT_HELP]));
  });
});
