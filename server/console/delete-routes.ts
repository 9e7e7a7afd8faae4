/**
 * Delete a study (studies:delete, admins), in two steps, on appliance/studies/study-delete.ts:
 *   GET  /admin/studies/:uid/delete    "Delete this study?" with what goes (patient, date, series, images, size,
 *                                      forwarding jobs cancelled): into the panel section (htmx), or a page
 *   POST /admin/studies/:uid/delete    with confirm=yes: files, index rows and pending forwarding go (audited
 *                                      'delete' with what was deleted); htmx gets the panel slot replaced by
 *                                      the outcome and HX-Trigger studies-changed (the list reloads); a plain
 *                                      form post a page saying so
 * Refused (409, said in the section) while a merge of the study is running.
 */
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { Appliance } from '../../appliance/appliance.ts';
import { AppError } from '../../appliance/errors.ts';
import { createStudyDelete } from '../../appliance/studies/study-delete.ts';
import { readForm } from '../web/body.ts';
import { isHtmx } from '../web/htmx.ts';
import type { Console } from './console.ts';
import { createFormat } from './format.ts';

export function registerDeleteRoutes(router: Router, con: Console, deps: { appliance: Appliance }): void {
  const { appliance } = deps;
  const deletion = createStudyDelete({
    db: appliance.db,
    store: appliance.store,
    audit: appliance.audit,
    log: con.web.log,
    busy: (uid) => (appliance.merge.running(uid) ? 'The study is being merged; delete it when the merge is over.' : null),
  });
  const { studies } = con.services;

  con.addPanelSection({ id: 'delete', order: 90, permission: 'studies:delete', template: 'console/panel/delete.njk', load: () => ({ confirm: false }) });

  const ask = async (ctx: Context, uid: string, problem?: string, status = 200) => {
    const summary = deletion.summary(uid);
    if (!summary) throw new AppError('NOT_FOUND', 'There is no such study.');
    const section = { confirm: true, summary, problem };
    if (isHtmx(ctx)) {
      const study = studies.detail(uid);
      return con.view(ctx, { page: 'console/study.njk', fragment: 'console/panel/delete-body.njk' }, { study, section }, status);
    }
    con.view(ctx, { page: 'console/panel/delete-page.njk', fragment: 'console/panel/delete-page.njk' }, { study: studies.detail(uid), section }, status);
  };

  router.get('/admin/studies/:uid/delete', con.guard('studies:delete'), async (ctx) => {
    await ask(ctx, ctx.params.uid);
  });

  router.post('/admin/studies/:uid/delete', con.guard('studies:delete'), async (ctx) => {
    const uid = ctx.params.uid;
    const f = await readForm(ctx);
    const t = ctx.state.t;
    if (!studies.exists(uid)) throw new AppError('NOT_FOUND', 'There is no such study.');
    if (f.get('confirm') !== 'yes') return ask(ctx, uid, t('console.delete.confirmFirst'), 400);
    if (appliance.merge.running(uid)) return ask(ctx, uid, t('console.delete.merging'), 409);
    const actor = con.actor(ctx);
    const r = await deletion.delete(uid, actor);
    const done = { deleted: r, notice: t('console.delete.done', { count: r.instances, size: createFormat(ctx.state.lang).bytes(r.bytes) }) };
    if (isHtmx(ctx)) {
      ctx.set('HX-Retarget', '#study-panel');
      ctx.set('HX-Reswap', 'innerHTML');
      ctx.set('HX-Trigger', 'studies-changed');
      return con.view(ctx, { page: 'console/panel/delete-page.njk', fragment: 'console/panel/delete-done.njk' }, done);
    }
    con.view(ctx, { page: 'console/panel/delete-page.njk', fragment: 'console/panel/delete-done.njk' }, { section: { confirm: false }, ...done });
  });
}
