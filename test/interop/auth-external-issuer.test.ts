/**
 * skiff serve trusting an external token issuer, the CNCF registry's `auth.token` way
 * (`externalToken: { realm, service, issuer, rootcertbundle }`, no htpasswd):
 *
 * - a tiny token issuer written here (node:http on 127.0.0.1): `GET /auth?service=&scope=` with
 *   Basic credentials checked against fixed users, minting JWTs with jose. alice gets what she
 *   asks for except push under readonly/; admin gets everything; anonymous gets a token that
 *   grants nothing; a wrong password is 401.
 * - two variants of how a token names its key: `x5c` (ES256, a leaf issued by a test CA; the
 *   bundle holds the CA) and `kid` (RS256, the libtrust key ID of a self-signed token certificate
 *   that is itself in the bundle, next to the CA).
 *
 * Checks: the challenge names the issuer's realm and service; skopeo follows it with `--creds` and
 * pushes and pulls with every digest kept; a token signed by a key not chained to the bundle is
 * 401 invalid_token; a pull-only token cannot push.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID, X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SignJWT, type JWTHeaderParameters } from 'jose';
import { libtrustKeyId } from '../../src/auth/signing-key.ts';
import { makeImage, writeOciLayout, type TestImage } from '../../src/testing/images.ts';
import { peerSkipReason, skopeo } from '../../src/testing/peers.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';
import { issueCertificate, makeTestCa, makeTestCertificate, type TestCertificate } from '../../src/testing/tls-cert.ts';

const skip = await peerSkipReason('skopeo', 'openssl');

const SERVICE = 'test-registry';
const ISSUER = 'test-issuer';
const USERS: Record<string, string> = { alice: 'alice-pw', admin: 'admin-pw' };
const TLS = ['--src-tls-verify=false', '--dest-tls-verify=false'];

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const derOf = (cert: TestCertificate) => new X509Certificate(cert.cert).raw.toString('base64');

/** A key and the protected header that names it: an x5c chain or a kid. */
interface Signer {
  key: KeyObject;
  header: JWTHeaderParameters;
}

interface Access {
  type: string;
  name: string;
  actions: string[];
}

interface Claims {
  sub?: string;
  access: Access[];
  iss?: string;
  aud?: string;
  /** Seconds from now; negative for an expired token. */
  expiresIn?: number;
}

async function mint(signer: Signer, claims: Claims): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const expiresIn = claims.expiresIn ?? 300;
  const jwt = new SignJWT({ access: claims.access })
    .setProtectedHeader({ typ: 'JWT', ...signer.header })
    .setIssuer(claims.iss ?? ISSUER)
    .setAudience(claims.aud ?? SERVICE)
    .setIssuedAt(Math.min(now, now + expiresIn - 600))
    .setNotBefore(Math.min(now, now + expiresIn - 600))
    .setExpirationTime(now + expiresIn)
    .setJti(randomUUID());
  if (claims.sub !== undefined) jwt.setSubject(claims.sub);
  return jwt.sign(signer.key);
}

/** What the issuer grants: admin everything asked for; alice all but push under readonly/; anonymous nothing. */
function grant(user: string | undefined, scopes: string[]): Access[] {
  const out: Access[] = [];
  for (const scope of scopes.flatMap((s) => s.split(' ')).filter(Boolean)) {
    const [type, ...rest] = scope.split(':');
    const actions = rest.pop()!.split(',');
    const name = rest.join(':');
    if (type !== 'repository' || user === undefined) continue;
    const allowed = user === 'admin' ? actions : actions.filter((a) => !(name.startsWith('readonly/') && a !== 'pull'));
    if (allowed.length > 0) out.push({ type, name, actions: allowed });
  }
  return out;
}

interface IssuerRequest {
  user: string | undefined;
  service: string | null;
  scopes: string[];
  status: number;
}

/** The test token issuer: GET /auth?service=&scope=… with optional Basic credentials. */
class TestIssuer {
  readonly requests: IssuerRequest[] = [];
  private server: Server | undefined;
  port = 0;

  readonly signer: Signer;

  constructor(signer: Signer) {
    this.signer = signer;
  }

  get realm(): string {
    return `http://127.0.0.1:${this.port}/auth`;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res).catch((error: Error) => res.writeHead(500).end(error.message)));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }

  /** A token as the issuer would mint it for this user and these scopes (or a 401 status). */
  async tokenFor(user: string | undefined, password: string | undefined, scopes: string[]): Promise<{ status: number; token?: string; access?: Access[] }> {
    if (user !== undefined && USERS[user] !== password) return { status: 401 };
    const access = grant(user, scopes);
    return { status: 200, token: await mint(this.signer, { ...(user !== undefined ? { sub: user } : {}), access }), access };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://issuer');
    if (req.method !== 'GET' || url.pathname !== '/auth') {
      res.writeHead(404).end();
      return;
    }
    let user: string | undefined;
    let password: string | undefined;
    const header = req.headers.authorization;
    if (header?.startsWith('Basic ')) {
      const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      user = decoded.slice(0, colon);
      password = decoded.slice(colon + 1);
    }
    const scopes = url.searchParams.getAll('scope');
    const service = url.searchParams.get('service');
    const answer = service === SERVICE ? await this.tokenFor(user, password, scopes) : { status: 400 };
    this.requests.push({ user, service, scopes, status: answer.status });
    if (answer.status !== 200) {
      res.writeHead(answer.status, { 'content-type': 'application/json', ...(answer.status === 401 ? { 'www-authenticate': 'Basic realm="test-issuer"' } : {}) });
      res.end(JSON.stringify({ details: answer.status === 401 ? 'incorrect username or password' : 'unknown service' }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token: answer.token, access_token: answer.token, expires_in: 300, issued_at: new Date().toISOString() }));
  }
}

async function layoutContents(dir: string): Promise<{ top: string; blobs: string[] }> {
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const blobs = (await readdir(join(dir, 'blobs', 'sha256'))).map((hex) => `sha256:${hex}`).sort();
  for (const digest of blobs) assert.equal(sha256(await readFile(join(dir, 'blobs', 'sha256', digest.slice(7)))), digest, `blob ${digest} intact`);
  return { top: index.manifests[0]!.digest, blobs };
}

const errorCodes = async (res: Response) => ((await res.json()) as { errors: { code: string }[] }).errors.map((e) => e.code);

type Variant = 'x5c' | 'kid';

for (const variant of ['x5c', 'kid'] as Variant[]) {
  describe(`skiff serve with an external token issuer (${variant === 'x5c' ? 'x5c chain, ES256' : 'kid of a bundled certificate, RS256'})`, { skip, timeout: 120_000 }, () => {
    let work: string;
    let issuer: TestIssuer;
    let registry: TestRegistry;
    let host: string;
    let app: TestImage;
    let base: TestImage;
    let appLayout: string;
    /** Signs with a key the bundle does not lead to, named the same way the real one is. */
    let foreign: Signer;
    /** Names a trusted key (x5c chain up to the bundle's CA, or a bundled kid) but signs with another. */
    let impostor: Signer;

    before(async () => {
      work = await mkdtemp(join(tmpdir(), `skiff-ext-issuer-${variant}-`));
      const ca = await makeTestCa(join(work, 'pki'), { commonName: 'test token CA' });
      let signer: Signer;
      let bundle: string;
      if (variant === 'x5c') {
        const leaf = await issueCertificate(ca, join(work, 'pki'), { name: 'token-signer', commonName: 'test token signer' });
        signer = { key: createPrivateKey(leaf.key), header: { alg: 'ES256', x5c: [derOf(leaf), derOf(ca)] } };
        bundle = ca.cert;
        const otherCa = await makeTestCa(join(work, 'foreign'), { commonName: 'someone else\'s CA' });
        const otherLeaf = await issueCertificate(otherCa, join(work, 'foreign'), { name: 'token-signer', commonName: 'test token signer' });
        foreign = { key: createPrivateKey(otherLeaf.key), header: { alg: 'ES256', x5c: [derOf(otherLeaf), derOf(otherCa)] } };
        // A foreign leaf presented as if the trusted CA had issued it.
        impostor = { key: createPrivateKey(otherLeaf.key), header: { alg: 'ES256', x5c: [derOf(otherLeaf), derOf(ca)] } };
      } else {
        // kid only finds keys of certificates in the bundle: the token certificate goes in, next to the CA.
        const own = await makeTestCertificate(join(work, 'pki'), { name: 'token-signer', commonName: 'test token signer', keyType: 'rsa', altNames: [] });
        const key = createPrivateKey(own.key);
        signer = { key, header: { alg: 'RS256', kid: libtrustKeyId(new X509Certificate(own.cert).publicKey) } };
        bundle = ca.cert + own.cert;
        const other = await makeTestCertificate(join(work, 'foreign'), { name: 'token-signer', keyType: 'rsa', altNames: [] });
        const otherKey = createPrivateKey(other.key);
        foreign = { key: otherKey, header: { alg: 'RS256', kid: libtrustKeyId(new X509Certificate(other.cert).publicKey) } };
        impostor = { key: otherKey, header: { alg: 'RS256', kid: signer.header.kid! } };
      }
      const bundleFile = join(work, 'rootcertbundle.pem');
      await writeFile(bundleFile, bundle);
      issuer = new TestIssuer(signer);
      await issuer.start();
      registry = await startTestRegistry({ externalToken: { realm: issuer.realm, service: SERVICE, issuer: ISSUER, rootcertbundle: bundleFile } });
      host = registry.address;

      app = await makeImage({ seed: `ext-app-${variant}`, layers: 2, layerSize: 32 * 1024 });
      base = await makeImage({ seed: `ext-base-${variant}`, layers: 1 });
      appLayout = join(work, 'app-src');
      await writeOciLayout(appLayout, [...app.blobs, app.manifest], { v1: app.manifest });
      const baseLayout = join(work, 'base-src');
      await writeOciLayout(baseLayout, [...base.blobs, base.manifest], { v1: base.manifest });
      await skopeo(['copy', '--preserve-digests', ...TLS, '--dest-creds', `admin:${USERS.admin}`, `oci:${baseLayout}:v1`, `docker://${host}/readonly/base:v1`]);
    });
    after(async () => {
      await registry?.stop();
      await issuer?.stop();
      if (work) await rm(work, { recursive: true, force: true });
    });

    const v2 = (path: string, token?: string, init: RequestInit = {}) =>
      fetch(`${registry.url}/v2/${path}`, { ...init, headers: { ...(token !== undefined ? { Authorization: `Bearer ${token}` } : {}), ...(init.headers as Record<string, string> | undefined) } });

    test('an unauthenticated request is sent to the external realm with its service and scope', async () => {
      const realm = `realm="http://127.0.0.1:${issuer.port}/auth",service="${SERVICE}"`;
      const ping = await v2('');
      assert.equal(ping.status, 401);
      assert.equal(ping.headers.get('www-authenticate'), `Bearer ${realm}`);
      assert.deepEqual(await errorCodes(ping), ['UNAUTHORIZED']);
      const manifest = await v2('readonly/base/manifests/v1');
      assert.equal(manifest.status, 401);
      assert.equal(manifest.headers.get('www-authenticate'), `Bearer ${realm},scope="repository:readonly/base:pull"`);
      await manifest.arrayBuffer();
      const upload = await v2('team/app/blobs/uploads/', undefined, { method: 'POST' });
      assert.equal(upload.status, 401);
      assert.equal(upload.headers.get('www-authenticate'), `Bearer ${realm},scope="repository:team/app:push"`);
      await upload.arrayBuffer();
      // A token that grants nothing (what the issuer gives anonymous) is not enough either.
      const nothing = await issuer.tokenFor(undefined, undefined, ['repository:readonly/base:pull']);
      const refused = await v2('readonly/base/manifests/v1', nothing.token);
      assert.equal(refused.status, 401);
      assert.equal(refused.headers.get('www-authenticate'), `Bearer ${realm},scope="repository:readonly/base:pull",error="insufficient_scope"`);
      await refused.arrayBuffer();
    });

    test('skopeo with --creds follows the challenge to the issuer: push and pull keep every digest', async () => {
      const before = issuer.requests.length;
      const creds = `alice:${USERS.alice}`;
      await skopeo(['copy', '--preserve-digests', ...TLS, '--dest-creds', creds, `oci:${appLayout}:v1`, `docker://${host}/team/app:v1`]);
      const asked = issuer.requests.slice(before);
      assert.ok(asked.length > 0, 'skopeo asked the issuer');
      for (const r of asked) {
        assert.equal(r.user, 'alice');
        assert.equal(r.service, SERVICE);
        assert.equal(r.status, 200);
      }
      assert.ok(asked.some((r) => r.scopes.some((s) => /^repository:team\/app:(pull,push|push,pull)$/.test(s))), JSON.stringify(asked));

      const inspect = JSON.parse(await skopeo(['inspect', '--tls-verify=false', '--creds', creds, `docker://${host}/team/app:v1`])) as { Digest: string; Layers: string[] };
      assert.equal(inspect.Digest, app.manifest.descriptor.digest);
      assert.deepEqual(inspect.Layers, app.layers.map((l) => l.descriptor.digest));
      const dst = join(work, 'app-dst');
      await skopeo(['copy', '--preserve-digests', ...TLS, '--src-creds', creds, `docker://${host}/team/app:v1`, `oci:${dst}:v1`]);
      const back = await layoutContents(dst);
      assert.equal(back.top, app.manifest.descriptor.digest);
      assert.deepEqual(back.blobs, [...app.blobs, app.manifest].map((b) => b.descriptor.digest).sort());
      // alice may pull what the admin pushed.
      const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', '--creds', creds, `docker://${host}/readonly/base:v1`]);
      assert.equal(sha256(Buffer.from(raw)), base.manifest.descriptor.digest);
    });

    test('skopeo with a wrong password: the issuer refuses, skopeo says unauthorized', async () => {
      await assert.rejects(skopeo(['inspect', '--tls-verify=false', '--creds', 'alice:wrong', `docker://${host}/readonly/base:v1`]), /unauthorized/i);
      assert.equal(issuer.requests.at(-1)?.status, 401);
    });

    test('a token signed by a key not chained to the bundle is 401 invalid_token', async () => {
      const access = [{ type: 'repository', name: 'readonly/base', actions: ['pull'] }];
      // The real issuer's token works: the refusals below are about the key, not the claims.
      const good = await v2('readonly/base/manifests/v1', await mint(issuer.signer, { sub: 'alice', access }), { method: 'HEAD' });
      assert.equal(good.status, 200);
      for (const [what, signer] of [['foreign', foreign], ['impostor', impostor]] as const) {
        const res = await v2('readonly/base/manifests/v1', await mint(signer, { sub: 'alice', access }));
        assert.equal(res.status, 401, what);
        assert.equal(
          res.headers.get('www-authenticate'),
          `Bearer realm="${issuer.realm}",service="${SERVICE}",scope="repository:readonly/base:pull",error="invalid_token"`,
          what,
        );
        assert.deepEqual(await errorCodes(res), ['UNAUTHORIZED'], what);
      }
    });

    test('a well-signed token for another audience, from another issuer, or expired is 401 invalid_token', async () => {
      const access = [{ type: 'repository', name: 'readonly/base', actions: ['pull'] }];
      const signer = issuer.signer;
      for (const [what, claims] of [
        ['audience', { sub: 'alice', access, aud: 'other-registry' }],
        ['issuer', { sub: 'alice', access, iss: 'other-issuer' }],
        ['expired', { sub: 'alice', access, expiresIn: -120 }],
      ] as const) {
        const res = await v2('readonly/base/manifests/v1', await mint(signer, claims));
        assert.equal(res.status, 401, what);
        assert.match(res.headers.get('www-authenticate') ?? '', /error="invalid_token"$/, what);
        await res.arrayBuffer();
      }
    });

    test('a token granting only pull cannot push (insufficient_scope); skopeo\'s push there fails', async () => {
      const issued = await issuer.tokenFor('alice', USERS.alice, ['repository:readonly/base:pull,push']);
      assert.deepEqual(issued.access, [{ type: 'repository', name: 'readonly/base', actions: ['pull'] }]);
      const pull = await v2('readonly/base/manifests/v1', issued.token, { method: 'HEAD' });
      assert.equal(pull.status, 200, 'the token pulls');
      const push = await v2('readonly/base/blobs/uploads/', issued.token, { method: 'POST' });
      assert.ok(push.status === 401 || push.status === 403, `push with a pull-only token: ${push.status}`);
      if (push.status === 401) {
        assert.equal(push.headers.get('www-authenticate'), `Bearer realm="${issuer.realm}",service="${SERVICE}",scope="repository:readonly/base:push",error="insufficient_scope"`);
        assert.deepEqual(await errorCodes(push), ['UNAUTHORIZED']);
      } else {
        assert.deepEqual(await errorCodes(push), ['DENIED']);
      }
      const manifest = await v2('readonly/base/manifests/v2', issued.token, { method: 'PUT', headers: { 'Content-Type': base.manifest.descriptor.mediaType }, body: base.manifest.data });
      assert.ok(manifest.status === 401 || manifest.status === 403, `manifest PUT with a pull-only token: ${manifest.status}`);
      await manifest.arrayBuffer();

      await assert.rejects(
        skopeo(['copy', '--preserve-digests', ...TLS, '--dest-creds', `alice:${USERS.alice}`, `oci:${appLayout}:v1`, `docker://${host}/readonly/base:pushed`]),
        // Its last word, after any mount attempt (whose two-scope challenge skopeo 1.9 logs it cannot parse) and the plain upload.
        /level=fatal msg=".*(denied|unauthorized)/,
      );
      const tags = JSON.parse(await skopeo(['list-tags', '--tls-verify=false', '--creds', `admin:${USERS.admin}`, `docker://${host}/readonly/base`])) as { Tags: string[] };
      assert.deepEqual(tags.Tags, ['v1'], 'nothing was pushed');
    });
  });
}
