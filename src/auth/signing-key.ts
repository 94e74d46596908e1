import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ConfigError } from '../errors/config-error.ts';

/** The token service's key: what signs, what verifies, the JWS algorithm and the `kid` header. */
export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  alg: 'ES256' | 'ES384' | 'ES512' | 'RS256';
  kid: string;
}

/**
 * Reads the PEM private key at `file` (EC P-256/384/521 or RSA ≥ 2048 bits). With `create`, a
 * missing file gets a new P-256 key, written with mode 0600 and published atomically (a hard
 * link: two servers starting on one data directory end up with the same key), so that tokens
 * outlive a restart.
 */
export async function loadSigningKey(file: string, options: { create?: boolean } = {}): Promise<SigningKey> {
  let pem: string;
  try {
    pem = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || !options.create) throw new ConfigError(`token key ${file}: cannot read: ${(error as Error).message}`);
    pem = await createKeyFile(file);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (error) {
    throw new ConfigError(`token key ${file}: not a PEM private key: ${(error as Error).message}`);
  }
  return signingKeyOf(privateKey, file);
}

export function signingKeyOf(privateKey: KeyObject, where = 'token key'): SigningKey {
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, alg: algorithmOf(privateKey, where), kid: libtrustKeyId(publicKey) };
}

function algorithmOf(key: KeyObject, where: string): SigningKey['alg'] {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    const curve = details.namedCurve;
    if (curve === 'prime256v1' || curve === 'P-256') return 'ES256';
    if (curve === 'secp384r1' || curve === 'P-384') return 'ES384';
    if (curve === 'secp521r1' || curve === 'P-521') return 'ES512';
  }
  if (key.asymmetricKeyType === 'rsa' && (details.modulusLength ?? 0) >= 2048) return 'RS256';
  throw new ConfigError(`${where}: use an EC P-256, P-384 or P-521 key, or an RSA key of at least 2048 bits`);
}

async function createKeyFile(file: string): Promise<string> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temporary, pem, { mode: 0o600, flush: true });
  try {
    await link(temporary, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return readFile(file, 'utf8'); // another process made it first: use theirs
  } finally {
    await rm(temporary, { force: true });
  }
  return pem;
}

/**
 * The key ID the CNCF registry (libtrust) derives from a public key: the first 240 bits of the
 * SHA-256 of its DER SubjectPublicKeyInfo, base32, in twelve groups of four. Tokens carry it as
 * `kid`, so a registry that trusts our certificate in its root bundle can find the key.
 */
export function libtrustKeyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const hash = createHash('sha256').update(der).digest().subarray(0, 30);
  const base32 = base32Encode(hash);
  return base32.match(/.{4}/g)!.join(':');
}

function base32Encode(bytes: Uint8Array): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}
