import { tabwrite } from './tabwriter.ts';
import { STRUCT, TO_JSON, TemplateError, parseTemplate, type Template } from './template.ts';

/**
 * docker's `--format` handling (docker/cli formatter.Context), shared by `images` and `history`:
 *   `table` + template  a header line from the column titles, rows aligned by tabwriter
 *   `json`              one JSON object per row and line (keys sorted, like Go's map encoding)
 *   anything else       a Go template executed per row, each followed by a newline
 * Literal `\t` and `\n` in the format become a tab and a newline. Pure; no I/O.
 */
export type Row = Record<string, string>;

export class FormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FormatError';
  }
}

const TABLE = 'table';
const JSON_KEY = 'json';
const JSON_TEMPLATE = '{{json .}}';

export function isTableFormat(format: string): boolean {
  return format.startsWith(TABLE);
}

/** Renders `rows` with `format`; `headers` maps row fields to column titles. */
export function formatRows(format: string, rows: Row[], headers: Record<string, string>): string {
  const table = isTableFormat(format);
  let body = table ? format.slice(TABLE.length) : format === JSON_KEY ? JSON_TEMPLATE : format;
  body = body.replace(/^ +| +$/g, '').replaceAll('\\t', '\t').replaceAll('\\n', '\n');
  let template: Template;
  try {
    template = parseTemplate(body);
  } catch (error) {
    if (error instanceof TemplateError) throw new FormatError(`template parsing error: ${error.message}`);
    throw error;
  }
  let out = '';
  for (const row of rows) {
    try {
      out += `${template.render(context(row))}\n`;
    } catch (error) {
      if (error instanceof TemplateError) throw new FormatError(error.message);
      throw error;
    }
  }
  if (!table) return out;
  const header = `${template.render(headers, { header: true })}\n`;
  return tabwrite(header + out);
}

/** A row as the template sees it: unknown fields are errors, `json .` prints every field. */
function context(row: Row): Record<string, unknown> {
  const sorted = Object.fromEntries(Object.keys(row).sort().map((k) => [k, row[k]]));
  return { ...row, [STRUCT]: true, [TO_JSON]: () => sorted };
}
