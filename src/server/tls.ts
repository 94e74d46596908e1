import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { createSecureContext, type SecureContextOptions, type Server as TlsServer } from 'node:tls';
import type { Logger } from 'pino';
import { ConfigError } from '../errors/config-error.ts';

/** A certificate and key read from disk and checked to belong together, ready for `createServer`. */
export interface TlsFiles {
  /** The certificate file as given: the server's own certificate first, then any intermediates. */
  cert: Buffer;
  key: Buffer;
  /** Subject of the server's own (first) certificate, e.g. `CN=registry.example`. */
  subject: string;
  notBefore: Date;
  notAfter: Date;
  /** SHA-256 fingerprint of the server's own certificate, colon-separated hex as node prints it. */
  fingerprint256: string;
}

/** Certificates closer than this to their end get a warning at start and on every reload. */
export const EXPIRY_WARNING_MS = 7 * 24 * 60 * 60 * 1000;

const CERT_BLOCK = '-----BEGIN CERTIFICATE-----';
const PRIVATE_KEY_BLOCK = /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/;
const ENCRYPTED_KEY = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: *4, *ENCRYPTED/;

/**
 * Reads the PEM certificate (optionally followed by its intermediates) and the PEM private key,
 * and refuses them unless they are readable, parse, and the key belongs to the first certificate.
 * Checked here rather than left to `https.createServer` so a bad file is a ConfigError naming the
 * file, not an OpenSSL code. An expired certificate is still returned: it is the operator's call,
 * and `expiryWarning` says so in the log.
 */
export async function loadTlsFiles(certFile: string, keyFile: string): Promise<TlsFiles> {
  const cert = await readPem(certFile, 'certificate');
  const key = await readPem(keyFile, 'key');

  const certText = cert.toString('latin1');
  const certCount = certText.split(CERT_BLOCK).length - 1;
  if (certCount === 0) {
    const hint = PRIVATE_KEY_BLOCK.test(certText) ? ': it holds a private key (are the certificate and key files swapped?)' : ' (expected a "-----BEGIN CERTIFICATE-----" block)';
    throw new ConfigError(`TLS certificate ${certFile} is not a PEM certificate${hint}`);
  }
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new ConfigError(`TLS certificate ${certFile} is not a valid certificate: ${reason(err)}`);
  }

  const keyText = key.toString('latin1');
  if (ENCRYPTED_KEY.test(keyText)) {
    throw new ConfigError(`TLS key ${keyFile} is encrypted with a passphrase; give an unencrypted key (openssl pkey -in ${keyFile} -out plain.key) and keep it readable only by skiff`);
  }
  if (!PRIVATE_KEY_BLOCK.test(keyText)) {
    const hint = keyText.includes(CERT_BLOCK) ? ': it holds a certificate (are the certificate and key files swapped?)' : ' (expected a "-----BEGIN PRIVATE KEY-----" block)';
    throw new ConfigError(`TLS key ${keyFile} is not a PEM private key${hint}`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new ConfigError(`TLS key ${keyFile} is not a valid private key: ${reason(err)}`);
  }

  const subject = x509.subject.replaceAll('\n', ', ');
  if (!x509.checkPrivateKey(privateKey)) {
    // With a chain in one file, the server's own certificate must come first: a common slip.
    const order = certCount > 1 ? ` (of the ${certCount} certificates in ${certFile}, the first must be the server's own, intermediates after it)` : '';
    throw new ConfigError(`TLS key ${keyFile} does not match the certificate ${certFile}: the certificate (${subject}) carries the public key of another private key${order}`);
  }

  // The exact check the server will make; catches what the parsers above let through
  // (a broken intermediate, a key type this OpenSSL will not serve with).
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    throw new ConfigError(`TLS certificate ${certFile} and key ${keyFile} cannot be used for TLS: ${reason(err)}`);
  }

  return {
    cert,
    key,
    subject,
    notBefore: new Date(x509.validFrom),
    notAfter: new Date(x509.validTo),
    fingerprint256: x509.fingerprint256,
  };
}

/** A line for the log when the certificate is expired, expiring within 7 days or not yet valid; undefined when fine. */
export function expiryWarning(files: Pick<TlsFiles, 'subject' | 'notBefore' | 'notAfter'>, certFile: string, now = new Date()): string | undefined {
  const left = files.notAfter.getTime() - now.getTime();
  if (left <= 0) return `TLS certificate ${certFile} (${files.subject}) expired on ${files.notAfter.toISOString()}; clients will refuse it`;
  if (files.notBefore.getTime() > now.getTime()) return `TLS certificate ${certFile} (${files.subject}) is not valid before ${files.notBefore.toISOString()}; clients will refuse it until then`;
  if (left < EXPIRY_WARNING_MS) {
    const days = Math.floor(left / 86_400_000);
    const when = days === 0 ? 'within a day' : `in ${days} day${days === 1 ? '' : 's'}`;
    return `TLS certificate ${certFile} (${files.subject}) expires ${when}, on ${files.notAfter.toISOString()}; renew it and send skiff SIGHUP`;
  }
  return undefined;
}

/**
 * Swaps the certificate of a running server for what is now on disk, so a renewed certificate
 * (certbot, cert-manager) takes effect without dropping connections: open connections keep the
 * old one, new handshakes get the new one. A bad file never takes the server down; it keeps the
 * previous certificate and says so.
 */
export class TlsReloader {
  private readonly server: TlsServer;
  private readonly certFile: string;
  private readonly keyFile: string;
  private readonly log: Logger;
  private readonly contextOptions: SecureContextOptions;
  /** Reloads run one at a time, so two quick SIGHUPs cannot finish out of order and install the older files. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: {
    server: TlsServer;
    certFile: string;
    keyFile: string;
    log: Logger;
    /**
     * Everything else the server's secure context was built with (ca, minVersion, ciphers…).
     * `setSecureContext` replaces the whole context: anything not given again is reset to
     * node's default.
     */
    contextOptions?: SecureContextOptions;
  }) {
    this.server = options.server;
    this.certFile = options.certFile;
    this.keyFile = options.keyFile;
    this.log = options.log;
    this.contextOptions = options.contextOptions ?? {};
  }

  /** Re-reads and installs the files; false (logged) when they are unusable and the old certificate stays. */
  reload(): Promise<boolean> {
    const run = this.queue.then(() => this.reloadNow());
    this.queue = run;
    return run;
  }

  /**
   * Reloads on every SIGHUP, the signal daemons conventionally take for "re-read your files".
   * While installed, SIGHUP no longer ends the process. Returns a function removing the listener.
   */
  watchSighup(onReloaded?: (ok: boolean) => void): () => void {
    const listener = (): void => {
      void this.reload().then((ok) => onReloaded?.(ok));
    };
    process.on('SIGHUP', listener);
    return () => {
      process.off('SIGHUP', listener);
    };
  }

  private async reloadNow(): Promise<boolean> {
    let files: TlsFiles;
    try {
      files = await loadTlsFiles(this.certFile, this.keyFile);
      this.server.setSecureContext({ ...this.contextOptions, cert: files.cert, key: files.key });
    } catch (err) {
      this.log.error({ certFile: this.certFile, keyFile: this.keyFile, err: reason(err) }, 'tls reload failed, keeping the previous certificate');
      return false;
    }
    this.log.info({ certFile: this.certFile, subject: files.subject, notAfter: files.notAfter.toISOString(), fingerprint256: files.fingerprint256 }, 'tls certificate reloaded');
    const warning = expiryWarning(files, this.certFile);
    if (warning) this.log.warn({ certFile: this.certFile, notAfter: files.notAfter.toISOString() }, warning);
    return true;
  }
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
// BlockList also matches IPv4-mapped forms (::ffff:127.0.0.1) and spelled-out ::1 against these.
LOOPBACK.addAddress('::1', 'ipv6');

/**
 * True when a listen host only accepts connections from this machine: 127.0.0.0/8, ::1 (bare or
 * bracketed) and `localhost`. All-interfaces ('' / 0.0.0.0 / ::) and every other name or address
 * are not, since a name could resolve anywhere.
 */
export function isLoopbackHost(host: string): boolean {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h === 'localhost' || h === 'localhost.') return true;
  if (isIPv4(h)) return LOOPBACK.check(h, 'ipv4');
  if (isIPv6(h)) return LOOPBACK.check(h, 'ipv6');
  return false;
}

/**
 * Basic auth passwords and bearer tokens are replayable, so sending them over plain HTTP beyond
 * this machine hands them to anyone on the path. Refuse that setup unless the operator says
 * otherwise (e.g. TLS ends at a proxy in front of skiff).
 */
export function checkPlainHttpAuth(options: { listenHost: string; tls: boolean; auth: boolean; insecureHttp: boolean }): void {
  const { listenHost, tls, auth, insecureHttp } = options;
  if (!auth || tls || insecureHttp || isLoopbackHost(listenHost)) return;
  const where = listenHost === '' || listenHost === '0.0.0.0' || listenHost === '::' || listenHost === '[::]' ? `${listenHost || '*'} (all interfaces)` : listenHost;
  throw new ConfigError(
    `refusing to serve authentication over plain HTTP on ${where}: credentials and tokens would cross the network in clear text; give --tls-cert/--tls-key, listen on a loopback address, or pass --insecure-http`,
  );
}

async function readPem(file: string, what: 'certificate' | 'key'): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new ConfigError(`TLS ${what} ${file} cannot be read: ${reason(err)}`);
  }
}

/** `ENOENT: no such file or directory, open '/x'` → `ENOENT: no such file or directory`; the caller already names the file. */
function reason(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code;
  if (code && 'syscall' in err) return err.message.replace(/, \w+ '.*'$/, '');
  return err.message;
}
