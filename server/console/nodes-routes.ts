/**
 * The Nodes page (nodes:manage, admins): every configured DICOM node (dicom.nodes: name, AE title, address,
 * the services it may use on us, whether we send to it, its intake policy; the hospital PACS marked), a C-ECHO
 * check per node, and the forwarding queue per destination (appliance.forward): queued, sending, retrying (with
 * the next attempt), failed (with the reason), the studies waiting, and Resend.
 *   GET  /admin/nodes                  the page
 *   GET  /admin/nodes/queue            the queue (htmx fragment #node-queue; polls itself while anything waits)
 *   POST /admin/nodes/:name/echo       C-ECHO the node: the result into its row (htmx), or the page with it
 *   POST /admin/nodes/:name/resend     queue the node's failed and retrying instances again now (audited
 *                                      'forward-resend' per study); with study=<uid> only that study's
 */
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { Appliance } from '../../appliance/appliance.ts';
import { AppError } from '../../appliance/errors.ts';
import type { ForwardProgress } from '../../appliance/forward/forwarding.ts';
import type { NodeConfig } from '../../config/schema.ts';
import { readForm } from '../web/body.ts';
import { isHtmx } from '../web/htmx.ts';
import type { Console } from './console.ts';

/** Studies listed per destination (the most recently changed first). */
const STUDIES_PER_NODE = 50;
const PENDING = ['sending', 'queued', 'retrying', 'failed'] as const;

export function registerNodesRoutes(router: Router, con: Console, deps: { appliance: Appliance }): void {
  const { config } = con.web;
  const { forward } = deps.appliance;
  const { studies } = con.services;

  con.addNavItem({ id: 'nodes', order: 40, href: '/admin/nodes', label: 'console.nav.nodes', permission: 'nodes:manage' });

  const nodeRows = () =>
    config.dicom.nodes.map((n, i) => ({
      index: i,
      name: n.name,
      aeTitle: n.aeTitle,
      host: n.host,
      port: n.port,
      allow: n.allow,
      send: n.send,
      policy: n.policy,
      pacs: config.dicom.pacs === n.name,
    }));

  const queue = () => {
    const destinations = forward.destinations().map((d) => {
      // Studies with an instance in a state other than done (each state asked for: done ones never crowd them out).
      const byStudy = new Map<string, ForwardProgress>();
      for (const state of PENDING) for (const p of forward.studies({ destination: d.destination, state, limit: STUDIES_PER_NODE })) byStudy.set(p.studyUid, p);
      const pending = [...byStudy.values()].sort((a, b) => b.updatedAt.localeCompare(a.updatedAt)).slice(0, STUDIES_PER_NODE);
      const info = pending.length
        ? new Map(
            studies
              .list({ filter: { studyUids: pending.map((p) => p.studyUid) }, sort: 'received', dir: 'desc', page: 1, pageSize: 500 })
              .rows.map((r) => [r.studyUid, r] as const),
          )
        : new Map();
      return { ...d, studies: pending.map((p) => ({ ...p, study: info.get(p.studyUid) ?? null })), more: Math.max(0, d.pendingStudies - pending.length) };
    });
    const waiting = destinations.some((d) => d.queued + d.sending > 0);
    const retrying = destinations.some((d) => d.retrying > 0);
    return { destinations, poll: waiting ? '2s' : retrying ? '10s' : null };
  };

  const page = (ctx: Context, extra: Record<string, unknown> = {}, status = 200) =>
    con.view(ctx, { page: 'console/nodes.njk', fragment: 'console/nodes-queue.njk' }, { nodes: nodeRows(), queue: queue(), echo: {}, ...extra }, status);

  const findNode = (name: string): NodeConfig => {
    const n = config.dicom.nodes.find((x) => x.name === name);
    if (!n) throw new AppError('NOT_FOUND', 'There is no such node.');
    return n;
  };

  router.get('/admin/nodes', con.guard('nodes:manage'), (ctx) => page(ctx));
  router.get('/admin/nodes/queue', con.guard('nodes:manage'), (ctx) => page(ctx));

  router.post('/admin/nodes/:name/echo', con.guard('nodes:manage'), async (ctx) => {
    const node = findNode(ctx.params.name);
    const r = await forward.echo(node.name);
    const index = config.dicom.nodes.indexOf(node);
    const result = { ok: r.ok, ms: r.ms, detail: r.detail, at: new Date().toISOString() };
    if (isHtmx(ctx)) return con.view(ctx, { page: 'console/nodes.njk', fragment: 'console/nodes-echo.njk' }, { result, node: { name: node.name, index } });
    page(ctx, { echo: { [index]: result } });
  });

  router.post('/admin/nodes/:name/resend', con.guard('nodes:manage'), async (ctx) => {
    const name = ctx.params.name;
    const f = await readForm(ctx);
    const studyUid = (f.get('study') ?? '').slice(0, 64) || undefined;
    const t = ctx.state.t;
    try {
      const n = forward.resend({ destination: name, studyUid }, con.actor(ctx));
      page(ctx, { notice: t('console.nodes.resent', { count: n, node: name }) });
    } catch (e) {
      if (!(e instanceof AppError) || e.code !== 'BAD_REQUEST') throw e;
      page(ctx, { problem: t('console.nodes.resendRefused', { detail: e.message }) }, 400);
    }
  });
}
