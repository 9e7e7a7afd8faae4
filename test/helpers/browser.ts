/**
 * Headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core, for end-to-end tests of the
 * portal and the console. `launchBrowser(t)` closes with the test; `openPage` gives a fresh context (own
 * cookies) and collects what must never happen on our pages: page errors, console errors, CSP violations
 * (`problems`). `ensureBundle()` rebuilds views/static/build when views/src is newer (as `npm test` does).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ROOT } from './server.ts';

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

interface TapLike {
  teardown(fn: () => unknown): void;
}

/** Build the browser bundle if any browser source is newer than it (same rule as config/setup.mjs). */
export function ensureBundle(): void {
  const stamp = path.join(ROOT, 'views', 'static', 'build', '.stamp');
  const src = path.join(ROOT, 'views', 'src');
  const newest = readdirSync(src, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .reduce((m, e) => Math.max(m, statSync(path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)).mtimeMs), 0);
  if (!existsSync(stamp) || newest > statSync(stamp).mtimeMs) execFileSync(process.execPath, [path.join(ROOT, 'views', 'build.mjs')], { cwd: ROOT, stdio: 'pipe' });
}

export async function launchBrowser(t: TapLike): Promise<Browser> {
  ensureBundle();
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  t.teardown(() => browser.close());
  return browser;
}

export interface OpenedPage {
  page: Page;
  context: BrowserContext;
  /** Page errors, console errors and CSP violations seen so far. */
  problems: string[];
}

export async function openPage(
  t: TapLike,
  browser: Browser,
  opts: { locale?: string; viewport?: { width: number; height: number }; allowConsoleErrors?: RegExp } = {},
): Promise<OpenedPage> {
  const context = await browser.newContext({ locale: opts.locale ?? 'en-GB', viewport: opts.viewport ?? { width: 1100, height: 900 } });
  t.teardown(() => context.close());
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !(opts.allowConsoleErrors && opts.allowConsoleErrors.test(m.text()))) problems.push(`console error: ${m.text()}`);
  });
  // CSP violations (also reported on the console) are caught in the page itself, workers included.
  // Functions handed to page.evaluate are compiled by tsx (esbuild, keepNames), which wraps named functions in
  // __name(...): give the page that helper.
  await page.addInitScript({ content: 'globalThis.__name = globalThis.__name || ((f) => f);' });
  await page.addInitScript({
    content: "document.addEventListener('securitypolicyviolation', (e) => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));",
  });
  // File choosers are intercepted from the start: Playwright switches interception on asynchronously when a
  // test first waits for one, and a key press sent right after could open a (headless, invisible) native
  // chooser instead of raising the event. The round trip below makes sure the switch has been made.
  page.on('filechooser', () => undefined);
  await page.evaluate('0');
  return { page, context, problems };
}
