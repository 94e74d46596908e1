/**
 * Builds the web UI into <dist>/ui/ (scripts/build.ts calls it after the CLI): src/ui/main.tsx
 * bundled for browsers with Preact and its CSS, the favicon, and index.html naming them.
 *
 * - Asset names carry a content hash, so `skiff serve` sends them as immutable; only index.html
 *   (no-cache) changes name-wise between builds. Old assets stay for pages still open, and
 *   build.ts's removeStale drops them an hour after the last build that wrote them.
 * - Each asset gets a brotli (quality 11) and a gzip (level 9) copy beside it, when smaller, for
 *   the server to send as they are: the best compression costs once, here, not per request.
 * - Files are written to a temporary name and renamed, the HTML pages last: a browser loading the
 *   page during a build gets the old page with the old assets, or the new with the new.
 */
import { build } from 'esbuild';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeAtomically } from './write-atomically.ts';
import { repositoriesApiUrl } from '../src/ui/first-page.ts';
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const brotli = promisify(brotliCompress);
const gzipAsync = promisify(gzip);

/** The compressed copies of an asset that are smaller than it: [suffix, bytes]. */
async function compressed(contents: Uint8Array): Promise<[string, Uint8Array][]> {
  const [br, gz] = await Promise.all([
    brotli(contents, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: contents.byteLength } }),
    gzipAsync(contents, { level: 9 }),
  ]);
  return (
    [
      ['.br', br],
      ['.gz', gz],
    ] as [string, Uint8Array][]
  ).filter(([, bytes]) => bytes.byteLength < contents.byteLength);
}

/** Builds the UI into `<dist>/ui/`; returns the paths of the files written (assets, their compressed copies, index.html). */
export async function buildUi(dist: string): Promise<string[]> {
  const outdir = join(dist, 'ui');
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: ['src/ui/main.tsx', 'src/ui/favicon.svg'],
    outdir,
    entryNames: 'assets/[name]-[hash]',
    assetNames: 'assets/[name]-[hash]',
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: ['chrome120', 'firefox120', 'safari16'],
    minify: true,
    jsx: 'automatic',
    jsxImportSource: 'preact',
    tsconfig: join(ROOT, 'tsconfig.ui.json'),
    loader: { '.svg': 'copy' },
    legalComments: 'none',
    metafile: true,
    write: false,
    logLevel: 'warning',
  });

  // The hashed names, from the metafile: the entry's script and its CSS, and the favicon.
  const names = { js: '', css: '', favicon: '' };
  for (const [path, output] of Object.entries(result.metafile.outputs)) {
    const file = path.slice(path.lastIndexOf('/') + 1);
    if (output.entryPoint === 'src/ui/main.tsx' && file.endsWith('.js')) names.js = file;
    else if (output.entryPoint === 'src/ui/favicon.svg') names.favicon = file;
    if (output.cssBundle) names.css = output.cssBundle.slice(output.cssBundle.lastIndexOf('/') + 1);
  }
  for (const [key, value] of Object.entries(names)) if (!value) throw new Error(`build-ui: esbuild wrote no ${key} file`);

  const written: string[] = [];
  for (const file of result.outputFiles) {
    await writeAtomically(file.path, file.contents);
    written.push(file.path);
    for (const [suffix, bytes] of await compressed(file.contents)) {
      await writeAtomically(file.path + suffix, bytes);
      written.push(file.path + suffix);
    }
  }

  // The API answers every page needs (the session), and on `/` its first page of repositories,
  // are asked for while the HTML is parsed rather than after the script runs: the browser hands a
  // preloaded answer to the app's fetch of the same URL. `/` gets index-home.html, the rest index.html.
  const template = await readFile(join(ROOT, 'src/ui/index.html'), 'utf8');
  const preload = (url: string) => `<link rel="preload" href="${url.replaceAll('&', '&amp;')}" as="fetch" crossorigin />`;
  const pages: [string, string[]][] = [
    ['index.html', ['/api/v1/session']],
    ['index-home.html', ['/api/v1/session', repositoriesApiUrl('', 0)]],
  ];
  for (const [file, urls] of pages) {
    const values: Record<string, string> = { ...names, preloads: urls.map(preload).join('\n    ') };
    const html = template.replace(/\{\{(\w+)\}\}/g, (match, key: string) => {
      const value = values[key];
      if (value === undefined) throw new Error(`build-ui: src/ui/index.html names an unknown placeholder ${match}`);
      return value;
    });
    const path = join(outdir, file);
    await writeAtomically(path, html);
    written.push(path);
  }
  return written;
}
