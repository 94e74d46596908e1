import assert from 'node:assert/strict';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { libtrustKeyId, loadSigningKey, signingKeyOf } from '../../src/auth/signing-key.ts';
import { ConfigError } from '../../src/errors/config-error.ts';

let dir: string;
let counter = 0;
const fresh = (name = 'key') => join(dir, `${name}-${++counter}.pem`);

async function keyFile(privateKey: KeyObject, format: 'pkcs8' | 'sec1' | 'pkcs1' = 'pkcs8'): Promise<string> {
  const file = fresh();
  await writeFile(file, privateKey.export({ type: format, format: 'pem' }) as string, { mode: 0o600 });
  return file;
}

/**
 * libtrust's keyIDFromCryptoKey written out independently of src/auth: SHA-256 of the DER
 * SubjectPublicKeyInfo (Go's x509.MarshalPKIXPublicKey), first 30 bytes (240 bits), RFC 4648
 * base32 (no padding needed: 240 is a multiple of 5 and of 8), "ABCD:EFGH:…" in groups of four.
 * Here the base32 goes through one BigInt rather than a bit accumulator.
 */
function referenceKeyId(publicKey: KeyObject): string {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const first240 = createHash('sha256').update(spki).digest().subarray(0, 30);
  let n = BigInt(`0x${first240.toString('hex')}`);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let text = '';
  for (let i = 0; i < 48; i++) {
    text = alphabet[Number(n & 31n)]! + text;
    n >>= 5n;
  }
  const groups: string[] = [];
  for (let i = 0; i < text.length; i += 4) groups.push(text.slice(i, i + 4));
  return groups.join(':');
}

const KEY_ID = /^[A-Z2-7]{4}(?::[A-Z2-7]{4}){11}$/;

/**
 * Fixed vectors: public keys with the key IDs computed outside Node
 * (`openssl pkey -pubout -outform DER | python3: base64.b32encode(sha256(der)[:30])`, grouped by four).
 */
const VECTORS = [
  {
    what: 'EC P-256',
    pem: `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7JkCvcnUc+myfeuDC+/Aivfg2QRS
Qu/GVjQV9Gl+/+lwt20UAFj8ntDd1gds3eZX0xOBM+cnZ205r0nouoZ6Yw==
-----END PUBLIC KEY-----
`,
    kid: 'WWHV:HQM5:GNUU:OPXJ:HZGG:FT7Z:SVIG:6TJF:XKSE:ZDSD:7GKB:Z4UY',
  },
  {
    what: 'RSA 2048',
    pem: `-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEApUSrePr7mljRHdUXCEFP
vlwXdfBl5kZWw7sehRIYQFRa/tI2R71tS+QjWXA092XkJV4TGUK6EtKCUfxejxj4
5h/9pXWw/nRhlNvoiKb6Rex+Z/JhRDN6SqW/3VrjVWss3p85bbUB8wLC13Zu6f2N
zY72pMAuMCkZkbQpBntYUlTKBwFNp9zvQGf/HjnSI+WzHBtgRHmqFCwMIr4DqLWc
mV5Assmb5lkQ7UvusCzpvHhS6PoThfqLqjzwp5iY8ldvelUaqrz7va3z+fPhtKGn
bUP8JlV8F66iEItBujQb7AJqbKK1UcueP+I5sGjlWU30n3eSGbTELVJDDTrvD6hn
vQIDAQAB
-----END PUBLIC KEY-----
`,
    kid: 'JSO7:JPPV:33PW:TLXX:EKOY:XROK:S35Z:RFW2:YUR2:IXIF:L57G:Y53R',
  },
];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'skiff-signing-key-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('loadSigningKey: creating the key', () => {
  test('create: true on a missing file writes a 0600 PKCS#8 P-256 key and uses ES256', async () => {
    const file = fresh();
    const key = await loadSigningKey(file, { create: true });
    assert.equal(key.alg, 'ES256');
    assert.equal(key.privateKey.asymmetricKeyType, 'ec');
    assert.equal(key.privateKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal(key.publicKey.type, 'public');
    const pem = await readFile(file, 'utf8');
    assert.match(pem, /^-----BEGIN PRIVATE KEY-----\n/, 'PKCS#8, not SEC1 "EC PRIVATE KEY"');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal(key.kid, libtrustKeyId(createPublicKey(createPrivateKey(pem))), 'the key returned is the key written');
  });

  test('a second load returns the same key and kid, and leaves the file alone', async () => {
    const file = fresh();
    const first = await loadSigningKey(file, { create: true });
    const pem = await readFile(file, 'utf8');
    const second = await loadSigningKey(file, { create: true });
    const third = await loadSigningKey(file);
    assert.equal(second.kid, first.kid);
    assert.equal(third.kid, first.kid);
    assert.equal(await readFile(file, 'utf8'), pem);
  });

  test('missing parent directories are created (0700) and no temporary file is left behind', async () => {
    const parent = join(dir, `nested-${++counter}`, 'auth');
    const file = join(parent, 'token-key.pem');
    await loadSigningKey(file, { create: true });
    assert.deepEqual(await readdir(parent), ['token-key.pem']);
    assert.equal((await stat(parent)).mode & 0o777, 0o700);
  });

  test('every new file is a new key', async () => {
    const one = await loadSigningKey(fresh(), { create: true });
    const two = await loadSigningKey(fresh(), { create: true });
    assert.notEqual(one.kid, two.kid);
  });

  test(
    'two concurrent create loads in one process end with the key that is on disk',
    async () => {
      const file = fresh();
      for (let round = 0; round < 5; round++) {
        await rm(file, { force: true });
        const [a, b] = await Promise.all([loadSigningKey(file, { create: true }), loadSigningKey(file, { create: true })]);
        const onDisk = libtrustKeyId(createPublicKey(createPrivateKey(await readFile(file, 'utf8'))));
        assert.equal(a.kid, onDisk, `round ${round}: first caller`);
        assert.equal(b.kid, onDisk, `round ${round}: second caller`);
      }
    },
  );
});

describe('loadSigningKey: refusals', () => {
  test('a missing file without create is a ConfigError naming it', async () => {
    const file = fresh();
    await assert.rejects(loadSigningKey(file), (error: unknown) => error instanceof ConfigError && error.message.includes(file) && /cannot read/.test(error.message));
    await assert.rejects(loadSigningKey(file, { create: false }), ConfigError);
  });

  test('an unreadable path (a directory) is a ConfigError even with create', async () => {
    await assert.rejects(loadSigningKey(dir, { create: true }), (error: unknown) => error instanceof ConfigError && error.message.includes(dir));
  });

  test('a file that is not a PEM private key is a ConfigError', async () => {
    const file = fresh();
    await writeFile(file, 'not a key\n');
    await assert.rejects(loadSigningKey(file), (error: unknown) => error instanceof ConfigError && error.message.includes(file) && /not a PEM private key/.test(error.message));
  });

  test('a public key alone is refused: it cannot sign', async () => {
    const file = fresh();
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await writeFile(file, publicKey.export({ type: 'spki', format: 'pem' }) as string);
    await assert.rejects(loadSigningKey(file), ConfigError);
  });

  test('RSA 1024 is refused', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const file = await keyFile(privateKey);
    await assert.rejects(loadSigningKey(file), (error: unknown) => error instanceof ConfigError && error.message.includes(file) && /RSA key of at least 2048 bits/.test(error.message));
  });

  test('Ed25519 is refused', async () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    await assert.rejects(loadSigningKey(await keyFile(privateKey)), (error: unknown) => error instanceof ConfigError && /EC P-256, P-384 or P-521/.test(error.message));
  });

  test('an EC key on another curve (secp256k1) is refused', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
    await assert.rejects(loadSigningKey(await keyFile(privateKey)), ConfigError);
  });

  test('signingKeyOf names the place it was given', () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    assert.throws(() => signingKeyOf(privateKey, 'externalToken.key'), (error: unknown) => error instanceof ConfigError && error.message.startsWith('externalToken.key:'));
  });
});

describe('loadSigningKey: accepted key types', () => {
  test('RSA 2048 → RS256', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const key = await loadSigningKey(await keyFile(privateKey));
    assert.equal(key.alg, 'RS256');
    assert.match(key.kid, KEY_ID);
  });

  test('RSA 2048 in PKCS#1 ("BEGIN RSA PRIVATE KEY") is read too', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    assert.equal((await loadSigningKey(await keyFile(privateKey, 'pkcs1'))).alg, 'RS256');
  });

  test('EC P-256 in SEC1 ("BEGIN EC PRIVATE KEY") is read too', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    assert.equal((await loadSigningKey(await keyFile(privateKey, 'sec1'))).alg, 'ES256');
  });

  test('EC P-384 → ES384, P-521 → ES512', async () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey;
    assert.equal((await loadSigningKey(await keyFile(p384))).alg, 'ES384');
    assert.equal((await loadSigningKey(await keyFile(p521))).alg, 'ES512');
  });

  test('signingKeyOf derives the public key and kid from a private key object', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const key = signingKeyOf(privateKey);
    assert.equal(key.alg, 'ES256');
    assert.ok(key.publicKey.equals(publicKey));
    assert.equal(key.kid, libtrustKeyId(publicKey));
  });
});

describe('libtrustKeyId', () => {
  test('is twelve groups of four base32 characters separated by ":"', () => {
    for (const publicKey of [
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey,
      generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey,
      generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey,
    ]) {
      const kid = libtrustKeyId(publicKey);
      assert.match(kid, KEY_ID);
      assert.equal(kid.length, 59);
    }
  });

  test('is stable for one key, however the key object was made', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const kid = libtrustKeyId(publicKey);
    assert.equal(libtrustKeyId(publicKey), kid);
    assert.equal(libtrustKeyId(createPublicKey(privateKey)), kid);
    assert.equal(libtrustKeyId(createPublicKey(publicKey.export({ type: 'spki', format: 'pem' }))), kid);
    assert.equal(libtrustKeyId(createPublicKey({ key: publicKey.export({ format: 'jwk' }), format: 'jwk' })), kid);
  });

  test('differs between keys', () => {
    const kids = new Set(Array.from({ length: 20 }, () => libtrustKeyId(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey)));
    assert.equal(kids.size, 20);
  });

  test('matches an independent implementation of libtrust keyIDFromCryptoKey (EC and RSA, many keys)', () => {
    for (let i = 0; i < 25; i++) {
      const { publicKey } = generateKeyPairSync('ec', { namedCurve: i % 2 ? 'P-256' : 'P-384' });
      assert.equal(libtrustKeyId(publicKey), referenceKeyId(publicKey));
    }
    for (let i = 0; i < 3; i++) {
      const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      assert.equal(libtrustKeyId(publicKey), referenceKeyId(publicKey));
    }
  });

  for (const vector of VECTORS) {
    test(`matches the key ID computed with openssl and Python for a fixed ${vector.what} key`, () => {
      const publicKey = createPublicKey(vector.pem);
      assert.equal(referenceKeyId(publicKey), vector.kid, 'the reference implementation agrees with the vector');
      assert.equal(libtrustKeyId(publicKey), vector.kid);
    });
  }
});
