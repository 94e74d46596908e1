import { isDigest } from '../digest/digest.ts';
import { excerpt } from '../errors/excerpt.ts';
import type { Descriptor, ImageIndex, ImageManifest } from './descriptor.ts';
import { IMAGE_MANIFEST_TYPES, INDEX_TYPES, MediaTypes, SCHEMA1_TYPES, bareMediaType, isManifestType } from './media-types.ts';

/** The spec asks registries to accept manifests of at least 4 MiB; skiff refuses larger ones. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export class InvalidManifestError extends Error {
  readonly kind: 'invalid' | 'unsupported';
  constructor(message: string, kind: 'invalid' | 'unsupported' = 'invalid') {
    super(message);
    this.kind = kind;
    this.name = 'InvalidManifestError';
  }
}

/** What the registry and the graph walker need to know about a manifest, whatever its kind. */
export interface ParsedManifest {
  mediaType: string;
  kind: 'image' | 'index';
  /** config + layers, or the index's child manifests */
  config?: Descriptor;
  layers: Descriptor[];
  manifests: Descriptor[];
  subject?: Descriptor;
  /** The manifest's artifactType, else its config media type (what the referrers API reports). */
  artifactType?: string;
  annotations?: Record<string, string>;
  value: ImageManifest | ImageIndex;
}

const MEDIA_TYPE_GRAMMAR = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkStringMap(value: unknown, where: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isRecord(value) || !Object.values(value).every((v) => typeof v === 'string')) {
    throw new InvalidManifestError(`${where} must be an object of strings`);
  }
  return value as Record<string, string>;
}

/** Validates one descriptor; `where` names it in the error, e.g. `layers[2]`. */
export function validateDescriptor(value: unknown, where: string): Descriptor {
  if (!isRecord(value)) throw new InvalidManifestError(`${where} must be an object`);
  // Go clients serialize absent optional fields as null; treat null as absent.
  for (const key of ['urls', 'annotations', 'platform', 'artifactType', 'data'] as const) if (value[key] === null) delete value[key];
  const { mediaType, digest, size } = value;
  if (typeof mediaType !== 'string' || !MEDIA_TYPE_GRAMMAR.test(mediaType)) {
    throw new InvalidManifestError(`${where}.mediaType must be a media type such as ${MediaTypes.ociLayerGzip}`);
  }
  if (typeof digest !== 'string' || !isDigest(digest)) {
    throw new InvalidManifestError(`${where}.digest ${typeof digest === 'string' ? excerpt(digest) : String(JSON.stringify(digest)).slice(0, 100)} is not a valid sha256 or sha512 digest`);
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new InvalidManifestError(`${where}.size must be a non-negative integer`);
  }
  if (value.urls !== undefined && (!Array.isArray(value.urls) || !value.urls.every((u) => typeof u === 'string'))) {
    throw new InvalidManifestError(`${where}.urls must be an array of strings`);
  }
  (value.urls as string[] | undefined)?.forEach((url, i) => checkForeignUrl(url, `${where}.urls[${i}]`));
  checkStringMap(value.annotations, `${where}.annotations`);
  if (value.artifactType !== undefined && typeof value.artifactType !== 'string') {
    throw new InvalidManifestError(`${where}.artifactType must be a string`);
  }
  if (value.platform !== undefined) {
    const platform = value.platform;
    if (!isRecord(platform) || typeof platform.os !== 'string' || typeof platform.architecture !== 'string') {
      throw new InvalidManifestError(`${where}.platform needs string "os" and "architecture"`);
    }
  }
  return value as unknown as Descriptor;
}

/**
 * The registry skips the presence check for a descriptor with `urls` (clients fetch it from there),
 * so they must be usable. As distribution's manifest handlers: http or https, no fragment; also with
 * `//` and a host, and without the spaces or control characters RFC 3986 excludes.
 */
function checkForeignUrl(url: string, where: string): void {
  let problem: string | undefined;
  if (!/^https?:\/\//i.test(url) || /[\u0000-\u0020\u007f]/.test(url)) problem = 'is not an absolute http or https URL';
  else if (url.includes('#')) problem = 'has a fragment';
  else if (!URL.canParse(url)) problem = 'is not an absolute http or https URL'; // e.g. no host, a bad port
  if (problem) throw new InvalidManifestError(`${where} ${excerpt(url)} ${problem}; foreign layer URLs must be absolute http or https URLs without a fragment`);
}

/** A UTF-8 byte-order mark: JSON forbids it (RFC 8259 §8.1) and Go's json.Unmarshal, in every Go client, rejects it. */
function startsWithBom(bytes: Uint8Array): boolean {
  return bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
}

function decodeJson(bytes: Uint8Array): Record<string, unknown> {
  if (startsWithBom(bytes)) throw new InvalidManifestError('manifest starts with a UTF-8 byte-order mark (EF BB BF); send the JSON without it');
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (error) {
    throw new InvalidManifestError(`manifest is not valid UTF-8 JSON: ${(error as Error).message}`);
  }
  if (!isRecord(value)) throw new InvalidManifestError('manifest must be a JSON object');
  return value;
}

/**
 * Decides a manifest's media type from the Content-Type it came with and its own
 * `mediaType` field. They must agree when both are set.
 */
function resolveMediaType(contentType: string | undefined, json: Record<string, unknown>): string {
  const declared = bareMediaType(contentType);
  const field = typeof json.mediaType === 'string' ? json.mediaType : undefined;
  if (json.mediaType !== undefined && field === undefined) throw new InvalidManifestError('mediaType must be a string');
  const schema1 = json.schemaVersion === 1 || SCHEMA1_TYPES.includes(declared) || (field !== undefined && SCHEMA1_TYPES.includes(field));
  if (schema1) {
    throw new InvalidManifestError(
      'Docker schema 1 manifests are deprecated and not supported; convert the image to schema 2 or OCI (for example `skopeo copy --format v2s2`)',
      'unsupported',
    );
  }
  const usable = declared !== '' && declared !== 'application/json' && declared !== 'application/octet-stream';
  if (usable && field !== undefined && field !== declared) {
    throw new InvalidManifestError(`Content-Type ${excerpt(declared)} does not match the manifest's mediaType ${excerpt(field)}`);
  }
  const chosen = field ?? (usable ? declared : undefined) ?? guessMediaType(json);
  if (!isManifestType(chosen)) {
    throw new InvalidManifestError(
      `unsupported manifest media type ${excerpt(chosen)}; expected one of OCI image manifest or index, Docker schema 2 manifest or manifest list`,
      'unsupported',
    );
  }
  return chosen;
}

/** OCI lets `mediaType` be omitted; fall back to the shape, as containerd does. */
function guessMediaType(json: Record<string, unknown>): string {
  if (Array.isArray(json.manifests)) return MediaTypes.ociIndex;
  if (json.config !== undefined) return MediaTypes.ociManifest;
  return '';
}

/** Parses and validates manifest bytes. Throws InvalidManifestError with a precise reason. */
export function parseManifest(bytes: Uint8Array, contentType?: string): ParsedManifest {
  if (bytes.byteLength > MAX_MANIFEST_BYTES) {
    throw new InvalidManifestError(`manifest is ${bytes.byteLength} bytes; the limit is ${MAX_MANIFEST_BYTES}`);
  }
  const json = decodeJson(bytes);
  for (const key of ['annotations', 'subject', 'artifactType'] as const) if (json[key] === null) delete json[key];
  const mediaType = resolveMediaType(contentType, json);
  if (json.schemaVersion !== 2) throw new InvalidManifestError('schemaVersion must be 2');
  if (json.artifactType !== undefined && (typeof json.artifactType !== 'string' || !MEDIA_TYPE_GRAMMAR.test(json.artifactType))) {
    throw new InvalidManifestError('artifactType must be a media type');
  }
  const annotations = checkStringMap(json.annotations, 'annotations');
  const subject = json.subject === undefined ? undefined : validateDescriptor(json.subject, 'subject');
  const common = {
    mediaType,
    ...(subject ? { subject } : {}),
    ...(annotations ? { annotations } : {}),
  };
  if (INDEX_TYPES.includes(mediaType)) {
    if (!Array.isArray(json.manifests)) throw new InvalidManifestError('an index needs a "manifests" array');
    const manifests = json.manifests.map((entry, i) => validateDescriptor(entry, `manifests[${i}]`));
    const artifactType = typeof json.artifactType === 'string' ? json.artifactType : undefined;
    return { ...common, kind: 'index', layers: [], manifests, ...(artifactType ? { artifactType } : {}), value: json as unknown as ImageIndex };
  }
  if (!IMAGE_MANIFEST_TYPES.includes(mediaType)) throw new InvalidManifestError(`unsupported manifest media type ${mediaType}`);
  if (json.config === undefined) throw new InvalidManifestError('an image manifest needs a "config" descriptor');
  const config = validateDescriptor(json.config, 'config');
  if (json.layers === null && mediaType === MediaTypes.ociManifest) json.layers = []; // Go clients send nil slices as null
  if (!Array.isArray(json.layers)) throw new InvalidManifestError('an image manifest needs a "layers" array');
  const layers = json.layers.map((entry, i) => validateDescriptor(entry, `layers[${i}]`));
  if (mediaType === MediaTypes.dockerManifest && layers.length === 0) {
    throw new InvalidManifestError('a Docker schema 2 manifest needs at least one layer');
  }
  const artifactType = typeof json.artifactType === 'string' ? json.artifactType : config.mediaType;
  return { ...common, kind: 'image', config, layers, manifests: [], artifactType, value: json as unknown as ImageManifest };
}

/** Every descriptor a manifest points at (not its subject). */
export function childDescriptors(manifest: ParsedManifest): Descriptor[] {
  return manifest.kind === 'index' ? manifest.manifests : [manifest.config!, ...manifest.layers];
}
