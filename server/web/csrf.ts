/**
 * CSRF protection for every state-changing request (anything but GET, HEAD, OPTIONS): the session's token must
 * come back, in the `X-CSRF-Token` header (htmx and fetch: the bundle adds it) or the `_csrf` form field.
 * Requests a browser marks as cross-site (Sec-Fetch-Site) are refused outright. With the SameSite=Strict
 * session cookie this is defence in depth. Routes that authenticate otherwise may be skipped by `skip`.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Context, Middleware } from 'koa';
import { AppError } from '../../appliance/errors.ts';
import { readForm, isForm } from './body.ts';

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);
export const CSRF_FIELD = '_csrf';
export const CSRF_HEADER = 'X-CSRF-Token';

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function createCsrfMiddleware(opts: { skip?: (ctx: Context) => boolean } = {}): Middleware {
  return async (ctx, next) => {
    if (SAFE.has(ctx.method) || opts.skip?.(ctx)) return next();
    if (ctx.get('Sec-Fetch-Site') === 'cross-site') throw new AppError('CSRF');
    const session = ctx.state.session;
    if (!session) throw new AppError('CSRF');
    let token = ctx.get(CSRF_HEADER);
    if (!token && isForm(ctx)) token = (await readForm(ctx)).get(CSRF_FIELD) ?? '';
    if (!token || !same(token, session.csrfToken)) throw new AppError('CSRF');
    return next();
  };
}
