/**
 * Go's text/tabwriter as docker configures it for tables (minwidth 10, tabwidth 1, padding 3,
 * pad with spaces, no flags): tab-terminated cells are padded to the widest cell of their
 * column block plus 3 (at least 10); the last cell of each line is left as it is.
 * A column block is a run of consecutive lines that all have a tab-terminated cell there.
 * Pure; no I/O.
 */
export interface TabwriterOptions {
  minWidth?: number;
  padding?: number;
}

export function tabwrite(text: string, options: TabwriterOptions = {}): string {
  const minWidth = options.minWidth ?? 10;
  const padding = options.padding ?? 3;
  const endsWithNewline = text.endsWith('\n');
  const lines = (endsWithNewline ? text.slice(0, -1) : text).split('\n').map((line) => line.split('\t'));
  const widths: number[][] = lines.map(() => []);
  const columns = Math.max(0, ...lines.map((cells) => cells.length - 1));
  for (let column = 0; column < columns; column++) {
    let start = 0;
    while (start < lines.length) {
      // Terminated cells exist in this column for lines with more than column+1 cells.
      if ((lines[start] as string[]).length - 1 <= column) {
        start++;
        continue;
      }
      let end = start;
      let width = minWidth;
      while (end < lines.length && (lines[end] as string[]).length - 1 > column) {
        width = Math.max(width, displayWidth((lines[end] as string[])[column] as string) + padding);
        end++;
      }
      for (let i = start; i < end; i++) (widths[i] as number[])[column] = width;
      start = end;
    }
  }
  const out = lines.map((cells, i) =>
    cells
      .map((cell, column) => {
        const width = (widths[i] as number[])[column];
        return width === undefined ? cell : cell + ' '.repeat(Math.max(0, width - displayWidth(cell)));
      })
      .join(''),
  );
  return out.join('\n') + (endsWithNewline ? '\n' : '');
}

/** tabwriter counts UTF-8 code points. */
function displayWidth(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}
