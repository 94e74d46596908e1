import type { Digest } from '../../digest/digest.ts';
import { RegistryError } from '../../errors/registry-error.ts';
import { formatPlatform } from '../../oci/platform.ts';
import type { Registry } from '../registry.ts';
import type { ConfigInfo, ManifestDetail } from './api-types.ts';
import type { ImageConfigJson, ImageFactsCache } from './image-facts.ts';

/** Everything the manifest page shows, from the store alone. */
export async function manifestDetail(registry: Registry, facts: ImageFactsCache, name: string, reference: string): Promise<Omit<ManifestDetail, 'mayDelete' | 'cached'>> {
  const record = await registry.resolveManifest(name, reference);
  const stored = await facts.manifest(record.digest);
  if (!stored) throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} of ${name} is recorded but its bytes are missing`);
  const { body, parsed } = stored;
  const [summary, tags, referrers] = await Promise.all([
    facts.of(record.digest),
    registry.metadata.tagsWithTimes(name),
    registry.metadata.listReferrers(name, record.digest),
  ]);
  const config = parsed?.kind === 'image' ? await facts.config(parsed.config) : undefined;
  return {
    name,
    digest: record.digest,
    mediaType: record.mediaType,
    size: record.size,
    totalSize: summary.size,
    created: summary.created,
    kind: summary.kind,
    tags: tags.filter((tag) => tag.digest === record.digest).map((tag) => tag.tag).sort(),
    artifactType: parsed?.value.artifactType ?? (summary.kind === 'artifact' ? (parsed?.config?.mediaType ?? null) : null),
    annotations: parsed?.annotations ?? {},
    subject: parsed?.subject?.digest ?? null,
    layers: (parsed?.layers ?? []).map((layer) => ({ digest: layer.digest, mediaType: layer.mediaType, size: layer.size, ...(layer.annotations ? { annotations: layer.annotations } : {}) })),
    config: parsed?.config && config ? configInfo(parsed.config.digest, parsed.config.mediaType, parsed.config.size, config) : null,
    platforms: (parsed?.manifests ?? []).map((child) => ({
      digest: child.digest,
      mediaType: child.mediaType,
      size: child.size,
      platform: child.platform ? formatPlatform(child.platform) : 'unknown/unknown',
    })),
    referrers: referrers.map((referrer) => ({
      digest: referrer.digest,
      mediaType: referrer.mediaType,
      artifactType: referrer.artifactType ?? null,
      size: referrer.size,
      annotations: referrer.annotations ?? {},
    })),
    raw: pretty(body),
  };
}

function configInfo(digest: Digest, mediaType: string, size: number, json: ImageConfigJson): ConfigInfo {
  const run = json.config ?? {};
  return {
    digest,
    mediaType,
    size,
    created: text(json.created),
    author: text(json.author),
    os: text(json.os),
    architecture: text(json.architecture),
    variant: text(json.variant),
    env: strings(run.Env) ?? [],
    entrypoint: strings(run.Entrypoint) ?? null,
    cmd: strings(run.Cmd) ?? null,
    workingDir: text(run.WorkingDir),
    user: text(run.User),
    exposedPorts: run.ExposedPorts && typeof run.ExposedPorts === 'object' ? Object.keys(run.ExposedPorts).sort() : [],
    labels: labels(run.Labels),
    history: (Array.isArray(json.history) ? json.history : []).map((entry) => ({
      created: text(entry?.created),
      createdBy: text(entry?.created_by),
      comment: text(entry?.comment),
      emptyLayer: entry?.empty_layer === true,
    })),
  };
}

/** Config JSON is whatever a builder wrote: only values of the expected type are passed on. */
function text(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

function strings(value: unknown): string[] | undefined {
  return Array.isArray(value) && value.every((item) => typeof item === 'string') ? value : undefined;
}

function labels(value: unknown): Record<string, string> {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return {};
  return Object.fromEntries(Object.entries(value).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
}

/** The manifest as stored, indented for reading (its digest is of the stored bytes, shown apart). */
function pretty(body: Buffer): string {
  const text = body.toString('utf8');
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}
