// The console end to end in headless Chromium against the real appliance (server/main.ts as a child process):
// the first admin made with the real CLI (password on stdin) logs in (after a wrong password); a study sent by a
// DICOM node with the "upload" policy (DCMTK dcmsend through the real ingest: anonymised, labelled 'Uploaded') is
// found with the 'Uploaded' label filter (htmx, no page reload), its panel opened from the keyboard, its original
// identifiers revealed (audited), and it is relabelled 'Uploaded-Reviewed' in one click (the list refreshes itself);
// an upload code is created (the handout, printed), shown to work at the portal, and revoked; a source user gets
// 403; an expired session sends htmx to the log-in page; the audit trail lists it all and its CSV export downloads
// and parses (formula-safe); a narrow window needs no sideways scrolling; no CSP violation or script error.
import t from 'tap';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { parseCode } from '../../appliance/codes/code-format.ts';
import { parseCsv } from '../../server/console/csv.ts';
import { launchBrowser, openPage } from '../helpers/browser.ts';
import { createClient, TEST_INSTITUTION } from '../helpers/server.ts';
import { ADMIN, USER, startConsoleWorld } from './lib/world.ts';

t.test('the console in a browser', async (t) => {
  const { srv, studyUid, pacs } = await startConsoleWorld(t, { pacs: true });
  const browser = await launchBrowser(t);
  // The browser reports refused requests (wrong password 401, a source user's 403) on the console: expected here.
  const allowConsoleErrors = /Failed to load resource: the server responded with a status of 40[13]/;
  const { page, context, problems } = await openPage(t, browser, { allowConsoleErrors });
  const db = new Database(path.join(srv.dataDir, 'uplink.sqlite'), { readonly: true });
  t.teardown(() => db.close());
  const actions = () => (db.prepare('SELECT action FROM audit ORDER BY id').all() as { action: string }[]).map((r) => r.action);

  // ---- log in (a wrong password first)
  await page.goto(`${srv.url}/admin/studies`);
  t.match(page.url(), /\/login\?next=%2Fadmin%2Fstudies$/, 'no log-in: sent to the log-in page');
  await page.fill('#login-name', ADMIN.name);
  await page.fill('#login-password', 'not my password at all');
  await page.click('#login-submit');
  t.equal(await page.textContent('#login-error'), 'The user name or password is wrong.');
  t.equal(await page.inputValue('#login-name'), ADMIN.name, 'the name is kept');
  t.equal(await page.evaluate('document.activeElement && document.activeElement.id'), 'login-password', 'focus on the password');
  await page.fill('#login-password', ADMIN.password);
  await Promise.all([page.waitForURL(`${srv.url}/admin/studies`), page.press('#login-password', 'Enter')]);
  t.match(await page.textContent('.console-user-name'), 'Logged in as alice (source admin)');

  // ---- find the study with the 'Uploaded' label filter, without reloading the page
  await page.evaluate('window.marker = 42');
  await Promise.all([page.waitForResponse((r) => r.url().includes('/admin/studies?') && r.request().headers()['hx-request'] === 'true'), page.selectOption('#f-label', 'Uploaded')]);
  await page.waitForSelector('#study-count:has-text("1 study.")');
  t.equal(await page.evaluate('window.marker'), 42, 'the same page: updated by htmx, not reloaded');
  const rows = page.locator('tr[data-study]');
  t.equal(await rows.count(), 1);
  t.equal(await rows.first().getAttribute('data-study'), studyUid);
  const storedPid = (await rows.first().locator('code').first().textContent())!;
  t.match(storedPid, /^UP[0-9A-Z]{14}$/, 'the stored (anonymised) Patient ID in the list');

  // ---- forwarding to the PACS (the upload policy forwards to dicom.pacs): wait until it is done, then filter on it
  const doneJobs = () => (db.prepare("SELECT COUNT(*) AS n FROM forward_jobs WHERE state = 'done'").get() as { n: number }).n;
  for (const deadline = Date.now() + 30_000; doneJobs() < 2; ) {
    if (Date.now() > deadline) throw new Error(`forwarding did not finish:\n${srv.output().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(pacs!.files().length, 2, 'the PACS has both images');
  await page.selectOption('#f-fwd', 'failed');
  await page.waitForSelector('#study-count:has-text("No studies.")');
  await page.selectOption('#f-fwd', 'done');
  await page.waitForSelector('#study-count:has-text("1 study.")');
  t.pass('the forwarding filter: done finds it, failed does not');

  // ---- open the panel from the keyboard
  await rows.first().locator('a.open-study').focus();
  await page.keyboard.press('Enter');
  await page.waitForSelector('#study-panel article.study-panel');
  await page.waitForFunction("document.activeElement && document.activeElement.id === 'panel-heading'");
  t.pass('focus moved to the panel heading');
  t.equal(await page.textContent('#stored-patient-id'), storedPid, 'the panel shows the stored Patient ID');
  t.match(await page.textContent('#panel-upload'), /Uploaded study information[\s\S]*DICOM node PARTNER/, 'the uploaded-study box: sent by the node');
  t.match(await page.textContent('#panel-upload'), /AE title PARTNER at 127\.0\.0\.1: 2 images/);
  t.match(await page.textContent('#scan-result'), /not scanned: the intake policy of this origin does not scan/);
  t.equal(await page.textContent('[data-section="series"] tbody td.num'), '2', 'the series with its image count');
  t.match(await page.textContent('[data-section="forwarding"]'), /PACS: done – 2 of 2 images sent, 0 failed/, 'forwarding per destination');
  t.same(await page.locator('#study-labels .label-chip > span').allTextContents(), ['Uploaded']);
  t.notMatch(await page.content(), /ORIG-PAT-7|ORIG-ACC-7/, 'no original identifier before it is asked for');

  // ---- reveal the originals (audited)
  await page.click('#reveal-originals');
  await page.waitForSelector('#original-identifiers');
  t.equal(await page.textContent('.original-patient-id'), 'ORIG-PAT-7');
  t.equal(await page.textContent('.original-accession'), 'ORIG-ACC-7');
  t.match(await page.textContent('#originals-audited'), /recorded in the audit trail/);
  const read = db.prepare("SELECT actor, study_uid FROM audit WHERE action = 'read-original-identifiers'").all();
  t.same(read, [{ actor: 'alice', study_uid: studyUid }], 'the view is in the audit trail');

  // ---- Mark reviewed: one click; the list (filtered on 'Uploaded') refreshes itself
  await page.click('#mark-reviewed');
  await page.waitForSelector('#panel-notice:has-text("Marked as reviewed.")');
  t.same(await page.locator('#study-labels .label-chip > span').allTextContents(), ['Uploaded-Reviewed']);
  await page.waitForSelector('#study-count:has-text("No studies.")');
  t.pass("the 'Uploaded' list no longer shows it");
  await page.selectOption('#f-label', 'Uploaded-Reviewed');
  await page.waitForSelector('#study-count:has-text("1 study.")');
  await page.selectOption('#f-fwd', '');
  await page.waitForSelector('#study-count:has-text("1 study.")');
  t.same(await page.locator('tr[data-study] .label-chip').allTextContents(), ['Uploaded-Reviewed']);
  t.same(db.prepare("SELECT detail FROM audit WHERE action = 'label.review'").all(), [{ detail: JSON.stringify({ removed: ['Uploaded'], added: ['Uploaded-Reviewed'] }) }], 'one audit entry');
  await page.click('[data-close-panel]');
  t.equal(await page.locator('#study-panel').innerHTML(), '', 'closed');
  t.equal(await page.evaluate('document.activeElement && document.activeElement.className'), 'open-study', 'focus back on the row');

  // ---- a narrow window: no sideways scrolling of the page
  await page.setViewportSize({ width: 360, height: 780 });
  await page.reload();
  t.ok(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth + 1'), 'the page fits 360 px (tables scroll inside their box)');
  await page.setViewportSize({ width: 1100, height: 900 });

  // ---- upload codes: create (handout in Dutch), print, use, revoke
  await page.click('.console-nav a[href="/admin/codes"]');
  await page.waitForURL(`${srv.url}/admin/codes`);
  await page.selectOption('#c-days', '7');
  await page.fill('#c-allowance', '2.5');
  await page.selectOption('#c-lang', 'nl');
  await page.click('#code-create-submit');
  await page.waitForSelector('#handout-code');
  const code = (await page.textContent('#handout-code'))!.trim();
  t.ok(parseCode(code).ok, `a code is shown: ${code}`);
  t.match(await page.textContent('#handout'), /Uw beelden naar het ziekenhuis sturen/, 'the handout in Dutch');
  t.equal(await page.textContent('.handout-institution'), TEST_INSTITUTION.name);
  t.equal(await page.textContent('#handout-portal'), srv.config.http.publicUrl, 'the portal address');
  t.equal(await page.textContent('#handout-phone'), TEST_INSTITUTION.phone);
  t.equal(await page.textContent('#handout-email'), TEST_INSTITUTION.email);
  t.equal(await page.textContent('#handout-manual'), `${srv.config.http.publicUrl}/manual`, 'the manual as a full address');
  t.match(await page.textContent('h1'), /Upload code C[0-9A-Z]{6} created/, 'the page around it in English');
  await page.evaluate('window.printed = 0; window.print = () => { window.printed += 1; }');
  await page.click('#print-handout');
  t.equal(await page.evaluate('window.printed'), 1, 'Print opens the print dialog');
  await page.emulateMedia({ media: 'print' });
  t.notOk(await page.isVisible('.site-header'), 'printed: no header');
  t.notOk(await page.isVisible('#print-handout'), 'printed: no buttons');
  t.ok(await page.isVisible('#handout-code'), 'printed: the handout');
  await page.emulateMedia({ media: 'screen' });
  const ref = /C[0-9A-Z]{6}/.exec((await page.textContent('h1'))!)![0];
  t.notOk(JSON.stringify(db.prepare('SELECT * FROM upload_codes').all()).includes(code.replace(/-/g, '')), 'only its hash is kept');

  const portal = createClient(srv.url);
  await portal.get('/');
  const entered = await portal.postForm('/', { code });
  t.equal(entered.status, 303, 'the handout code works at the portal');
  t.equal(entered.headers.get('location'), '/upload');

  await page.click('#back-to-codes');
  await page.waitForSelector(`tr[data-code="${ref}"]`);
  const row = page.locator(`tr[data-code="${ref}"]`);
  t.equal(await row.locator('[data-status]').getAttribute('data-status'), 'in-use');
  t.match(await row.textContent(), /0 B of 2\.5 GB/, 'bytes used of the allowance');
  await row.locator('a.revoke-link').click();
  await page.waitForSelector(`#revoke-confirm-${ref}`);
  t.equal(await page.evaluate('document.activeElement && document.activeElement.id'), `revoke-confirm-${ref}`, 'focus on the confirmation');
  await page.click(`#revoke-confirm-${ref}`);
  await page.waitForSelector('#codes-notice');
  t.equal(await page.locator(`tr[data-code="${ref}"] [data-status]`).getAttribute('data-status'), 'revoked');
  t.equal((await portal.get('/upload')).status, 303, "the code's portal session ended");

  // ---- an expired session: the next htmx request goes to the log-in page
  const cookies = await context.cookies();
  await context.clearCookies();
  await page.goto(`${srv.url}/admin/studies`).catch(() => undefined);
  t.match(page.url(), /\/login\?next=/, 'a page request: the log-in page');
  await context.addCookies(cookies);
  await page.goto(`${srv.url}/admin/studies`);
  await context.clearCookies();
  await Promise.all([page.waitForURL(/\/login\?next=%2Fadmin%2Fstudies/), page.selectOption('#f-origin', 'node')]);
  t.pass('an htmx request without a session: HX-Redirect to the log-in page');
  await context.addCookies(cookies);

  // ---- a source user: 403 on admin pages
  const bob = await openPage(t, browser, { allowConsoleErrors });
  await bob.page.goto(`${srv.url}/login`);
  await bob.page.fill('#login-name', USER.name);
  await bob.page.fill('#login-password', USER.password);
  await Promise.all([bob.page.waitForURL(`${srv.url}/admin`), bob.page.click('#login-submit')]);
  t.same(await bob.page.evaluate(`[...document.querySelectorAll('.console-nav a[href^="/admin"]')].map((a) => a.getAttribute('href'))`), ['/admin/studies'], 'of the console pages, only the studies');
  const forbidden = await bob.page.goto(`${srv.url}/admin/audit`);
  t.equal(forbidden?.status(), 403);
  t.match(await bob.page.textContent('main'), /You are not allowed to do this\./);
  const fragment = (await bob.page.evaluate("fetch('/admin/codes', { headers: { 'HX-Request': 'true' } }).then(async (r) => ({ status: r.status, text: await r.text() }))")) as { status: number; text: string };
  t.equal(fragment.status, 403, 'and on their fragments');
  t.notMatch(fragment.text, /data-code=/);
  t.same(bob.problems, []);

  // ---- a formula-looking user name in the trail, then the audit trail and its CSV
  const evil = createClient(srv.url);
  await evil.get('/login');
  await evil.postForm('/login', { name: '=HYPERLINK("http://x","y")', password: 'whatever password' });
  await page.goto(`${srv.url}/admin/audit`);
  const listed = new Set((await page.evaluate("[...document.querySelectorAll('tr[data-action]')].map((tr) => tr.dataset.action)")) as string[]);
  for (const a of ['login', 'login.failed', 'read-original-identifiers', 'label.review', 'code.create', 'code.revoke', 'code.enter', 'user.add']) t.ok(listed.has(a), `the trail lists ${a}`);
  await page.selectOption('#a-action', 'login.failed');
  await page.waitForSelector('#audit-list .result-count:has-text("2 entries.")');
  t.same(new Set((await page.evaluate("[...document.querySelectorAll('tr[data-action]')].map((tr) => tr.dataset.action)")) as string[]), new Set(['login.failed']), 'filtered by action');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#audit-csv')]);
  t.match(download.suggestedFilename(), /^uplink-audit-.*\.csv$/);
  const csv = parseCsv(readFileSync((await download.path())!, 'utf8'));
  t.same(csv[0], ['id', 'time', 'actor_kind', 'actor', 'action', 'study_uid', 'ip', 'detail'], 'a header row');
  t.equal(csv.length, 3, 'the filtered rows only');
  t.ok(csv.slice(1).every((r) => r[4] === 'login.failed' && r.length === 8));
  t.ok(csv.slice(1).some((r) => r[3] === `'=HYPERLINK("http://x","y")`), 'a formula-looking cell is made text');
  const all = (await page.evaluate("fetch('/admin/audit.csv').then((r) => r.text())")) as string;
  const allRows = parseCsv(all);
  t.equal(allRows.length - 1, actions().length, 'unfiltered: every entry');
  t.same(new Set(allRows.slice(1).map((r) => r[4])), new Set(actions()));

  t.same(problems, [], 'no CSP violation, script error or console error');
});
