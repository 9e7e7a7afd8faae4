/**
 * The patient's side: `/` (enter an upload code), `/upload` (the portal page: institution header, Panel 1 and
 * Panel 2, filled in by the browser bundle), `/upload/selection` (START UPLOAD: for now the chosen studies'
 * summary only), `/code/end` (leave), `/manual` and `/privacy`.
 *
 * The code travels only in a POST body; on success the session is rotated and bound to the code, and the
 * browser is redirected to /upload. Each request under the code checks again that it is still usable.
 */
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { PortalSubmissions } from '../../appliance/codes/portal-submissions.ts';
import type { UploadCode, UploadCodes } from '../../appliance/codes/upload-codes.ts';
import { AppError, toAppError } from '../../appliance/errors.ts';
import type { InstitutionConfig } from '../../config/schema.ts';
import { readForm, readJson } from '../web/body.ts';
import { errorMessage } from '../web/errors.ts';
import type { Web } from '../web/web.ts';

export interface PortalDeps {
  codes: UploadCodes;
  submissions: PortalSubmissions;
  /**
   * HOOK(upload): what the page lets the uploader choose before asking the server (the code's remaining bytes,
   * plus files its earlier uploads got in: chosen again they are not sent). Default: the remaining bytes.
   */
  selectableBytes?: (code: UploadCode) => number;
}

const CODE_ERRORS = new Set(['CODE_UNKNOWN', 'CODE_MISTYPED', 'CODE_EXPIRED', 'CODE_REVOKED', 'RATE_LIMITED']);

export function registerPortalRoutes(router: Router, web: Web, deps: PortalDeps): void {
  const { codes, submissions } = deps;
  const { config } = web;

  const institutionOf = (code: UploadCode): InstitutionConfig =>
    config.institutions.find((i) => i.id === code.institutionId) ?? {
      id: code.institutionId,
      name: code.institutionId,
      phone: '',
      email: '',
      manualUrl: '/manual',
      privacyPolicyUrl: '/privacy',
    };

  const codePage = (ctx: Context, opts: { error?: AppError; value?: string; resume?: InstitutionConfig | null } = {}) => {
    web.ensureSession(ctx);
    const err = opts.error;
    web.page(
      ctx,
      'portal/code.njk',
      { error: err ? { code: err.code, message: errorMessage(ctx, err) } : null, value: opts.value ?? '', resume: opts.resume ?? null },
      err ? err.kind.http : 200,
    );
  };

  /** The session's code if it is still usable; otherwise the binding is dropped and the error thrown. */
  const currentCode = (ctx: Context): UploadCode => {
    const id = ctx.state.session?.codeId;
    if (id == null) throw new AppError('SESSION_EXPIRED');
    try {
      return codes.usable(id);
    } catch (e) {
      web.bindSession(ctx, { codeId: null });
      throw e;
    }
  };

  router.get('/', (ctx) => {
    let resume: InstitutionConfig | null = null;
    const id = ctx.state.session?.codeId;
    if (id != null) {
      const c = codes.get(id);
      if (c && codes.status(c) !== 'expired' && codes.status(c) !== 'revoked') resume = institutionOf(c);
    }
    codePage(ctx, { resume });
  });

  router.post('/', async (ctx) => {
    const form = await readForm(ctx);
    const typed = (form.get('code') ?? '').slice(0, 100);
    let code: UploadCode;
    try {
      code = codes.enter(typed, { ip: web.clientIp(ctx) });
    } catch (e) {
      const err = toAppError(e);
      if (!CODE_ERRORS.has(err.code)) throw e;
      if (err.code === 'RATE_LIMITED') ctx.set('Retry-After', '60');
      return codePage(ctx, { error: err, value: err.code === 'RATE_LIMITED' ? '' : typed });
    }
    web.bindSession(ctx, { codeId: code.id });
    web.redirect(ctx, '/upload');
  });

  router.get('/upload', (ctx) => {
    let code: UploadCode;
    try {
      code = currentCode(ctx);
    } catch (e) {
      const err = toAppError(e);
      if (err.code === 'SESSION_EXPIRED') return web.redirect(ctx, '/');
      if (CODE_ERRORS.has(err.code)) return codePage(ctx, { error: err });
      throw e;
    }
    const institution = institutionOf(code);
    web.page(ctx, 'portal/upload.njk', {
      institution,
      code: {
        expiresAt: code.expiresAt,
        remainingBytes: codes.remainingBytes(code),
        selectableBytes: deps.selectableBytes ? deps.selectableBytes(code) : codes.remainingBytes(code),
        allowanceBytes: code.allowanceBytes,
        birthDate: code.birthDate ?? '',
      },
      limits: {
        maxFiles: config.upload.maxFilesPerUpload,
        maxFileBytes: config.upload.maxFileBytes,
        zipMaxEntries: config.portal.zipMaxEntries,
        zipMaxBytes: config.portal.zipMaxBytes,
        zipMaxRatio: config.portal.zipMaxRatio,
      },
    });
  });

  router.post('/upload/selection', async (ctx) => {
    const code = currentCode(ctx);
    const body = await readJson(ctx, 2 * 1024 * 1024);
    const s = submissions.parse(body, code, { maxFiles: config.upload.maxFilesPerUpload, remainingBytes: codes.remainingBytes(code) });
    const { reference } = submissions.record(code, s, web.clientIp(ctx));
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      ok: true,
      reference,
      studies: s.studies.length,
      files: s.studies.reduce((n, x) => n + x.files, 0),
      bytes: s.studies.reduce((n, x) => n + x.bytes, 0),
    };
  });

  router.post('/code/end', (ctx) => {
    web.endSession(ctx);
    web.redirect(ctx, '/');
  });

  router.get('/manual', (ctx) => {
    web.ensureSession(ctx);
    web.page(ctx, 'portal/manual.njk');
  });

  router.get('/privacy', (ctx) => {
    web.ensureSession(ctx);
    web.page(ctx, 'portal/privacy.njk');
  });
}
