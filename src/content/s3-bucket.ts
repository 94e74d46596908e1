import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
  type GetObjectCommandOutput,
  type HeadObjectCommandOutput,
} from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { inParallel } from './in-parallel.ts';
import { isMissingObject, s3StorageError } from './s3-errors.ts';

/** S3's smallest part (all but the last part of a multipart upload). */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
/** S3's largest part, and the largest object one CopyObject may copy. */
export const MAX_PART_SIZE = 5 * 1024 ** 3;
/** S3's limit on the parts of one multipart upload. */
export const MAX_PARTS = 10_000;
/** Server-side copies (UploadPartCopy) in flight at once for one object. */
const COPY_CONCURRENCY = 4;
const BINARY = 'application/octet-stream';

export interface S3ConnectionOptions {
  /** `http(s)://host:port` of an S3-compatible API; absent: AWS S3 in `region`. */
  endpoint?: string;
  region: string;
  /** Both or neither; neither: the AWS SDK's default credential chain. */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Path-style addressing (`endpoint/bucket/key`), which radosgw and MinIO need (default: true with an endpoint). */
  forcePathStyle?: boolean;
  /** Connections to the endpoint at most (default 512): each blob being read holds one. */
  maxSockets?: number;
}

/**
 * The SDK client. With its defaults, SDK v3 sends a streamed or buffered PUT as aws-chunked with a
 * CRC32 trailer, which radosgw 16 refuses (MissingContentLength); checksums only where S3 requires
 * them keep every request a plain signed one that all S3-compatible stores take.
 */
export function createS3Client(options: S3ConnectionOptions): S3Client {
  if ((options.accessKeyId === undefined) !== (options.secretAccessKey === undefined)) throw new Error('S3: accessKeyId and secretAccessKey go together');
  return new S3Client({
    region: options.region,
    ...(options.endpoint !== undefined ? { endpoint: options.endpoint } : {}),
    forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
    ...(options.accessKeyId !== undefined ? { credentials: { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey! } } : {}),
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // A blob response holds its connection for as long as the client reads: the SDK's default of
    // 50 sockets would queue the 51st download behind the others. An endpoint that does not
    // answer fails in 10 s instead of never, and one that goes silent mid-request in 2 minutes
    // (longer than skiff's own idle timeout for a client that stops reading, 60 s by default).
    requestHandler: {
      connectionTimeout: 10_000,
      socketTimeout: 120_000,
      httpAgent: { keepAlive: true, maxSockets: options.maxSockets ?? 512 },
      httpsAgent: { keepAlive: true, maxSockets: options.maxSockets ?? 512 },
    },
  });
}

/** One part of a multipart upload as S3 lists it. */
export interface UploadedPart {
  number: number;
  size: number;
  etag: string;
}

/**
 * The object operations the S3 driver uses, on one bucket: each failure becomes a StorageError
 * naming the operation and the object; "no such object" is an `undefined` where the caller
 * expects absence (head, get).
 */
export class S3Bucket {
  readonly client: S3Client;
  readonly name: string;
  /** Objects larger than this are copied in ranges (UploadPartCopy): S3 copies at most 5 GiB at once. */
  readonly copyLimit: number;

  constructor(client: S3Client, name: string, options: { copyLimit?: number } = {}) {
    this.client = client;
    this.name = name;
    this.copyLimit = Math.min(options.copyLimit ?? MAX_PART_SIZE, MAX_PART_SIZE);
  }

  where(key: string): string {
    return `s3://${this.name}/${key}`;
  }

  /** Sends one command; its failure becomes a StorageError naming `operation` and `key`. */
  async send<Output>(command: { input: object }, operation: string, key: string): Promise<Output> {
    try {
      return (await this.client.send(command as never)) as Output;
    } catch (error) {
      throw s3StorageError(error, operation, this.where(key));
    }
  }

  async head(key: string, operation: string): Promise<HeadObjectCommandOutput | undefined> {
    try {
      return await this.client.send(new HeadObjectCommand({ Bucket: this.name, Key: key }));
    } catch (error) {
      if (isMissingObject(error)) return undefined;
      throw s3StorageError(error, operation, this.where(key));
    }
  }

  /** A GET (of `range`, inclusive, when given); the caller reads or destroys the body. */
  async get(key: string, operation: string, range?: { start: number; end: number }): Promise<(GetObjectCommandOutput & { Body: Readable }) | undefined> {
    try {
      const output = await this.client.send(new GetObjectCommand({ Bucket: this.name, Key: key, ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) }));
      return output as GetObjectCommandOutput & { Body: Readable };
    } catch (error) {
      if (isMissingObject(error)) return undefined;
      throw s3StorageError(error, operation, this.where(key));
    }
  }

  /** A small object (or a range of one) whole in memory; undefined when absent. */
  async getBuffer(key: string, operation: string, range?: { start: number; end: number }): Promise<Buffer | undefined> {
    const output = await this.get(key, operation, range);
    if (!output) return undefined;
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of output.Body) chunks.push(chunk as Buffer);
    } catch (error) {
      throw s3StorageError(error, operation, this.where(key));
    }
    return Buffer.concat(chunks);
  }

  async put(key: string, body: Buffer, operation: string, metadata?: Record<string, string>): Promise<void> {
    await this.send(new PutObjectCommand({ Bucket: this.name, Key: key, Body: body, ContentLength: body.length, ContentType: BINARY, ...(metadata ? { Metadata: metadata } : {}) }), operation, key);
  }

  async delete(key: string, operation: string): Promise<void> {
    await this.send(new DeleteObjectCommand({ Bucket: this.name, Key: key }), operation, key);
  }

  /** Deletes up to 1,000 keys in one request; absent keys are fine. */
  async deleteKeys(keys: string[], operation: string): Promise<void> {
    if (keys.length === 0) return;
    if (keys.length === 1) return this.delete(keys[0]!, operation);
    const output = await this.send<{ Errors?: { Key?: string; Code?: string }[] }>(
      new DeleteObjectsCommand({ Bucket: this.name, Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true } }),
      operation,
      keys[0]!,
    );
    const failed = output.Errors?.[0];
    if (failed) throw s3StorageError(Object.assign(new Error(failed.Code ?? 'delete failed'), { name: failed.Code ?? 'DeleteFailed' }), operation, this.where(failed.Key ?? keys[0]!));
  }

  /** Every key under `prefix`, a page (1,000) at a time. */
  async *list(prefix: string, operation: string): AsyncIterable<{ key: string; size: number }> {
    let token: string | undefined;
    do {
      const page = await this.send<{ Contents?: { Key?: string; Size?: number }[]; IsTruncated?: boolean; NextContinuationToken?: string }>(
        new ListObjectsV2Command({ Bucket: this.name, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }),
        operation,
        prefix,
      );
      for (const object of page.Contents ?? []) if (object.Key !== undefined) yield { key: object.Key, size: object.Size ?? 0 };
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** Multipart uploads in progress under `prefix`. */
  async *uploads(prefix: string, operation: string): AsyncIterable<{ key: string; uploadId: string; initiated: Date | undefined }> {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.send<{ Uploads?: { Key?: string; UploadId?: string; Initiated?: Date }[]; IsTruncated?: boolean; NextKeyMarker?: string; NextUploadIdMarker?: string }>(
        new ListMultipartUploadsCommand({ Bucket: this.name, Prefix: prefix, ...(keyMarker ? { KeyMarker: keyMarker } : {}), ...(uploadIdMarker ? { UploadIdMarker: uploadIdMarker } : {}) }),
        operation,
        prefix,
      );
      for (const upload of page.Uploads ?? []) if (upload.Key && upload.UploadId) yield { key: upload.Key, uploadId: upload.UploadId, initiated: upload.Initiated };
      if (!page.IsTruncated || !page.NextKeyMarker) return;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  async createUpload(key: string, operation: string, metadata?: Record<string, string>): Promise<string> {
    const output = await this.send<{ UploadId?: string }>(
      new CreateMultipartUploadCommand({ Bucket: this.name, Key: key, ContentType: BINARY, ...(metadata ? { Metadata: metadata } : {}) }),
      operation,
      key,
    );
    if (!output.UploadId) throw s3StorageError(new Error('no UploadId in the answer'), operation, this.where(key));
    return output.UploadId;
  }

  async uploadPart(key: string, uploadId: string, number: number, body: Buffer, operation: string): Promise<string> {
    const output = await this.send<{ ETag?: string }>(
      new UploadPartCommand({ Bucket: this.name, Key: key, UploadId: uploadId, PartNumber: number, Body: body, ContentLength: body.length }),
      operation,
      key,
    );
    if (!output.ETag) throw s3StorageError(new Error(`no ETag for part ${number}`), operation, this.where(key));
    return output.ETag;
  }

  /** Copies `range` (inclusive) of `source` into part `number`, server-side. */
  async copyPart(source: string, key: string, uploadId: string, number: number, range: { start: number; end: number }, operation: string): Promise<string> {
    const output = await this.send<{ CopyPartResult?: { ETag?: string } }>(
      new UploadPartCopyCommand({ Bucket: this.name, Key: key, UploadId: uploadId, PartNumber: number, CopySource: this.copySource(source), CopySourceRange: `bytes=${range.start}-${range.end}` }),
      operation,
      key,
    );
    const etag = output.CopyPartResult?.ETag;
    if (!etag) throw s3StorageError(new Error(`no ETag for copied part ${number}`), operation, this.where(key));
    return etag;
  }

  /** Parts 1… of an upload, in order (a page of 1,000 at a time). Throws (NoSuchUpload/NoSuchKey) when the upload is gone. */
  async listParts(key: string, uploadId: string, operation: string): Promise<UploadedPart[]> {
    const parts: UploadedPart[] = [];
    let marker: string | undefined;
    for (;;) {
      const page = await this.send<{ Parts?: { PartNumber?: number; Size?: number; ETag?: string }[]; IsTruncated?: boolean; NextPartNumberMarker?: string }>(
        new ListPartsCommand({ Bucket: this.name, Key: key, UploadId: uploadId, ...(marker ? { PartNumberMarker: marker } : {}) }),
        operation,
        key,
      );
      for (const part of page.Parts ?? []) if (part.PartNumber !== undefined && part.ETag) parts.push({ number: part.PartNumber, size: part.Size ?? 0, etag: part.ETag });
      if (!page.IsTruncated || !page.NextPartNumberMarker) return parts;
      marker = page.NextPartNumberMarker;
    }
  }

  async completeUpload(key: string, uploadId: string, etags: string[], operation: string): Promise<void> {
    await this.send(
      new CompleteMultipartUploadCommand({ Bucket: this.name, Key: key, UploadId: uploadId, MultipartUpload: { Parts: etags.map((ETag, index) => ({ ETag, PartNumber: index + 1 })) } }),
      operation,
      key,
    );
  }

  async abortUpload(key: string, uploadId: string, operation: string): Promise<void> {
    await this.send(new AbortMultipartUploadCommand({ Bucket: this.name, Key: key, UploadId: uploadId }), operation, key);
  }

  /**
   * Copies `source` (of `size` bytes) to `target` inside the bucket, server-side, with `metadata`
   * replacing the source's: one CopyObject up to `copyLimit` (radosgw then copies its manifest, not
   * the bytes), above it a multipart upload of UploadPartCopy ranges, aborted if any range fails.
   * With `keep`, the single CopyObject keeps the metadata of the object it copies (whatever was
   * written last), and `metadata` serves only the multipart path, which cannot copy it.
   */
  async copy(source: string, target: string, size: number, metadata: Record<string, string>, operation: string, options: { keep?: boolean } = {}): Promise<void> {
    if (size <= this.copyLimit) {
      const directive = options.keep ? { MetadataDirective: 'COPY' as const } : { MetadataDirective: 'REPLACE' as const, Metadata: metadata, ContentType: BINARY };
      await this.send(new CopyObjectCommand({ Bucket: this.name, Key: target, CopySource: this.copySource(source), ...directive }), operation, target);
      return;
    }
    // Ranges as large as allowed (fewer requests), but within 10,000 parts.
    const rangeSize = Math.max(MIN_PART_SIZE, Math.min(this.copyLimit, 1024 ** 3), Math.ceil(size / MAX_PARTS));
    const uploadId = await this.createUpload(target, operation, metadata);
    try {
      const ranges = Array.from({ length: Math.ceil(size / rangeSize) }, (_, index) => ({ start: index * rangeSize, end: Math.min(size, (index + 1) * rangeSize) - 1 }));
      const etags = await inParallel(ranges, COPY_CONCURRENCY, (range, index) => this.copyPart(source, target, uploadId, index + 1, range, operation));
      await this.completeUpload(target, uploadId, etags, operation);
    } catch (error) {
      await this.abortUpload(target, uploadId, operation).catch(() => undefined);
      throw error;
    }
  }

  /** `bucket/key` for x-amz-copy-source, each key segment URL-encoded. */
  private copySource(key: string): string {
    return `${this.name}/${key.split('/').map(encodeURIComponent).join('/')}`;
  }
}
