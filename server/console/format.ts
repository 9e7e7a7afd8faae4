/**
 * Formatting for console templates (passed to them as `fmt`): DICOM dates, times and person names, ISO
 * times and sizes in the page's language. Empty or malformed input gives '' (the template shows a dash).
 */
import { formatBytes } from '../web/render.ts';

/** DICOM DA "20010131" -> "31 Jan 2001" (en) / "31 jan 2001" (nl). */
export function dicomDate(da: unknown, lang = 'en'): string {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(String(da ?? '').trim());
  if (!m) return '';
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  if (Number.isNaN(d.getTime()) || d.getUTCDate() !== Number(m[3])) return '';
  return new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeZone: 'UTC' }).format(d);
}

/** "20010131" -> "2001-01-31" (for <time datetime> and date inputs). */
export function isoDate(da: unknown): string {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(String(da ?? '').trim());
  return m ? `${m[1]}-${m[2]}-${m[3]}` : '';
}

/** DICOM TM "142233.123" -> "14:22". */
export function dicomTime(tm: unknown): string {
  const m = /^(\d{2})(\d{2})?/.exec(String(tm ?? '').trim());
  return m ? `${m[1]}:${m[2] ?? '00'}` : '';
}

/** DICOM PN "Doe^Archibald^^Dr" -> "Doe, Dr Archibald" (the alphabetic group). */
export function personName(pn: unknown): string {
  const alphabetic = String(pn ?? '').split('=')[0];
  const [family = '', given = '', middle = '', prefix = '', suffix = ''] = alphabetic.split('^').map((s) => s.trim());
  const rest = [prefix, given, middle].filter(Boolean).join(' ');
  let out = family && rest ? `${family}, ${rest}` : family || rest;
  if (suffix) out += `, ${suffix}`;
  return out;
}

/** ISO time -> "31 Jan 2025, 14:22" in the appliance's time zone. */
export function dateTime(iso: unknown, lang = 'en'): string {
  const d = new Date(String(iso ?? ''));
  if (!iso || Number.isNaN(d.getTime())) return '';
  return new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'short' }).format(d);
}

/** ISO time -> "31 Jan 2025, 14:22:05" (the audit trail: seconds matter). */
export function dateTimeSeconds(iso: unknown, lang = 'en'): string {
  const d = new Date(String(iso ?? ''));
  if (!iso || Number.isNaN(d.getTime())) return '';
  return new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'medium' }).format(d);
}

export function createFormat(lang: string) {
  return {
    date: (da: unknown) => dicomDate(da, lang),
    isoDate,
    time: dicomTime,
    name: personName,
    dateTime: (iso: unknown) => dateTime(iso, lang),
    dateTimeSeconds: (iso: unknown) => dateTimeSeconds(iso, lang),
    bytes: (n: unknown) => formatBytes(Number(n), lang),
    number: (n: unknown) => new Intl.NumberFormat(lang).format(Number(n) || 0),
  };
}

export type Format = ReturnType<typeof createFormat>;
