/**
 * Real clients against `skiff serve` with an htpasswd file and access rules (docs/auth.md):
 *
 * - skopeo with `--creds`, `--src-creds`, `--dest-creds`, through the built-in token service
 *   (the default `authScheme: token`) and again with `authScheme: basic`: push and pull keep every
 *   digest; a wrong password is "unauthorized"; a push to a repository the user may only pull is
 *   "denied".
 * - the skiff CLI as a process: `skiff login --password-stdin` into an isolated DOCKER_CONFIG, then
 *   `skiff pull` / `skiff tag` / `skiff push`; `skiff logout`, after which a pull of the private
 *   repository fails. Every command must exit; exit codes are asserted.
 * - podman over TLS (a loopback certificate, `--tls-verify=false`): `podman login`, `podman push`
 *   of an image loaded from an OCI layout, `podman pull` into a second store; digests identical.
 *   podman keeps its storage, run-time state, auth file and configuration under a temp directory.
 *
 * Peers missing: a loud skip locally, a failure under CI=true.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import bcrypt from 'bcryptjs';
import type { AccessConfig } from '../../src/auth/access-policy.ts';
import { makeImage, writeOciLayout, type TestImage } from '../../src/testing/images.ts';
import { peerSkipReason, skopeo } from '../../src/testing/peers.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';
import { makeTestCertificate, type TestCertificate } from '../../src/testing/tls-cert.ts';
import { podmanStoreArgs } from '../../src/testing/podman.ts';

const skip = await peerSkipReason('skopeo', 'podman', 'openssl');

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const TLS = ['--src-tls-verify=false', '--dest-tls-verify=false'];
const PASSWORDS = { alice: 'alice-secret', admin: 'admin-secret' } as const;

/**
 * alice may push and pull under team/, only pull under readonly/; admin may do everything.
 * bob is in the password file but named by no rule.
 */
const ACCESS: AccessConfig = {
  groups: {},
  admins: ['admin'],
  rules: [
    { repositories: ['team/**'], actions: ['pull', 'push'], users: ['alice'], groups: [], anonymous: false },
    { repositories: ['readonly/**'], actions: ['pull'], users: ['alice'], groups: [], anonymous: false },
  ],
};

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

async function writeHtpasswd(file: string): Promise<void> {
  const entries: [string, string][] = [...Object.entries(PASSWORDS), ['bob', 'bob-secret']];
  const lines = entries.map(([user, pw]) => `${user}:${bcrypt.hashSync(pw, 4)}`);
  await writeFile(file, `${lines.join('\n')}\n`);
}

/** Digests of an OCI layout: the top manifest from index.json plus every blob file (each checked against its name). */
async function layoutContents(dir: string): Promise<{ top: string; blobs: string[] }> {
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const blobs = (await readdir(join(dir, 'blobs', 'sha256'))).map((hex) => `sha256:${hex}`).sort();
  for (const digest of blobs) assert.equal(sha256(await readFile(join(dir, 'blobs', 'sha256', digest.slice(7)))), digest, `blob ${digest} intact`);
  return { top: index.manifests[0]!.digest, blobs };
}

const allDigests = (image: TestImage) => [...image.blobs, image.manifest].map((b) => b.descriptor.digest).sort();

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to its end: stdin from `input` (then closed), killed by its PID with SIGKILL
 * after `timeoutMs` (which fails the assertion on `signal`). Never rejects on a non-zero exit.
 */
function runCommand(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdin.on('error', () => undefined); // a command that exits without reading its input
    child.stdin.end(options.input ?? '');
    const timer = setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
    }, options.timeoutMs ?? 60_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const said = (what: string, run: Finished) => `${what} → ${run.code ?? run.signal}\n${run.stdout}${run.stderr}`;

for (const authScheme of ['token', 'basic'] as const) {
  describe(`skopeo and the skiff CLI against skiff serve with htpasswd (authScheme ${authScheme})`, { skip, timeout: 180_000 }, () => {
    let registry: TestRegistry;
    let host: string;
    let work: string;
    let app: TestImage;
    let base: TestImage;
    let appLayout: string;
    const alice = `alice:${PASSWORDS.alice}`;

    before(async () => {
      work = await mkdtemp(join(tmpdir(), `skiff-auth-clients-${authScheme}-`));
      await writeHtpasswd(join(work, 'htpasswd'));
      registry = await startTestRegistry({ htpasswd: join(work, 'htpasswd'), authScheme, access: ACCESS });
      host = registry.address;
      app = await makeImage({ seed: `auth-app-${authScheme}`, layers: 2, layerSize: 32 * 1024 });
      base = await makeImage({ seed: `auth-base-${authScheme}`, layers: 1 });
      appLayout = join(work, 'app-src');
      await writeOciLayout(appLayout, [...app.blobs, app.manifest], { v1: app.manifest });
      const baseLayout = join(work, 'base-src');
      await writeOciLayout(baseLayout, [...base.blobs, base.manifest], { v1: base.manifest });
      // What alice may only read: pushed by the admin.
      await skopeo(['copy', '--preserve-digests', ...TLS, '--dest-creds', `admin:${PASSWORDS.admin}`, `oci:${baseLayout}:v1`, `docker://${host}/readonly/base:v1`]);
    });
    after(async () => {
      await registry?.stop();
      if (work) await rm(work, { recursive: true, force: true });
    });

    test('the challenge is the configured scheme', async () => {
      const res = await fetch(`${registry.url}/v2/team/app/manifests/v1`);
      await res.arrayBuffer();
      assert.equal(res.status, 401);
      const expected = authScheme === 'token' ? `Bearer realm="http://${host}/token",service="skiff",scope="repository:team/app:pull"` : 'Basic realm="skiff", charset="UTF-8"';
      assert.equal(res.headers.get('www-authenticate'), expected);
    });

    test('skopeo copy --dest-creds pushes, inspect --creds and copy --src-creds pull: every digest identical', async () => {
      await skopeo(['copy', '--preserve-digests', ...TLS, '--dest-creds', alice, `oci:${appLayout}:v1`, `docker://${host}/team/app:v1`]);
      const inspect = JSON.parse(await skopeo(['inspect', '--tls-verify=false', '--creds', alice, `docker://${host}/team/app:v1`])) as { Digest: string; Layers: string[] };
      assert.equal(inspect.Digest, app.manifest.descriptor.digest);
      assert.deepEqual(inspect.Layers, app.layers.map((l) => l.descriptor.digest));
      const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', '--creds', alice, `docker://${host}/team/app:v1`]);
      assert.equal(sha256(Buffer.from(raw)), app.manifest.descriptor.digest, 'manifest bytes preserved');
      const dst = join(work, 'app-dst');
      await skopeo(['copy', '--preserve-digests', ...TLS, '--src-creds', alice, `docker://${host}/team/app:v1`, `oci:${dst}:v1`]);
      const back = await layoutContents(dst);
      assert.equal(back.top, app.manifest.descriptor.digest);
      assert.deepEqual(back.blobs, allDigests(app));
      // alice may read what she may only pull, too.
      const readonly = JSON.parse(await skopeo(['inspect', '--tls-verify=false', '--creds', alice, `docker://${host}/readonly/base:v1`])) as { Digest: string };
      assert.equal(readonly.Digest, base.manifest.descriptor.digest);
    });

    test('skopeo without credentials, or with a wrong password, fails with "unauthorized"', async () => {
      await assert.rejects(skopeo(['inspect', '--tls-verify=false', `docker://${host}/readonly/base:v1`]), /unauthorized/i);
      await assert.rejects(skopeo(['inspect', '--tls-verify=false', '--creds', 'alice:wrong', `docker://${host}/readonly/base:v1`]), /unauthorized/i);
      await assert.rejects(
        skopeo(['copy', '--preserve-digests', ...TLS, '--dest-creds', 'alice:wrong', `oci:${appLayout}:v1`, `docker://${host}/team/wrong:v1`]),
        /unauthorized/i,
      );
      await assert.rejects(skopeo(['inspect', '--tls-verify=false', '--creds', 'nobody:x', `docker://${host}/team/app:v1`]), /unauthorized/i);
    });

    test('skopeo pushing where the user may only pull fails with "denied"; nothing lands there', async () => {
      await assert.rejects(
        skopeo(['copy', '--preserve-digests', ...TLS, '--dest-creds', alice, `oci:${appLayout}:v1`, `docker://${host}/readonly/base:pushed`]),
        /denied/i,
      );
      // bob is a known user no rule names: he may neither pull nor push. skopeo's push starts with
      // a HEAD of each blob, whose 403 has no body to carry the DENIED code.
      await assert.rejects(skopeo(['inspect', '--tls-verify=false', '--creds', 'bob:bob-secret', `docker://${host}/team/app:v1`]), /denied/i);
      await assert.rejects(
        skopeo(['copy', '--preserve-digests', ...TLS, '--dest-creds', 'bob:bob-secret', `oci:${appLayout}:v1`, `docker://${host}/team/bob:v1`]),
        /denied|403 \(Forbidden\)/i,
      );
      const tags = JSON.parse(await skopeo(['list-tags', '--tls-verify=false', '--creds', `admin:${PASSWORDS.admin}`, `docker://${host}/readonly/base`])) as { Tags: string[] };
      assert.deepEqual(tags.Tags, ['v1']);
    });

    describe('the skiff CLI: login, pull, push, logout', () => {
      let env: NodeJS.ProcessEnv;
      let cli: string;
      const store = (name: string) => ['--root', join(cli, name)];
      const skiff = async (args: string[], input?: string): Promise<Finished> => {
        const run = await runCommand(process.execPath, ['--disable-warning=ExperimentalWarning', MAIN, ...args], { env, ...(input !== undefined ? { input } : {}) });
        assert.equal(run.signal, null, said(`skiff ${args.join(' ')} was killed`, run));
        return run;
      };

      before(async () => {
        cli = join(work, 'cli');
        await mkdir(join(cli, 'home'), { recursive: true });
        // Nothing from the machine running the tests: no credentials, no mirrors, no store.
        env = {
          ...process.env,
          HOME: join(cli, 'home'),
          DOCKER_CONFIG: join(cli, 'docker'),
          XDG_CONFIG_HOME: join(cli, 'config'),
          XDG_DATA_HOME: join(cli, 'data'),
          SKIFF_MIRROR_CONFIG: '',
          SKIFF_ROOT: '',
        };
        // team/app:v1 is there whatever order the tests above ran in.
        await skopeo(['copy', '--preserve-digests', ...TLS, '--dest-creds', alice, `oci:${appLayout}:v1`, `docker://${host}/team/app:v1`]);
      });

      test('before login: a pull of a private repository fails with an auth error (exit 1)', async () => {
        const run = await skiff(['pull', '--progress', 'plain', ...store('before'), `${host}/team/app:v1`]);
        assert.equal(run.code, 1, said('pull before login', run));
        assert.match(run.stderr, /unauthori[sz]ed|authentication required/i);
      });

      test('login with a wrong password: exit 1, "wrong username or password", nothing stored', async () => {
        const run = await skiff(['login', '-u', 'alice', '--password-stdin', host], 'not-it\n');
        assert.equal(run.code, 1, said('login', run));
        assert.match(run.stderr, new RegExp(`wrong username or password for ${host.replace(/\./g, '\\.')}`));
        await assert.rejects(readFile(join(cli, 'docker', 'config.json')), { code: 'ENOENT' });
      });

      test('login --password-stdin, pull, tag, push, pull into a fresh store: same digests', async () => {
        const login = await skiff(['login', '-u', 'alice', '--password-stdin', host], `${PASSWORDS.alice}\n`);
        assert.equal(login.code, 0, said('login', login));
        assert.match(login.stdout, /Login Succeeded/);
        const config = JSON.parse(await readFile(join(cli, 'docker', 'config.json'), 'utf8')) as { auths: Record<string, { auth: string }> };
        assert.equal(Buffer.from(config.auths[host]!.auth, 'base64').toString(), alice);

        const pull = await skiff(['pull', '--progress', 'plain', ...store('one'), `${host}/team/app:v1`]);
        assert.equal(pull.code, 0, said('pull', pull));
        assert.match(pull.stdout, new RegExp(`Digest: ${app.manifest.descriptor.digest}`));

        const copy = `${host}/team/copy:v2`;
        const tag = await skiff(['tag', ...store('one'), `${host}/team/app:v1`, copy]);
        assert.equal(tag.code, 0, said('tag', tag));
        const push = await skiff(['push', '--progress', 'plain', ...store('one'), copy]);
        assert.equal(push.code, 0, said('push', push));
        const inspect = JSON.parse(await skopeo(['inspect', '--tls-verify=false', '--creds', alice, `docker://${copy}`])) as { Digest: string; Layers: string[] };
        assert.equal(inspect.Digest, app.manifest.descriptor.digest, 'skiff push kept the manifest digest');
        assert.deepEqual(inspect.Layers, app.layers.map((l) => l.descriptor.digest));

        const again = await skiff(['pull', '--progress', 'plain', ...store('two'), copy]);
        assert.equal(again.code, 0, said('pull of the pushed copy', again));
        assert.match(again.stdout, new RegExp(`Digest: ${app.manifest.descriptor.digest}`));
      });

      test('skiff push where the user may only pull: exit 1, denied', async () => {
        const target = `${host}/readonly/base:from-skiff`;
        const tag = await skiff(['tag', ...store('one'), `${host}/team/app:v1`, target]);
        assert.equal(tag.code, 0, said('tag', tag));
        const push = await skiff(['push', '--progress', 'plain', ...store('one'), target]);
        assert.equal(push.code, 1, said('push to readonly', push));
        assert.match(push.stderr, /denied/i);
      });

      test('logout, then a pull of the private repository fails with an auth error', async () => {
        const logout = await skiff(['logout', host]);
        assert.equal(logout.code, 0, said('logout', logout));
        assert.equal(logout.stdout, `Removing login credentials for ${host}\n`);
        const pull = await skiff(['pull', '--progress', 'plain', ...store('after'), `${host}/team/app:v1`]);
        assert.equal(pull.code, 1, said('pull after logout', pull));
        assert.match(pull.stderr, /unauthori[sz]ed|authentication required/i);
      });
    });
  });
}

describe('podman against skiff serve over TLS with htpasswd (token service)', { skip, timeout: 180_000 }, () => {
  let registry: TestRegistry;
  let host: string;
  let work: string;
  let app: TestImage;
  let authfile: string;
  let env: NodeJS.ProcessEnv;
  let policy: string;
  let cert: TestCertificate;

  before(async () => {
    // Lower case throughout (`podman pull oci:<dir>` names the image localhost/<dir>), and short:
    // podman refuses a runroot longer than 50 characters.
    work = join(tmpdir(), `skiff-pa-${randomBytes(6).toString('hex')}`);
    await mkdir(work, { mode: 0o700 });
    await writeHtpasswd(join(work, 'htpasswd'));
    cert = await makeTestCertificate(join(work, 'tls'));
    registry = await startTestRegistry({ htpasswd: join(work, 'htpasswd'), access: ACCESS, tlsCert: cert.certFile, tlsKey: cert.keyFile });
    host = registry.address;
    app = await makeImage({ seed: 'auth-podman-app', layers: 2, layerSize: 64 * 1024 });
    await writeOciLayout(join(work, 'app-src'), [...app.blobs, app.manifest], { v1: app.manifest });

    authfile = join(work, 'auth.json');
    const registriesConf = join(work, 'registries.conf');
    await writeFile(registriesConf, 'unqualified-search-registries = []\n');
    // netavark named, so podman does not probe /etc/cni for a network backend (nothing here needs one).
    const containersConf = join(work, 'containers.conf');
    await writeFile(containersConf, '[network]\nnetwork_backend = "netavark"\n');
    // The synthetic image is unsigned; the host's /etc/containers/policy.json is not ours to rely on.
    policy = join(work, 'policy.json');
    await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
    // Each store's places come from the flags; this keeps /etc/containers/storage.conf out.
    const storageConf = join(work, 'storage.conf');
    await writeFile(storageConf, `[storage]\ndriver = "vfs"\nrunroot = "${join(work, 'default', 'runroot')}"\ngraphroot = "${join(work, 'default', 'root')}"\n`);
    await mkdir(join(work, 'home'), { recursive: true });
    await mkdir(join(work, 'xdg-runtime'), { recursive: true, mode: 0o700 });
    env = {
      ...process.env,
      HOME: join(work, 'home'),
      XDG_RUNTIME_DIR: join(work, 'xdg-runtime'),
      XDG_CONFIG_HOME: join(work, 'config'),
      REGISTRY_AUTH_FILE: authfile,
      DOCKER_CONFIG: join(work, 'docker'),
      CONTAINERS_REGISTRIES_CONF: registriesConf,
      CONTAINERS_CONF: containersConf,
      CONTAINERS_STORAGE_CONF: storageConf,
    };
  });
  after(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** podman with every bit of its state under `<work>/<store>`. */
  async function podman(store: string, args: string[], input?: string): Promise<Finished> {
    const dir = join(work, store);
    const images = join(dir, 'image-tmp'); // layers on their way into storage (default /var/tmp)
    await mkdir(images, { recursive: true });
    const global = podmanStoreArgs(dir);
    const run = await runCommand('podman', [...global, ...args], { env: { ...env, TMPDIR: images }, ...(input !== undefined ? { input } : {}) });
    assert.equal(run.signal, null, said(`podman ${args.join(' ')} was killed`, run));
    return run;
  }
  const ok = async (store: string, args: string[], input?: string): Promise<string> => {
    const run = await podman(store, args, input);
    assert.equal(run.code, 0, said(`podman ${args.join(' ')}`, run));
    return run.stdout.trim();
  };

  test('an anonymous request over TLS gets a Bearer challenge with an https realm', async () => {
    const { status, challenge } = await new Promise<{ status: number | undefined; challenge: string | undefined }>((resolve, reject) => {
      const req = httpsGet(`https://${host}/v2/`, { ca: cert.cert }, (res) => {
        res.resume();
        res.once('end', () => resolve({ status: res.statusCode, challenge: res.headers['www-authenticate'] }));
      });
      req.once('error', reject);
    });
    assert.equal(status, 401);
    assert.equal(challenge, `Bearer realm="https://${host}/token",service="skiff"`);
  });

  test('podman login with a wrong password fails and stores nothing', async () => {
    const run = await podman('a', ['login', '--tls-verify=false', '--authfile', authfile, '-u', 'alice', '--password-stdin', host], 'wrong\n');
    assert.notEqual(run.code, 0, said('podman login', run));
    assert.match(run.stderr, /unauthorized|invalid username\/password/i);
    await assert.rejects(readFile(authfile, 'utf8'), { code: 'ENOENT' });
  });

  test('podman login, push of an image from an OCI layout, pull into a second store: digests identical', async () => {
    const login = await ok('a', ['login', '--tls-verify=false', '--authfile', authfile, '-u', 'alice', '--password-stdin', host], `${PASSWORDS.alice}\n`);
    assert.match(login, /Login Succeeded/);
    const auth = JSON.parse(await readFile(authfile, 'utf8')) as { auths: Record<string, { auth: string }> };
    assert.equal(Buffer.from(auth.auths[host]!.auth, 'base64').toString(), `alice:${PASSWORDS.alice}`);

    await ok('a', ['pull', '--signature-policy', policy, `oci:${join(work, 'app-src')}:v1`]);
    // podman's image ID is the config digest.
    const target = `${host}/team/podman:v1`;
    await ok('a', ['tag', app.config.descriptor.digest.slice(7), target]);
    const digestFile = join(work, 'pushed.digest');
    await ok('a', ['push', '--tls-verify=false', '--authfile', authfile, '--signature-policy', policy, '--digestfile', digestFile, target]);
    const pushed = (await readFile(digestFile, 'utf8')).trim();
    assert.match(pushed, /^sha256:[0-9a-f]{64}$/);

    // What the registry holds under the tag is what podman pushed.
    const inspect = JSON.parse(await skopeo(['inspect', '--tls-verify=false', '--creds', `alice:${PASSWORDS.alice}`, `docker://${target}`])) as { Digest: string };
    assert.equal(inspect.Digest, pushed);

    await ok('b', ['pull', '--tls-verify=false', '--authfile', authfile, '--signature-policy', policy, target]);
    const pulled = JSON.parse(await ok('b', ['image', 'inspect', target])) as { Id: string; Digest: string; RepoDigests: string[] }[];
    assert.equal(pulled[0]!.Digest, pushed);
    assert.ok(pulled[0]!.RepoDigests.includes(`${host}/team/podman@${pushed}`), pulled[0]!.RepoDigests.join(', '));
    // The config (image ID) survived the round trip: podman's ID is the config digest.
    assert.equal(`sha256:${pulled[0]!.Id}`, app.config.descriptor.digest);
  });

  test('podman push where alice may only pull is refused; after logout a pull is unauthorized', async () => {
    const target = `${host}/readonly/podman:v1`;
    await ok('a', ['tag', `${host}/team/podman:v1`, target]);
    const push = await podman('a', ['push', '--tls-verify=false', '--authfile', authfile, '--signature-policy', policy, target]);
    assert.notEqual(push.code, 0, said('podman push to readonly', push));
    assert.match(push.stderr, /denied/i);

    await ok('a', ['logout', '--authfile', authfile, host]);
    const pull = await podman('c', ['pull', '--tls-verify=false', '--authfile', authfile, '--signature-policy', policy, `${host}/team/podman:v1`]);
    assert.notEqual(pull.code, 0, said('podman pull after logout', pull));
    assert.match(pull.stderr, /unauthorized|authentication required/i);
  });
});
