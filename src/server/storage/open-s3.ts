import { S3BlobStore } from '../../content/s3-blob-store.ts';
import { S3AccessError } from '../../content/s3-errors.ts';
import { ConfigError } from '../../errors/config-error.ts';
import type { S3StorageConfig } from '../backend-config.ts';

/**
 * The S3 blob store `storage.s3` describes, its bucket checked now: a missing bucket, wrong
 * credentials or an endpoint that does not answer stop the start with the setting to fix.
 */
export async function openS3BlobStore(config: S3StorageConfig): Promise<S3BlobStore> {
  const store = new S3BlobStore({
    bucket: config.bucket,
    region: config.region,
    prefix: config.prefix,
    partSize: config.partSize,
    forcePathStyle: config.forcePathStyle,
    ...(config.endpoint !== undefined ? { endpoint: config.endpoint } : {}),
    ...(config.accessKey !== undefined ? { accessKeyId: config.accessKey, secretAccessKey: config.secretKey! } : {}),
    ...(config.redirect !== undefined ? { presign: { expiresIn: Math.round(config.redirect / 1000) } } : {}),
  });
  try {
    await store.checkAccess();
  } catch (error) {
    store.close();
    if (error instanceof S3AccessError) throw new ConfigError(`storage.s3.${error.setting}: ${error.message}`);
    throw error;
  }
  return store;
}
