/** htmx on the server: is this an htmx request, and the config every page gives htmx (see layout.njk). */
import type { Context } from 'koa';

export function isHtmx(ctx: Context): boolean {
  return ctx.get('HX-Request') === 'true';
}

/**
 * htmx settings (read from the `htmx-config` meta tag before htmx initialises): no eval (CSP without
 * 'unsafe-eval'), no injected indicator <style> (CSP without inline styles), no script tags from swapped
 * content, requests to our own origin only, and no history snapshots (they would copy pages that show patient
 * data into localStorage). 4xx/5xx responses are swapped too: error fragments retarget themselves to the page's
 * message area (HX-Retarget), see errors.ts.
 */
export const HTMX_CONFIG = {
  allowEval: false,
  allowScriptTags: false,
  includeIndicatorStyles: false,
  selfRequestsOnly: true,
  historyEnabled: false,
  historyCacheSize: 0,
  refreshOnHistoryMiss: true,
  responseHandling: [
    { code: '204', swap: false },
    { code: '[23]..', swap: true },
    { code: '[45]..', swap: true, error: true },
    { code: '...', swap: false },
  ],
};
