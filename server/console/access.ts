/**
 * Who may do what in the console: ONE table (PERMISSIONS) and ONE guard. Every console route and every htmx
 * fragment is registered with `guard(permission)`, which checks on the server, per request:
 *   - no session user (never logged in, session ended, user disabled or gone): a page request is redirected to
 *     /login?next=<where it was going>; an htmx request gets 401 with `HX-Redirect` (htmx then loads the login
 *     page as a whole) and the error fragment; a JSON request gets 401 JSON;
 *   - a user whose role lacks the permission: 403 (the error page, or for htmx the error fragment in the page's
 *     message area), and nothing of the data.
 * Templates get `can(permission)` to hide what the user may not use; hiding is a courtesy, the guard decides.
 *
 * The second half of the console (merge, DICOM transfer, nodes, ZIP download, delete) adds its permissions to
 * PERMISSIONS and guards its routes the same way.
 */
import type { Context, Middleware, Next } from 'koa';
import { AppError } from '../../appliance/errors.ts';
import type { Role, User, Users } from '../../appliance/users/users.ts';
import { isHtmx } from '../web/htmx.ts';
import { errorMessage, wantsJson } from '../web/errors.ts';
import { safeLocalPath, type Web } from '../web/web.ts';

/** Permission -> the roles that have it. Source admin: everything; source user: sees studies, uploads. */
export const PERMISSIONS = {
  /** The study list and the study information panel (without originals). */
  'studies:read': ['admin', 'user'],
  /** Upload without a code (the portal flow as a logged-in user; the upload issue). */
  'upload': ['admin', 'user'],
  /** Add / remove labels, "Mark reviewed", workflow status. */
  'studies:label': ['admin'],
  /** Reveal a study's original Patient ID / Accession Number (each view audited). */
  'studies:originals': ['admin'],
  /** Upload codes: create, list, revoke. */
  'codes:manage': ['admin'],
  /** The audit trail and its CSV export. */
  'audit:read': ['admin'],
  /** Patient merge / reconcile: search the PACS (C-FIND) or the index, rewrite the study's patient (audited). */
  'studies:merge': ['admin'],
  /** DICOM transfer of a study or series to a node with send: true, and resending what failed. */
  'studies:transfer': ['admin'],
  /** Download a study as a ZIP (audited). */
  'studies:download': ['admin'],
  /** Delete a study: files, index rows, pending forwarding (confirmed, audited). */
  'studies:delete': ['admin'],
  /** The Nodes page: configured nodes, C-ECHO, the forwarding queue per node, resend. */
  'nodes:manage': ['admin'],
} as const satisfies Record<string, readonly Role[]>;

export type Permission = keyof typeof PERMISSIONS;

export function can(user: User | null | undefined, permission: Permission): boolean {
  return !!user && !user.disabledAt && (PERMISSIONS[permission] as readonly Role[]).includes(user.role);
}

declare module 'koa' {
  interface DefaultState {
    /** The logged-in console user of this request (set by the guard), or undefined. */
    user?: User;
  }
}

/** The page to come back to after logging in: a console path only. */
export function nextAfterLogin(p: unknown): string {
  const s = safeLocalPath(p, '/admin');
  return s === '/admin' || s.startsWith('/admin/') || s.startsWith('/admin?') ? s : '/admin';
}

export interface Access {
  /** The session's user if it is logged in and enabled (cached on ctx.state.user), else null. */
  currentUser(ctx: Context): User | null;
  /** Login required, and the permission: the one check every console route and fragment goes through. */
  guard(permission: Permission): Middleware;
  /** Login required (no permission): the safety net under /admin for any route that forgot its guard. */
  requireLogin(): Middleware;
}

export function createAccess(web: Web, users: Users): Access {
  const currentUser = (ctx: Context): User | null => {
    if (ctx.state.user) return ctx.state.user;
    const id = ctx.state.session?.userId;
    if (id == null) return null;
    const u = users.get(id);
    if (!u || u.disabledAt) return null;
    ctx.state.user = u;
    return u;
  };

  const unauthenticated = (ctx: Context) => {
    const err = new AppError('UNAUTHENTICATED');
    ctx.set('Cache-Control', 'no-store');
    if (isHtmx(ctx)) {
      // htmx follows HX-Redirect with a full page load; the page it came from is where to return.
      let back = '/admin';
      try {
        const u = new URL(ctx.get('HX-Current-URL') || 'http://x/admin');
        back = u.pathname + u.search;
      } catch {
        /* keep /admin */
      }
      ctx.set('HX-Redirect', `/login?next=${encodeURIComponent(nextAfterLogin(back))}`);
      web.page(ctx, 'partials/error.njk', { error: { code: err.code, message: errorMessage(ctx, err) } }, 401);
      return;
    }
    if (wantsJson(ctx) || ctx.method !== 'GET') throw err;
    web.redirect(ctx, `/login?next=${encodeURIComponent(nextAfterLogin(ctx.originalUrl))}`);
  };

  const requireLogin = (): Middleware => async (ctx: Context, next: Next) => {
    if (!currentUser(ctx)) return unauthenticated(ctx);
    return next();
  };

  return {
    currentUser,
    requireLogin,
    guard(permission) {
      return async (ctx, next) => {
        const user = currentUser(ctx);
        if (!user) return unauthenticated(ctx);
        if (!can(user, permission)) throw new AppError('FORBIDDEN');
        return next();
      };
    },
  };
}
