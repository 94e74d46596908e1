import type { Redis } from 'ioredis';
import { ConfigError } from '../../errors/config-error.ts';
import { redactUrl } from '../../errors/redact-url.ts';
import type { RedisConfig } from '../backend-config.ts';

/** Every command of a replica's shared connection answers within this, or fails (503, or the mirror's unshared fetch). */
const COMMAND_TIMEOUT_MS = 5000;

/**
 * Connects to the replicas' shared Redis and checks it answers, or throws a ConfigError that names
 * the `redis.url` setting and what failed. Requests fail fast while Redis is away (one retry, no
 * queue of commands waiting for a reconnect) instead of hanging; the connection keeps reconnecting.
 */
export async function openRedis(config: RedisConfig, options: { connectTimeoutMs?: number } = {}): Promise<Redis> {
  const { Redis } = await import('ioredis'); // only replicas load the client
  let lastError: Error | undefined;
  const redis = new Redis(config.url, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    connectTimeout: options.connectTimeoutMs ?? 5000,
    // A Redis that goes silent (a partition, not a refusal) fails a command instead of hanging its request.
    commandTimeout: COMMAND_TIMEOUT_MS,
    retryStrategy: (times) => Math.min(50 * 2 ** times, 2000),
  });
  redis.on('error', (error: Error) => {
    lastError = error;
  });
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    redis.disconnect();
    const why = (lastError ?? (error as Error)).message;
    throw new ConfigError(`redis.url ${redactUrl(config.url)}: cannot use Redis: ${why}`);
  }
  return redis;
}
