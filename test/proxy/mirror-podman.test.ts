/**
 * podman pulls through a skiff mirror (issue 11 §What it must show), configured as a podman user
 * would: a `registries.conf` whose `[[registry]]` for the upstream has a `[[registry.mirror]]` at the
 * mirror's path prefix (`<mirror>/<upstream host, ':' as '_'>`), `insecure = true`. The upstream
 * is the CNCF registry behind a counting proxy. podman runs as a process with its storage,
 * run-time state, events, network configuration, temporary files, containers.conf, registries.conf
 * and signature policy under a temp directory (`--root`, `--runroot`, `--tmpdir`,
 * `--network-config-dir`, `TMPDIR`, vfs storage, cgroupfs, file events). The one file it writes
 * elsewhere is containers/image's blob-info cache, /var/lib/containers/cache (skopeo's too).
 *
 * Checks: podman's image has the upstream's manifest digest and config (image ID); the mirror
 * served it (its request log has podman's GETs of the manifest and every blob under the prefixed
 * name, its upstream counters moved by the blob sizes, the upstream saw exactly one GET per blob
 * and none from podman); a second podman store pulls it from the cache with no upstream request.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { FaultProxy } from '../../src/testing/fault-proxy.ts';
import { makeImage, type TestImage } from '../../src/testing/images.ts';
import { startTestMirror, upstream, type TestMirror } from '../../src/testing/mirror.ts';
import { hasCommand, startCncfRegistry, type Peer } from '../../src/testing/peers.ts';
import { pushImage } from '../../src/testing/push.ts';
import { podmanStoreArgs } from '../../src/testing/podman.ts';

const exec = promisify(execFile);

/** Like peerSkipReason, with podman's install line: loud locally, a failure in CI. */
async function skipReason(): Promise<string | false> {
  const missing: string[] = [];
  for (const command of ['podman', 'docker-registry']) if (!(await hasCommand(command))) missing.push(command);
  if (missing.length === 0) return false;
  const message = `mirror podman test: missing ${missing.join(', ')} (apt-get install -y podman docker-registry)`;
  if (process.env.CI) throw new Error(`${message}; CI must run it`);
  process.stderr.write(`\n!!! SKIPPING: ${message}\n\n`);
  return message;
}

const skip = await skipReason();

describe('podman pulls through a skiff mirror (registries.conf [[registry.mirror]], path prefix)', { skip, timeout: 60_000 }, () => {
  let cncf: Peer;
  let proxy: FaultProxy;
  /** What podman and the mirror call the upstream: the counting proxy in front of the CNCF registry. */
  let upstreamHost: string;
  let mirror: TestMirror;
  let work: string;
  let app: TestImage;
  let registriesConf: string;
  let containersConf: string;
  let policy: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'skiff-mirror-podman-'));
    cncf = await startCncfRegistry();
    proxy = new FaultProxy(cncf.url);
    upstreamHost = await proxy.start();
    // Not the default upstream: podman names it by its path prefix, as the README's podman line does.
    mirror = await startTestMirror({ upstreams: [upstream({ host: upstreamHost, url: `http://${upstreamHost}` })] });
    app = await makeImage({ seed: 'mirror-podman-app', layers: 2, layerSize: 512 * 1024 });
    await pushImage(cncf.url, 'team/app', app, 'v1');

    registriesConf = join(work, 'registries.conf');
    await writeFile(
      registriesConf,
      [
        'unqualified-search-registries = []',
        '',
        '[[registry]]',
        `prefix = "${upstreamHost}"`,
        `location = "${upstreamHost}"`,
        'insecure = true',
        '',
        '[[registry.mirror]]',
        `location = "${mirror.address}/${upstreamHost.replace(':', '_')}"`,
        'insecure = true',
        '',
      ].join('\n'),
    );
    // netavark named, so podman does not probe /etc/cni for a network backend (a pull needs none).
    containersConf = join(work, 'containers.conf');
    await writeFile(containersConf, '[network]\nnetwork_backend = "netavark"\n');
    // The synthetic image is unsigned; the host's /etc/containers/policy.json is not ours to rely on.
    policy = join(work, 'policy.json');
    await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  });
  after(async () => {
    await mirror?.stop();
    await proxy?.stop();
    await cncf?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** podman with every bit of its state in `<work>/<store>`; resolves to stdout, rejects with stderr. */
  async function podman(store: string, args: string[]): Promise<string> {
    const dir = join(work, store);
    const global = podmanStoreArgs(dir);
    const images = join(dir, 'image-tmp'); // layers on their way into storage (default /var/tmp)
    await mkdir(images, { recursive: true });
    try {
      const { stdout } = await exec('podman', [...global, ...args], {
        env: { ...process.env, CONTAINERS_REGISTRIES_CONF: registriesConf, CONTAINERS_CONF: containersConf, TMPDIR: images },
        timeout: 30_000,
        maxBuffer: 16 * 1024 * 1024,
      });
      return stdout.trim();
    } catch (error) {
      const e = error as { stderr?: string; message: string };
      throw new Error(`podman ${args.join(' ')} failed: ${e.stderr || e.message}`);
    }
  }

  async function metric(name: string): Promise<number> {
    const text = await (await fetch(`${mirror.url}/metrics`)).text();
    return text
      .split('\n')
      .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
      .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
  }

  const upstreamGets = (digest: string) => proxy.count((r) => r.method === 'GET' && r.url.includes(`/blobs/${digest}`));
  /** The mirror's request-log lines for complete 200 GETs under the prefixed name. */
  const servedGets = (what: string) => {
    const path = `/v2/${upstreamHost.replace(':', '_')}/team/app/${what}`;
    return mirror.logs.filter((l) => l.msg === 'request' && l.method === 'GET' && l.status === 200 && l.complete === true && String(l.path).startsWith(path)).length;
  };

  test('podman pull by the upstream\'s name goes to the mirror and gets the upstream\'s image', async () => {
    const reference = `${upstreamHost}/team/app:v1`;
    const bytesBefore = await metric('skiff_mirror_upstream_bytes_total');
    await podman('store-1', ['pull', '--signature-policy', policy, reference]);

    // The image podman stored is the upstream's: manifest digest and config (its image ID).
    const inspect = JSON.parse(await podman('store-1', ['image', 'inspect', reference])) as { Id: string; Digest: string; RepoDigests: string[] }[];
    assert.equal(inspect.length, 1);
    assert.equal(inspect[0]!.Digest, app.manifest.descriptor.digest);
    assert.equal(`sha256:${inspect[0]!.Id}`, app.config.descriptor.digest);
    assert.ok(inspect[0]!.RepoDigests.includes(`${upstreamHost}/team/app@${app.manifest.descriptor.digest}`), inspect[0]!.RepoDigests.join(', '));
    const head = await fetch(`${cncf.url}/v2/team/app/manifests/v1`, { method: 'HEAD', headers: { Accept: app.manifest.descriptor.mediaType } });
    assert.equal(head.headers.get('docker-content-digest'), app.manifest.descriptor.digest);

    // The mirror served it: podman's GETs are in its log, under the path prefix …
    assert.ok(servedGets('manifests/') >= 1, 'podman GET the manifest from the mirror');
    for (const blob of app.blobs) assert.equal(servedGets(`blobs/${blob.descriptor.digest}`), 1, `podman GET ${blob.descriptor.digest} from the mirror`);
    // … it fetched each blob upstream once (podman, had it fallen back to the upstream, would show as a second GET) …
    for (const blob of app.blobs) assert.equal(upstreamGets(blob.descriptor.digest), 1, blob.descriptor.digest);
    const blobSizes = app.blobs.reduce((sum, b) => sum + b.descriptor.size, 0);
    const fetched = (await metric('skiff_mirror_upstream_bytes_total')) - bytesBefore;
    assert.ok(fetched >= blobSizes && fetched <= blobSizes + app.manifest.descriptor.size + 64 * 1024, `upstream bytes ${fetched}, blobs ${blobSizes}`);
    // … and it holds the image under its canonical name.
    assert.notEqual(await mirror.registry.metadata.getManifest(`${upstreamHost.replace(':', '_')}/team/app`, app.manifest.descriptor.digest), undefined);
  });

  test('a second podman store pulls the same image from the cache: no upstream request', async () => {
    const before = proxy.requests.length;
    await podman('store-2', ['pull', '--signature-policy', policy, `${upstreamHost}/team/app:v1`]);
    assert.equal(await podman('store-2', ['image', 'inspect', '--format', '{{.Digest}}', `${upstreamHost}/team/app:v1`]), app.manifest.descriptor.digest);
    assert.deepEqual(proxy.requests.slice(before), [], 'within the tag TTL, the mirror asks the upstream nothing');
    for (const blob of app.blobs) assert.equal(servedGets(`blobs/${blob.descriptor.digest}`), 2, blob.descriptor.digest);
  });
});
