import { join, relative, sep } from 'node:path';
import { FsBlobStore } from '../../content/fs-blob-store.ts';
import type { BlobStore } from '../../content/store.ts';
import type { Digest } from '../../digest/digest.ts';
import { excerpt } from '../../errors/excerpt.ts';
import { RegistryError } from '../../errors/registry-error.ts';
import { parseRangeHeader, sendEmpty } from '../http-util.ts';
import type { RequestContext } from '../router.ts';
import { namespaceOf } from './mirror-headers.ts';

/** end-2: GET/HEAD /v2/<name>/blobs/<digest>, with single-range support. */
export async function getBlob(ctx: RequestContext): Promise<void> {
  const { req, res, registry, params } = ctx;
  // On a mirror's miss this waits for the upstream's answer, then streams the bytes as they arrive.
  const blob = await registry.openBlob(params.name!, params.digest!, namespaceOf(ctx));
  const headers: Record<string, string | number> = {
    'Docker-Content-Digest': blob.digest,
    'Content-Type': 'application/octet-stream',
    'Accept-Ranges': 'bytes',
    ETag: `"${blob.digest}"`,
    'Cache-Control': 'max-age=31536000',
  };
  // RFC 9110 §13.1.5: Range applies only while If-Range still names this content. Blobs never change, but a
  // client resuming with a validator from elsewhere must get the whole blob, not bytes spliced onto the wrong prefix.
  const ifRange = req.headers['if-range'];
  const rangeHeader = ifRange === undefined || ifRange === headers.ETag ? req.headers.range : undefined;
  const wanted = parseRangeHeader(rangeHeader, blob.size);
  if (wanted.kind === 'unsatisfiable') {
    throw new RegistryError('RANGE_INVALID', `range ${excerpt(rangeHeader ?? '')} is outside the blob's ${blob.size} bytes`, {
      status: 416,
      headers: { 'Content-Range': `bytes */${blob.size}` },
    });
  }
  const range = wanted.kind === 'range' ? wanted.range : undefined;
  // Offload (--x-accel-redirect): the nginx in front sends the file, with sendfile, and applies the
  // client's Range itself. Only where it would answer as we do: no Range header, or one range this
  // code also honours (a malformed or multi-range header, or an If-Range that does not match, is
  // served whole, here). Never a fill in progress: only committed, verified files.
  const offload = ctx.xAccelRedirect !== undefined && req.method === 'GET' && blob.stored === true && blob.size > 0 && (req.headers.range === undefined || range !== undefined);
  const target = offload ? offloadTarget(ctx.xAccelRedirect!, registry.blobs, blob.digest) : undefined;
  if (target !== undefined) {
    // An empty body, so Content-Length 0: it must describe this response, not the file nginx sends
    // in its place. No Content-Range (nginx makes its own) and no Accept-Ranges (nginx copies it to
    // its answer and adds its own: the header would appear twice).
    const { 'Accept-Ranges': _, ...kept } = headers;
    res.writeHead(200, { ...kept, 'Content-Length': 0, 'X-Accel-Redirect': target });
    res.end();
    return;
  }
  // Object storage that hands out presigned URLs (storage.s3.redirect): the client fetches the bytes
  // there, with its Range, as from the CNCF registry's S3 driver. A HEAD and errors stay here.
  if (req.method === 'GET' && blob.stored === true && blob.size > 0 && registry.blobs.redirectUrl) {
    const location = await registry.blobs.redirectUrl(blob.digest);
    if (location !== undefined) {
      const { 'Accept-Ranges': _, ETag: __, 'Cache-Control': ___, ...kept } = headers;
      res.writeHead(307, { ...kept, Location: location, 'Content-Length': 0 });
      res.end();
      return;
    }
  }
  const length = range ? range.end - range.start + 1 : blob.size;
  if (range) headers['Content-Range'] = `bytes ${range.start}-${range.end}/${blob.size}`;
  res.writeHead(range ? 206 : 200, { ...headers, 'Content-Length': length });
  if (req.method === 'HEAD' || length === 0) {
    res.end();
    return;
  }
  await blob.copyTo(res, range);
}

/**
 * `<prefix>/sha256/ab/ab12…`: where the blob's file lies under `<data>/blobs/`, under the internal
 * nginx location that aliases that directory. Undefined for a store that keeps no local files.
 */
function offloadTarget(prefix: string, store: BlobStore, digest: Digest): string | undefined {
  if (!(store instanceof FsBlobStore)) return undefined;
  return `${prefix}/${relative(join(store.root, 'blobs'), store.blobPath(digest)).split(sep).join('/')}`;
}

/** end-10: DELETE /v2/<name>/blobs/<digest> unlinks the blob from the repository. */
export async function deleteBlob(ctx: RequestContext): Promise<void> {
  await ctx.registry.deleteBlob(ctx.params.name!, ctx.params.digest!, namespaceOf(ctx));
  sendEmpty(ctx.res, 202);
}
