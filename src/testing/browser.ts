/**
 * Real-browser testing of the web UI (issue 16): headless Chromium from Debian's `chromium`
 * package driven by playwright-core (never a downloaded browser), pages that collect every
 * console error or warning, uncaught exception and unexpected failed request, axe-core checks,
 * and screenshots for the README when SKIFF_UI_SCREENSHOTS names a directory.
 */
import assert from 'node:assert/strict';
import { constants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/** Debian's chromium; SKIFF_CHROMIUM points elsewhere (another distribution's path). */
export const CHROMIUM = process.env.SKIFF_CHROMIUM ?? '/usr/bin/chromium';

/**
 * Like peerSkipReason: in CI a missing Chromium is a failure, never a skip; locally the test
 * skips with a loud line saying what to install.
 */
export async function browserSkipReason(): Promise<string | false> {
  try {
    await access(CHROMIUM, constants.X_OK);
    return false;
  } catch {
    const message = `Chromium missing at ${CHROMIUM} (apt-get install -y chromium, or set SKIFF_CHROMIUM)`;
    if (process.env.CI) throw new Error(`${message}; CI must run the browser tests`);
    process.stderr.write(`\n!!! SKIPPING: ${message}\n\n`);
    return message;
  }
}

/** A request failure or error response the test provokes on purpose (a 404 for a hidden repository…). */
export interface ExpectedFailure {
  url: RegExp | string;
  /** Any status ≥ 400 when absent. */
  status?: number;
}

interface Watch {
  problems: string[];
  expected: ExpectedFailure[];
}

const watches = new WeakMap<Page, Watch>();

function matches(expected: ExpectedFailure[], url: string, status?: number): boolean {
  return expected.some((e) => (typeof e.url === 'string' ? url.includes(e.url) : e.url.test(url)) && (e.status === undefined || status === undefined || e.status === status));
}

function watchOf(page: Page): Watch {
  const watch = watches.get(page);
  if (!watch) throw new Error('not a page from openBrowser().newPage()');
  return watch;
}

/** Declares failures this page may see without failing assertCleanConsole (the browser logs them as console errors). */
export function expectFailure(page: Page, ...failures: ExpectedFailure[]): void {
  watchOf(page).expected.push(...failures);
}

/** What went wrong on the page so far, one readable line each. */
export function problemsOf(page: Page): string[] {
  return [...watchOf(page).problems];
}

/**
 * Fails with every console error or warning, uncaught exception and unexpected failed request or
 * ≥ 400 response since the page opened (or since the last call), then starts a new list.
 */
export function assertCleanConsole(page: Page, when = ''): void {
  const watch = watchOf(page);
  const problems = watch.problems.splice(0);
  assert.deepEqual(problems, [], `the page${when ? ` (${when})` : ''} was not clean:\n  ${problems.join('\n  ')}`);
}

export interface NewPageOptions {
  /** Browser permissions for the page's origin, e.g. clipboard-read and clipboard-write. */
  permissions?: string[];
  colorScheme?: 'light' | 'dark';
  viewport?: { width: number; height: number };
  /** Milliseconds each wait and action may take (default 15 s: a page that renders nothing fails fast). */
  timeoutMs?: number;
}

export interface BrowserSession {
  browser: Browser;
  /**
   * A page in a context of its own (its own cookies: one user per page), 1280×800, light scheme,
   * reduced motion, with `baseUrl` as the base of relative `goto`s, watched for problems.
   */
  newPage(baseUrl: string, options?: NewPageOptions): Promise<Page>;
  /** Closes every context, then the browser. */
  close(): Promise<void>;
}

export async function openBrowser(): Promise<BrowserSession> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const contexts = new Set<BrowserContext>();
  return {
    browser,
    async newPage(baseUrl, options = {}) {
      // No bypassCSP: the page runs under the server's real Content-Security-Policy, so an inline
      // script or style would show as a console error. axeCheck gets around it with page.evaluate.
      const context = await browser.newContext({
        baseURL: baseUrl,
        viewport: options.viewport ?? { width: 1280, height: 800 },
        colorScheme: options.colorScheme ?? 'light',
        reducedMotion: 'reduce',
        locale: 'en-US',
        timezoneId: 'UTC',
      });
      contexts.add(context);
      context.once('close', () => contexts.delete(context));
      if (options.permissions?.length) await context.grantPermissions(options.permissions, { origin: new URL(baseUrl).origin });
      const page = await context.newPage();
      page.setDefaultTimeout(options.timeoutMs ?? 15_000);
      const watch: Watch = { problems: [], expected: [] };
      watches.set(page, watch);
      page.on('console', (message) => {
        const type = message.type();
        if (type !== 'error' && type !== 'warning') return;
        const where = message.location().url;
        // "Failed to load resource: … 404" names the resource in its location: expected ones pass.
        if (/^Failed to load resource/.test(message.text()) && matches(watch.expected, where)) return;
        watch.problems.push(`console ${type}: ${message.text()}${where ? ` (${where})` : ''}`);
      });
      page.on('pageerror', (error) => watch.problems.push(`uncaught: ${error.stack ?? error.message}`));
      page.on('response', (response) => {
        const status = response.status();
        if (status >= 400 && !matches(watch.expected, response.url(), status)) {
          watch.problems.push(`${status} for ${response.request().method()} ${response.url()}`);
        }
      });
      page.on('requestfailed', (request) => {
        const error = request.failure()?.errorText ?? 'failed';
        // A navigation away or the app's own AbortController (a superseded filter request) aborts on purpose.
        if (error === 'net::ERR_ABORTED' || matches(watch.expected, request.url())) return;
        watch.problems.push(`request failed: ${request.method()} ${request.url()}: ${error}`);
      });
      return page;
    },
    async close() {
      for (const context of [...contexts]) await context.close().catch(() => {});
      await browser.close();
    },
  };
}

/**
 * `error` with what the page knew when it happened: its URL, the problems collected so far (a
 * console error often says why nothing rendered) and the start of its visible text.
 */
export async function explainFailure(page: Page, error: unknown): Promise<Error> {
  const failure = error instanceof Error ? error : new Error(String(error));
  const problems = watches.get(page)?.problems ?? [];
  let text = '';
  try {
    text = (await page.locator('body').innerText({ timeout: 1000 })).replace(/\s*\n\s*/g, ' | ').slice(0, 1200);
  } catch {
    text = '(unreadable)';
  }
  failure.message += `\n  at ${page.url()}\n  ${problems.length ? `page problems:\n    ${problems.join('\n    ')}` : 'no console problems'}\n  page text: ${text}`;
  return failure;
}

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  helpUrl: string;
  nodes: { target: unknown[]; failureSummary?: string }[];
}

/** One line per violation: id, impact, help, and the selectors of the offending nodes. */
export function describeViolations(violations: AxeViolation[]): string {
  return violations
    .map((v) => {
      const targets = v.nodes.slice(0, 6).map((node) => node.target.map(String).join(' ')).join(', ');
      const more = v.nodes.length > 6 ? ` and ${v.nodes.length - 6} more` : '';
      const why = v.nodes[0]?.failureSummary?.replace(/\s+/g, ' ').slice(0, 240);
      return `${v.id} (${v.impact ?? 'no impact'}): ${v.help} — ${targets}${more}${why ? `\n      ${why}` : ''}`;
    })
    .join('\n  ');
}

/**
 * Runs axe-core on the page as it is now and fails on serious or critical violations, naming each
 * one; returns every violation (minor and moderate ones included). axe's source is evaluated through
 * the DevTools protocol (page.evaluate), which the page's CSP does not govern, unlike a script tag.
 */
export async function axeCheck(page: Page, what = ''): Promise<AxeViolation[]> {
  // The page's globals, as far as this needs them (this project's types have no DOM).
  type AxeWindow = { axe: { run(context: unknown, options: unknown): Promise<{ violations: AxeViolation[] }> }; document: unknown };
  if (!(await page.evaluate(() => 'axe' in globalThis))) {
    // Loaded on first use: 1.4 MB that the benchmark, which imports this module too, never needs.
    const { default: axe } = await import('axe-core');
    await page.evaluate(axe.source);
  }
  const violations = await page.evaluate(async () => {
    const page = globalThis as unknown as AxeWindow;
    const result = await page.axe.run(page.document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl, nodes: v.nodes.map((n) => ({ target: n.target, failureSummary: n.failureSummary })) }));
  });
  const serious = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.equal(serious.length, 0, `axe-core found serious violations on ${what || page.url()}:\n  ${describeViolations(serious)}`);
  return violations;
}

/**
 * Saves a viewport screenshot as `<SKIFF_UI_SCREENSHOTS>/<name>.png` (the README's pictures);
 * without that variable, nothing. Returns the file written.
 */
export async function screenshot(page: Page, name: string): Promise<string | undefined> {
  const dir = process.env.SKIFF_UI_SCREENSHOTS;
  if (!dir) return undefined;
  await mkdir(dir, { recursive: true });
  const path = join(dir, `${name}.png`);
  await page.screenshot({ path, animations: 'disabled', caret: 'hide' });
  return path;
}

/** Retries `check` (an assertion) until it passes or `timeoutMs` ends, then throws its last error. */
export async function eventually<T>(check: () => Promise<T> | T, timeoutMs = 10_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
