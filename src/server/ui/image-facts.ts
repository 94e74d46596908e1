import type { Digest } from '../../digest/digest.ts';
import type { Descriptor } from '../../oci/descriptor.ts';
import { MAX_MANIFEST_BYTES, parseManifest, type ParsedManifest } from '../../oci/manifest.ts';
import { MediaTypes } from '../../oci/media-types.ts';
import { formatPlatform } from '../../oci/platform.ts';
import type { Registry } from '../registry.ts';

/** What a tag row shows about the manifest it names. */
export interface ImageFacts {
  mediaType: string;
  kind: 'image' | 'index' | 'artifact';
  /** The manifest, its config and layers; for an index, plus each image's. Only what is stored counts. */
  size: number;
  platforms: string[];
  created: string | null;
}

/** The parts of an image config people read (OCI image-spec config, Docker's same fields). */
export interface ImageConfigJson {
  created?: string;
  author?: string;
  os?: string;
  architecture?: string;
  variant?: string;
  config?: {
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    User?: string;
    ExposedPorts?: Record<string, unknown>;
    Labels?: Record<string, string> | null;
  };
  history?: { created?: string; created_by?: string; comment?: string; empty_layer?: boolean }[];
}

const IMAGE_CONFIG_TYPES = new Set<string>([MediaTypes.ociConfig, MediaTypes.dockerConfig]);
const MAX_ENTRIES = 20_000;

/**
 * Facts about stored manifests for the UI's tag lists (size, platforms, created), kept by digest:
 * a manifest and its config never change under their digest, so a fact once complete is true
 * forever, and a tag list of 50 rows costs a few map lookups after the first visit. Facts missing
 * a part (a mirror that cached an index before its images) are not kept, so they fill in later.
 */
export class ImageFactsCache {
  private readonly facts = new Map<Digest, ImageFacts>();
  private readonly registry: Registry;

  constructor(registry: Registry) {
    this.registry = registry;
  }

  async of(digest: Digest): Promise<ImageFacts> {
    const known = this.facts.get(digest);
    if (known) return known;
    const { facts, complete } = await this.compute(digest, 0);
    if (complete) {
      if (this.facts.size >= MAX_ENTRIES) this.facts.delete(this.facts.keys().next().value!);
      this.facts.set(digest, facts);
    }
    return facts;
  }

  /** The parsed manifest stored under `digest`, or undefined when it is not stored (or unreadable). */
  async manifest(digest: Digest): Promise<{ body: Buffer; parsed: ParsedManifest | undefined } | undefined> {
    const body = await this.registry.readManifest(digest).catch(() => undefined);
    if (!body) return undefined;
    try {
      return { body, parsed: parseManifest(body) };
    } catch {
      return { body, parsed: undefined }; // schema 1, or something the registry stored verbatim
    }
  }

  /** An image's config JSON, when it is an image config that is stored and small enough to read. */
  async config(descriptor: Descriptor | undefined): Promise<ImageConfigJson | undefined> {
    if (!descriptor || !IMAGE_CONFIG_TYPES.has(descriptor.mediaType) || descriptor.size > MAX_MANIFEST_BYTES) return undefined;
    try {
      const value: unknown = JSON.parse((await this.registry.blobs.readSmall(descriptor.digest, MAX_MANIFEST_BYTES)).toString('utf8'));
      return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as ImageConfigJson) : undefined;
    } catch {
      return undefined;
    }
  }

  private async compute(digest: Digest, depth: number): Promise<{ facts: ImageFacts; complete: boolean }> {
    const stored = await this.manifest(digest);
    if (!stored?.parsed) {
      return { facts: { mediaType: stored ? 'unknown' : 'missing', kind: 'artifact', size: stored?.body.length ?? 0, platforms: [], created: null }, complete: stored !== undefined };
    }
    const { body, parsed } = stored;
    if (parsed.kind === 'index') {
      let size = body.length;
      let created: string | null = null;
      let complete = true;
      const platforms: string[] = [];
      for (const child of parsed.manifests) {
        if (child.platform && child.platform.os !== 'unknown') platforms.push(formatPlatform(child.platform));
        // One level down: an index of indexes is rare, and its grandchildren are not counted.
        if (depth > 0) continue;
        const found = await this.compute(child.digest, depth + 1);
        complete &&= found.complete && found.facts.mediaType !== 'missing';
        size += found.facts.size;
        if (found.facts.created && (created === null || found.facts.created > created)) created = found.facts.created;
      }
      return { facts: { mediaType: parsed.mediaType, kind: 'index', size, platforms: [...new Set(platforms)], created }, complete };
    }
    const config = await this.config(parsed.config);
    const size = body.length + (parsed.config?.size ?? 0) + parsed.layers.reduce((sum, layer) => sum + layer.size, 0);
    const isImage = parsed.config !== undefined && IMAGE_CONFIG_TYPES.has(parsed.config.mediaType);
    const platform = config?.os && config.architecture ? formatPlatform({ os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) }) : undefined;
    return {
      facts: { mediaType: parsed.mediaType, kind: isImage ? 'image' : 'artifact', size, platforms: platform ? [platform] : [], created: typeof config?.created === 'string' ? config.created : null },
      complete: !isImage || config !== undefined,
    };
  }
}
