import type { Blob, TestImage } from './images.ts';

/**
 * Monolithic blob push (POST ?digest=). A registry that opens a session instead (202, as the
 * CNCF registry does) gets the bytes in one PUT to that session. Throws unless 201.
 */
export async function pushBlob(baseUrl: string, repo: string, item: Blob): Promise<void> {
  let res = await fetch(`${baseUrl}/v2/${repo}/blobs/uploads/?digest=${item.descriptor.digest}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/octet-stream' },
    body: item.data,
  });
  if (res.status === 202) {
    await res.arrayBuffer();
    const location = new URL(res.headers.get('location') ?? '', baseUrl);
    location.searchParams.set('digest', item.descriptor.digest);
    res = await fetch(location, { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream' }, body: item.data });
  }
  if (res.status !== 201) throw new Error(`push blob ${item.descriptor.digest} to ${repo}: ${res.status} ${await res.text()}`);
}

/** PUT a manifest by tag or digest. Returns the response for header checks. */
export async function pushManifest(baseUrl: string, repo: string, reference: string, manifest: Blob): Promise<Response> {
  const res = await fetch(`${baseUrl}/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    headers: { 'Content-Type': manifest.descriptor.mediaType },
    body: manifest.data,
  });
  if (res.status !== 201) throw new Error(`push manifest ${reference} to ${repo}: ${res.status} ${await res.text()}`);
  return res;
}

/** Blobs first, manifest last, as every well-behaved client does. */
export async function pushImage(baseUrl: string, repo: string, image: TestImage, tag?: string): Promise<void> {
  for (const item of image.blobs) await pushBlob(baseUrl, repo, item);
  await pushManifest(baseUrl, repo, tag ?? image.manifest.descriptor.digest, image.manifest);
}
