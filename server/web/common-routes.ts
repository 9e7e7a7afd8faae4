/** Routes every part of the site shares: the language switch (POST /lang, then back to the page). */
import type Router from '@koa/router';
import { isLang } from '../../views/src/common/translate.ts';
import { AppError } from '../../appliance/errors.ts';
import { readForm } from './body.ts';
import type { Web } from './web.ts';

export function registerCommonRoutes(router: Router, web: Web): void {
  router.post('/lang', async (ctx) => {
    const form = await readForm(ctx);
    const lang = form.get('lang');
    if (!isLang(lang)) throw new AppError('BAD_REQUEST', 'Unknown language.');
    web.setLang(ctx, lang);
    web.redirect(ctx, form.get('next') ?? '/');
  });
}
