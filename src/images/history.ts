import { shortId } from '../digest/digest.ts';
import { formatFamiliar } from '../reference/reference.ts';
import type { LocalImage } from './catalog.ts';
import { formatRows, type Row } from './formatter.ts';
import { createdSince, ellipsis, humanSize, rfc3339 } from './human.ts';
import { diffIdOf } from './record.ts';
import { resolveImage } from './resolve.ts';
import type { ImageStore } from './store.ts';

/**
 * `docker history`: one row per config.history entry, newest first. The top row carries the
 * image ID; the others are `<missing>`, as docker shows for pulled images (their parents are
 * not local images). Non-empty entries take the layers in order and show their uncompressed size.
 */
export interface HistoryRow {
  /** The image ID (config digest) on the top row, `<missing>` below. */
  id: string;
  created: Date | undefined;
  createdBy: string;
  /** Uncompressed layer size; 0 for an empty_layer entry. */
  size: number;
  comment: string;
  /** Familiar `name:tag`s on the top row. */
  tags: string[];
}

export const MISSING = '<missing>';

export const DEFAULT_HISTORY_TABLE = 'table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}';
const QUIET_FORMAT = '{{.ID}}';
const HEADERS: Record<string, string> = {
  ID: 'IMAGE',
  CreatedSince: 'CREATED',
  CreatedAt: 'CREATED AT',
  CreatedBy: 'CREATED BY',
  Size: 'SIZE',
  Comment: 'COMMENT',
};
const CREATED_BY_WIDTH = 45;

export async function imageHistory(store: ImageStore, input: string): Promise<HistoryRow[]> {
  const { image } = await resolveImage(store, input);
  return historyOf(image, await layerSizes(store, image));
}

/**
 * Uncompressed size of each layer: recorded at pull/load; records written before that was kept
 * are measured by decompressing each layer.
 */
async function layerSizes(store: ImageStore, image: LocalImage): Promise<number[]> {
  const { layers, unpackedSize, layerSizes } = image.record;
  if (layerSizes && layerSizes.length === layers.length) return layerSizes;
  if (layers.length === 1) return [unpackedSize];
  const sizes: number[] = [];
  for (const layer of layers) sizes.push((await diffIdOf(store, layer)).size);
  return sizes;
}

/** The rows, given the layers' uncompressed sizes. Pure. */
export function historyOf(image: LocalImage, sizes: readonly number[]): HistoryRow[] {
  const rows: HistoryRow[] = [];
  let layer = 0;
  for (const entry of image.config.history ?? []) {
    let size = 0;
    if (!entry.empty_layer) size = sizes[layer++] ?? 0;
    const created = entry.created ? new Date(entry.created) : undefined;
    rows.unshift({
      id: MISSING,
      created: created && !Number.isNaN(created.getTime()) ? created : undefined,
      createdBy: entry.created_by ?? '',
      size,
      comment: entry.comment ?? '',
      tags: [],
    });
  }
  const top = rows[0];
  if (top) {
    top.id = image.id;
    top.tags = image.tags.map((t) => formatFamiliar(t));
  }
  return rows;
}

export interface HistoryRenderOptions {
  quiet?: boolean;
  noTrunc?: boolean;
  /** Sizes and dates for people (default) or raw bytes and RFC 3339. */
  human?: boolean;
  format?: string;
  now?: Date;
}

export function historyRowFields(row: HistoryRow, options: HistoryRenderOptions = {}): Row {
  const human = options.human ?? true;
  const createdBy = row.createdBy.replaceAll('\t', ' ');
  const at = row.created ? rfc3339(row.created) : 'N/A';
  return {
    ID: options.noTrunc || row.id === MISSING ? row.id : shortId(row.id),
    CreatedSince: !row.created ? 'N/A' : human ? createdSince(row.created, options.now ?? new Date()) : at,
    CreatedAt: at,
    CreatedBy: options.noTrunc ? createdBy : ellipsis(createdBy, CREATED_BY_WIDTH),
    Size: human ? humanSize(row.size) : String(row.size),
    Comment: row.comment,
  };
}

export function renderHistory(rows: HistoryRow[], options: HistoryRenderOptions = {}): string {
  let format = options.format ?? '';
  if (format === '' || format === 'table') format = options.quiet ? QUIET_FORMAT : DEFAULT_HISTORY_TABLE;
  return formatRows(
    format,
    rows.map((row) => historyRowFields(row, options)),
    HEADERS,
  );
}
