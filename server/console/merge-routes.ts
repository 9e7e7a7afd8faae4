/**
 * Patient merge / reconcile in the study panel (studies:merge, admins), on appliance.merge
 * (appliance/merge/patient-merge.ts). The panel section "merge" (console/panel/merge.njk, body merge-body.njk)
 * goes through these steps, each answering htmx with the section's body (#panel-merge) and a plain form post
 * with the study page:
 *   POST /admin/studies/:uid/merge/search    search the hospital PACS (C-FIND) or the local index: name, patient
 *                                            ID, birth date (a POST: the search terms stay out of URLs and logs)
 *   POST /admin/studies/:uid/merge/preview   the chosen patient: before / after, what changes, what blocks it
 *   POST /admin/studies/:uid/merge           apply: the merge job starts (audited 'merge.start'), optionally
 *                                            forwarding the corrected study to dicom.pacs again when done
 *   GET  /admin/studies/:uid/merge           the section body; while a merge runs its progress polls itself
 *                                            (?watch=<merge id>); when the watched merge ends the whole panel is
 *                                            sent (HX-Retarget #study-panel, HX-Reselect) with what happened, and the list
 *                                            reloads (HX-Trigger studies-changed)
 *   POST /admin/studies/:uid/merge/retry     continue a merge that failed where it stopped
 * A PACS that cannot be reached is reported in the section ("nothing was changed"); nothing is written before
 * Apply.
 */
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { Appliance } from '../../appliance/appliance.ts';
import { AppError } from '../../appliance/errors.ts';
import type { PatientSearch } from '../../appliance/merge/patient-merge.ts';
import { validDicomDate } from '../../appliance/merge/patient-identity.ts';
import { readForm } from '../web/body.ts';
import { errorMessage } from '../web/errors.ts';
import { isHtmx } from '../web/htmx.ts';
import type { Console } from './console.ts';

export interface MergeView {
  view: 'start' | 'results' | 'preview' | 'job';
  form: { source: 'pacs' | 'index'; name: string; patientId: string; birthDate: string };
  results?: unknown;
  preview?: unknown;
  problem?: string;
  notice?: string;
  forward?: boolean;
}

const FIELDS = ['name', 'patientId', 'issuer', 'birthDate', 'sex'] as const;

export function registerMergeRoutes(router: Router, con: Console, deps: { appliance: Appliance }): void {
  const { merge } = deps.appliance;
  const { studies } = con.services;

  /** Data of the section: the study's current patient, the hospital PACS, the latest merge. */
  const sectionData = (uid: string, view?: Partial<MergeView>) => {
    const pacs = merge.pacs();
    const job = merge.latest(uid);
    const form = view?.form ?? { source: pacs ? 'pacs' : 'index', name: '', patientId: '', birthDate: '' };
    return {
      view: view?.view ?? (job?.state === 'running' ? 'job' : 'start'),
      form,
      pacs: pacs ? { name: pacs.name, aeTitle: pacs.aeTitle } : null,
      job,
      running: job?.state === 'running',
      ...view,
    };
  };

  con.addPanelSection({
    id: 'merge',
    order: 65,
    permission: 'studies:merge',
    template: 'console/panel/merge.njk',
    load: (_ctx, study) => sectionData(study.studyUid),
  });

  /** The section body (htmx) or the study page with the section in this state. */
  const respond = async (ctx: Context, uid: string, view: Partial<MergeView>, status = 200) => {
    const section = sectionData(uid, view);
    if (isHtmx(ctx)) {
      const study = studies.detail(uid);
      if (!study) throw new AppError('NOT_FOUND', 'There is no such study.');
      return con.view(ctx, { page: 'console/study.njk', fragment: 'console/panel/merge-body.njk' }, { study, section }, status);
    }
    const vars = await con.panelVars(ctx, uid);
    (vars.sectionData as Record<string, unknown>).merge = section;
    con.view(ctx, { page: 'console/study.njk', fragment: 'console/partials/study-panel.njk' }, vars, status);
  };

  const readSearch = (f: URLSearchParams): MergeView['form'] => ({
    source: f.get('source') === 'index' ? 'index' : 'pacs',
    name: (f.get('name') ?? '').trim().slice(0, 64),
    patientId: (f.get('patientId') ?? '').trim().slice(0, 64),
    birthDate: (f.get('birthDate') ?? '').trim().slice(0, 10),
  });
  const target = (f: URLSearchParams) => Object.fromEntries(FIELDS.map((k) => [k, (f.get(k) ?? '').slice(0, 200)]));

  router.get('/admin/studies/:uid/merge', con.guard('studies:merge'), async (ctx) => {
    const uid = ctx.params.uid;
    if (!studies.exists(uid)) throw new AppError('NOT_FOUND', 'There is no such study.');
    const watch = Number(ctx.query.watch);
    if (isHtmx(ctx) && Number.isInteger(watch) && watch > 0) {
      const job = merge.get(watch);
      if (job && job.studyUid === uid && job.state !== 'running') {
        // The merge it watched has ended: the whole panel (new patient in the heading and attributes) with the outcome.
        const t = ctx.state.t;
        const notice =
          job.state === 'done'
            ? job.forwardedAt
              ? t('console.merge.doneForwarded', { count: job.done, node: job.forwardTo ?? '' })
              : t('console.merge.done', { count: job.done })
            : t('console.merge.failedNotice');
        ctx.set('HX-Retarget', '#study-panel');
        ctx.set('HX-Reswap', 'innerHTML');
        ctx.set('HX-Reselect', 'article.study-panel');
        ctx.set('HX-Trigger', 'studies-changed');
        return con.renderPanel(ctx, uid, { notice });
      }
    }
    await respond(ctx, uid, {});
  });

  router.post('/admin/studies/:uid/merge/search', con.guard('studies:merge'), async (ctx) => {
    const uid = ctx.params.uid;
    if (!studies.exists(uid)) throw new AppError('NOT_FOUND', 'There is no such study.');
    const form = readSearch(await readForm(ctx));
    const t = ctx.state.t;
    const q: PatientSearch = { name: form.name, patientId: form.patientId };
    if (form.birthDate) {
      const d = form.birthDate.replace(/-/g, '');
      if (!validDicomDate(d)) return respond(ctx, uid, { view: 'start', form, problem: t('console.merge.problem.birthDate') }, 400);
      q.birthDate = d;
    }
    if (!form.name && !form.patientId && !form.birthDate) return respond(ctx, uid, { view: 'start', form, problem: t('console.merge.problem.empty') }, 400);
    if (form.source === 'pacs') {
      if (!merge.pacs()) return respond(ctx, uid, { view: 'start', form, problem: t('console.merge.noPacs') }, 400);
      const r = await merge.searchPacs(q);
      if (!r.ok) return respond(ctx, uid, { view: 'start', form, problem: t('console.merge.pacsFailed', { node: r.node ?? '', detail: r.detail }) });
      return respond(ctx, uid, { view: 'results', form, results: r });
    }
    return respond(ctx, uid, { view: 'results', form, results: merge.searchIndex(q) });
  });

  router.post('/admin/studies/:uid/merge/preview', con.guard('studies:merge'), async (ctx) => {
    const uid = ctx.params.uid;
    const f = await readForm(ctx);
    const preview = merge.preview(uid, target(f));
    await respond(ctx, uid, { view: 'preview', form: readSearch(f), preview, forward: true });
  });

  router.post('/admin/studies/:uid/merge', con.guard('studies:merge'), async (ctx) => {
    const uid = ctx.params.uid;
    const f = await readForm(ctx);
    const source = f.get('source') === 'index' ? 'index' : `pacs:${merge.pacs()?.name ?? ''}`;
    const actor = con.actor(ctx);
    try {
      const job = merge.start(uid, target(f), { source, forward: f.get('forward') === 'yes', by: actor });
      await respond(ctx, uid, { view: 'job', notice: ctx.state.t('console.merge.started', { count: job.total }) });
    } catch (e) {
      if (!(e instanceof AppError) || !['BAD_REQUEST', 'CONFLICT'].includes(e.code)) throw e;
      const preview = merge.preview(uid, target(f));
      await respond(ctx, uid, { view: 'preview', form: readSearch(f), preview, forward: f.get('forward') === 'yes', problem: errorMessage(ctx, e) }, e.kind.http);
    }
  });

  router.post('/admin/studies/:uid/merge/retry', con.guard('studies:merge'), async (ctx) => {
    const uid = ctx.params.uid;
    if (!studies.exists(uid)) throw new AppError('NOT_FOUND', 'There is no such study.');
    merge.retry(uid, con.actor(ctx));
    await respond(ctx, uid, { view: 'job', notice: ctx.state.t('console.merge.retried') });
  });
}
