import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import type { ResponseBody, Transport, TransportRequest } from '../../src/client/transport.ts';
import { TokenCache } from '../../src/client/token-cache.ts';

/** A token server in memory: every request gets a fresh token, and is counted. */
function tokenServer(): { transport: Transport; requests: TransportRequest[] } {
  const requests: TransportRequest[] = [];
  const transport: Transport = {
    async request(request) {
      requests.push(request);
      const body = Object.assign(Readable.from([Buffer.from(JSON.stringify({ token: `t${requests.length}`, expires_in: 300 }))]), { dump: async () => undefined }) as unknown as ResponseBody;
      return { statusCode: 200, headers: {}, body };
    },
    async close() {},
  };
  return { transport, requests };
}

test('the token cache keeps the 256 most recently used scopes, not every scope it ever saw', async () => {
  const { transport, requests } = tokenServer();
  const cache = new TokenCache();
  const challenge = { scheme: 'bearer' as const, params: { realm: 'http://auth.test/token', service: 'registry' } };
  const options = { transport, userAgent: 'test', registry: 'registry.test' };
  const scope = (i: number) => [`repository:team/app-${i}:pull,push`];
  const first = await cache.get(challenge, scope(0), undefined, options);
  for (let i = 1; i < 256; i++) await cache.get(challenge, scope(i), undefined, options);
  assert.equal(await cache.get(challenge, scope(0), undefined, options), first, 'cached, and now the most recently used');
  assert.equal(requests.length, 256);
  await cache.get(challenge, scope(256), undefined, options); // one too many: scope 1 goes, not scope 0
  assert.equal(await cache.get(challenge, scope(0), undefined, options), first);
  assert.equal(requests.length, 257);
  await cache.get(challenge, scope(1), undefined, options);
  assert.equal(requests.length, 258, 'the least recently used scope was fetched again');
});
