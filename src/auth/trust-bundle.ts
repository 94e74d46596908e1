import { X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../errors/config-error.ts';
import { libtrustKeyId } from './signing-key.ts';

/**
 * The root certificate bundle of an external token issuer (the CNCF registry's
 * `auth.token.rootcertbundle`): a token's signing key is trusted when its `x5c` chain ends at one
 * of these certificates, or when its `kid` names one of their keys (libtrust key ID, as the CNCF
 * registry and docker/distribution token servers write it).
 */
export class TrustBundle {
  readonly roots: X509Certificate[];
  private readonly byKeyId = new Map<string, KeyObject>();

  constructor(roots: X509Certificate[]) {
    this.roots = roots;
    for (const root of roots) this.byKeyId.set(libtrustKeyId(root.publicKey), root.publicKey);
  }

  static async load(file: string): Promise<TrustBundle> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      throw new ConfigError(`rootcertbundle ${file}: cannot read: ${(error as Error).message}`);
    }
    const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    if (blocks.length === 0) throw new ConfigError(`rootcertbundle ${file}: no PEM certificate in it`);
    try {
      return new TrustBundle(blocks.map((pem) => new X509Certificate(pem)));
    } catch (error) {
      throw new ConfigError(`rootcertbundle ${file}: ${(error as Error).message}`);
    }
  }

  /** The key that should have signed a token with this protected header; throws why not. */
  keyFor(header: { x5c?: string[] | undefined; kid?: string | undefined }, now = new Date()): KeyObject {
    if (header.x5c !== undefined) return this.verifyChain(header.x5c, now);
    if (header.kid !== undefined) {
      const key = this.byKeyId.get(header.kid);
      if (key) return key;
      throw new Error(`the token's key ${header.kid} is not in the root certificate bundle`);
    }
    throw new Error('the token names no key: it has neither an x5c chain nor a kid');
  }

  private verifyChain(x5c: string[], now: Date): KeyObject {
    if (!Array.isArray(x5c) || x5c.length === 0 || x5c.length > 10) throw new Error('the token\'s x5c chain is empty or too long');
    const chain = x5c.map((der) => new X509Certificate(Buffer.from(der, 'base64')));
    for (const certificate of chain) {
      if (now < new Date(certificate.validFrom) || now > new Date(certificate.validTo)) throw new Error(`certificate ${certificate.subject} is not valid now`);
    }
    for (let i = 0; i + 1 < chain.length; i++) {
      if (!chain[i + 1]!.ca || !chain[i]!.checkIssued(chain[i + 1]!) || !chain[i]!.verify(chain[i + 1]!.publicKey)) {
        throw new Error(`certificate ${chain[i]!.subject} is not signed by ${chain[i + 1]!.subject}`);
      }
    }
    const last = chain[chain.length - 1]!;
    const trusted = this.roots.some((root) => root.fingerprint256 === last.fingerprint256 || (root.ca && last.checkIssued(root) && last.verify(root.publicKey)));
    if (!trusted) throw new Error(`the token's certificate chain (${last.subject}) does not lead to the root certificate bundle`);
    return chain[0]!.publicKey;
  }
}
