/**
 * The admin console (issue 7), mounted by createApp: log-in at /login, everything else under /admin.
 * Builds the console's frame (console.ts: guard, navigation, panel sections, rendering) and registers its
 * route modules; returns the frame so later parts extend it (see console.ts).
 *
 *   /login, /logout                  login-routes.ts
 *   /admin, /admin/studies[/:uid]    study-routes.ts   (list, panel, labels, workflow status, originals)
 *   /admin/codes                     code-routes.ts    (create + handout, list, revoke)
 *   /admin/audit[.csv]               audit-routes.ts   (filter, page, CSV export)
 *   /admin/studies/:uid/merge...     merge-routes.ts   (patient merge / reconcile: PACS C-FIND or index, preview, job)
 *   /admin/studies/:uid/transfer     transfer-routes.ts (DICOM transfer of the study or a series, progress, resend)
 *   /admin/studies/:uid/download     download-routes.ts (the study as a ZIP with a DICOMDIR, streamed)
 *   /admin/studies/:uid/delete       delete-routes.ts  (confirm, delete: files, index rows, pending forwarding)
 *   /admin/nodes[...]                nodes-routes.ts   (nodes, C-ECHO, the forwarding queue per node, resend)
 */
import type Router from '@koa/router';
import type { Appliance } from '../../appliance/appliance.ts';
import type { UploadCodes } from '../../appliance/codes/upload-codes.ts';
import { createStudyLabels } from '../../appliance/studies/labels.ts';
import { createStudyQuery } from '../../appliance/studies/study-query.ts';
import { createLogin } from '../../appliance/users/login.ts';
import { createLoginThrottle, type LoginThrottle } from '../../appliance/users/login-throttle.ts';
import { createUsers, type Users } from '../../appliance/users/users.ts';
import type { SessionStore } from '../session/session-store.ts';
import type { Web } from '../web/web.ts';
import { createAccess } from './access.ts';
import { registerAuditRoutes } from './audit-routes.ts';
import { createAuditTrail } from './audit-trail.ts';
import { registerCodeRoutes } from './code-routes.ts';
import { registerDeleteRoutes } from './delete-routes.ts';
import { registerDownloadRoutes } from './download-routes.ts';
import { registerMergeRoutes } from './merge-routes.ts';
import { registerNodesRoutes } from './nodes-routes.ts';
import { registerTransferRoutes } from './transfer-routes.ts';
import { createConsole, type Console } from './console.ts';
import type { ForwardingStatusSource } from './forwarding.ts';
import { registerLoginRoutes } from './login-routes.ts';
import { registerStudyRoutes } from './study-routes.ts';

export interface ConsoleDeps {
  appliance: Appliance;
  codes: UploadCodes;
  sessions: SessionStore;
  /** Forwarding status (appliance.forward); null: no forwarding filter or panel section. */
  forwarding?: ForwardingStatusSource | null;
  users?: Users;
  throttle?: LoginThrottle;
}

export function registerConsoleRoutes(router: Router, web: Web, deps: ConsoleDeps): Console {
  const { appliance, codes, sessions } = deps;
  const { config } = web;
  const users = deps.users ?? createUsers({ db: appliance.db, audit: appliance.audit, passwordMinLength: config.console.passwordMinLength });
  const throttle =
    deps.throttle ??
    createLoginThrottle({
      perAddress: config.console.loginAttemptsPerAddress,
      perUser: config.console.loginAttemptsPerUser,
      windowMs: config.console.loginAttemptWindowMinutes * 60_000,
    });
  const access = createAccess(web, users);
  const studies = createStudyQuery(appliance.db);
  const labels = createStudyLabels({ db: appliance.db, audit: appliance.audit, config });
  const con = createConsole({ web, access, services: { users, studies, labels } });

  con.addNavItem({ id: 'studies', order: 10, href: '/admin/studies', label: 'console.nav.studies', permission: 'studies:read' });
  con.addNavItem({ id: 'codes', order: 20, href: '/admin/codes', label: 'console.nav.codes', permission: 'codes:manage' });
  con.addNavItem({ id: 'audit', order: 90, href: '/admin/audit', label: 'console.nav.audit', permission: 'audit:read' });

  // The safety net: nothing under /admin answers without a logged-in user, whatever its own guard says.
  router.use(['/admin', '/admin/{*rest}'], access.requireLogin());

  registerLoginRoutes(router, con, { login: createLogin({ users, audit: appliance.audit, throttle }) });
  registerStudyRoutes(router, con, { appliance, studies, labels, forwarding: deps.forwarding ?? null });
  registerCodeRoutes(router, con, { codes, sessions });
  registerAuditRoutes(router, con, { trail: createAuditTrail(appliance.db) });
  registerMergeRoutes(router, con, { appliance });
  registerTransferRoutes(router, con, { appliance });
  registerDownloadRoutes(router, con, { appliance });
  registerDeleteRoutes(router, con, { appliance });
  registerNodesRoutes(router, con, { appliance });
  return con;
}
