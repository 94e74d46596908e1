import type { Readable } from 'node:stream';
import type { RegistryClient } from '../client/registry-client.ts';

/**
 * Every stream `client.openBlobFrom` returns from now on, in order, for tests that check what
 * became of a blob's GET (closed when its reader gave up, resumed at an offset). The streams are
 * the client's own, unchanged.
 */
export function recordBlobSources(client: RegistryClient): Readable[] {
  const opened: Readable[] = [];
  const openBlobFrom = client.openBlobFrom.bind(client);
  client.openBlobFrom = (...args) => {
    const stream = openBlobFrom(...args);
    opened.push(stream);
    return stream;
  };
  return opened;
}
