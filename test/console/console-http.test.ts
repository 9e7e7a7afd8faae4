// The console over HTTP against the real server (child process, `npm start`'s server/main.ts), users made with the
// real CLI: who may reach what (no log-in: redirect or 401 + HX-Redirect; a source user: 403 on every admin page,
// fragment and action, and nothing changes), log-in (rotated session, one message for every failure, throttling
// per user name with the wait in words, all audited), log-out, a disabled user's session ending, CSRF, security
// headers, no inline script, Dutch, and no patient data or password in the server's log.
import t from 'tap';
import path from 'node:path';
import Database from 'better-sqlite3';
import { loadCatalogues } from '../../server/web/i18n.ts';
import { createClient, type HttpClient } from '../helpers/server.ts';
import { ADMIN, USER, cliWithInput, loginHttp, startConsoleWorld } from './lib/world.ts';

const en = loadCatalogues().en;
const nl = loadCatalogues().nl;
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
const msg = (key: string, cat = en) => esc(cat[key] as string);
const HX = { 'HX-Request': 'true' };

t.test('console over HTTP', async (t) => {
  const { srv, studyUid, sent } = await startConsoleWorld(t, { config: { console: { loginAttemptsPerUser: 3, loginAttemptsPerAddress: 100 } } });
  const db = new Database(path.join(srv.dataDir, 'uplink.sqlite'), { readonly: true });
  t.teardown(() => db.close());
  const auditRows = (action: string) => db.prepare('SELECT * FROM audit WHERE action = ? ORDER BY id').all(action) as { actor: string; ip: string; detail: string; study_uid: string }[];
  const study = `/admin/studies/${studyUid}`;
  const code = await srv.createCode();
  const ref = (db.prepare('SELECT ref FROM upload_codes').get() as { ref: string }).ref;

  t.test('uplink user: created from stdin, hash only, clear errors', async (t) => {
    const rows = db.prepare('SELECT name, role, password_hash FROM users ORDER BY name').all() as { name: string; role: string; password_hash: string }[];
    t.same(rows.map((r) => [r.name, r.role]), [['alice', 'admin'], ['bob', 'user']]);
    for (const r of rows) t.match(r.password_hash, /^\$scrypt\$ln=17,r=8,p=1\$/, `${r.name}: a scrypt hash`);
    t.notOk(JSON.stringify(db.prepare('SELECT * FROM users').all()).includes(ADMIN.password), 'no plain password');
    const cases: [string[], string, number, RegExp][] = [
      [['user', 'add', '--role', 'admin', 'carol'], 'short\n', 2, /at least 12 characters/],
      [['user', 'add', '--role', 'admin', 'ALICE'], 'a long enough password\n', 1, /already a user/],
      [['user', 'add', 'dave'], 'a long enough password\n', 2, /--role is required/],
      [['user', 'add', '--role', 'root', 'dave'], 'a long enough password\n', 2, /--role is required: "admin" or "user"/],
      [['user', 'add', '--role', 'user', 'dave'], '', 2, /no password/],
      [['user', 'disable', 'nobody'], '', 1, /no user "nobody"/],
    ];
    const [list, ...results] = await Promise.all([srv.cli(['user', 'list']), ...cases.map(([args, input]) => cliWithInput(srv.configPath, args, input))]);
    cases.forEach(([args, , exit, re], i) => {
      t.equal(results[i].code, exit, `uplink ${args.join(' ')}: exit ${exit}`);
      t.match(results[i].stderr, re);
    });
    t.equal(list.code, 0);
    t.match(list.stdout, /alice\s+admin\s+active/);
    t.match(list.stdout, /bob\s+user\s+active/);
    t.match(auditRows('user.add'), [{ actor: /^cli:/ }, { actor: /^cli:/ }]);
  });

  t.test('without a log-in: pages redirect to /login, htmx gets 401 + HX-Redirect, actions 401', async (t) => {
    const c = createClient(srv.url);
    for (const p of ['/admin', '/admin/studies?label=Uploaded', study, '/admin/codes', '/admin/audit?action=login', '/admin/audit.csv', `/admin/codes/${ref}/revoke`]) {
      const r = await c.get(p);
      t.equal(r.status, 303, `${p}: redirected`);
      t.equal(r.headers.get('location'), `/login?next=${encodeURIComponent(p)}`, `${p}: to the log-in, and back afterwards`);
      t.notMatch(r.text_, /ORIG-|UP[0-9A-Z]{14}/, 'no study data');
      const h = await c.get(p, { ...HX, 'HX-Current-URL': `${srv.url}/admin/studies?name=x` });
      t.equal(h.status, 401, `${p} (htmx): 401`);
      t.equal(h.headers.get('hx-redirect'), `/login?next=${encodeURIComponent('/admin/studies?name=x')}`, 'htmx loads the log-in page, then returns to the page');
      t.match(h.text_, msg('error.UNAUTHENTICATED'));
    }
    await c.get('/login'); // a session (and token) without a user
    for (const p of [`${study}/review`, `${study}/labels`, `${study}/originals`, '/admin/codes', `/admin/codes/${ref}/revoke`]) {
      t.equal((await c.postForm(p, { label: 'X' })).status, 401, `POST ${p}: 401`);
      const h = await c.postForm(p, { label: 'X' }, { headers: HX });
      t.equal(h.status, 401);
      t.ok(h.headers.get('hx-redirect')?.startsWith('/login?next='));
    }
    t.equal(auditRows('read-original-identifiers').length, 0, 'nothing revealed');
    t.same(db.prepare('SELECT label FROM study_labels').all(), [{ label: 'Uploaded' }], 'nothing relabelled');
  });

  t.test('log-in: one message for every failure; the session is rotated; audited', async (t) => {
    const c = createClient(srv.url);
    const page = await c.get('/login?next=%2Fadmin%2Fcodes');
    t.equal(page.status, 200);
    t.match(page.text_, /<input type="hidden" name="next" value="\/admin\/codes">/);
    t.match(page.text_, /autocomplete="current-password"/);
    const before = c.cookies.get('uplink-session');
    const tokenBefore = c.csrf;
    t.ok(before, 'a session for the form');
    const wrong = await c.postForm('/login', { name: 'alice', password: 'not the password', next: '/admin/codes' });
    t.equal(wrong.status, 401);
    t.match(wrong.text_, msg('error.LOGIN_FAILED'));
    const unknown = await c.postForm('/login', { name: 'mallory', password: 'not the password' });
    t.equal(unknown.status, 401);
    t.match(unknown.text_, msg('error.LOGIN_FAILED'), 'an unknown name: the same message');
    t.equal((await c.postForm('/login', { name: 'alice', password: ADMIN.password }, { csrf: null })).status, 403, 'CSRF token required');
    const ok = await c.postForm('/login', { name: 'alice', password: ADMIN.password, next: '/admin/codes' });
    t.equal(ok.status, 303);
    t.equal(ok.headers.get('location'), '/admin/codes', 'back where it was going');
    const after = c.cookies.get('uplink-session');
    t.not(after, before, 'a new session id at log-in');
    const old = createClient(srv.url);
    old.cookies.set('uplink-session', before!);
    t.equal((await old.get('/admin')).status, 303, 'the old id is dead');
    const codes = await c.get('/admin/codes');
    t.equal(codes.status, 200);
    t.not(c.csrf, tokenBefore, 'a new CSRF token');
    const evil = await c.postForm('/login', { name: 'alice', password: ADMIN.password, next: '//evil.example/x' });
    t.equal(evil.headers.get('location'), '/admin', 'never to another site');
    t.match(auditRows('login.failed'), [{ actor: 'alice', detail: '{"reason":"wrong-password"}' }, { actor: 'mallory', detail: '{"reason":"unknown-user"}' }]);
    t.ok(auditRows('login').length >= 2);
  });

  t.test('a source user sees studies, and gets 403 on every admin page, fragment and action', async (t) => {
    const bob = await loginHttp(srv.url, USER);
    const list = await bob.get('/admin/studies?label=Uploaded');
    t.equal(list.status, 200, 'the study list');
    t.match(list.text_, studyUid);
    const panel = await bob.get(study, HX);
    t.equal(panel.status, 200, 'the panel');
    t.match(panel.text_, /data-section="upload"/, 'with the uploaded-study information');
    t.notMatch(panel.text_, /data-section="originals"|reveal-originals|mark-reviewed|add-label|workflow-save/, 'without originals or actions');
    t.notMatch(list.text_, /href="\/admin\/(codes|audit)"/, 'no links to admin pages');
    for (const p of ['/admin/codes', '/admin/audit', '/admin/audit?action=login', '/admin/audit.csv', `/admin/codes/${ref}/revoke`]) {
      const r = await bob.get(p);
      t.equal(r.status, 403, `${p}: 403`);
      t.match(r.text_, msg('error.FORBIDDEN'));
      // (the catalogue and the language switch's return path aside)
      const body = r.text_.replace(/<script type="application\/json"[\s\S]*?<\/script>/, '').replace(/name="next" value="[^"]*"/, '');
      t.notMatch(body, new RegExp(`${ref}|login\\.failed|data-code=|data-action=`), 'none of the data');
      const h = await bob.get(p, HX);
      t.equal(h.status, 403, `${p} (htmx fragment): 403`);
      t.equal(h.headers.get('hx-retarget'), '#page-messages', 'the error fragment goes to the message area');
      t.match(h.text_, /^<div class="message message-error" data-error-code="FORBIDDEN">/);
    }
    const posts: [string, Record<string, string>][] = [
      [`${study}/labels`, { label: 'Mine' }],
      [`${study}/labels/remove`, { label: 'Uploaded' }],
      [`${study}/review`, {}],
      [`${study}/workflow`, { status: 'In review' }],
      [`${study}/originals`, {}],
      ['/admin/codes', { institution: 'test', days: '7', allowanceGb: '1', lang: 'en' }],
      [`/admin/codes/${ref}/revoke`, {}],
    ];
    for (const [p, f] of posts) {
      t.equal((await bob.postForm(p, f)).status, 403, `POST ${p}: 403`);
      t.equal((await bob.postForm(p, f, { headers: HX })).status, 403, `POST ${p} (htmx): 403`);
    }
    t.same(db.prepare('SELECT label FROM study_labels').all(), [{ label: 'Uploaded' }], 'labels unchanged');
    t.equal((db.prepare('SELECT workflow_status AS s FROM studies').get() as { s: string }).s, 'Finalized', 'status unchanged');
    t.equal(auditRows('read-original-identifiers').length, 0, 'no originals read');
    t.equal((db.prepare('SELECT COUNT(*) AS n FROM upload_codes').get() as { n: number }).n, 1, 'no code created');
    t.equal((db.prepare('SELECT revoked_at FROM upload_codes').get() as { revoked_at: string | null }).revoked_at, null, 'none revoked');
  });

  t.test('an admin: pages, fragments and actions; CSRF on each action; no-store, CSP, no inline script', async (t) => {
    const alice = await loginHttp(srv.url, ADMIN);
    for (const p of ['/admin', '/admin/studies?label=Uploaded&sort=patient', study, '/admin/codes', '/admin/audit', `/admin/codes/${ref}/revoke`]) {
      const r = await alice.get(p);
      t.equal(r.status, 200, `${p}: 200`);
      t.equal(r.headers.get('cache-control'), 'no-store', `${p}: no-store`);
      t.match(r.headers.get('vary') ?? '', /HX-Request/);
      t.match(r.headers.get('content-security-policy') ?? '', /script-src 'self'(;|$)/);
      for (const [, attrs, body] of r.text_.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)) {
        const data = /type="application\/json"/.test(attrs);
        t.ok(/\bsrc="\/static\//.test(attrs) || data, `${p}: <script${attrs}> is external or data`);
        if (!data) t.equal(body.trim(), '');
      }
      t.notMatch(r.text_, /<style\b|\sstyle="|\son[a-z]+="|javascript:/i, `${p}: no inline style, handler or javascript: URL`);
      const h = await alice.get(p, HX);
      t.equal(h.status, 200, `${p} (htmx): 200`);
      t.notMatch(h.text_, /<html|<head/, `${p} (htmx): a fragment`);
    }
    const list = await alice.get('/admin/studies?label=Uploaded', HX);
    t.match(list.text_, /^<div id="study-list"/, 'the list fragment owns #study-list');
    t.match(list.text_, new RegExp(`data-study="${studyUid.replace(/\./g, '\\.')}"`));
    t.notMatch(list.text_, /ORIG-PAT-7|ORIG-ACC-7/, 'stored identifiers only');
    t.match(list.text_, /<code>UP[0-9A-Z]{14}<\/code>/, 'the stored (pseudonym) Patient ID');
    t.match((await alice.get('/admin/studies?label=Uploaded-Reviewed', HX)).text_, msg('console.studies.noneFiltered'));

    t.equal((await alice.postForm(`${study}/review`, {}, { csrf: null })).status, 403, 'no token: 403');
    t.equal((await alice.postForm(`${study}/review`, {}, { csrf: 'x'.repeat(43) })).status, 403, 'wrong token: 403');
    t.same(db.prepare('SELECT label FROM study_labels').all(), [{ label: 'Uploaded' }], 'unchanged');
    const review = await alice.postForm(`${study}/review`, {}, { headers: HX });
    t.equal(review.status, 200);
    t.equal(review.headers.get('hx-trigger'), 'studies-changed', 'the list is told to reload');
    t.match(review.text_, msg('console.labels.reviewedDone'));
    t.same(db.prepare('SELECT label FROM study_labels').all(), [{ label: 'Uploaded-Reviewed' }]);
    const plain = await alice.postForm(`${study}/labels`, { label: 'Second opinion' });
    t.equal(plain.status, 303, 'without htmx: back to the study page');
    t.equal(plain.headers.get('location'), study);
    t.equal((await alice.postForm(`${study}/labels`, { label: 'bad\\label' }, { headers: HX })).status, 400, 'an invalid label: 400');
    t.equal((await alice.postForm('/admin/studies/1.2.3.404/review', {}, { headers: HX })).status, 404, 'an unknown study: 404');
    t.equal(auditRows('read-original-identifiers').length, 0);
    const revealed = await alice.postForm(`${study}/originals`, {}, { headers: HX });
    t.match(revealed.text_, /^<section class="panel-section originals"/);
    t.match(revealed.text_, /<code class="original-patient-id">ORIG-PAT-7<\/code>/, 'the original Patient ID');
    t.match(revealed.text_, /<code class="original-accession">ORIG-ACC-7<\/code>/, 'the original Accession Number');
    t.match(auditRows('read-original-identifiers'), [{ actor: 'alice', study_uid: studyUid, ip: '127.0.0.1' }], 'the view is audited');
    t.equal((await alice.postForm('/admin/studies/1.2.3.404/originals', {}, { headers: HX })).status, 404);
    t.equal(auditRows('read-original-identifiers').length, 1, 'an unknown study: nothing read, nothing audited');
    void sent;
    void code;
  });

  t.test('wrong passwords are throttled per user name, with the wait in words', async (t) => {
    const c = createClient(srv.url);
    await c.get('/login');
    for (let i = 0; i < 3; i++) t.equal((await c.postForm('/login', { name: 'bob', password: `guess ${i} guess ${i}` })).status, 401, `failure ${i + 1}`);
    const blocked = await c.postForm('/login', { name: 'bob', password: USER.password });
    t.equal(blocked.status, 429, 'the right password now waits too');
    t.match(blocked.text_, /Too many failed log-in attempts\. Wait 15 minutes and try again\./);
    t.ok(Number(blocked.headers.get('retry-after')) > 800, 'Retry-After');
    t.notOk(c.cookies.get('uplink-session') && (await c.get('/admin')).status === 200, 'not logged in');
    const other = await loginHttp(srv.url, ADMIN);
    t.equal((await other.get('/admin')).status, 200, 'other users are not affected');
    const nlClient = createClient(srv.url);
    await nlClient.get('/login', { 'Accept-Language': 'nl' });
    const nlBlocked = await nlClient.postForm('/login', { name: 'BOB', password: 'x' }, { headers: { 'Accept-Language': 'nl' } });
    t.equal(nlBlocked.status, 429, 'the name in any case');
    t.match(nlBlocked.text_, /Te veel mislukte inlogpogingen/);
    t.equal(auditRows('login.failed').filter((r) => r.actor === 'bob').length, 3);
    t.match(auditRows('login.throttled'), [{ actor: 'bob' }], 'one entry for the blocked spell');
  });

  t.test('log-out; a disabled user is logged out at once', async (t) => {
    const alice = await loginHttp(srv.url, ADMIN);
    const out = await alice.postForm('/logout', {});
    t.equal(out.status, 303);
    t.equal(out.headers.get('location'), '/login?out=1');
    t.equal((await alice.get('/admin')).status, 303, 'logged out');
    t.match((await alice.get('/login?out=1')).text_, msg('console.login.loggedOut'));
    t.ok(auditRows('logout').length >= 1);

    const carolPw = 'carol has a long password';
    t.equal((await cliWithInput(srv.configPath, ['user', 'add', '--role', 'admin', 'carol'], `${carolPw}\n`)).code, 0);
    const carol = await loginHttp(srv.url, { name: 'carol', password: carolPw });
    t.equal((await carol.get('/admin/audit')).status, 200);
    const dis = await srv.cli(['user', 'disable', 'carol']);
    t.equal(dis.code, 0, dis.stderr);
    t.match(dis.stdout, /sessions have ended/);
    t.equal((await carol.get('/admin/audit')).status, 303, 'the session ended');
    const again = createClient(srv.url);
    await again.get('/login');
    t.equal((await again.postForm('/login', { name: 'carol', password: carolPw })).status, 401, 'and cannot log in');
    t.match(auditRows('login.failed').pop(), { actor: 'carol', detail: '{"reason":"disabled"}' });
  });

  t.test('Dutch', async (t) => {
    const c = createClient(srv.url);
    const r = await c.get('/login', { 'Accept-Language': 'nl-NL,nl;q=0.9' });
    t.match(r.text_, `<h1>${msg('console.login.heading', nl)}</h1>`);
    t.match(r.text_, `>${msg('console.login.password', nl)}</label>`);
  });

  t.test('the server log holds no patient data, filter values or passwords', async (t) => {
    const alice: HttpClient = await loginHttp(srv.url, ADMIN);
    await alice.get('/admin/studies?name=SECRETNAME&pid=SECRETPID', HX);
    await alice.get('/admin/audit?user=SECRETUSER');
    const out = srv.output();
    t.match(out, /"path":"\/admin\/studies"/, 'requests are logged, by path');
    t.notMatch(out, /SECRETNAME|SECRETPID|SECRETUSER/, 'no query strings');
    t.notMatch(out, /ORIG-PAT|ORIG-ACC|CompressedSamples/, 'no patient identifiers or names');
    t.notOk(out.includes(ADMIN.password) || out.includes(USER.password) || out.includes('guess 0'), 'no passwords');
    t.notOk(out.includes(code), 'no upload code');
  });
});
