/**
 * The message catalogues (views/i18n/<lang>.json) on the server: the language of a request is the cookie the
 * page's switch sets, else the browser's Accept-Language, else `portal.defaultLanguage`. Every visible string
 * of the pages comes from here (templates call `t(key, params)`); the browser bundle carries the same files.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTranslate, isLang, LANGS, negotiateLang, type Catalogue, type Lang, type Translate } from '../../views/src/common/translate.ts';

export type { Lang, Translate };
export { LANGS, isLang };

export const LANG_COOKIE = 'uplink-lang';

const i18nDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../views/i18n');

export interface I18n {
  readonly languages: readonly Lang[];
  readonly defaultLang: Lang;
  catalogue(lang: Lang): Catalogue;
  translate(lang: Lang): Translate;
  /** Cookie first (the user's explicit choice), then Accept-Language, then the default. */
  pick(cookie: string | undefined, acceptLanguage: string | undefined): Lang;
}

export function loadCatalogues(dir: string = i18nDir): Record<Lang, Catalogue> {
  const out = {} as Record<Lang, Catalogue>;
  for (const lang of LANGS) out[lang] = JSON.parse(readFileSync(path.join(dir, `${lang}.json`), 'utf8')) as Catalogue;
  return out;
}

export function createI18n(opts: { defaultLang: Lang; onMissing?: (lang: Lang, key: string) => void; dir?: string }): I18n {
  const catalogues = loadCatalogues(opts.dir);
  const translators = Object.fromEntries(
    LANGS.map((l) => [l, createTranslate(l, catalogues[l], catalogues.en, (key) => opts.onMissing?.(l, key))]),
  ) as Record<Lang, Translate>;
  return {
    languages: LANGS,
    defaultLang: opts.defaultLang,
    catalogue: (lang) => catalogues[lang],
    translate: (lang) => translators[lang],
    pick(cookie, acceptLanguage) {
      if (isLang(cookie)) return cookie;
      return negotiateLang(acceptLanguage) ?? opts.defaultLang;
    },
  };
}
