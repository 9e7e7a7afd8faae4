/**
 * The console's frame, shared by its route modules (login, studies, codes, audit; later merge, transfer,
 * nodes, download, delete):
 *   - `view` renders a console page (views/templates/console/*.njk, extending console/layout.njk) or, for htmx
 *     requests, its fragment, with the user, the navigation they may use, `can(permission)` and `fmt`;
 *   - the navigation is a list of items, each with the permission it needs (`addNavItem`);
 *   - the study information panel is a list of sections, each a partial template with the permission it needs
 *     and an optional loader for its data (`addPanelSection`); the panel renders those the user may see, in
 *     order. A section's template reads `study` (StudyDetail), `section` (its own data from `load`) and the
 *     console variables;
 *   - `actor(ctx)` is who acts, for the appliance's audit entries.
 *
 * Extending (second half of issue 7), e.g. the DICOM transfer:
 *   console.addPanelSection({ id: 'transfer', order: 70, permission: 'studies:transfer',
 *     template: 'console/panel/transfer.njk', load: (ctx, study) => ({ nodes: ... }) });
 *   console.addNavItem({ id: 'nodes', order: 40, href: '/admin/nodes', label: 'console.nav.nodes', permission: 'nodes:manage' });
 *   router.post('/admin/studies/:uid/transfer', console.guard('studies:transfer'), async (ctx) => { ...;
 *     await console.renderPanel(ctx, uid) });
 */
import type { Context, Middleware } from 'koa';
import type { StudyLabels } from '../../appliance/studies/labels.ts';
import type { StudyDetail, StudyQuery } from '../../appliance/studies/study-query.ts';
import type { User, Users } from '../../appliance/users/users.ts';
import { AppError } from '../../appliance/errors.ts';
import { isHtmx } from '../web/htmx.ts';
import type { Web } from '../web/web.ts';
import { can, type Access, type Permission } from './access.ts';
import { createFormat } from './format.ts';

export interface NavItem {
  id: string;
  href: string;
  /** Catalogue key of its text. */
  label: string;
  permission: Permission;
  order: number;
}

export interface PanelSection {
  id: string;
  /** A partial under views/templates (e.g. console/panel/labels.njk) rendering <section data-section="id">. */
  template: string;
  permission: Permission;
  order: number;
  /** Data for the template (`section`); runs only for users allowed to see the section. */
  load?: (ctx: Context, study: StudyDetail) => Record<string, unknown> | Promise<Record<string, unknown>>;
}

export interface ConsoleActor {
  kind: 'user';
  name: string;
  ip: string;
}

/** The appliance modules the console's routes use, shared with the parts that extend it. */
export interface ConsoleServices {
  users: Users;
  studies: StudyQuery;
  labels: StudyLabels;
}

export interface Console {
  readonly web: Web;
  readonly access: Access;
  readonly services: ConsoleServices;
  guard(permission: Permission): Middleware;
  addNavItem(item: NavItem): void;
  addPanelSection(section: PanelSection): void;
  readonly nav: readonly NavItem[];
  readonly panelSections: readonly PanelSection[];
  /** The variables every console template gets (user, nav, can, fmt, ...). */
  vars(ctx: Context): Record<string, unknown>;
  /** A console page, or its fragment for htmx requests. */
  view(ctx: Context, templates: { page: string; fragment: string }, vars?: Record<string, unknown>, status?: number): void;
  /** The logged-in user (the guard ran); throws UNAUTHENTICATED otherwise. */
  user(ctx: Context): User;
  actor(ctx: Context): ConsoleActor;
  /** Load a study for the panel (NOT_FOUND if unknown) and the data of the sections this user may see. */
  panelVars(ctx: Context, studyUid: string, extra?: Record<string, unknown>): Promise<Record<string, unknown>>;
  /** Render the study panel: the study page, or for htmx the panel fragment (console/partials/study-panel.njk). */
  renderPanel(ctx: Context, studyUid: string, extra?: Record<string, unknown>, status?: number): Promise<void>;
}

export function createConsole(deps: { web: Web; access: Access; services: ConsoleServices }): Console {
  const { web, access, services } = deps;
  const nav: NavItem[] = [];
  const sections: PanelSection[] = [];

  const user = (ctx: Context): User => {
    const u = access.currentUser(ctx);
    if (!u) throw new AppError('UNAUTHENTICATED');
    return u;
  };

  const self: Console = {
    web,
    access,
    services,
    guard: (p) => access.guard(p),
    addNavItem(item) {
      nav.push(item);
      nav.sort((a, b) => a.order - b.order);
    },
    addPanelSection(section) {
      if (sections.some((s) => s.id === section.id)) throw new Error(`panel section "${section.id}" added twice`);
      sections.push(section);
      sections.sort((a, b) => a.order - b.order);
    },
    nav,
    panelSections: sections,

    vars(ctx) {
      const u = access.currentUser(ctx);
      return {
        user: u,
        can: (p: Permission) => can(u, p),
        nav: nav.filter((i) => can(u, i.permission)).map((i) => ({ ...i, current: ctx.path === i.href || ctx.path.startsWith(`${i.href}/`) })),
        fmt: createFormat(ctx.state.lang),
        isHtmx: isHtmx(ctx),
      };
    },

    view(ctx, templates, vars = {}, status = 200) {
      web.view(ctx, templates, { ...self.vars(ctx), ...vars }, status);
    },

    user,

    actor(ctx) {
      return { kind: 'user', name: user(ctx).name, ip: web.clientIp(ctx) };
    },

    async panelVars(ctx, studyUid, extra = {}) {
      const study = services.studies.detail(studyUid);
      if (!study) throw new AppError('NOT_FOUND', 'There is no such study.');
      const u = user(ctx);
      const visible = sections.filter((s) => can(u, s.permission));
      const sectionData: Record<string, Record<string, unknown>> = {};
      for (const s of visible) sectionData[s.id] = s.load ? await s.load(ctx, study) : {};
      return { study, sections: visible, sectionData, ...extra };
    },

    async renderPanel(ctx, studyUid, extra = {}, status = 200) {
      const vars = await self.panelVars(ctx, studyUid, extra);
      self.view(ctx, { page: 'console/study.njk', fragment: 'console/partials/study-panel.njk' }, vars, status);
    },
  };
  return self;
}
