import type { Redis } from 'ioredis';
import { ConfigError } from '../../errors/config-error.ts';
import { redactUrl } from '../../errors/redact-url.ts';
import type { RedisConfig } from '../backend-config.ts';

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
