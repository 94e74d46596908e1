import { formatFamiliar } from '../reference/reference.ts';
import { loadImages, type LocalImage } from './catalog.ts';
import { FormatError } from './formatter.ts';
import { findImage } from './resolve.ts';
import type { ImageStore } from './store.ts';
import { TemplateError, escapeHtml, parseTemplate, type Template } from './template.ts';

/**
 * `docker image inspect`: docker's ImageInspect JSON for each image, by name or ID.
 * Fields follow docker's order; GraphDriver is left out (skiff keeps no unpacked layers),
 * Descriptor is the stored image manifest (as docker does with the containerd store).
 */
export interface ImageInspect {
  Id: string;
  RepoTags: string[];
  RepoDigests: string[];
  Parent: string;
  Comment: string;
  Created: string;
  DockerVersion: string;
  Author: string;
  Config: unknown;
  Architecture: string;
  Variant?: string;
  Os: string;
  OsVersion?: string;
  Size: number;
  RootFS: { Type: string; Layers: string[] };
  Metadata: { LastTagTime: string };
  Descriptor: { mediaType: string; digest: string; size: number };
}

/** Go's zero time, which docker prints for an image never tagged locally. */
export const ZERO_TIME = '0001-01-01T00:00:00Z';

export function describeForInspect(image: LocalImage): ImageInspect {
  const { record, config } = image;
  const platform = record.platform;
  const variant = platform.variant ?? config.variant;
  const osVersion = platform['os.version'] ?? (typeof config['os.version'] === 'string' ? config['os.version'] : undefined);
  return {
    Id: image.id,
    RepoTags: image.tags.map((t) => formatFamiliar(t)),
    RepoDigests: image.repoDigests.map((d) => formatFamiliar(d)),
    Parent: '',
    Comment: typeof config.comment === 'string' ? config.comment : '',
    Created: config.created ?? image.created.toISOString(),
    DockerVersion: typeof config.docker_version === 'string' ? config.docker_version : '',
    Author: config.author ?? '',
    Config: config.config ?? null,
    Architecture: config.architecture ?? platform.architecture,
    ...(variant ? { Variant: variant } : {}),
    Os: config.os ?? platform.os,
    ...(osVersion ? { OsVersion: osVersion } : {}),
    Size: record.unpackedSize,
    RootFS: { Type: config.rootfs?.type ?? 'layers', Layers: [...record.diffIds] },
    Metadata: { LastTagTime: record.lastTagTime ?? ZERO_TIME },
    Descriptor: { mediaType: record.manifest.mediaType, digest: record.manifest.digest, size: record.manifest.size },
  };
}

export interface InspectResult {
  found: ImageInspect[];
  /** One error per input that named no image (NoSuchImageError, or an ambiguous prefix). */
  errors: Error[];
}

export async function inspectImages(store: ImageStore, inputs: readonly string[]): Promise<InspectResult> {
  const images = await loadImages(store);
  const result: InspectResult = { found: [], errors: [] };
  for (const input of inputs) {
    try {
      result.found.push(describeForInspect(findImage(images, input).image));
    } catch (error) {
      if (!(error instanceof Error)) throw error;
      result.errors.push(error);
    }
  }
  return result;
}

/** Without a format: an indented JSON array, as docker prints it. With one: the template per image. */
export function renderInspect(found: ImageInspect[], format?: string): string {
  if (!format) return `${escapeHtml(JSON.stringify(found, null, 4))}\n`;
  let template: Template;
  try {
    template = parseTemplate(format);
  } catch (error) {
    if (error instanceof TemplateError) throw new FormatError(`template parsing error: ${error.message}`);
    throw error;
  }
  try {
    return found.map((item) => `${template.render(item)}\n`).join('');
  } catch (error) {
    if (error instanceof TemplateError) throw new FormatError(error.message);
    throw error;
  }
}
