import { RegistryError } from '../../errors/registry-error.ts';
import { parseRangeHeader, sendEmpty } from '../http-util.ts';
import type { RequestContext } from '../router.ts';

/** end-2: GET/HEAD /v2/<name>/blobs/<digest>, with single-range support. */
export async function getBlob(ctx: RequestContext): Promise<void> {
  const { req, res, registry, params } = ctx;
  const blob = await registry.statBlob(params.name!, params.digest!);
  const headers: Record<string, string | number> = {
    'Docker-Content-Digest': blob.digest,
    'Content-Type': 'application/octet-stream',
    'Accept-Ranges': 'bytes',
    ETag: `"${blob.digest}"`,
    'Cache-Control': 'max-age=31536000',
  };
  const wanted = parseRangeHeader(req.headers.range, blob.size);
  if (wanted.kind === 'unsatisfiable') {
    throw new RegistryError('RANGE_INVALID', `range ${req.headers.range} is outside the blob's ${blob.size} bytes`, {
      status: 416,
      headers: { 'Content-Range': `bytes */${blob.size}` },
    });
  }
  const range = wanted.kind === 'range' ? wanted.range : undefined;
  const length = range ? range.end - range.start + 1 : blob.size;
  if (range) headers['Content-Range'] = `bytes ${range.start}-${range.end}/${blob.size}`;
  res.writeHead(range ? 206 : 200, { ...headers, 'Content-Length': length });
  if (req.method === 'HEAD' || length === 0) {
    res.end();
    return;
  }
  await registry.sendBlob(blob.digest, res, range);
}

/** end-10: DELETE /v2/<name>/blobs/<digest> unlinks the blob from the repository. */
export async function deleteBlob(ctx: RequestContext): Promise<void> {
  await ctx.registry.deleteBlob(ctx.params.name!, ctx.params.digest!);
  sendEmpty(ctx.res, 202);
}
