/** The catalogue in the browser: the same views/i18n files the server uses, in the page's language. */
import en from '../../i18n/en.json';
import nl from '../../i18n/nl.json';
import { createTranslate, isLang, type Catalogue, type Lang, type Translate } from './translate.ts';

const catalogues: Record<Lang, Catalogue> = { en: en as Catalogue, nl: nl as Catalogue };

export function pageLang(): Lang {
  const l = document.documentElement.lang;
  return isLang(l) ? l : 'en';
}

let cached: Translate | null = null;

export function t(key: string, params?: Record<string, string | number>): string {
  cached ??= createTranslate(pageLang(), catalogues[pageLang()], catalogues.en, (k) => console.warn(`message missing from the catalogue: ${k}`));
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
