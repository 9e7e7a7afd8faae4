/**
 * The worklist and the study information panel:
 *   GET  /admin, /admin/studies          the list (page; for htmx the #study-list fragment), filters in the query
 *   GET  /admin/studies/:uid             the panel (study page; for htmx the panel fragment)
 *   POST /admin/studies/:uid/labels          add a label            (studies:label)
 *   POST /admin/studies/:uid/labels/remove   remove a label         (studies:label)
 *   POST /admin/studies/:uid/review          'Uploaded' -> 'Uploaded-Reviewed' in one step (studies:label)
 *   POST /admin/studies/:uid/workflow        set the workflow status (studies:label)
 *   POST /admin/studies/:uid/originals       reveal the original Patient ID / Accession Number (studies:originals;
 *                                            a POST: every view is recorded in the audit trail)
 * A change answers htmx with the updated panel and `HX-Trigger: studies-changed` (the list reloads itself with
 * its filters), and a plain form post with a redirect to the study page.
 *
 * The panel's sections are registered here (attributes, labels and status, uploaded-study information,
 * original identifiers, series, forwarding); later parts add theirs with console.addPanelSection.
 */
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { Appliance } from '../../appliance/appliance.ts';
import type { StudyLabels } from '../../appliance/studies/labels.ts';
import { UPLOADED, UPLOADED_REVIEWED } from '../../appliance/studies/labels.ts';
import type { StudyDetail, StudyQuery } from '../../appliance/studies/study-query.ts';
import type { Config } from '../../config/schema.ts';
import { readForm } from '../web/body.ts';
import { isHtmx } from '../web/htmx.ts';
import type { Console } from './console.ts';
import { FORWARD_FILTER_LIMIT, type ForwardingStatusSource } from './forwarding.ts';
import { FORWARD_STATES, parseStudyParams, studyQueryString } from './study-filters.ts';

export interface StudyRouteDeps {
  appliance: Appliance;
  studies: StudyQuery;
  labels: StudyLabels;
  forwarding: ForwardingStatusSource | null;
}

/** The malware scan as far as the index knows it: refused files (audit trail) and whether the origins' policies scan. */
function scanSummary(config: Config, study: StudyDetail, uploads: { by: string; name: string }[]) {
  const policies = new Set<string>();
  for (const u of uploads) {
    if (u.by === 'node') {
      const node = config.dicom.nodes.find((n) => n.name === u.name);
      if (node) policies.add(node.policy);
    } else policies.add('upload');
  }
  const scans = [...policies].map((p) => config.policies[p]?.scan);
  const state = study.quarantined.length ? 'refused' : scans.some((s) => s === true) ? 'clean' : scans.length && scans.every((s) => s === false) ? 'not-scanned' : 'unknown';
  return { state, quarantined: study.quarantined, signatures: [...new Set(study.quarantined.map((q) => q.signature).filter(Boolean))] };
}

export function registerStudyRoutes(router: Router, con: Console, deps: StudyRouteDeps): void {
  const { web } = con;
  const { appliance, studies, labels, forwarding } = deps;
  const { config } = web;

  // ---- the panel's sections (ordered; each a partial with the permission it needs)
  con.addPanelSection({ id: 'attributes', order: 10, permission: 'studies:read', template: 'console/panel/attributes.njk' });
  con.addPanelSection({
    id: 'labels',
    order: 20,
    permission: 'studies:read',
    template: 'console/panel/labels.njk',
    load: (_ctx, study) => ({
      known: labels.known().filter((l) => !study.labels.includes(l)),
      statuses: labels.statuses(),
      uploaded: UPLOADED,
      reviewed: UPLOADED_REVIEWED,
      canReview: study.labels.includes(UPLOADED) || !study.labels.includes(UPLOADED_REVIEWED),
    }),
  });
  con.addPanelSection({
    id: 'upload',
    order: 30,
    permission: 'studies:read',
    template: 'console/panel/upload-info.njk',
    load: (_ctx, study) => {
      const institution = (id: string) => config.institutions.find((i) => i.id === id)?.name ?? id;
      const uploads = appliance.anonymise.readUploadInformation(study.studyUid).map((u) => ({ ...u, institutionName: u.institution ? institution(u.institution) : '' }));
      const codes = study.codes.map((c) => ({ ...c, institutionName: institution(c.institutionId) }));
      return { uploads, codes, senders: study.senders, scan: scanSummary(config, study, uploads) };
    },
  });
  con.addPanelSection({ id: 'originals', order: 40, permission: 'studies:originals', template: 'console/panel/originals.njk' });
  con.addPanelSection({ id: 'series', order: 50, permission: 'studies:read', template: 'console/panel/series.njk' });
  if (forwarding) {
    con.addPanelSection({
      id: 'forwarding',
      order: 60,
      permission: 'studies:read',
      template: 'console/panel/forwarding.njk',
      load: (_ctx, study) => ({ progress: forwarding.studyStatus(study.studyUid) }),
    });
  }

  // ---- the list
  const list = (ctx: Context) => {
    const params = parseStudyParams(new URLSearchParams(ctx.querystring), { forwarding: !!forwarding });
    const filter = { ...params.filter };
    if (params.forwardState && forwarding) {
      filter.studyUids = [...new Set(forwarding.studies({ state: params.forwardState, limit: FORWARD_FILTER_LIMIT }).map((p) => p.studyUid))];
    }
    const result = studies.list({ filter, sort: params.sort, dir: params.dir, page: params.page, pageSize: config.console.pageSize });
    const link = (over: Record<string, string | number | null> = {}) => `/admin/studies${studyQueryString({ ...params, page: result.page }, over)}`;
    const sortLink = (key: string) => link({ sort: key, dir: params.sort === key ? (params.dir === 'asc' ? 'desc' : 'asc') : key === 'patient' ? 'asc' : 'desc', page: 1 });
    con.view(
      ctx,
      { page: 'console/studies.njk', fragment: 'console/partials/study-list.njk' },
      {
        params,
        list: result,
        self: link(),
        link,
        sortLink,
        filtered: Object.keys(params.filter).length > 0 || !!params.forwardState,
        choices: {
          modalities: studies.modalities(),
          labels: labels.known(),
          statuses: labels.statuses(),
          origins: ['upload', 'node', 'import'],
          forwardStates: forwarding ? FORWARD_STATES : [],
        },
      },
    );
  };
  router.get('/admin', con.guard('studies:read'), list);
  router.get('/admin/studies', con.guard('studies:read'), list);

  // ---- the panel
  router.get('/admin/studies/:uid', con.guard('studies:read'), async (ctx) => {
    await con.renderPanel(ctx, ctx.params.uid);
  });

  /** After a change: the panel (htmx, and the list refreshes itself) or back to the study page. */
  const changed = async (ctx: Context, uid: string, notice: string) => {
    if (isHtmx(ctx)) {
      ctx.set('HX-Trigger', 'studies-changed');
      return con.renderPanel(ctx, uid, { notice });
    }
    web.redirect(ctx, `/admin/studies/${encodeURIComponent(uid)}`);
  };

  router.post('/admin/studies/:uid/labels', con.guard('studies:label'), async (ctx) => {
    const form = await readForm(ctx);
    const label = form.get('label') ?? '';
    labels.add(ctx.params.uid, label, con.actor(ctx));
    await changed(ctx, ctx.params.uid, ctx.state.t('console.labels.added', { label: label.trim() }));
  });

  router.post('/admin/studies/:uid/labels/remove', con.guard('studies:label'), async (ctx) => {
    const form = await readForm(ctx);
    const label = form.get('label') ?? '';
    labels.remove(ctx.params.uid, label, con.actor(ctx));
    await changed(ctx, ctx.params.uid, ctx.state.t('console.labels.removed', { label }));
  });

  router.post('/admin/studies/:uid/review', con.guard('studies:label'), async (ctx) => {
    labels.markReviewed(ctx.params.uid, con.actor(ctx));
    await changed(ctx, ctx.params.uid, ctx.state.t('console.labels.reviewedDone'));
  });

  router.post('/admin/studies/:uid/workflow', con.guard('studies:label'), async (ctx) => {
    const form = await readForm(ctx);
    const to = labels.setWorkflowStatus(ctx.params.uid, form.get('status') ?? '', con.actor(ctx));
    await changed(ctx, ctx.params.uid, to ? ctx.state.t('console.workflow.set', { status: to }) : ctx.state.t('console.workflow.cleared'));
  });

  router.post('/admin/studies/:uid/originals', con.guard('studies:originals'), async (ctx) => {
    const uid = ctx.params.uid;
    if (!studies.exists(uid)) return con.renderPanel(ctx, uid); // NOT_FOUND, before any audit entry
    const actor = con.actor(ctx);
    const originals = appliance.anonymise.readOriginalIdentifiers(uid, { kind: 'user', name: actor.name, ip: actor.ip });
    const revealed = { originals, at: new Date().toISOString() };
    const vars = await con.panelVars(ctx, uid, { revealed });
    con.view(ctx, { page: 'console/study.njk', fragment: 'console/panel/originals.njk' }, vars);
  });
}
