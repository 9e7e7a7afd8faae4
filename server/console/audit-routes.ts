/**
 * The audit trail for admins (audit:read):
 *   GET /admin/audit        filtered (action, user, study, date range), newest first, paged; htmx: #audit-list
 *   GET /admin/audit.csv    the same filter as CSV, streamed in batches (formula-safe cells, see csv.ts)
 */
import { Readable } from 'node:stream';
import type Router from '@koa/router';
import type { Context } from 'koa';
import { auditQueryString, parseAuditParams, type AuditTrail } from './audit-trail.ts';
import type { Console } from './console.ts';
import { csvLine } from './csv.ts';

export const CSV_COLUMNS = ['id', 'time', 'actor_kind', 'actor', 'action', 'study_uid', 'ip', 'detail'];

export function registerAuditRoutes(router: Router, con: Console, deps: { trail: AuditTrail }): void {
  const { trail } = deps;
  const pageSize = con.web.config.console.pageSize * 2;

  router.get('/admin/audit', con.guard('audit:read'), (ctx: Context) => {
    const params = parseAuditParams(new URLSearchParams(ctx.querystring));
    const result = trail.page(params.filter, params.page, pageSize);
    const link = (over: Record<string, string | number | null> = {}) => `/admin/audit${auditQueryString(params, { page: result.page, ...over })}`;
    con.view(ctx, { page: 'console/audit.njk', fragment: 'console/partials/audit-list.njk' }, {
      params,
      result,
      link,
      csvLink: `/admin/audit.csv${auditQueryString(params)}`,
      actions: trail.actions(),
      filtered: Object.keys(params.filter).length > 0,
    });
  });

  router.get('/admin/audit.csv', con.guard('audit:read'), (ctx: Context) => {
    const params = parseAuditParams(new URLSearchParams(ctx.querystring));
    const stamp = new Date().toISOString().replace(/[:]/g, '').replace(/\..*$/, '');
    ctx.status = 200;
    ctx.type = 'text/csv; charset=utf-8';
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Content-Disposition', `attachment; filename="uplink-audit-${stamp}.csv"`);
    const batches = trail.batches(params.filter);
    ctx.body = Readable.from(
      (function* () {
        yield `\ufeff${csvLine(CSV_COLUMNS)}`; // the BOM: spreadsheets then read the text as UTF-8
        for (const rows of batches) yield rows.map((r) => csvLine([r.id, r.at, r.actor_kind, r.actor, r.action, r.study_uid, r.ip, r.detail])).join('');
      })(),
      { objectMode: false },
    );
  });
}
