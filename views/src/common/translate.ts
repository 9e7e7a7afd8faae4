/**
 * The message catalogue lookup, shared by the server (templates, error pages) and the browser bundle.
 * Pure: no DOM, no Node. A catalogue maps keys to texts; `{name}` in a text is replaced by the parameter of
 * that name (numbers formatted for the language). A text may instead be plural forms, chosen by `count`:
 *   "files.notDicom": { "one": "{count} file is not a DICOM image", "other": "{count} files are not DICOM images" }
 */
export type Lang = 'en' | 'nl';
export const LANGS: readonly Lang[] = ['en', 'nl'];

export type Message = string | { zero?: string; one?: string; two?: string; few?: string; many?: string; other: string };
export type Catalogue = Record<string, Message>;
export type Params = Record<string, string | number | null | undefined>;
export type Translate = (key: string, params?: Params) => string;

export function isLang(v: unknown): v is Lang {
  return v === 'en' || v === 'nl';
}

/**
 * A translate function for one language. A key missing from the catalogue falls back to `fallback` (English),
 * then to the key itself; `onMissing` hears about it (the server logs it, the tests fail on it).
 */
export function createTranslate(lang: Lang, catalogue: Catalogue, fallback?: Catalogue, onMissing?: (key: string) => void): Translate {
  const plural = new Intl.PluralRules(lang);
  const number = new Intl.NumberFormat(lang);
  return (key, params) => {
    let msg: Message | undefined = catalogue[key];
    if (msg === undefined) {
      onMissing?.(key);
      msg = fallback?.[key];
      if (msg === undefined) return key;
    }
    let text: string;
    if (typeof msg === 'string') text = msg;
    else {
      const count = Number(params?.count ?? 0);
      const form = count === 0 && msg.zero !== undefined ? 'zero' : plural.select(count);
      text = msg[form] ?? msg.other;
    }
    if (!params) return text;
    return text.replace(/\{(\w+)\}/g, (whole, name: string) => {
      const v = params[name];
      if (v === undefined || v === null) return whole;
      return typeof v === 'number' ? number.format(v) : v;
    });
  };
}

/** The best supported language for an Accept-Language header, or null. */
export function negotiateLang(acceptLanguage: string | undefined | null): Lang | null {
  if (!acceptLanguage) return null;
  const ranked = acceptLanguage
    .split(',')
    .map((part, i) => {
      const [tag, ...params] = part.trim().split(';');
      const q = params.map((p) => /^\s*q=([\d.]+)\s*$/.exec(p)).find(Boolean);
      return { tag: tag.trim().toLowerCase(), q: q ? Number(q[1]) : 1, i };
    })
    .filter((x) => x.tag && x.q > 0)
    .sort((a, b) => b.q - a.q || a.i - b.i);
  for (const { tag } of ranked) {
    const primary = tag.split('-')[0];
    if (isLang(primary)) return primary;
  }
  return null;
}
