// The console's frame, as the second half of the console uses it (in-process app, real appliance and database):
// one permission table (a source admin has every permission, a source user only studies and uploads); the /admin
// safety net (a route under /admin that forgot its guard still needs a log-in); a panel section and a navigation
// item added by another module appear for the roles allowed and not for others; the catalogue has every text the
// console's templates and routes use, in English and Dutch.
import t from 'tap';
import http from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createAppliance } from '../../appliance/appliance.ts';
import { silentLogger } from '../../appliance/log.ts';
import { createUsers } from '../../appliance/users/users.ts';
import { can, PERMISSIONS, type Permission } from '../../server/console/access.ts';
import { createApp } from '../../server/app.ts';
import { loadCatalogues } from '../../server/web/i18n.ts';
import { createClient, ROOT, writeTestConfig } from '../helpers/server.ts';
import { loginHttp } from './lib/world.ts';

const user = (role: 'admin' | 'user') => ({ id: 1, name: 'x', role, institutionId: null, createdAt: '', createdBy: '', passwordChangedAt: '', disabledAt: null, lastLoginAt: null });

t.test('one permission table: admin everything, user studies and uploads', async (t) => {
  for (const p of Object.keys(PERMISSIONS) as Permission[]) t.ok(can(user('admin'), p), `admin: ${p}`);
  t.same((Object.keys(PERMISSIONS) as Permission[]).filter((p) => can(user('user'), p)).sort(), ['studies:read', 'upload']);
  t.notOk(can({ ...user('admin'), disabledAt: '2024-01-01T00:00:00Z' }, 'studies:read'), 'a disabled user: nothing');
  t.notOk(can(null, 'studies:read'), 'nobody: nothing');
});

t.test('extension points and the /admin safety net', async (t) => {
  const dir = t.testdir();
  const { config } = await writeTestConfig(dir, { policies: { upload: { scan: false } } });
  const appliance = createAppliance(config, silentLogger());
  const app = createApp({
    config,
    appliance,
    log: silentLogger(),
    httpListening: () => true,
    forwarding: null,
    routes: [
      (router) => router.get('/admin/forgot-its-guard', (ctx) => void (ctx.body = 'SECRET')),
    ],
  });
  // what a later module does: a panel section for admins, a navigation item for admins
  app.console.addPanelSection({ id: 'transfer-test', order: 70, permission: 'codes:manage', template: 'console/panel/series.njk', load: () => ({ marker: 1 }) });
  app.console.addNavItem({ id: 'nodes-test', order: 40, href: '/admin/nodes-test', label: 'console.nav.audit', permission: 'audit:read' });
  t.throws(() => app.console.addPanelSection({ id: 'labels', order: 1, permission: 'studies:read', template: 'x.njk' }), /added twice/);
  const server = http.createServer(app.callback());
  await new Promise<void>((r) => server.listen(config.http.port, '127.0.0.1', () => r()));
  t.teardown(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await appliance.stop();
  });
  const url = `http://127.0.0.1:${config.http.port}`;

  const anon = createClient(url);
  const r = await anon.get('/admin/forgot-its-guard');
  t.equal(r.status, 303, 'a route under /admin without its own guard: still needs a log-in');
  t.notMatch(r.text_, /SECRET/);

  const users = createUsers({ db: appliance.db, audit: appliance.audit, hashCost: { ln: 10, r: 8, p: 1 } });
  await users.add({ name: 'ann', role: 'admin', password: 'ann has a long password', by: { kind: 'system', name: 'test' } });
  await users.add({ name: 'ben', role: 'user', password: 'ben has a long password', by: { kind: 'system', name: 'test' } });
  const ann = await loginHttp(url, { name: 'ann', password: 'ann has a long password' });
  const ben = await loginHttp(url, { name: 'ben', password: 'ben has a long password' });
  t.equal((await ann.get('/admin/forgot-its-guard')).text_, 'SECRET', 'logged in: the route answers');

  // (console pages only: the upload part adds its own item for /upload)
  const nav = (html: string) => [...html.matchAll(/<li><a href="(\/admin[^"]*)"/g)].map((m) => m[1]);
  t.same(nav((await ann.get('/admin')).text_), ['/admin/studies', '/admin/codes', '/admin/nodes', '/admin/nodes-test', '/admin/audit'], 'admin: every item, in order');
  t.same(nav((await ben.get('/admin')).text_), ['/admin/studies'], 'user: studies only');
  t.notMatch((await ben.get('/admin')).text_, /id="f-fwd"/, 'no forwarding filter without a forwarding source');

  // a study, for the panel
  const { makeStudies } = await import('../intake/lib/studies.ts');
  const { copyFileSync } = await import('node:fs');
  const [s] = await makeStudies(path.join(dir, 'in'), [{ patient: 'P1', sample: 'CT_small.dcm', studies: [{ accession: 'A1', instances: 1 }] }]);
  const staged = appliance.store.stagingPath('.dcm');
  copyFileSync(s.file, staged);
  t.equal((await appliance.ingest.ingest({ path: staged }, { kind: 'dicom', policy: 'modality', batch: 'assoc:t', actor: { kind: 'node', name: 'CT' } })).kind, 'stored');
  const sections = (html: string) => [...html.matchAll(/data-section="([^"]+)"/g)].map((m) => m[1]);
  t.same(
    sections((await ann.get(`/admin/studies/${s.study}`, { 'HX-Request': 'true' })).text_),
    ['attributes', 'labels', 'upload', 'originals', 'series', 'merge', 'transfer', 'series', 'download', 'delete'],
    'admin: every section in order, the added one (order 70, it reuses the series partial) after those of the same order',
  );
  t.same(sections((await ben.get(`/admin/studies/${s.study}`, { 'HX-Request': 'true' })).text_), ['attributes', 'labels', 'upload', 'series'], 'user: no originals, no admin section');
  t.match((await ann.get(`/admin/studies/${s.study}`, { 'HX-Request': 'true' })).text_, /This study was not anonymised/, 'a modality study: no originals to reveal');
});

t.test('the catalogue has every console text, in English and Dutch', async (t) => {
  const { en, nl } = loadCatalogues();
  const files: string[] = [];
  for (const d of ['views/templates/console', 'server/console']) {
    for (const e of readdirSync(path.join(ROOT, d), { recursive: true, withFileTypes: true })) if (e.isFile()) files.push(path.join(e.parentPath, e.name));
  }
  const keys = new Set<string>();
  for (const f of files) for (const m of readFileSync(f, 'utf8').matchAll(/\bh?t\('([a-zA-Z0-9._-]+)'/g)) if (!m[1].endsWith('.')) keys.add(m[1]);
  for (const m of readFileSync(path.join(ROOT, 'server/console/console-routes.ts'), 'utf8').matchAll(/label: '([a-z.]+)'/g)) keys.add(m[1]);
  // keys made from a prefix and a value
  const families: Record<string, string[]> = {
    'console.role.': ['admin', 'user'],
    'console.origin.': ['upload', 'node', 'import'],
    'console.originKind.': ['dicom', 'upload', 'user', 'import'],
    'console.forward.state.': ['queued', 'sending', 'done', 'retrying', 'failed'],
    'console.codes.status.': ['unused', 'in-use', 'expired', 'revoked'],
    'console.audit.kind.': ['user', 'code', 'node', 'system'],
    'console.scan.': ['clean', 'refused', 'not-scanned', 'unknown'],
    'console.sex.': ['F', 'M', 'O'],
  };
  for (const [prefix, values] of Object.entries(families)) for (const v of values) keys.add(prefix + v);
  t.ok(keys.size > 150, `${keys.size} keys used`);
  const missing = (cat: Record<string, unknown>) => [...keys].filter((k) => !(k in cat));
  t.same(missing(en), [], 'English has them all');
  t.same(missing(nl), [], 'Dutch has them all');
  const ours = (cat: Record<string, unknown>) => Object.keys(cat).filter((k) => k.startsWith('console.') || k.startsWith('handout.')).sort();
  t.same(ours(nl), ours(en), 'the same console keys in both');
});
