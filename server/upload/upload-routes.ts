/**
 * START UPLOAD to 'Upload successful', the web side (issue 5). For a session bound to an upload code or to a
 * logged-in source user (principal.ts); every state change carries the CSRF token (the tus requests too, in
 * their X-CSRF-Token header).
 *
 *   GET  /upload                          for a logged-in user without a code: the portal page (same flow);
 *                                         otherwise the portal's own route (portal-routes.ts) answers
 *   POST /upload/api/uploads              START UPLOAD: the manifest (after consent) -> the upload's reference,
 *                                         the files to send (with the tus URL to resume at) and the transfer
 *                                         settings; check before send, allowance, limits (JSON errors)
 *   GET  /upload/api/uploads/:ref/missing files the server still needs (the browser sends them again)
 *   POST /upload/api/uploads/:ref/cancel  CANCEL UPLOAD: everything staged is discarded -> what was discarded/kept
 *   GET  /upload/status                   the htmx fragment with the server's record of the session's upload
 *                                         (Uploading / Validating files / Upload successful + receipt / cancelled)
 *   POST /upload/new                      leave the finished upload's receipt and start a new one
 *   POST|HEAD|PATCH /upload/files[/:id]   the tus endpoint (tus.ts)
 */
import type Router from '@koa/router';
import type { Context, Next } from 'koa';
import { createPortalSubmissions } from '../../appliance/codes/portal-submissions.ts';
import type { UploadCodes } from '../../appliance/codes/upload-codes.ts';
import { AppError, toAppError } from '../../appliance/errors.ts';
import type { Logger } from '../../appliance/log.ts';
import { parseManifest } from '../../appliance/uploads/manifest.ts';
import { TUS_PATH, type Principal, type Uploads, type UploadStatus } from '../../appliance/uploads/uploads.ts';
import type { Users } from '../../appliance/users/users.ts';
import type { AuditLog } from '../../appliance/audit/audit-log.ts';
import type { Db } from '../../appliance/store/db.ts';
import type { InstitutionConfig } from '../../config/schema.ts';
import { readJson } from '../web/body.ts';
import { errorMessage } from '../web/errors.ts';
import { formatBytes } from '../web/render.ts';
import type { Web } from '../web/web.ts';
import { createPrincipals } from './principal.ts';
import { createTusEndpoint } from './tus.ts';

export interface UploadRouteDeps {
  uploads: Uploads;
  codes: UploadCodes;
  users: Users;
  db: Db;
  audit: AuditLog;
  log: Logger;
}

/** Session data key: the reference of the upload this session started or continued (shown after a reload). */
const SESSION_KEY = 'uploadRef';

/** States of an upload as the page names them (catalogue keys upload.state.*). */
const ACTIVE = new Set(['uploading', 'validating']);

/** An error's text in the request's language: its own catalogue message (withMessageKey), else the code's. */
export function uploadErrorMessage(ctx: Context, err: AppError): string {
  const k = err as AppError & { messageKey?: string; messageParams?: Record<string, string | number> };
  if (k.messageKey) {
    const params = Object.fromEntries(Object.entries(k.messageParams ?? {}).map(([n, v]) => [n, typeof v === 'number' && n === 'max' && k.messageKey === 'upload.error.fileTooLarge' ? formatBytes(v, ctx.state.lang) : v]));
    const text = ctx.state.t(k.messageKey, params);
    if (text !== k.messageKey) return text;
  }
  return errorMessage(ctx, err);
}

function sendJsonError(ctx: Context, e: unknown): void {
  const err = toAppError(e);
  if (err.code === 'INTERNAL') throw e;
  ctx.status = err.kind.http;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { error: err.code, message: uploadErrorMessage(ctx, err) };
}

export function registerUploadRoutes(router: Router, web: Web, deps: UploadRouteDeps): void {
  const { uploads, codes, users } = deps;
  const { config } = web;
  const principals = createPrincipals({ config, codes, users });
  const submissions = createPortalSubmissions(deps.db, deps.audit);
  const tus = createTusEndpoint({ config, uploads, log: deps.log });

  const institution = (id: string): InstitutionConfig =>
    config.institutions.find((i) => i.id === id) ?? { id, name: id, phone: '', email: '', manualUrl: '/manual', privacyPolicyUrl: '/privacy' };

  const remember = (ctx: Context, reference: string | null) => {
    const s = ctx.state.session;
    if (!s) return;
    if (reference) s.data[SESSION_KEY] = reference;
    else delete s.data[SESSION_KEY];
    web.sessions.save(s);
  };
  const remembered = (ctx: Context): string | null => {
    const v = ctx.state.session?.data[SESSION_KEY];
    return typeof v === 'string' ? v : null;
  };

  /** The upload whose status the page shows: the session's own, else the principal's unfinished one. */
  const currentStatus = (ctx: Context, p: Principal): UploadStatus | null => {
    const u = uploads.current(p, remembered(ctx));
    return u ? uploads.status(u) : null;
  };

  // A logged-in source user uploads through the same page, without a code (a session with a code goes on to
  // the portal's own route).
  router.get('/upload', async (ctx: Context, next: Next) => {
    const s = ctx.state.session;
    if (s?.codeId != null || s?.userId == null) return next();
    let p: Principal;
    try {
      p = principals.of(ctx);
    } catch (e) {
      const err = toAppError(e);
      if (err.code === 'UNAUTHENTICATED') return web.redirect(ctx, '/login?next=/upload');
      throw e;
    }
    if (p.kind !== 'user') return next();
    web.page(ctx, 'portal/upload.njk', {
      institution: institution(p.institutionId),
      code: null,
      uploader: { name: p.userName },
      limits: {
        maxFiles: config.upload.maxFilesPerUpload,
        maxFileBytes: config.upload.maxFileBytes,
        zipMaxEntries: config.portal.zipMaxEntries,
        zipMaxBytes: config.portal.zipMaxBytes,
        zipMaxRatio: config.portal.zipMaxRatio,
      },
    });
  });

  router.post('/upload/api/uploads', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    try {
      const p = principals.of(ctx);
      const body = await readJson(ctx, Math.min(64 * 1024 * 1024, 64 * 1024 + config.upload.maxFilesPerUpload * 512));
      const manifest = parseManifest(body, { maxFiles: config.upload.maxFilesPerUpload, maxFileBytes: config.upload.maxFileBytes });
      const code = p.kind === 'code' ? codes.usable(p.codeId) : null;
      const ip = web.clientIp(ctx);
      const r = uploads.begin({
        principal: p,
        manifest,
        ip,
        allowance: code ? { allowanceBytes: code.allowanceBytes, bytesUsed: code.bytesUsed } : null,
        // The portal's record of what was agreed to share (the console names the code from it).
        recordSubmission: code
          ? () =>
              submissions.record(
                code,
                {
                  studies: manifest.studies.map((s) => ({ studyUid: s.studyUid, files: s.files.length, bytes: s.files.reduce((n, f) => n + f.size, 0), comment: s.comment })),
                  email: manifest.email || null,
                  phone: manifest.phone || null,
                },
                ip,
              ).id
          : undefined,
      });
      remember(ctx, r.upload.reference);
      ctx.body = {
        reference: r.upload.reference,
        resumed: r.resumed,
        send: r.send,
        done: r.done.length,
        endpoint: TUS_PATH,
        chunkBytes: config.upload.chunkBytes,
        parallel: config.upload.parallelFiles,
      };
    } catch (e) {
      sendJsonError(ctx, e);
    }
  });

  const own = (ctx: Context) => {
    const p = principals.of(ctx);
    const u = uploads.byReference(p, String(ctx.params.ref ?? ''));
    if (!u) throw new AppError('NOT_FOUND', 'There is no such upload.');
    return { p, u };
  };

  router.get('/upload/api/uploads/:ref/missing', (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    try {
      const { u } = own(ctx);
      ctx.body = { state: u.state, missing: ACTIVE.has(u.state) ? uploads.missing(u) : [] };
    } catch (e) {
      sendJsonError(ctx, e);
    }
  });

  router.post('/upload/api/uploads/:ref/cancel', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    try {
      const { p, u } = own(ctx);
      const r = await uploads.cancel(p, u, web.clientIp(ctx));
      ctx.body = { reference: u.reference, ...r };
    } catch (e) {
      sendJsonError(ctx, e);
    }
  });

  router.get('/upload/status', (ctx) => {
    const p = principals.maybe(ctx);
    const s = p ? currentStatus(ctx, p) : null;
    const date = new Intl.DateTimeFormat(ctx.state.lang, { dateStyle: 'long', timeZone: 'UTC' });
    const dateText = (da: string) => (/^\d{8}$/.test(da) ? date.format(Date.UTC(Number(da.slice(0, 4)), Number(da.slice(4, 6)) - 1, Number(da.slice(6, 8)))) : '');
    const shown = s ? { ...s, studies: s.studies.map((st) => ({ ...st, dateText: dateText(st.date) })) } : null;
    web.page(ctx, 'upload/status.njk', { s: shown, active: s ? ACTIVE.has(s.state) : false, refusedMore: s ? Math.max(0, s.refused - s.refusedFiles.length) : 0 });
  });

  router.post('/upload/new', (ctx) => {
    remember(ctx, null);
    web.redirect(ctx, '/upload');
  });

  const tusRoute = async (ctx: Context) => {
    try {
      await tus.handle(ctx, principals.of(ctx));
    } catch (e) {
      if (ctx.respond === false) throw e;
      ctx.req.resume();
      sendJsonError(ctx, e);
      if (ctx.method === 'HEAD') ctx.body = null;
    }
  };
  for (const p of [TUS_PATH, `${TUS_PATH}/:id`]) router.all(p, tusRoute);
}
