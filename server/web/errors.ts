/**
 * The error edge of the web front end: anything thrown below becomes a response from the one error table
 * (appliance/errors.ts), in the user's language (catalogue key `error.<CODE>`):
 *   - JSON ({error, message}) for /api/, /healthz and requests that prefer JSON (fetch from the bundle);
 *   - for htmx requests, the fragment partials/error.njk, retargeted into the page's message area;
 *   - otherwise the error page (error.njk).
 * Unknown errors are 500 with a generic message and are logged; the request log line never has a query string.
 */
import type { Context, Middleware } from 'koa';
import { AppError, publicMessage, toAppError } from '../../appliance/errors.ts';
import type { Logger } from '../../appliance/log.ts';
import { getCookie } from './cookies.ts';
import { isHtmx } from './htmx.ts';
import { LANG_COOKIE } from './i18n.ts';
import type { Web } from './web.ts';

/** The message for an error in the request's language: the catalogue's text unless the error is unexposed. */
export function errorMessage(ctx: Context, err: AppError): string {
  const key = `error.${err.code}`;
  const t = ctx.state.t;
  if (t) {
    const text = t(key);
    if (text !== key) return text;
  }
  return publicMessage(err);
}

export function wantsJson(ctx: Context): boolean {
  return ctx.path.startsWith('/api/') || ctx.path === '/healthz' || ctx.accepts(['html', 'json']) === 'json';
}

export function createErrorMiddleware(deps: { log: Logger; web?: Web }): Middleware {
  const { log, web } = deps;
  return async (ctx, next) => {
    const started = Date.now();
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) throw new AppError('NOT_FOUND');
    } catch (e) {
      const err = toAppError(e);
      if (err.code === 'INTERNAL') log.error({ err: e, method: ctx.method, path: ctx.path }, 'request failed');
      // The request may have failed before the language was chosen (e.g. in the static files).
      if (web && !ctx.state.t) {
        const lang = web.i18n.pick(getCookie(ctx, LANG_COOKIE), ctx.get('Accept-Language'));
        ctx.state.lang = lang;
        ctx.state.t = web.i18n.translate(lang);
      }
      const message = errorMessage(ctx, err);
      ctx.status = err.kind.http;
      ctx.set('Cache-Control', 'no-store');
      if (err.code === 'RATE_LIMITED') ctx.set('Retry-After', '60');
      if (!web || wantsJson(ctx)) {
        ctx.body = { error: err.code, message };
      } else {
        try {
          if (isHtmx(ctx)) {
            ctx.set('HX-Retarget', '#page-messages');
            ctx.set('HX-Reswap', 'innerHTML');
            web.page(ctx, 'partials/error.njk', { error: { code: err.code, message } }, err.kind.http);
          } else {
            web.page(ctx, 'error.njk', { error: { code: err.code, message } }, err.kind.http);
          }
        } catch (renderErr) {
          log.error({ err: renderErr }, 'error page failed to render');
          ctx.type = 'text/plain; charset=utf-8';
          ctx.body = message;
        }
      }
    } finally {
      // The path only: query strings may carry search terms (patient data); never log them.
      log.info({ method: ctx.method, path: ctx.path, status: ctx.status, ms: Date.now() - started }, 'http');
    }
  };
}
