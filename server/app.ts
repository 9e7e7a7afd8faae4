/**
 * The web front end: a Koa app. Routes are thin: validate input, call the appliance, render a page or (for
 * htmx requests) a fragment. Errors are translated here, at the edge, from the one error table.
 *
 * Middleware, outermost first: security headers (every response) -> errors + request log -> static files
 * (/static/) -> language + session (web.middleware) -> CSRF (every state-changing request) -> routes.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Koa from 'koa';
import Router from '@koa/router';
import type { Appliance } from '../appliance/appliance.ts';
import { createPortalSubmissions, type PortalSubmissions } from '../appliance/codes/portal-submissions.ts';
import { createUploadCodes, type UploadCodes } from '../appliance/codes/upload-codes.ts';
import type { Logger } from '../appliance/log.ts';
import type { Config } from '../config/schema.ts';
import { registerConsoleRoutes } from './console/console-routes.ts';
import type { Console } from './console/console.ts';
import type { ForwardingStatusSource } from './console/forwarding.ts';
import { registerPortalRoutes } from './portal/portal-routes.ts';
import { registerUploadRoutes } from './upload/upload-routes.ts';
import { createUsers } from '../appliance/users/users.ts';
import { createSessionStore, type SessionStore } from './session/session-store.ts';
import { registerCommonRoutes } from './web/common-routes.ts';
import { createCsrfMiddleware } from './web/csrf.ts';
import { createErrorMiddleware } from './web/errors.ts';
import { createI18n } from './web/i18n.ts';
import { createRenderer } from './web/render.ts';
import { createSecurityHeaders } from './web/security-headers.ts';
import { createStatic } from './web/static.ts';
import { createWeb, type Web } from './web/web.ts';

export const staticDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../views/static');

export interface AppDeps {
  config: Config;
  appliance: Appliance;
  log: Logger;
  /** Extra facts for /healthz (e.g. the scanner's state), merged into its JSON. */
  healthExtras?: () => Record<string, unknown>;
  /** Whether the HTTP listener is up (set by the composition root). */
  httpListening: () => boolean;
  /** Built from the appliance's database when not given. */
  codes?: UploadCodes;
  submissions?: PortalSubmissions;
  sessions?: SessionStore;
  /** Route modules of other parts (upload, console): called with the router and the web toolkit. */
  routes?: ((router: Router, web: Web) => void)[];
  /** The forwarding status the console shows (list filter, panel); default: the appliance's queue; null: none. */
  forwarding?: ForwardingStatusSource | null;
  /** Paths whose state-changing requests authenticate otherwise (e.g. tus with its own token check). */
  csrfSkip?: (ctx: Koa.Context) => boolean;
}

export interface UplinkApp extends Koa {
  /** The toolkit the routes use (sessions, rendering, i18n), for tests and other route modules. */
  web: Web;
  codes: UploadCodes;
  /** The admin console's frame (navigation, study panel sections, guard), for the parts that extend it. */
  console: Console;
}

export function createApp(deps: AppDeps): UplinkApp {
  const { appliance, log, config } = deps;
  const app = new Koa({ proxy: config.http.trustProxy }) as UplinkApp;
  app.silent = true;

  const i18n = createI18n({ defaultLang: config.portal.defaultLanguage, onMissing: (lang, key) => log.warn({ lang, key }, 'message missing from the catalogue') });
  const sessions = deps.sessions ?? createSessionStore(appliance.db, config);
  const codes = deps.codes ?? createUploadCodes({ db: appliance.db, audit: appliance.audit, config });
  const submissions = deps.submissions ?? createPortalSubmissions(appliance.db, appliance.audit);
  const web = createWeb({ config, log, i18n, renderer: createRenderer(), sessions });
  app.web = web;
  app.codes = codes;

  app.use(createSecurityHeaders());
  app.use(createErrorMiddleware({ log, web }));

  const router = new Router();
  router.get('/healthz', (ctx) => {
    const h = appliance.health();
    const http = deps.httpListening();
    const ok = h.ok && http;
    ctx.status = ok ? 200 : 503;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      status: ok ? 'ok' : 'unavailable',
      db: h.db ? 'open' : 'closed',
      dicom: h.dicom ? 'listening' : 'down',
      http: http ? 'listening' : 'down',
      associations: h.associations,
      scanner: {
        available: h.scanner.available,
        signatures: h.scanner.signatures,
        managed: h.scanner.managed,
        held: h.scanner.held,
        ...(h.scanner.testSignaturesOnly || h.scanner.signatures === 'test-only' ? { warning: 'malware signatures: test set only; run freshclam' } : {}),
        ...(h.scanner.available ? {} : { detail: h.scanner.detail }),
      },
      ...(deps.healthExtras?.() ?? {}),
    };
  });
  registerCommonRoutes(router, web);
  // Uploads (START UPLOAD, tus, status): before the portal's routes, as its GET /upload serves a logged-in user
  // (upload without a code) and passes a session with a code on to the portal's own page.
  const users = createUsers({ db: appliance.db, audit: appliance.audit, passwordMinLength: config.console.passwordMinLength });
  registerUploadRoutes(router, web, { uploads: appliance.uploads, codes, users, db: appliance.db, audit: appliance.audit, log });
  registerPortalRoutes(router, web, { codes, submissions, selectableBytes: (c) => appliance.uploads.selectableBytes(c) });
  app.console = registerConsoleRoutes(router, web, { appliance, codes, sessions, forwarding: deps.forwarding === undefined ? appliance.forward : deps.forwarding });
  // Source users and admins upload without a code through the portal page.
  app.console.addNavItem({ id: 'upload', order: 15, href: '/upload', label: 'console.nav.upload', permission: 'upload' });
  for (const r of deps.routes ?? []) r(router, web);

  app.use(createStatic({ root: staticDir, prefix: '/static/' }));
  app.use(web.middleware());
  app.use(createCsrfMiddleware({ skip: deps.csrfSkip }));
  app.use(router.routes()).use(router.allowedMethods());

  // Expired sessions are removed now and then (they are refused on use anyway).
  const purge = () => {
    try {
      const n = sessions.purgeExpired();
      if (n) log.debug({ sessions: n }, 'expired sessions removed');
    } catch (e) {
      log.warn({ err: e }, 'session purge failed');
    }
  };
  purge();
  setInterval(purge, 10 * 60_000).unref();
  return app;
}
