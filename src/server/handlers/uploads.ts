import type { IncomingMessage } from 'node:http';
import { RegistryError } from '../../errors/registry-error.ts';
import { contentLength, hasBody, parseContentRange, requestBody, sendEmpty } from '../http-util.ts';
import { rangeHeader, uploadLocation, type BlobInfo } from '../registry.ts';
import type { UploadSession } from '../storage/metadata.ts';
import type { RequestContext } from '../router.ts';
import { namespaceOf } from './mirror-headers.ts';

function blobCreated(ctx: RequestContext, blob: BlobInfo): void {
  sendEmpty(ctx.res, 201, {
    Location: `/v2/${ctx.params.name}/blobs/${blob.digest}`,
    'Docker-Content-Digest': blob.digest,
  });
}

function uploadAccepted(ctx: RequestContext, session: UploadSession, status = 202): void {
  sendEmpty(ctx.res, status, {
    Location: uploadLocation(session.repository, session.id),
    Range: rangeHeader(session.offset),
    'Docker-Upload-UUID': session.id,
  });
}

/** Reads and discards a body we do not use, so keep-alive connections stay in sync. */
async function drain(req: IncomingMessage): Promise<void> {
  for await (const _ of req) void _;
}

/** end-4a, end-4b, end-11: POST /v2/<name>/blobs/uploads/ (new session, monolithic, or mount). */
export async function startUpload(ctx: RequestContext): Promise<void> {
  const { req, query, registry, params } = ctx;
  const name = params.name!;
  const ns = namespaceOf(ctx);
  const mount = query.get('mount');
  if (mount !== null) {
    await drain(req);
    const from = query.get('from') ?? undefined;
    const mounted = await registry.mountBlob(name, mount, from, ns, (policyName, addressed) => ctx.caller.mayPull(policyName, addressed));
    if (mounted) return blobCreated(ctx, mounted);
    return uploadAccepted(ctx, await registry.startUpload(name, ns));
  }
  const digest = query.get('digest');
  if (digest !== null) return blobCreated(ctx, await registry.putBlob(name, digest, requestBody(req), contentLength(req), ns));
  await drain(req);
  uploadAccepted(ctx, await registry.startUpload(name, ns));
}

/** end-5: PATCH a chunk (with Content-Range) or a stream (without). */
export async function patchUpload(ctx: RequestContext): Promise<void> {
  const { req, registry, params } = ctx;
  const range = parseContentRange(req.headers['content-range']);
  const session = await registry.appendUpload(params.name!, params.uuid!, { body: requestBody(req), range, contentLength: contentLength(req) });
  uploadAccepted(ctx, session);
}

/** end-6: PUT ?digest= closes the upload, optionally with a last chunk. */
export async function finishUpload(ctx: RequestContext): Promise<void> {
  const { req, query, registry, params } = ctx;
  const range = parseContentRange(req.headers['content-range']);
  const lastChunk = hasBody(req) ? { body: requestBody(req), range, contentLength: contentLength(req) } : undefined;
  const digests = query.getAll('digest');
  if (digests.length > 1) throw new RegistryError('DIGEST_INVALID', 'give exactly one ?digest=');
  const blob = await registry.finishUpload(params.name!, params.uuid!, digests[0] ?? null, lastChunk);
  blobCreated(ctx, blob);
}

/** end-13: GET upload status: 204 with the Range received so far. */
export async function uploadStatus(ctx: RequestContext): Promise<void> {
  uploadAccepted(ctx, await ctx.registry.uploadStatus(ctx.params.name!, ctx.params.uuid!), 204);
}

/** DELETE on an upload URL cancels the session. */
export async function cancelUpload(ctx: RequestContext): Promise<void> {
  await ctx.registry.cancelUpload(ctx.params.name!, ctx.params.uuid!);
  sendEmpty(ctx.res, 204);
}
