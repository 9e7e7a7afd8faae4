// The portal over HTTP against the real server (child process, `npm start`'s server/main.ts): security headers
// and CSP, session cookie flags, CSRF on every state change, the code only ever in a POST body, distinct
// messages for mistyped / unknown / expired / revoked codes (English and Dutch), the rate limit per address
// and globally, the selection summary, htmx error fragments, static files, and no code in logs or audit.
import t from 'tap';
import path from 'node:path';
import Database from 'better-sqlite3';
import { createAuditLog } from '../../appliance/audit/audit-log.ts';
import { createUploadCodes } from '../../appliance/codes/upload-codes.ts';
import { loadCatalogues } from '../../server/web/i18n.ts';
import { createClient, startServer, TEST_INSTITUTION, type HttpClient } from '../helpers/server.ts';

const en = loadCatalogues().en;
const nl = loadCatalogues().nl;
const msg = (key: string, cat = en) => cat[key] as string;
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

async function enter(c: HttpClient, code: string, headers: Record<string, string> = {}) {
  if (!c.csrf) await c.get('/', headers);
  return c.postForm('/', { code }, { headers });
}

t.test('portal over HTTP', async (t) => {
  const srv = await startServer(t);
  const code = await srv.createCode({ birthDate: '19700101' });

  t.test('security headers on pages, static files, errors and health', async (t) => {
    for (const p of ['/', '/manual', '/privacy', '/nowhere', '/static/build/app.js', '/static/css/uplink.css', '/healthz']) {
      const r = await fetch(srv.url + p);
      const csp = r.headers.get('content-security-policy') ?? '';
      t.match(csp, /script-src 'self'(;|$)/, `${p}: scripts from our origin only`);
      t.notMatch(csp, /unsafe-inline|unsafe-eval/, `${p}: no unsafe-inline / unsafe-eval`);
      t.match(csp, /frame-ancestors 'none'/);
      t.match(csp, /object-src 'none'/);
      t.equal(r.headers.get('x-content-type-options'), 'nosniff');
      t.equal(r.headers.get('referrer-policy'), 'no-referrer');
      if (!p.startsWith('/static/')) t.equal(r.headers.get('cache-control'), 'no-store', `${p}: no-store`);
    }
    const page = await fetch(`${srv.url}/`);
    t.match(page.headers.get('vary') ?? '', /HX-Request/);
  });

  t.test('pages carry no inline script, style or event handler', async (t) => {
    const c = createClient(srv.url);
    await enter(c, code);
    for (const p of ['/', '/upload', '/manual', '/privacy', '/nowhere']) {
      const html = (await c.get(p)).text_;
      const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
      t.ok(scripts.length >= 2, `${p}: has scripts`);
      for (const [, attrs, body] of scripts) {
        const data = /type="application\/json"/.test(attrs);
        t.ok(/\bsrc="\/static\//.test(attrs) || data, `${p}: <script${attrs}> is external or a JSON data block`);
        if (!data) t.equal(body.trim(), '', `${p}: external script has no inline body`);
      }
      t.notMatch(html, /<style\b/i, `${p}: no <style>`);
      t.notMatch(html, /\sstyle="/i, `${p}: no style attribute`);
      t.notMatch(html, /\son[a-z]+="/i, `${p}: no inline event handler`);
      t.notMatch(html, /javascript:/i, `${p}: no javascript: URL`);
    }
  });

  t.test('session cookie flags; CSRF required; the code only in the POST body', async (t) => {
    const c = createClient(srv.url);
    const first = await c.get('/');
    const setCookie = first.headers.getSetCookie().find((x) => x.startsWith('uplink-session='))!;
    t.ok(setCookie, 'a session cookie for the form');
    t.match(setCookie, /; HttpOnly/);
    t.match(setCookie, /; SameSite=Strict/);
    t.notMatch(setCookie, /Secure/, 'not Secure without http.secureCookies');
    t.match(first.text_, new RegExp(`<label for="code">${esc(msg('portal.code.label'))}</label>`), 'a field labelled "Upload code"');
    t.match(first.text_, /<button type="submit" id="code-continue">Continue<\/button>/);
    const before = c.cookies.get('uplink-session');

    const noToken = await c.postForm('/', { code }, { csrf: null });
    t.equal(noToken.status, 403, 'no CSRF token: 403');
    t.match(noToken.text_, esc(msg('error.CSRF')));
    t.equal((await c.postForm('/', { code }, { csrf: 'x'.repeat(43) })).status, 403, 'wrong token: 403');
    t.equal((await c.postForm('/', { code }, { headers: { 'sec-fetch-site': 'cross-site' } })).status, 403, 'cross-site: 403');

    const ok = await c.postForm('/', { code });
    t.equal(ok.status, 303);
    t.equal(ok.headers.get('location'), '/upload');
    const after = c.cookies.get('uplink-session');
    t.ok(after && after !== before, 'the session id is rotated when the code is entered');
    const up = await c.get('/upload');
    t.equal(up.status, 200);
    t.equal(up.headers.get('cache-control'), 'no-store');
    for (const s of [TEST_INSTITUTION.name, TEST_INSTITUTION.phone, TEST_INSTITUTION.email]) t.ok(up.text_.includes(esc(s)), `header shows ${s}`);
    t.ok(up.text_.includes(`href="${TEST_INSTITUTION.manualUrl}"`), 'header links the manual');
    for (const s of ['Select images or ZIP file', 'Select a folder', 'Drag and drop images', 'START UPLOAD']) t.match(up.text_, s);
    t.match(up.text_, /data-birth-date="19700101"/, 'the expected birth date is there for the in-browser check');
    t.notOk(up.text_.includes(code) || up.text_.includes(code.replace(/-/g, '')), 'the page does not show the code');

    // The old (pre-rotation) id is dead.
    const stale = createClient(srv.url);
    stale.cookies.set('uplink-session', before!);
    t.equal((await stale.get('/upload')).status, 303);
  });

  t.test('/upload without a code goes to the start page', async (t) => {
    const r = await fetch(`${srv.url}/upload`, { redirect: 'manual' });
    t.equal(r.status, 303);
    t.equal(r.headers.get('location'), '/');
  });

  t.test('mistyped, unknown and revoked codes: distinct messages, English and Dutch', async (t) => {
    const flat = code.replace(/-/g, '');
    const i = [...Array(15).keys()].find((k) => flat[k] !== flat[k + 1])!;
    const swapped = flat.slice(0, i) + flat[i + 1] + flat[i] + flat.slice(i + 2);
    const revoked = await srv.createCode();
    t.equal((await srv.cli(['code', 'revoke', revoked])).code, 0);
    const unknown = (await import('../../appliance/codes/code-format.ts')).generateCode();
    const cases: [string, number, string][] = [
      [swapped, 400, 'error.CODE_MISTYPED'],
      ['ABC', 400, 'error.CODE_MISTYPED'],
      [unknown, 403, 'error.CODE_UNKNOWN'],
      [revoked, 410, 'error.CODE_REVOKED'],
    ];
    const texts = new Set<string>();
    for (const [typed, status, key] of cases) {
      for (const [lang, cat] of [['en', en], ['nl', nl]] as const) {
        const c = createClient(srv.url);
        const r = await enter(c, typed, { 'accept-language': lang === 'nl' ? 'nl-NL,nl;q=0.9,en;q=0.5' : 'en-GB' });
        t.equal(r.status, status, `${key} (${lang}): ${status}`);
        t.match(r.text_, new RegExp(`role="alert" data-error-code="${key.slice(6)}">${esc(msg(key, cat)).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}<`), `${key} in ${lang}`);
        t.match(r.text_, /aria-invalid="true"/);
        texts.add(msg(key, cat));
      }
    }
    t.equal(texts.size, 6, 'three different messages in two languages');
  });

  t.test('a revoked code ends the portal session', async (t) => {
    const c = createClient(srv.url);
    const other = await srv.createCode();
    t.equal((await enter(c, other)).status, 303);
    t.equal((await c.get('/upload')).status, 200);
    await srv.cli(['code', 'revoke', other]);
    const r = await c.get('/upload');
    t.equal(r.status, 303, 'the CLI ended the session: back to the start page');
  });

  t.test('language: Accept-Language, then the switch (a cookie), open redirects refused', async (t) => {
    const c = createClient(srv.url);
    const nlPage = await c.get('/', { 'accept-language': 'nl' });
    t.match(nlPage.text_, /<html lang="nl">/);
    t.match(nlPage.text_, `<label for="code">${msg('portal.code.label', nl)}</label>`);
    const sw = await c.postForm('/lang', { lang: 'en', next: '/manual' }, { headers: { 'accept-language': 'nl' } });
    t.equal(sw.status, 303);
    t.equal(sw.headers.get('location'), '/manual');
    t.equal(c.cookies.get('uplink-lang'), 'en');
    t.match((await c.get('/', { 'accept-language': 'nl' })).text_, /<html lang="en">/, 'the choice beats Accept-Language');
    const evil = await c.postForm('/lang', { lang: 'nl', next: '//evil.example/x' });
    t.equal(evil.headers.get('location'), '/');
    t.equal((await c.postForm('/lang', { lang: 'xx', next: '/' })).status, 400);
    t.equal((await c.postForm('/lang', { lang: 'nl', next: '/' }, { csrf: null })).status, 403, 'the switch needs the CSRF token too');
  });

  t.test('htmx requests get error fragments in the page language', async (t) => {
    const r = await fetch(`${srv.url}/nowhere`, { headers: { 'hx-request': 'true', 'accept-language': 'nl' } });
    t.equal(r.status, 404);
    t.equal(r.headers.get('hx-retarget'), '#page-messages');
    t.match(r.headers.get('vary') ?? '', /HX-Request/);
    const body = await r.text();
    t.notMatch(body, /<html/, 'a fragment, not a page');
    t.match(body, msg('error.NOT_FOUND', nl));
  });

  t.test('START UPLOAD (for now): the selection summary, CSRF and allowance checked', async (t) => {
    const c = createClient(srv.url);
    const small = await srv.createCode({ maxBytes: '1MB' });
    await enter(c, small);
    await c.get('/upload');
    const body = { studies: [{ studyUid: '1.2.3.4', files: 3, bytes: 300_000, comment: 'Left knee' }], email: 'pat@example.org', phone: '' };
    t.equal((await c.postJson('/upload/selection', body, { csrf: null })).status, 403, 'no CSRF header: 403');
    const ok = await c.postJson('/upload/selection', body);
    t.equal(ok.status, 200, ok.text_);
    const j = JSON.parse(ok.text_);
    t.match(j, { ok: true, reference: /^P-\d{6}$/, studies: 1, files: 3, bytes: 300_000 });
    const over = await c.postJson('/upload/selection', { ...body, studies: [{ ...body.studies[0], bytes: 2_000_000 }] });
    t.equal(over.status, 413);
    t.match(JSON.parse(over.text_), { error: 'ALLOWANCE_EXCEEDED' });
    t.equal((await c.postJson('/upload/selection', { studies: [] })).status, 400);
    t.equal((await c.postJson('/upload/selection', { ...body, email: 'not an address' })).status, 400);
    const anon = createClient(srv.url);
    await anon.get('/');
    const noCode = await anon.postJson('/upload/selection', body);
    t.equal(noCode.status, 401);
    t.match(JSON.parse(noCode.text_), { error: 'SESSION_EXPIRED', message: msg('error.SESSION_EXPIRED') });

    const db = new Database(path.join(srv.dataDir, 'uplink.sqlite'), { readonly: true });
    t.teardown(() => db.close());
    const row = db.prepare('SELECT * FROM portal_submissions').get() as Record<string, unknown>;
    t.match(row, { total_files: 3, total_bytes: 300_000, contact_email: 'pat@example.org', contact_phone: null });
    t.same(JSON.parse(row.studies as string), body.studies);
    const consent = createAuditLog(db as never).list({ action: 'upload.consent' });
    t.equal(consent.length, 1);
    t.equal(consent[0].study_uid, '1.2.3.4');
  });

  t.test('static files: types, revalidation, nothing outside views/static', async (t) => {
    const js = await fetch(`${srv.url}/static/build/app.js`);
    t.equal(js.status, 200);
    t.match(js.headers.get('content-type'), /text\/javascript/);
    t.equal(js.headers.get('cache-control'), 'no-cache');
    const etag = js.headers.get('etag')!;
    t.equal((await fetch(`${srv.url}/static/build/app.js`, { headers: { 'if-none-match': etag } })).status, 304);
    t.equal((await fetch(`${srv.url}/static/build/htmx.min.js`)).status, 200, 'htmx copied in by the build');
    t.equal((await fetch(`${srv.url}/static/build/header-worker.js`)).status, 200);
    for (const p of ['/static/../package.json', '/static/%2e%2e/server/app.ts', '/static/build/.stamp', '/static/..%2fpackage.json']) {
      const r = await fetch(srv.url + p);
      t.equal(r.status, 404, `${p}: 404`);
    }
  });

  t.test('no code in the logs or the audit trail; the audit trail has the story', async (t) => {
    const db = new Database(path.join(srv.dataDir, 'uplink.sqlite'), { readonly: true });
    t.teardown(() => db.close());
    const rows = db.prepare('SELECT * FROM audit').all() as { action: string }[];
    const actions = new Set(rows.map((r) => r.action));
    for (const a of ['code.create', 'code.revoke', 'code.enter', 'code.enter-failed', 'upload.consent']) t.ok(actions.has(a), `audit has ${a}`);
    const flat = code.replace(/-/g, '');
    const text = JSON.stringify(rows) + srv.output();
    t.notOk(text.includes(flat) || text.includes(code) || text.includes(flat.toLowerCase()), 'the code is nowhere in the audit trail or the log');
    t.match(srv.output(), /"path":"\/upload"/, 'requests are logged');
  });
});

t.test('expired code (made with a clock in the past, in-process server)', async (t) => {
  const srv = await startServer(t, { mode: 'in-process' });
  const db = srv.appliance!.db;
  const old = createUploadCodes({ db, audit: createAuditLog(db), config: srv.config, now: () => new Date(Date.now() - 20 * 86_400_000) }).create({
    institutionId: 'test',
    expiresAt: new Date(Date.now() - 19 * 86_400_000),
    by: { kind: 'system', name: 'test' },
  });
  for (const [lang, cat] of [['en', en], ['nl', nl]] as const) {
    const c = createClient(srv.url);
    const r = await enter(c, old.code, { 'accept-language': lang });
    t.equal(r.status, 410);
    t.match(r.text_, esc(msg('error.CODE_EXPIRED', cat)));
  }
  t.not(msg('error.CODE_EXPIRED'), msg('error.CODE_REVOKED'));
});

t.test('rate limit per address and globally (addresses from X-Forwarded-For behind a trusted proxy)', async (t) => {
  const srv = await startServer(t, { config: { http: { trustProxy: true }, portal: { codeAttemptsPerAddress: 2, codeAttemptsGlobal: 5 } } });
  const good = await srv.createCode();
  const { generateCode } = await import('../../appliance/codes/code-format.ts');
  const from = (ip: string) => ({ 'x-forwarded-for': ip });
  const c = createClient(srv.url);
  t.equal((await enter(c, generateCode(), from('192.0.2.1'))).status, 403);
  t.equal((await enter(c, 'WRONG', from('192.0.2.1'))).status, 400);
  const limited = await enter(c, generateCode(), from('192.0.2.1'));
  t.equal(limited.status, 429, 'third wrong code from 192.0.2.1: 429');
  t.match(limited.text_, esc(msg('error.RATE_LIMITED')));
  t.ok(limited.headers.get('retry-after'));
  t.equal((await enter(createClient(srv.url), good, from('192.0.2.1'))).status, 429, 'the right code from that address waits too');
  t.equal((await enter(createClient(srv.url), good, from('192.0.2.2'))).status, 303, 'another address is served');
  t.equal((await enter(createClient(srv.url), generateCode(), from('192.0.2.3'))).status, 403);
  t.equal((await enter(createClient(srv.url), generateCode(), from('192.0.2.3'))).status, 403);
  t.equal((await enter(createClient(srv.url), generateCode(), from('192.0.2.4'))).status, 403);
  // 2 + 2 + 1 = 5 wrong codes in the window: the global limit.
  t.equal((await enter(createClient(srv.url), good, from('198.51.100.9'))).status, 429, 'global limit: a fresh address waits too');
});

t.test('secure cookies: __Host- prefix and Secure', async (t) => {
  const srv = await startServer(t, { mode: 'in-process', config: { http: { secureCookies: true } } });
  const r = await fetch(`${srv.url}/`);
  const c = r.headers.getSetCookie().find((x) => x.startsWith('__Host-uplink-session='));
  t.ok(c, '__Host-uplink-session');
  t.match(c!, /; Secure/);
  t.match(c!, /; HttpOnly/);
  t.match(c!, /; SameSite=Strict/);
  t.match(c!, /; Path=\//);
});
