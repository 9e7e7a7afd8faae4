/**
 * DICOM transfer in the study panel (studies:transfer, admins), on the forwarding queue (appliance.forward):
 * send the whole study or one series to any node with send: true, and watch it go. The panel section
 * "transfer" (console/panel/transfer.njk, body transfer-body.njk, owns #panel-transfer):
 *   POST /admin/studies/:uid/transfer          queue the study (or the series chosen) for the node (audited
 *                                              'forward' by the queue, origin console)
 *   POST /admin/studies/:uid/transfer/resend   queue the failed and retrying instances for a node again now
 *   GET  /admin/studies/:uid/transfer          the section body: per destination the state, instances done of
 *                                              all, failed, the next attempt and the last problem; it polls itself
 *                                              while anything is queued, sending or retrying
 * While a merge of the study is running, nothing is queued (the files are being rewritten).
 */
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { Appliance } from '../../appliance/appliance.ts';
import { AppError } from '../../appliance/errors.ts';
import { readForm } from '../web/body.ts';
import { errorMessage } from '../web/errors.ts';
import { isHtmx } from '../web/htmx.ts';
import type { Console } from './console.ts';

const ACTIVE = new Set(['queued', 'sending', 'retrying']);

export function registerTransferRoutes(router: Router, con: Console, deps: { appliance: Appliance }): void {
  const { forward, merge } = deps.appliance;
  const { studies } = con.services;

  const sectionData = (uid: string, extra: { notice?: string; problem?: string; destination?: string; series?: string } = {}) => {
    const progress = forward.studyStatus(uid);
    const nodes = forward.sendableNodes().map((n) => ({ name: n.name, aeTitle: n.aeTitle, host: n.host, port: n.port }));
    return {
      nodes,
      progress,
      // Polling: every second while something is queued or on the wire, every 5 s while it only waits for a retry.
      poll: progress.some((p) => p.state === 'queued' || p.state === 'sending') ? '1s' : progress.some((p) => ACTIVE.has(p.state)) ? '5s' : null,
      destination: extra.destination ?? '',
      series: extra.series ?? '',
      notice: extra.notice,
      problem: extra.problem,
    };
  };

  con.addPanelSection({
    id: 'transfer',
    order: 70,
    permission: 'studies:transfer',
    template: 'console/panel/transfer.njk',
    load: (_ctx, study) => sectionData(study.studyUid),
  });

  const respond = async (ctx: Context, uid: string, extra: Parameters<typeof sectionData>[1] = {}, status = 200) => {
    const section = sectionData(uid, extra);
    if (isHtmx(ctx)) {
      const study = studies.detail(uid);
      if (!study) throw new AppError('NOT_FOUND', 'There is no such study.');
      return con.view(ctx, { page: 'console/study.njk', fragment: 'console/panel/transfer-body.njk' }, { study, section }, status);
    }
    const vars = await con.panelVars(ctx, uid);
    (vars.sectionData as Record<string, unknown>).transfer = section;
    con.view(ctx, { page: 'console/study.njk', fragment: 'console/partials/study-panel.njk' }, vars, status);
  };

  router.get('/admin/studies/:uid/transfer', con.guard('studies:transfer'), async (ctx) => {
    if (!studies.exists(ctx.params.uid)) throw new AppError('NOT_FOUND', 'There is no such study.');
    await respond(ctx, ctx.params.uid);
  });

  router.post('/admin/studies/:uid/transfer', con.guard('studies:transfer'), async (ctx) => {
    const uid = ctx.params.uid;
    const study = studies.detail(uid);
    if (!study) throw new AppError('NOT_FOUND', 'There is no such study.');
    const f = await readForm(ctx);
    const destination = (f.get('destination') ?? '').slice(0, 64);
    const series = (f.get('series') ?? '').slice(0, 64);
    const t = ctx.state.t;
    const again = { destination, series };
    if (merge.running(uid)) return respond(ctx, uid, { ...again, problem: t('console.transfer.merging') }, 409);
    if (!forward.sendableNodes().some((n) => n.name === destination)) return respond(ctx, uid, { ...again, problem: t('console.transfer.problem.destination') }, 400);
    if (series && !study.series.some((s) => s.seriesUid === series)) return respond(ctx, uid, { ...again, problem: t('console.transfer.problem.series') }, 400);
    const actor = con.actor(ctx);
    try {
      const r = series ? forward.enqueueSeries(series, destination, actor) : forward.enqueueStudy(uid, destination, actor);
      const notice = series ? t('console.transfer.queuedSeries', { count: r.instances, node: destination }) : t('console.transfer.queued', { count: r.instances, node: destination });
      await respond(ctx, uid, { ...again, notice });
    } catch (e) {
      if (!(e instanceof AppError) || e.code !== 'BAD_REQUEST') throw e;
      await respond(ctx, uid, { ...again, problem: errorMessage(ctx, e) }, 400);
    }
  });

  router.post('/admin/studies/:uid/transfer/resend', con.guard('studies:transfer'), async (ctx) => {
    const uid = ctx.params.uid;
    if (!studies.exists(uid)) throw new AppError('NOT_FOUND', 'There is no such study.');
    const destination = ((await readForm(ctx)).get('destination') ?? '').slice(0, 64);
    const t = ctx.state.t;
    if (merge.running(uid)) return respond(ctx, uid, { problem: t('console.transfer.merging') }, 409);
    if (!forward.sendableNodes().some((n) => n.name === destination)) return respond(ctx, uid, { problem: t('console.transfer.problem.destination') }, 400);
    const n = forward.resend({ destination, studyUid: uid }, con.actor(ctx));
    await respond(ctx, uid, { notice: t('console.transfer.resent', { count: n, node: destination }) });
  });
}
