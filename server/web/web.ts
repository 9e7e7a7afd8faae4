/**
 * The web toolkit every route module builds on (portal now; upload, console later): language and session per
 * request, page and fragment rendering with the base template variables, session creation / rotation /
 * ending with its cookie, and safe redirects. Route modules receive a `Web` and register on a router:
 *
 *   export function registerConsoleRoutes(router: Router, web: Web, deps: ...) {
 *     router.get('/admin', (ctx) => web.view(ctx, { page: 'console/home.njk', fragment: 'partials/studies.njk' }, { ... }));
 *   }
 */
import type { Context, Middleware } from 'koa';
import type { Config } from '../../config/schema.ts';
import type { Logger } from '../../appliance/log.ts';
import type { Session, SessionStore } from '../session/session-store.ts';
import { clearCookie, getCookie, setCookie } from './cookies.ts';
import { CSRF_FIELD, CSRF_HEADER } from './csrf.ts';
import { HTMX_CONFIG, isHtmx } from './htmx.ts';
import { LANG_COOKIE, type I18n, type Lang, type Translate } from './i18n.ts';
import type { Renderer } from './render.ts';

declare module 'koa' {
  interface DefaultState {
    /** The live session of this request, or null (none yet, or it ended). */
    session: Session | null;
    lang: Lang;
    t: Translate;
  }
}

export interface Web {
  readonly config: Config;
  readonly log: Logger;
  readonly i18n: I18n;
  readonly renderer: Renderer;
  readonly sessions: SessionStore;
  readonly sessionCookie: string;
  /** Sets ctx.state.lang / t / session for every request (mounted by createApp after the static files). */
  middleware(): Middleware;
  /** The variables every template gets: t, lang, langs, csrfToken, path, htmx config, ... */
  vars(ctx: Context): Record<string, unknown>;
  /** Render a full page (Cache-Control: no-store; Vary: HX-Request). */
  page(ctx: Context, template: string, vars?: Record<string, unknown>, status?: number): void;
  /** A page, or for htmx requests the fragment that the page contains (both get the same variables). */
  view(ctx: Context, templates: { page: string; fragment: string }, vars?: Record<string, unknown>, status?: number): void;
  /** The request's session, created (with its cookie) if there is none: e.g. to put a CSRF token in a form. */
  ensureSession(ctx: Context): Session;
  /** Replace the session by a fresh one bound as given (new id and CSRF token), e.g. after a code or a login. */
  bindSession(ctx: Context, bind: { codeId?: number | null; userId?: number | null }): Session;
  endSession(ctx: Context): void;
  setLang(ctx: Context, lang: Lang): void;
  /** 303 to a local path only (never to another site: open redirects). */
  redirect(ctx: Context, to: string): void;
  /** The client address (X-Forwarded-For only with http.trustProxy). */
  clientIp(ctx: Context): string;
}

/** Only same-site paths: "/x?y", never "//host" or "http://...". */
export function safeLocalPath(p: unknown, fallback = '/'): string {
  if (typeof p !== 'string' || !p.startsWith('/') || p.startsWith('//') || p.startsWith('/\\') || /[\r\n\0]/.test(p)) return fallback;
  return p;
}

export function createWeb(deps: { config: Config; log: Logger; i18n: I18n; renderer: Renderer; sessions: SessionStore }): Web {
  const { config, i18n, renderer, sessions } = deps;
  const secure = config.http.secureCookies;
  // The __Host- prefix makes the browser insist on Secure, Path=/ and no Domain.
  const sessionCookie = secure ? '__Host-uplink-session' : 'uplink-session';
  const htmxConfig = JSON.stringify(HTMX_CONFIG);
  // The catalogue as a JSON data block inside <script>: "<", ">", "&" and the JS line separators escaped, so
  // no text can close the element or be read as markup.
  const catalogueJson = Object.fromEntries(
    i18n.languages.map((l) => [
      l,
      JSON.stringify(i18n.catalogue(l)).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`),
    ]),
  ) as Record<Lang, string>;

  const writeSessionCookie = (ctx: Context, s: Session) => setCookie(ctx, sessionCookie, s.id, { secure, httpOnly: true, sameSite: 'Strict' });

  const web: Web = {
    config,
    log: deps.log,
    i18n,
    renderer,
    sessions,
    sessionCookie,

    middleware() {
      return async (ctx, next) => {
        const lang = i18n.pick(getCookie(ctx, LANG_COOKIE), ctx.get('Accept-Language'));
        ctx.state.lang = lang;
        ctx.state.t = i18n.translate(lang);
        const id = getCookie(ctx, sessionCookie);
        let session: Session | null = null;
        if (id) {
          session = sessions.load(id);
          if (session) sessions.touch(session);
          else clearCookie(ctx, sessionCookie, { secure });
        }
        ctx.state.session = session;
        await next();
      };
    },

    vars(ctx) {
      return {
        t: ctx.state.t,
        lang: ctx.state.lang,
        langs: i18n.languages,
        path: ctx.path,
        csrfToken: ctx.state.session?.csrfToken ?? '',
        csrfField: CSRF_FIELD,
        csrfHeader: CSRF_HEADER,
        htmxConfig,
        catalogueJson: catalogueJson[ctx.state.lang] ?? catalogueJson[i18n.defaultLang],
        isHtmx: isHtmx(ctx),
      };
    },

    page(ctx, template, vars = {}, status = 200) {
      ctx.status = status;
      ctx.set('Cache-Control', 'no-store');
      ctx.vary('HX-Request');
      ctx.type = 'text/html; charset=utf-8';
      ctx.body = renderer.render(template, { ...web.vars(ctx), ...vars });
    },

    view(ctx, templates, vars = {}, status = 200) {
      web.page(ctx, isHtmx(ctx) ? templates.fragment : templates.page, vars, status);
    },

    ensureSession(ctx) {
      if (ctx.state.session) return ctx.state.session;
      const s = sessions.create();
      writeSessionCookie(ctx, s);
      ctx.state.session = s;
      return s;
    },

    bindSession(ctx, bind) {
      const s = sessions.rotate(ctx.state.session, bind);
      writeSessionCookie(ctx, s);
      ctx.state.session = s;
      return s;
    },

    endSession(ctx) {
      if (ctx.state.session) sessions.destroy(ctx.state.session);
      ctx.state.session = null;
      clearCookie(ctx, sessionCookie, { secure });
    },

    setLang(ctx, lang) {
      setCookie(ctx, LANG_COOKIE, lang, { secure, httpOnly: true, sameSite: 'Strict', maxAgeSeconds: 365 * 86400 });
      ctx.state.lang = lang;
      ctx.state.t = i18n.translate(lang);
    },

    redirect(ctx, to) {
      ctx.status = 303;
      ctx.set('Cache-Control', 'no-store');
      ctx.redirect(safeLocalPath(to));
    },

    clientIp(ctx) {
      return ctx.ip || ctx.req.socket.remoteAddress || 'unknown';
    },
  };
  return web;
}
