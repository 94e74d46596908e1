import { RegistryError } from '../../errors/registry-error.ts';
import { MAX_MANIFEST_BYTES } from '../../oci/manifest.ts';
import { readBodyLimited, sendEmpty } from '../http-util.ts';
import type { RequestContext } from '../router.ts';
import { STALE_WARNING, namespaceOf } from './mirror-headers.ts';

/** end-3: GET/HEAD /v2/<name>/manifests/<reference>; served as stored, with its own media type. */
export async function getManifest(ctx: RequestContext): Promise<void> {
  const { req, res, registry, params } = ctx;
  const { record, body, stale } = await registry.getManifest(params.name!, params.reference!, namespaceOf(ctx));
  const etag = `"${record.digest}"`;
  const warning: Record<string, string> = stale ? { Warning: STALE_WARNING } : {};
  const headers = {
    'Content-Type': record.mediaType,
    'Content-Length': body.length,
    'Docker-Content-Digest': record.digest,
    ETag: etag,
    ...warning,
  };
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, { ETag: etag, 'Docker-Content-Digest': record.digest, ...warning });
    res.end();
    return;
  }
  res.writeHead(200, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** end-7: PUT /v2/<name>/manifests/<reference>[?tag=…]. */
export async function putManifest(ctx: RequestContext): Promise<void> {
  const { req, res, query, registry, params } = ctx;
  const body = await readBodyLimited(req, MAX_MANIFEST_BYTES, ctx.manifestBodies);
  const extraTags = query.getAll('tag');
  if (extraTags.length > 0 && !params.reference!.includes(':')) {
    throw new RegistryError('MANIFEST_INVALID', '?tag= may only be used when pushing by digest');
  }
  const result = await registry.putManifest(params.name!, params.reference!, body, req.headers['content-type'], extraTags, namespaceOf(ctx));
  const headers: Record<string, string | string[]> = {
    Location: `/v2/${params.name}/manifests/${result.digest}`,
    'Docker-Content-Digest': result.digest,
  };
  if (result.subject) headers['OCI-Subject'] = result.subject;
  if (extraTags.length > 0) headers['OCI-Tag'] = result.tags;
  res.writeHead(201, { ...headers, 'Content-Length': '0' });
  res.end();
}

/** end-9: DELETE a manifest by digest (and its tags), or only a tag. */
export async function deleteManifest(ctx: RequestContext): Promise<void> {
  await ctx.registry.deleteManifest(ctx.params.name!, ctx.params.reference!, namespaceOf(ctx));
  sendEmpty(ctx.res, 202);
}
