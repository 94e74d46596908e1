/**
 * The conformance replay (conformance-replay.ts) against an in-process `skiff serve` on its
 * embedded storage: open, with htpasswd and the built-in token service, and with the background
 * garbage collector running every second. test/scale-out/ runs it through a load balancer in
 * front of replicas on S3, PostgreSQL and Redis.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { startTestRegistry } from '../../src/testing/test-registry.ts';
import { conformanceReplay } from './conformance-replay.ts';

conformanceReplay('open', async () => {
  const registry = await startTestRegistry({ delete: true });
  return { url: registry.url, stop: () => registry.stop() };
});

/**
 * OCI_USERNAME/OCI_PASSWORD against htpasswd and the built-in token service. There a mount without
 * `from` answers 202: the token carries only the scopes the challenge named, and skiff mounts only
 * from repositories the caller may pull (the suite makes that test optional, through
 * OCI_AUTOMATIC_CROSSMOUNT).
 */
conformanceReplay('authenticated', async () => {
  const credentials = { username: 'conformance', password: randomBytes(18).toString('base64url') };
  const authDir = await mkdtemp(join(tmpdir(), 'skiff-conformance-auth-'));
  const htpasswd = join(authDir, 'htpasswd');
  await writeFile(htpasswd, `${credentials.username}:${bcrypt.hashSync(credentials.password, 4)}\n`);
  const registry = await startTestRegistry({ delete: true, htpasswd });
  return {
    url: registry.url,
    credentials,
    automaticCrossmount: false,
    async stop() {
      await registry.stop();
      await rm(authDir, { recursive: true, force: true });
    },
  };
});

/** Grace 60 s, so nothing the suite uses may go. The scheduler's first cycle runs after min(interval, 60 s): 1 s in. */
conformanceReplay(
  'gc running',
  async () => {
    const registry = await startTestRegistry({ delete: true, gc: { interval: 1000, grace: 60_000 } });
    return { url: registry.url, stop: () => registry.stop(), metrics: () => registry.metrics.render() };
  },
  { collects: true },
);
