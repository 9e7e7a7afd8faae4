/**
 * Upload codes in the console (codes:manage), built on appliance/codes/upload-codes.ts:
 *   GET  /admin/codes                   the list (status: unused, in use, expired, revoked; bytes used) and the form
 *   POST /admin/codes                   create: answers with the code, shown this once, on a printable handout
 *                                       (institution name, phone, e-mail, manual, the portal's address)
 *   GET  /admin/codes/:ref/revoke       "Revoke this code?" (page, or for htmx the confirmation in the list row)
 *   POST /admin/codes/:ref/revoke       revoke (audited) and end the code's portal sessions
 * Codes are named by their public reference (Cxxxxxx), never by the code itself.
 */
import type Router from '@koa/router';
import type { Context } from 'koa';
import { parseBirthDate, type UploadCode, type UploadCodes } from '../../appliance/codes/upload-codes.ts';
import { AppError, toAppError } from '../../appliance/errors.ts';
import type { InstitutionConfig } from '../../config/schema.ts';
import type { SessionStore } from '../session/session-store.ts';
import { readForm } from '../web/body.ts';
import { errorMessage } from '../web/errors.ts';
import { isHtmx } from '../web/htmx.ts';
import { isLang } from '../web/i18n.ts';
import type { Console } from './console.ts';
import { createFormat } from './format.ts';

const VALIDITY_DAYS = [1, 3, 7, 14, 30, 60, 90];
const GB = 1000 ** 3;

export function registerCodeRoutes(router: Router, con: Console, deps: { codes: UploadCodes; sessions: SessionStore }): void {
  const { web } = con;
  const { codes, sessions } = deps;
  const { config } = web;

  const institution = (id: string): InstitutionConfig =>
    config.institutions.find((i) => i.id === id) ?? { id, name: id, phone: '', email: '', manualUrl: '/manual', privacyPolicyUrl: '/privacy' };
  /** A link as the patient must type or click it: relative links are made absolute on the portal's address. */
  const absolute = (url: string) => {
    try {
      return new URL(url, config.http.publicUrl).toString();
    } catch {
      return url;
    }
  };
  const row = (c: UploadCode) => ({ ...c, status: codes.status(c), institutionName: institution(c.institutionId).name, remainingBytes: codes.remainingBytes(c) });
  const defaults = () => ({
    institution: config.institutions[0]?.id ?? '',
    days: String(config.upload.defaultCodeDays),
    allowanceGb: String(Math.round((config.upload.defaultAllowanceBytes / GB) * 100) / 100),
    birthDate: '',
    lang: config.portal.defaultLanguage,
  });

  const listVars = (ctx: Context, extra: Record<string, unknown> = {}) => ({
    codes: codes.list({ limit: 500 }).map(row),
    institutions: config.institutions,
    validityDays: [...new Set([...VALIDITY_DAYS, config.upload.defaultCodeDays])].sort((a, b) => a - b),
    form: defaults(),
    langs: web.i18n.languages,
    notice: ctx.query.revoked ? ctx.state.t('console.codes.revokedNotice', { ref: String(ctx.query.revoked).slice(0, 16) }) : null,
    ...extra,
  });

  router.get('/admin/codes', con.guard('codes:manage'), (ctx) => {
    con.view(ctx, { page: 'console/codes.njk', fragment: 'console/partials/code-list.njk' }, listVars(ctx));
  });

  router.post('/admin/codes', con.guard('codes:manage'), async (ctx) => {
    const f = await readForm(ctx);
    const form = {
      institution: (f.get('institution') ?? '').slice(0, 64),
      days: (f.get('days') ?? '').slice(0, 8),
      allowanceGb: (f.get('allowanceGb') ?? '').slice(0, 16),
      birthDate: (f.get('birthDate') ?? '').slice(0, 10),
      lang: (f.get('lang') ?? '').slice(0, 5),
    };
    const t = ctx.state.t;
    const problems: string[] = [];
    if (!config.institutions.some((i) => i.id === form.institution)) problems.push(t('console.codes.problem.institution'));
    const days = Number(form.days);
    if (!/^\d{1,4}$/.test(form.days) || days < 1 || days > 3650) problems.push(t('console.codes.problem.days'));
    const gb = Number(form.allowanceGb.replace(',', '.'));
    if (!Number.isFinite(gb) || gb <= 0 || gb > 100_000) problems.push(t('console.codes.problem.allowance'));
    let birthDate: string | null = null;
    if (form.birthDate) {
      birthDate = parseBirthDate(form.birthDate.replace(/-/g, ''));
      if (!birthDate) problems.push(t('console.codes.problem.birthDate'));
    }
    const lang = isLang(form.lang) ? form.lang : ctx.state.lang;
    if (problems.length) {
      return con.view(ctx, { page: 'console/codes.njk', fragment: 'console/partials/code-list.njk' }, listVars(ctx, { form, problems }), 400);
    }
    const actor = con.actor(ctx);
    let created;
    try {
      created = codes.create({
        institutionId: form.institution,
        expiresAt: new Date(Date.now() + days * 86_400_000),
        allowanceBytes: Math.round(gb * GB),
        birthDate,
        by: { kind: 'user', name: actor.name },
        ip: actor.ip,
      });
    } catch (e) {
      const err = toAppError(e);
      if (err.code !== 'BAD_REQUEST') throw e;
      return con.view(ctx, { page: 'console/codes.njk', fragment: 'console/partials/code-list.njk' }, listVars(ctx, { form, problems: [errorMessage(ctx, err)] }), 400);
    }
    const inst = institution(created.record.institutionId);
    // The handout is in the language chosen for the patient; the page around it in the admin's.
    const ht = web.i18n.translate(lang);
    con.view(ctx, { page: 'console/code-created.njk', fragment: 'console/code-created.njk' }, {
      code: created.code,
      record: row(created.record),
      institution: inst,
      manualUrl: absolute(inst.manualUrl),
      portalUrl: config.http.publicUrl,
      ht,
      hlang: lang,
      hfmt: createFormat(lang),
    }, 201);
  });

  const find = (ref: string): UploadCode => {
    const c = /^C[0-9A-Z]{6}$/i.test(ref) ? codes.find(ref) : null;
    if (!c || c.ref !== ref.toUpperCase()) throw new AppError('NOT_FOUND', 'There is no such upload code.');
    return c;
  };

  router.get('/admin/codes/:ref/revoke', con.guard('codes:manage'), (ctx) => {
    const c = find(ctx.params.ref);
    con.view(ctx, { page: 'console/code-revoke.njk', fragment: 'console/partials/code-revoke-confirm.njk' }, { c: row(c) });
  });

  router.post('/admin/codes/:ref/revoke', con.guard('codes:manage'), async (ctx) => {
    const c = find(ctx.params.ref);
    const actor = con.actor(ctx);
    codes.revoke(c.id, { kind: 'user', name: actor.name }, actor.ip);
    sessions.destroyFor({ codeId: c.id });
    if (isHtmx(ctx)) {
      return con.view(ctx, { page: 'console/codes.njk', fragment: 'console/partials/code-list.njk' }, listVars(ctx, { notice: ctx.state.t('console.codes.revokedNotice', { ref: c.ref }) }));
    }
    web.redirect(ctx, `/admin/codes?revoked=${c.ref}`);
  });
}
