/**
 * The catalogue in the browser. The server puts the page's catalogue (views/i18n/<lang>.json, the same file its
 * templates use) into the page as a JSON data block (<script type="application/json" id="uplink-i18n">: data,
 * never executed, allowed by the CSP), so the bundle needs no rebuild when a text changes.
 */
import { createTranslate, isLang, type Catalogue, type Lang, type Translate } from './translate.ts';

export function pageLang(): Lang {
  const l = document.documentElement.lang;
  return isLang(l) ? l : 'en';
}

let cached: Translate | null = null;

function load(): Translate {
  let catalogue: Catalogue = {};
  try {
    catalogue = JSON.parse(document.getElementById('uplink-i18n')?.textContent ?? '{}') as Catalogue;
  } catch {
    console.error('the page has no readable message catalogue');
  }
  return createTranslate(pageLang(), catalogue, undefined, (k) => console.error(`message missing from the catalogue: ${k}`));
}

export function t(key: string, params?: Record<string, string | number>): string {
  cached ??= load();
  return cached(key, params);
}

/** 1234567 -> "1.2 MB" in the page's language (the server's formatBytes, same rules). */
export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${new Intl.NumberFormat(pageLang(), { maximumFractionDigits: i === 0 ? 0 : 1 }).format(n)} ${units[i]}`;
}

/** DICOM DA "20010101" -> a long date in the page's language; "" stays "". */
export function formatDicomDate(da: string): string {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(da);
  if (!m) return da;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return new Intl.DateTimeFormat(pageLang(), { dateStyle: 'long', timeZone: 'UTC' }).format(d);
}

/** "20010101" -> "2001-01-01" (for <time datetime>). */
export function isoDate(da: string): string {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(da);
  return m ? `${m[1]}-${m[2]}-${m[3]}` : '';
}

/** DICOM PN "Doe^Archibald^^Dr" -> "Doe, Dr Archibald". */
export function formatPersonName(pn: string): string {
  const alphabetic = pn.split('=')[0];
  const [family = '', given = '', middle = '', prefix = '', suffix = ''] = alphabetic.split('^').map((s) => s.trim());
  const rest = [prefix, given, middle].filter(Boolean).join(' ');
  let out = family && rest ? `${family}, ${rest}` : family || rest;
  if (suffix) out += `, ${suffix}`;
  return out;
}
