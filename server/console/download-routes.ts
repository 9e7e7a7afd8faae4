/**
 * Download a study as a ZIP (studies:download, admins): the panel section "download" has one button, a plain
 * form (no htmx: the browser saves the answer as a file and stays on the page).
 *   POST /admin/studies/:uid/download    the ZIP: the stored files byte for byte under DICOM/ST.../SE.../IM...,
 *                                        with a DICOMDIR (appliance/studies/study-zip.ts), streamed (memory stays
 *                                        bounded whatever the size). Audited 'download' before it starts (a POST:
 *                                        every download is a recorded act, like revealing originals).
 * Refused (409) while a merge of the study is rewriting its files.
 */
import type Router from '@koa/router';
import type { Appliance } from '../../appliance/appliance.ts';
import { AppError } from '../../appliance/errors.ts';
import { createStudyZip } from '../../appliance/studies/study-zip.ts';
import type { Console } from './console.ts';

export function registerDownloadRoutes(router: Router, con: Console, deps: { appliance: Appliance }): void {
  const { appliance } = deps;
  const zip = createStudyZip({ db: appliance.db, store: appliance.store });
  const log = con.web.log;

  con.addPanelSection({ id: 'download', order: 80, permission: 'studies:download', template: 'console/panel/download.njk' });

  router.post('/admin/studies/:uid/download', con.guard('studies:download'), async (ctx) => {
    const uid = ctx.params.uid;
    const plan = zip.plan(uid);
    if (!plan) throw new AppError('NOT_FOUND', 'There is no such study.');
    if (appliance.merge.running(uid)) throw new AppError('CONFLICT', 'The study is being merged; download it when the merge is over.');
    const actor = con.actor(ctx);
    appliance.audit.record({
      actorKind: 'user',
      actor: actor.name,
      action: 'download',
      studyUid: uid,
      ip: actor.ip,
      detail: { instances: plan.entries.length, bytes: plan.bytes, dicomdir: true, file: plan.filename },
    });
    const started = Date.now();
    const archive = zip.stream(plan);
    let finished = false;
    archive.on('end', () => {
      finished = true;
      log.info({ study: uid, instances: plan.entries.length, zipBytes: archive.pointer(), ms: Date.now() - started }, 'study downloaded as ZIP');
    });
    archive.on('error', (e) => log.error({ err: e, study: uid }, 'ZIP download failed'));
    archive.on('warning', (e) => log.warn({ err: e, study: uid }, 'ZIP download: warning'));
    // The browser went away: stop reading files.
    ctx.res.once('close', () => {
      if (!finished) archive.abort();
    });
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Content-Disposition', `attachment; filename="${plan.filename}"`);
    ctx.type = 'application/zip';
    ctx.body = archive;
  });
}
