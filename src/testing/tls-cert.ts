import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** PEM files on disk plus their text. Keys are unencrypted PKCS#8 (`BEGIN PRIVATE KEY`), mode 0600. */
export interface TestCertificate {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
}

export interface CertificateOptions {
  /** Subject CN; default `localhost`. */
  commonName?: string;
  /** Validity from now; default 30. openssl takes no less than 1, so an already expired certificate cannot be made here. */
  days?: number;
  /** subjectAltName entries as openssl spells them; default `IP:127.0.0.1`, `DNS:localhost`. [] for none. */
  altNames?: string[];
  /** File name stem in `dir` (`<name>.crt`, `<name>.key`); default `server`. The same name again overwrites, as a renewal would. */
  name?: string;
  /** `ec` (P-256, for ES256) or `rsa` (2048 bits, for RS256); default `ec`. */
  keyType?: 'ec' | 'rsa';
}

const DEFAULT_ALT_NAMES = ['IP:127.0.0.1', 'DNS:localhost'];

/**
 * A self-signed server certificate made with the openssl CLI (node:crypto can verify
 * certificates but not issue them). Valid for 127.0.0.1 and localhost by default, so a client
 * given it as `ca` verifies a connection to the test server without `rejectUnauthorized: false`.
 */
export async function makeTestCertificate(dir: string, options: CertificateOptions = {}): Promise<TestCertificate> {
  const { certFile, keyFile } = await paths(dir, options.name ?? 'server');
  const altNames = options.altNames ?? DEFAULT_ALT_NAMES;
  await openssl([
    'req', '-x509', ...newKey(options.keyType), '-nodes',
    '-subj', `/CN=${options.commonName ?? 'localhost'}`,
    ...(altNames.length > 0 ? ['-addext', `subjectAltName=${altNames.join(',')}`] : []),
    '-days', String(options.days ?? 30),
    '-keyout', keyFile, '-out', certFile,
  ]);
  return finish(certFile, keyFile);
}

/** A self-signed root (CA:TRUE, keyCertSign) to issue leaves from; its `cert` is the root bundle a verifier trusts. */
export async function makeTestCa(dir: string, options: Pick<CertificateOptions, 'commonName' | 'days' | 'name' | 'keyType'> = {}): Promise<TestCertificate> {
  const { certFile, keyFile } = await paths(dir, options.name ?? 'ca');
  await openssl([
    'req', '-x509', ...newKey(options.keyType), '-nodes',
    '-subj', `/CN=${options.commonName ?? 'skiff test root'}`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-days', String(options.days ?? 30),
    '-keyout', keyFile, '-out', certFile,
  ]);
  return finish(certFile, keyFile);
}

/**
 * A leaf signed by `ca`: for a TLS server (serverAuth, with altNames) or for signing tokens
 * (digitalSignature; the JWT `x5c` chain is this cert and the root checks it). No altNames by
 * default here, since a token-signing leaf names no host.
 */
export async function issueCertificate(ca: TestCertificate, dir: string, options: CertificateOptions = {}): Promise<TestCertificate> {
  const name = options.name ?? 'leaf';
  const { certFile, keyFile } = await paths(dir, name);
  const csrFile = join(dir, `${name}.csr`);
  const extFile = join(dir, `${name}.ext`);
  await openssl(['req', '-new', ...newKey(options.keyType), '-nodes', '-subj', `/CN=${options.commonName ?? 'skiff test leaf'}`, '-keyout', keyFile, '-out', csrFile]);
  const altNames = options.altNames ?? [];
  await writeFile(
    extFile,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth,clientAuth',
      'subjectKeyIdentifier=hash',
      'authorityKeyIdentifier=keyid',
      ...(altNames.length > 0 ? [`subjectAltName=${altNames.join(',')}`] : []),
    ].join('\n') + '\n',
  );
  await openssl([
    'x509', '-req', '-in', csrFile, '-CA', ca.certFile, '-CAkey', ca.keyFile,
    // A random serial rather than -CAcreateserial: no serial file shared by concurrent tests.
    '-set_serial', `0x${randomBytes(16).toString('hex').replace(/^[89a-f]/, '7')}`,
    '-days', String(options.days ?? 30), '-extfile', extFile, '-out', certFile,
  ]);
  return finish(certFile, keyFile);
}

function newKey(keyType: 'ec' | 'rsa' = 'ec'): string[] {
  return keyType === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
}

async function paths(dir: string, name: string): Promise<{ certFile: string; keyFile: string }> {
  await mkdir(dir, { recursive: true });
  return { certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`) };
}

async function finish(certFile: string, keyFile: string): Promise<TestCertificate> {
  await chmod(certFile, 0o600);
  await chmod(keyFile, 0o600);
  return { certFile, keyFile, cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8') };
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new Error('openssl not found on PATH: the TLS test certificates are made with it; apt-get install openssl');
    throw new Error(`openssl ${args.slice(0, 2).join(' ')} failed: ${(e.stderr ?? e.message).trim()}`);
  }
}
