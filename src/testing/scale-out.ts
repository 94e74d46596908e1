import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createS3Client } from '../content/s3-bucket.ts';
import { cephSkipReason, startCeph, type TestCeph } from './ceph.ts';
import { nginxSkipReason } from './nginx.ts';
import { postgresSkipReason, startPostgres, type TestPostgres } from './postgres.ts';
import { redisSkipReason, startRedis, type RedisEngine } from './redis.ts';
import { startBalancer, startReplica, type Balancer, type Replica } from './replicas.ts';

/**
 * What a scale-out test needs: Ceph's radosgw, PostgreSQL, Redis and nginx. In CI a missing one
 * fails the test file (each reason throws there); locally the file skips with a loud message.
 */
export async function scaleOutSkipReason(): Promise<string | false> {
  for (const reason of [cephSkipReason, postgresSkipReason, redisSkipReason, nginxSkipReason]) {
    const skip = await reason();
    if (skip) return skip;
  }
  return false;
}

/** The three engines, one of each per test file; each deployment takes its own bucket, database and Redis prefix. */
export interface Engines {
  ceph: TestCeph;
  postgres: TestPostgres;
  redis: RedisEngine;
  /** A fresh bucket, database and Redis prefix, as the YAML settings every replica of one deployment shares. */
  deployment(name: string): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** `ceph`: options of startCeph (ceph.ts), e.g. a bigger memstore for the benchmark's 1 GiB pushes. */
export async function startEngines(options: { ceph?: Parameters<typeof startCeph>[0] } = {}): Promise<Engines> {
  const started: { stop(): Promise<void> }[] = [];
  const scratch = await mkdtemp(join(tmpdir(), 'skiff-scale-out-'));
  try {
    // One at a time: on 2 cores Ceph's start is the slow one, and the others would only slow it.
    const ceph = await startCeph(options.ceph);
    started.push(ceph);
    const postgres = await startPostgres();
    started.push(postgres);
    const redis = await startRedis();
    started.push(redis);
    const s3 = createS3Client({ endpoint: ceph.endpoint, region: ceph.region, accessKeyId: ceph.accessKey, secretAccessKey: ceph.secretKey, forcePathStyle: true });
    return {
      ceph,
      postgres,
      redis,
      async deployment(name) {
        const id = `${name}-${randomBytes(3).toString('hex')}`.toLowerCase().replace(/[^a-z0-9-]/g, '-');
        await s3.send(new CreateBucketCommand({ Bucket: id }));
        const url = await postgres.createDatabase(id.replaceAll('-', '_'));
        // Replicas behind one balancer must sign tokens with one key (docs/scale-out.md).
        const key = join(scratch, `${id}-token-key.pem`);
        await writeFile(key, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
        return {
          storage: { s3: { endpoint: ceph.endpoint, region: ceph.region, bucket: id, accessKey: ceph.accessKey, secretKey: ceph.secretKey, forcePathStyle: true } },
          metadata: { postgres: { url } },
          redis: { url: redis.url, prefix: `${id}:` },
          token: { key },
        };
      },
      async stop() {
        s3.destroy();
        for (const engine of started.reverse()) await engine.stop().catch(() => undefined);
        await rm(scratch, { recursive: true, force: true });
      },
    };
  } catch (error) {
    for (const engine of started.reverse()) await engine.stop().catch(() => undefined);
    await rm(scratch, { recursive: true, force: true });
    throw error;
  }
}

export interface Cluster {
  replicas: Replica[];
  balancer: Balancer;
  /** The settings the replicas share (for one more replica, or a `skiff gc`). */
  settings: Record<string, unknown>;
  stop(): Promise<void>;
}

/** `count` replicas of one deployment (`settings` added to its shared ones) behind nginx. */
export async function startCluster(engines: Engines, name: string, options: { count?: number; settings?: Record<string, unknown> } = {}): Promise<Cluster> {
  const settings = { ...(await engines.deployment(name)), ...options.settings };
  const replicas: Replica[] = [];
  try {
    // One after the other: the first applies the migrations, the next finds them done.
    for (let i = 0; i < (options.count ?? 2); i++) replicas.push(await startReplica(settings));
    const balancer = await startBalancer(replicas.map((replica) => replica.host));
    return {
      replicas,
      balancer,
      settings,
      async stop() {
        await balancer.stop();
        for (const replica of replicas) await replica.stop();
      },
    };
  } catch (error) {
    for (const replica of replicas) await replica.stop().catch(() => undefined);
    throw error;
  }
}
