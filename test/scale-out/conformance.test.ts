/**
 * The conformance replay (test/conformance/conformance-replay.ts) through nginx in front of two
 * `skiff serve` replicas on Ceph's S3, PostgreSQL and Redis: every request may land on either
 * replica, so each workflow's steps cross between them (a blob pushed through one is mounted,
 * read and deleted through the other). A second run has both replicas' collectors running every
 * second under the shared lease.
 */
import { after, before } from 'node:test';
import { conformanceReplay } from '../conformance/conformance-replay.ts';
import { scaleOutSkipReason, startCluster, startEngines, type Engines } from '../../src/testing/scale-out.ts';

const skip = await scaleOutSkipReason();

if (!skip) {
  let engines: Engines;
  before(async () => {
    engines = await startEngines();
  });
  after(async () => {
    await engines?.stop();
  });

  conformanceReplay('two replicas on S3, PostgreSQL and Redis behind nginx', async () => {
    const cluster = await startCluster(engines, 'conformance', { settings: { delete: true } });
    return { url: cluster.balancer.url, stop: () => cluster.stop() };
  });

  conformanceReplay(
    'two replicas behind nginx, both collecting every second',
    async () => {
      const cluster = await startCluster(engines, 'conformance-gc', { settings: { delete: true, gc: { interval: '1s', grace: '60s' } } });
      // Cycles of either replica count: the lease gives each turn to one of them.
      const metrics = async () => (await Promise.all(cluster.replicas.map(async (replica) => (await fetch(`${replica.url}/metrics`)).text()))).join('\n');
      return { url: cluster.balancer.url, stop: () => cluster.stop(), metrics };
    },
    { collects: true },
  );
}
