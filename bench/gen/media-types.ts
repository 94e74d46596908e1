/** The OCI media types the synthetic images use, and the Accept header that asks for any manifest. */
export const MediaTypes = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

/** What docker/containerd send: without it the CNCF registry may down-convert or 404 on OCI content. */
export const MANIFEST_ACCEPT = [
  MediaTypes.manifest,
  MediaTypes.index,
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');
