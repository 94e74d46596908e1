import { Readable } from 'node:stream';
import type { Digest } from '../digest/digest.ts';
import type { Descriptor } from '../oci/descriptor.ts';
import { endpointsFor, shouldFallBack, type Endpoint, type MirrorSet } from './mirrors.ts';
import type { RegistryClient } from './registry-client.ts';

/** What pulling needs from a registry; a RegistryClient is one, a MirroredClient another. */
export interface PullSource {
  getManifest(repository: string, reference: string, signal?: AbortSignal): Promise<{ descriptor: Descriptor; body: Buffer }>;
  openBlobFrom(repository: string, descriptor: Descriptor, offset: number, signal?: AbortSignal): Readable;
  listTags(repository: string, signal?: AbortSignal): Promise<string[]>;
}

/**
 * A registry behind its configured mirrors: each call tries the endpoints `endpointsFor` gives
 * (mirrors trusted for that kind of reference, then the origin) and moves on per REFERENCE.md §B.
 * Everything fetched is verified by digest, so a lying mirror costs a fallback, never bad content.
 */
export class MirroredClient implements PullSource {
  private readonly registry: string;
  private readonly mirrors: MirrorSet;
  private readonly clientFor: (endpoint: Endpoint) => RegistryClient;

  constructor(registry: string, mirrors: MirrorSet, clientFor: (endpoint: Endpoint) => RegistryClient) {
    this.registry = registry;
    this.mirrors = mirrors;
    this.clientFor = clientFor;
  }

  private async attempt<T>(reference: string, signal: AbortSignal | undefined, work: (client: RegistryClient) => Promise<T>): Promise<T> {
    const endpoints = endpointsFor(this.registry, reference, this.mirrors);
    for (const [i, endpoint] of endpoints.entries()) {
      try {
        return await work(this.clientFor(endpoint));
      } catch (error) {
        if (i === endpoints.length - 1 || !shouldFallBack(error, endpoint.isMirror, signal)) throw error;
      }
    }
    throw new Error('unreachable: no endpoints');
  }

  getManifest(repository: string, reference: string, signal?: AbortSignal): Promise<{ descriptor: Descriptor; body: Buffer }> {
    return this.attempt(reference, signal, (client) => client.getManifest(repository, reference, signal));
  }

  listTags(repository: string, signal?: AbortSignal): Promise<string[]> {
    return this.attempt('latest', signal, (client) => client.listTags(repository, signal));
  }

  /**
   * Tries each endpoint in turn, also after bytes have flowed: a mirror whose stream breaks (after
   * its own retries) hands over to the next endpoint at the byte where it stopped. Mixing sources
   * is safe because the caller verifies the whole blob against its digest.
   */
  openBlobFrom(repository: string, descriptor: Descriptor, offset: number, signal?: AbortSignal): Readable {
    const self = this;
    async function* chunks(): AsyncGenerator<Buffer> {
      const endpoints = endpointsFor(self.registry, descriptor.digest as Digest, self.mirrors);
      let delivered = offset;
      for (const [i, endpoint] of endpoints.entries()) {
        try {
          for await (const chunk of self.clientFor(endpoint).openBlobFrom(repository, descriptor, delivered, signal) as AsyncIterable<Buffer>) {
            delivered += chunk.length;
            yield chunk;
          }
          return;
        } catch (error) {
          if (i === endpoints.length - 1 || !shouldFallBack(error, endpoint.isMirror, signal)) throw error;
        }
      }
    }
    return Readable.from(chunks(), { objectMode: false });
  }
}
