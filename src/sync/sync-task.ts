/** Where an image lives: registry, repository and a tag or digest. */
export interface ImageAddress {
  registry: string;
  repository: string;
  /** A tag, or a digest (`sha256:…`). */
  reference: string;
}

/** One image to copy: one source tag (or digest) to one destination tag (or digest). */
export interface SyncTask {
  /** The images.json key that produced this task. */
  rule: string;
  source: ImageAddress;
  destination: ImageAddress;
}

export function formatAddress(address: ImageAddress): string {
  const separator = address.reference.includes(':') ? '@' : ':';
  return `${address.registry}/${address.repository}${separator}${address.reference}`;
}

export function taskKey(task: SyncTask): string {
  return `${formatAddress(task.source)} -> ${formatAddress(task.destination)}`;
}
