import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SignJWT } from 'jose';
import { libtrustKeyId } from '../../src/auth/signing-key.ts';
import { TokenRejected, TokenVerifier } from '../../src/auth/token-verifier.ts';
import { TrustBundle } from '../../src/auth/trust-bundle.ts';
import { ConfigError } from '../../src/errors/config-error.ts';
import { peerSkipReason } from '../../src/testing/peers.ts';
import { issueCertificate, makeTestCa, makeTestCertificate, type TestCertificate } from '../../src/testing/tls-cert.ts';

const skip = await peerSkipReason('openssl');

const ISSUER = 'auth.example.test';
const SERVICE = 'registry.example.test';

/** The x5c form of a certificate: standard base64 of its DER. */
const x5cOf = (certificate: TestCertificate): string => new X509Certificate(certificate.cert).raw.toString('base64');
const privateKeyOf = (certificate: TestCertificate): KeyObject => createPrivateKey(certificate.key);
const publicKeyOf = (certificate: TestCertificate): KeyObject => new X509Certificate(certificate.cert).publicKey;
const now = () => Math.floor(Date.now() / 1000);

async function token(key: KeyObject | Uint8Array, header: Record<string, unknown>, options: { alg?: string; claims?: Record<string, unknown> } = {}): Promise<string> {
  return new SignJWT({ iss: ISSUER, aud: SERVICE, sub: 'alice', iat: now(), exp: now() + 300, access: [{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] }], ...options.claims })
    .setProtectedHeader({ alg: options.alg ?? 'ES256', typ: 'JWT', ...header })
    .sign(key);
}

describe('TrustBundle and TokenVerifier with an external issuer\'s root bundle', { skip }, () => {
  let dir: string;
  let ca: TestCertificate;
  let leaf: TestCertificate;
  let rsaLeaf: TestCertificate;
  let otherCa: TestCertificate;
  let otherLeaf: TestCertificate;
  let selfSigned: TestCertificate;
  let notInBundle: TestCertificate;
  let subLeaf: TestCertificate;
  let bundleFile: string;
  let bundle: TrustBundle;
  let verifier: TokenVerifier;

  /** The TokenRejected that verifying `jwt` throws. */
  async function rejection(jwt: string, by = verifier): Promise<TokenRejected> {
    try {
      await by.verify(jwt);
    } catch (error) {
      assert.ok(error instanceof TokenRejected, `expected TokenRejected, got ${String(error)}`);
      return error;
    }
    assert.fail('the token was accepted');
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-trust-bundle-'));
    ca = await makeTestCa(dir, { name: 'ca', commonName: 'skiff test root' });
    leaf = await issueCertificate(ca, dir, { name: 'leaf', commonName: 'token signer' });
    rsaLeaf = await issueCertificate(ca, dir, { name: 'rsa-leaf', commonName: 'rsa token signer', keyType: 'rsa' });
    otherCa = await makeTestCa(dir, { name: 'other-ca', commonName: 'another root' });
    otherLeaf = await issueCertificate(otherCa, dir, { name: 'other-leaf', commonName: 'token signer' });
    selfSigned = await makeTestCertificate(dir, { name: 'self', commonName: 'self-signed token signer', altNames: [] });
    notInBundle = await makeTestCertificate(dir, { name: 'stranger', commonName: 'stranger', altNames: [] });
    // A certificate "issued" by the CA:FALSE leaf: a leaf must not be able to vouch for another key.
    subLeaf = await issueCertificate(leaf, dir, { name: 'sub-leaf', commonName: 'issued by a leaf' });
    bundleFile = join(dir, 'bundle.pem');
    await writeFile(bundleFile, `# roots\n${ca.cert}\n${selfSigned.cert}`);
    bundle = await TrustBundle.load(bundleFile);
    verifier = new TokenVerifier({ trust: { bundle }, issuer: ISSUER, service: SERVICE });
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  describe('TrustBundle.load', () => {
    test('reads every certificate of a PEM bundle, ignoring text around them', () => {
      assert.equal(bundle.roots.length, 2);
      assert.equal(bundle.roots[0]!.subject, 'CN=skiff test root');
      assert.equal(bundle.roots[1]!.subject, 'CN=self-signed token signer');
    });

    test('a file without certificates is a ConfigError naming it', async () => {
      const file = join(dir, 'empty.pem');
      await writeFile(file, `just text\n${ca.key}`);
      await assert.rejects(TrustBundle.load(file), (error: unknown) => error instanceof ConfigError && error.message.includes(file) && /no PEM certificate/.test(error.message));
      await writeFile(file, '');
      await assert.rejects(TrustBundle.load(file), ConfigError);
    });

    test('a missing file is a ConfigError naming it', async () => {
      const file = join(dir, 'missing.pem');
      await assert.rejects(TrustBundle.load(file), (error: unknown) => error instanceof ConfigError && error.message.includes(file) && /cannot read/.test(error.message));
    });

    test('a damaged certificate is a ConfigError naming the file', async () => {
      const file = join(dir, 'damaged.pem');
      await writeFile(file, '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n');
      await assert.rejects(TrustBundle.load(file), (error: unknown) => error instanceof ConfigError && error.message.includes(file));
    });

    test('CRLF bundles load', async () => {
      const file = join(dir, 'crlf.pem');
      await writeFile(file, ca.cert.replace(/\n/g, '\r\n'));
      assert.equal((await TrustBundle.load(file)).roots.length, 1);
    });
  });

  describe('x5c chains', () => {
    test('a token with x5c [leaf, CA] signed by the leaf key verifies', async () => {
      const grant = await verifier.verify(await token(privateKeyOf(leaf), { x5c: [x5cOf(leaf), x5cOf(ca)] }));
      assert.equal(grant.subject, 'alice');
      assert.deepEqual([...(grant.repositories.get('team-a/app') ?? [])].sort(), ['pull', 'push']);
      assert.equal(grant.builtin, false, 'an external issuer\'s grant, not this server\'s');
      assert.equal(verifier.builtin, false);
    });

    test('x5c with only the leaf verifies when its CA is in the bundle', async () => {
      const grant = await verifier.verify(await token(privateKeyOf(leaf), { x5c: [x5cOf(leaf)] }));
      assert.equal(grant.subject, 'alice');
    });

    test('an RSA leaf signs RS256', async () => {
      const grant = await verifier.verify(await token(privateKeyOf(rsaLeaf), { x5c: [x5cOf(rsaLeaf), x5cOf(ca)] }, { alg: 'RS256' }));
      assert.equal(grant.subject, 'alice');
    });

    test('a self-signed certificate that is itself in the bundle works as a one-element x5c', async () => {
      const grant = await verifier.verify(await token(privateKeyOf(selfSigned), { x5c: [x5cOf(selfSigned)] }));
      assert.equal(grant.subject, 'alice');
    });

    test('a chain from another CA is refused', async () => {
      const error = await rejection(await token(privateKeyOf(otherLeaf), { x5c: [x5cOf(otherLeaf), x5cOf(otherCa)] }));
      assert.match(error.message, /does not lead to the root certificate bundle/);
      await rejection(await token(privateKeyOf(otherLeaf), { x5c: [x5cOf(otherLeaf)] }));
    });

    test('a foreign leaf followed by our CA is refused (the CA did not sign it)', async () => {
      const error = await rejection(await token(privateKeyOf(otherLeaf), { x5c: [x5cOf(otherLeaf), x5cOf(ca)] }));
      assert.match(error.message, /is not signed by/);
    });

    test('our leaf followed by another CA is refused', async () => {
      await rejection(await token(privateKeyOf(leaf), { x5c: [x5cOf(leaf), x5cOf(otherCa)] }));
    });

    test('a certificate issued by a CA:FALSE leaf is refused, with or without that leaf in x5c', async () => {
      const viaLeaf = await rejection(await token(privateKeyOf(subLeaf), { x5c: [x5cOf(subLeaf), x5cOf(leaf), x5cOf(ca)] }));
      assert.match(viaLeaf.message, /is not signed by/);
      await rejection(await token(privateKeyOf(subLeaf), { x5c: [x5cOf(subLeaf)] }));
    });

    test('a token signed by another key than the x5c leaf\'s is refused', async () => {
      const error = await rejection(await token(privateKeyOf(otherLeaf), { x5c: [x5cOf(leaf), x5cOf(ca)] }));
      assert.match(error.message, /signature does not verify/);
      const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      await rejection(await token(stranger, { x5c: [x5cOf(leaf)] }));
    });

    test('a CA certificate that signs the token directly is trusted (it is a root)', async () => {
      const grant = await verifier.verify(await token(privateKeyOf(ca), { x5c: [x5cOf(ca)] }));
      assert.equal(grant.subject, 'alice');
    });

    test('an x5c chain takes precedence over kid: a bad chain is not rescued by a trusted kid', async () => {
      await rejection(await token(privateKeyOf(otherLeaf), { x5c: [x5cOf(otherLeaf)], kid: libtrustKeyId(publicKeyOf(selfSigned)) }));
      const grant = await verifier.verify(await token(privateKeyOf(leaf), { x5c: [x5cOf(leaf)], kid: 'AAAA:BBBB:CCCC:DDDD:EEEE:FFFF:GGGG:HHHH:IIII:JJJJ:KKKK:LLLL' }));
      assert.equal(grant.subject, 'alice', 'a good chain with a stray kid verifies');
    });

    test('empty, over-long, non-list and non-certificate x5c values are refused', async () => {
      const key = privateKeyOf(leaf);
      for (const x5c of [[], Array.from({ length: 11 }, () => x5cOf(leaf)), 'not-a-list', [42], ['bm90IGEgY2VydA=='], [x5cOf(leaf), 'garbage']]) {
        await rejection(await token(key, { x5c }));
      }
    });

    test('a certificate outside its validity period is refused (checked at a given time)', () => {
      const header = { x5c: [x5cOf(leaf), x5cOf(ca)] };
      assert.ok(bundle.keyFor(header).equals(publicKeyOf(leaf)), 'valid now');
      assert.throws(() => bundle.keyFor(header, new Date(Date.now() + 90 * 24 * 3600_000)), /is not valid now/);
      assert.throws(() => bundle.keyFor(header, new Date(Date.now() - 2 * 24 * 3600_000)), /is not valid now/);
    });

    test('issuer, audience and expiry still apply to chain-verified tokens', async () => {
      const key = privateKeyOf(leaf);
      const x5c = [x5cOf(leaf), x5cOf(ca)];
      assert.match((await rejection(await token(key, { x5c }, { claims: { iss: 'mallory' } }))).message, /iss/);
      assert.match((await rejection(await token(key, { x5c }, { claims: { aud: 'elsewhere' } }))).message, /aud/);
      assert.match((await rejection(await token(key, { x5c }, { claims: { exp: now() - 120 } }))).message, /expired/);
    });

    test('HS256 keyed with the leaf\'s public key, and alg none, are refused even with a good x5c', async () => {
      const x5c = [x5cOf(leaf), x5cOf(ca)];
      const secret = Buffer.from(publicKeyOf(leaf).export({ type: 'spki', format: 'pem' }) as string);
      assert.match((await rejection(await token(secret, { x5c }, { alg: 'HS256' }))).message, /algorithm/);
      const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
      await rejection(`${b64({ alg: 'none', x5c })}.${b64({ iss: ISSUER, aud: SERVICE, sub: 'alice', exp: now() + 300 })}.`);
    });

    test('an alg that does not fit the leaf key (RS256 header on an EC leaf) is refused', async () => {
      const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
      await rejection(await token(rsa, { x5c: [x5cOf(leaf), x5cOf(ca)] }, { alg: 'RS256' }));
    });
  });

  describe('kid lookups', () => {
    test('kid = libtrust key ID of a self-signed bundle certificate\'s key verifies', async () => {
      const grant = await verifier.verify(await token(privateKeyOf(selfSigned), { kid: libtrustKeyId(publicKeyOf(selfSigned)) }));
      assert.equal(grant.subject, 'alice');
    });

    test('kid of the CA\'s own key verifies a token the CA key signed', async () => {
      const grant = await verifier.verify(await token(privateKeyOf(ca), { kid: libtrustKeyId(publicKeyOf(ca)) }));
      assert.equal(grant.subject, 'alice');
    });

    test('keyFor returns the bundle certificate\'s key for its kid', () => {
      assert.ok(bundle.keyFor({ kid: libtrustKeyId(publicKeyOf(selfSigned)) }).equals(publicKeyOf(selfSigned)));
    });

    test('an unknown kid is refused', async () => {
      const kid = libtrustKeyId(publicKeyOf(notInBundle));
      const error = await rejection(await token(privateKeyOf(notInBundle), { kid }));
      assert.match(error.message, /is not in the root certificate bundle/);
      assert.throws(() => bundle.keyFor({ kid }), /is not in the root certificate bundle/);
    });

    test('the kid of a leaf the CA issued is not enough: only bundle certificates\' keys are known by kid', async () => {
      await rejection(await token(privateKeyOf(leaf), { kid: libtrustKeyId(publicKeyOf(leaf)) }));
    });

    test('a trusted kid on a token signed by another key is refused', async () => {
      const error = await rejection(await token(privateKeyOf(notInBundle), { kid: libtrustKeyId(publicKeyOf(selfSigned)) }));
      assert.match(error.message, /signature does not verify/);
    });

    test('kid in another spelling (lower case, without colons) is not a match', async () => {
      const kid = libtrustKeyId(publicKeyOf(selfSigned));
      await rejection(await token(privateKeyOf(selfSigned), { kid: kid.toLowerCase() }));
      await rejection(await token(privateKeyOf(selfSigned), { kid: kid.replaceAll(':', '') }));
    });

    test('no x5c and no kid is refused', async () => {
      const error = await rejection(await token(privateKeyOf(selfSigned), {}));
      assert.match(error.message, /neither an x5c chain nor a kid/);
      assert.throws(() => bundle.keyFor({}), /neither an x5c chain nor a kid/);
    });
  });

  describe('the verdict cache with a bundle', () => {
    test('the same token verified twice returns the same grant object', async () => {
      const fresh = new TokenVerifier({ trust: { bundle }, issuer: ISSUER, service: SERVICE });
      const jwt = await token(privateKeyOf(leaf), { x5c: [x5cOf(leaf), x5cOf(ca)] });
      assert.equal(await fresh.verify(jwt), await fresh.verify(jwt));
    });
  });
});
