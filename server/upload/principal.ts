/**
 * Who uploads, from the request's session: a session bound to an upload code (the portal: a patient or
 * referring physician) or to a logged-in source user (upload without a code, issue 7). A session holding both
 * uploads under the code (entering a code is the deliberate act on the portal). Each request checks again that
 * the code is still usable (not expired, not revoked) and the user still enabled.
 */
import type { Context } from 'koa';
import type { UploadCodes } from '../../appliance/codes/upload-codes.ts';
import { AppError } from '../../appliance/errors.ts';
import type { Principal } from '../../appliance/uploads/uploads.ts';
import type { User, Users } from '../../appliance/users/users.ts';
import type { Config } from '../../config/schema.ts';
import { can } from '../console/access.ts';

export interface Principals {
  /** The session's uploader, or throws SESSION_EXPIRED / CODE_EXPIRED / CODE_REVOKED / UNAUTHENTICATED / FORBIDDEN. */
  of(ctx: Context): Principal;
  /** The same, or null when the session has no code and no user. */
  maybe(ctx: Context): Principal | null;
  /** The logged-in user of a principal (for the page header). */
  user(p: Principal): User | null;
}

export function createPrincipals(deps: { config: Config; codes: UploadCodes; users: Users }): Principals {
  const { config, codes, users } = deps;
  const of = (ctx: Context): Principal => {
    const s = ctx.state.session;
    if (s?.codeId != null) {
      const code = codes.usable(s.codeId);
      return { kind: 'code', codeId: code.id, codeRef: code.ref, institutionId: code.institutionId };
    }
    if (s?.userId != null) {
      const u = users.get(s.userId);
      if (!u || u.disabledAt) throw new AppError('UNAUTHENTICATED');
      if (!can(u, 'upload')) throw new AppError('FORBIDDEN');
      const institutionId = u.institutionId && config.institutions.some((i) => i.id === u.institutionId) ? u.institutionId : config.institutions[0].id;
      return { kind: 'user', userId: u.id, userName: u.name, institutionId };
    }
    throw new AppError('SESSION_EXPIRED');
  };
  return {
    of,
    maybe(ctx) {
      const s = ctx.state.session;
      return s?.codeId == null && s?.userId == null ? null : of(ctx);
    },
    user(p) {
      return p.kind === 'user' ? users.get(p.userId) : null;
    },
  };
}
