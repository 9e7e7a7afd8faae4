/**
 * Server-side rendering with nunjucks (autoescape on: every `{{ }}` is HTML-escaped unless a template says
 * `| safe`, which ours never do for data). Templates live in views/templates; pages extend layout.njk,
 * fragments (for htmx) live in views/templates/partials and are rendered alone.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import nunjucks from 'nunjucks';

export const templatesDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../views/templates');

export interface Renderer {
  render(name: string, vars: Record<string, unknown>): string;
}

export function createRenderer(opts: { dir?: string; watch?: boolean } = {}): Renderer {
  const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(opts.dir ?? templatesDir, { noCache: !!opts.watch }), {
    autoescape: true,
    throwOnUndefined: false,
    trimBlocks: true,
    lstripBlocks: true,
  });
  env.addFilter('bytes', (n: unknown, lang: string = 'en') => formatBytes(Number(n), lang));
  env.addFilter('datetime', (iso: unknown, lang: string = 'en') => formatDateTime(String(iso), lang));
  return {
    render: (name, vars) => env.render(name, vars),
  };
}

/** 1234567 -> "1.2 MB" (decimal units, as disks and operating systems show them). */
export function formatBytes(n: number, lang = 'en'): string {
  if (!Number.isFinite(n)) return '';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${new Intl.NumberFormat(lang, { maximumFractionDigits: i === 0 ? 0 : 1 }).format(n)} ${units[i]}`;
}

/** An ISO timestamp as a date and time in the language (the appliance's time zone). */
export function formatDateTime(iso: string, lang = 'en'): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return new Intl.DateTimeFormat(lang, { dateStyle: 'long', timeStyle: 'short' }).format(d);
}
