/**
 * The web front end: a Koa app. Routes are thin: validate input, call the appliance, render a page or (for
 * htmx requests) a fragment. Errors are translated here, at the edge, from the one error table.
 */
import Koa from 'koa';
import Router from '@koa/router';
import type { Appliance } from '../appliance/appliance.ts';
import { AppError, publicMessage, toAppError } from '../appliance/errors.ts';
import type { Logger } from '../appliance/log.ts';
import type { Config } from '../config/schema.ts';

export interface AppDeps {
  config: Config;
  appliance: Appliance;
  log: Logger;
  /** Extra facts for /healthz (e.g. the scanner's state), merged into its JSON. */
  healthExtras?: () => Record<string, unknown>;
  /** Whether the HTTP listener is up (set by the composition root). */
  httpListening: () => boolean;
}

export function createApp(deps: AppDeps): Koa {
  const { appliance, log } = deps;
  const app = new Koa({ proxy: false });
  app.silent = true;

  app.use(async (ctx, next) => {
    const started = Date.now();
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) throw new AppError('NOT_FOUND');
    } catch (e) {
      const err = toAppError(e);
      ctx.status = err.kind.http;
      const message = publicMessage(err);
      if (err.code === 'INTERNAL') log.error({ err: e, method: ctx.method, path: ctx.path }, 'request failed');
      if (ctx.accepts(['json', 'html']) === 'json' || ctx.path.startsWith('/api/') || ctx.path === '/healthz') ctx.body = { error: err.code, message };
      else {
        ctx.type = 'text/plain; charset=utf-8';
        ctx.body = message;
      }
    } finally {
      // The path only: query strings may carry search terms (patient data); never log them.
      log.info({ method: ctx.method, path: ctx.path, status: ctx.status, ms: Date.now() - started }, 'http');
    }
  });

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
      ...(deps.healthExtras?.() ?? {}),
    };
  });
  app.use(router.routes()).use(router.allowedMethods());
  return app;
}
