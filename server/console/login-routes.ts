/**
 * Log in and out of the console: GET/POST /login, POST /logout.
 *
 * A successful log-in rotates the session (new id, new CSRF token, a fresh absolute expiry; an upload-code
 * binding is dropped) and binds it to the user; the session then ends after session.idleMinutes without a
 * request or session.absoluteHours after the log-in. Failures show one message whatever went wrong (unknown
 * name, wrong password, disabled user); throttled attempts say how long to wait. All of it is audited
 * (appliance/users/login.ts). The password travels only in the POST body and is never logged.
 */
import type Router from '@koa/router';
import type { Context } from 'koa';
import { AppError } from '../../appliance/errors.ts';
import type { Login } from '../../appliance/users/login.ts';
import { readForm } from '../web/body.ts';
import { errorMessage } from '../web/errors.ts';
import { nextAfterLogin } from './access.ts';
import type { Console } from './console.ts';

export function registerLoginRoutes(router: Router, con: Console, deps: { login: Login }): void {
  const { web } = con;

  const loginPage = (ctx: Context, opts: { status?: number; error?: string; errorCode?: string; name?: string; next?: string; notice?: string } = {}) => {
    web.ensureSession(ctx);
    con.view(
      ctx,
      { page: 'console/login.njk', fragment: 'console/login.njk' },
      { error: opts.error ? { message: opts.error, code: opts.errorCode } : null, name: opts.name ?? '', next: nextAfterLogin(opts.next ?? ctx.query.next), notice: opts.notice ?? null },
      opts.status ?? 200,
    );
  };

  router.get('/login', (ctx) => {
    if (con.access.currentUser(ctx)) return web.redirect(ctx, nextAfterLogin(ctx.query.next));
    loginPage(ctx, { notice: ctx.query.out === '1' ? ctx.state.t('console.login.loggedOut') : undefined });
  });

  router.post('/login', async (ctx) => {
    const form = await readForm(ctx);
    const name = (form.get('name') ?? '').slice(0, 200);
    const password = (form.get('password') ?? '').slice(0, 4096);
    const next = nextAfterLogin(form.get('next'));
    if (!name.trim() || !password) {
      return loginPage(ctx, { status: 400, error: ctx.state.t('console.login.missing'), errorCode: 'BAD_REQUEST', name, next });
    }
    const outcome = await deps.login.attempt(name, password, web.clientIp(ctx));
    if (outcome.ok) {
      web.bindSession(ctx, { userId: outcome.user.id, codeId: null });
      ctx.state.user = outcome.user;
      return web.redirect(ctx, next);
    }
    if (outcome.error === 'throttled') {
      const minutes = Math.max(1, Math.ceil(outcome.retryAfterMs / 60_000));
      ctx.set('Retry-After', String(Math.ceil(outcome.retryAfterMs / 1000)));
      return loginPage(ctx, { status: 429, error: ctx.state.t('console.login.throttled', { count: minutes, minutes }), errorCode: 'RATE_LIMITED', name, next });
    }
    return loginPage(ctx, { status: 401, error: errorMessage(ctx, new AppError('LOGIN_FAILED')), errorCode: 'LOGIN_FAILED', name, next });
  });

  router.post('/logout', (ctx) => {
    const user = con.access.currentUser(ctx);
    if (user) deps.login.logout(user, web.clientIp(ctx));
    web.endSession(ctx);
    ctx.state.user = undefined;
    if (ctx.get('HX-Request') === 'true') {
      ctx.status = 204;
      ctx.set('HX-Redirect', '/login?out=1');
      return;
    }
    web.redirect(ctx, '/login?out=1');
  });
}
