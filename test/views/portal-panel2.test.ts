// Panel 2 and consent in headless Chromium: studies can be unticked and commented, a contact given; the
// birth-date warning; START UPLOAD disabled until consent and at least one study; nothing but our static files
// is fetched before START UPLOAD, which then sends only the ticked studies (the upload itself is tested in
// test/upload); the code never shows in a URL;
// the page in Dutch (browser language and the switch); phone width.
import t from 'tap';
import { copyFileSync, cpSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { launchBrowser, openPage } from '../helpers/browser.ts';
import { DICOMDIR_TREES, PYDICOM_DIR } from '../helpers/samples.ts';
import { startServer } from '../helpers/server.ts';
import { enterCode, panel2, until, waitAdds } from './lib/portal-page.ts';

t.test('Panel 2, consent and START UPLOAD', async (t) => {
  const srv = await startServer(t);
  const browser = await launchBrowser(t);
  const cd = path.join(t.testdir(), 'CD');
  mkdirSync(cd);
  copyFileSync(path.join(DICOMDIR_TREES, 'DICOMDIR'), path.join(cd, 'DICOMDIR'));
  for (const p of ['77654033', '98892001', '98892003']) cpSync(path.join(DICOMDIR_TREES, p), path.join(cd, p), { recursive: true });

  t.test('a wrong code, then the right one: the code is never in a URL', async (t) => {
    // The refused code's page comes with status 400, which Chromium reports on the console: expected here.
    const { page, context, problems } = await openPage(t, browser, { allowConsoleErrors: /status of 400/ });
    const code = await srv.createCode();
    const urls: string[] = [];
    context.on('request', (r) => urls.push(r.url()));
    page.on('framenavigated', (f) => urls.push(f.url()));
    await page.goto(`${srv.url}/`);
    await page.fill('#code', 'ABCD-EFGH-JKMN-PQRS');
    await page.press('#code', 'Enter');
    await page.waitForSelector('#code-error');
    t.match(await page.locator('#code-error').innerText(), /typing error|not valid/);
    t.equal(await page.getAttribute('#code', 'aria-invalid'), 'true');
    t.equal(await page.getAttribute('#code-error', 'role'), 'alert');
    await enterCode(page, srv.url, code);
    t.equal(new URL(page.url()).pathname, '/upload');
    const flat = code.replace(/-/g, '');
    const leaks = urls.filter((u) => {
      const x = decodeURIComponent(u).toUpperCase().replace(/[\s+-]/g, '');
      return x.includes(flat);
    });
    t.same(leaks, [], `no URL holds the code (${urls.length} URLs seen)`);
    t.same(problems, []);
  });

  t.test('untick, comment, contact, consent; START UPLOAD sends only the ticked studies', async (t) => {
    const { page, context, problems } = await openPage(t, browser);
    await enterCode(page, srv.url, await srv.createCode());
    const requests: string[] = [];
    context.on('request', (r) => requests.push(`${r.method()} ${new URL(r.url()).pathname}`));
    await page.setInputFiles('#input-folder', cd);
    await waitAdds(page, 1);
    const before = await panel2(page);
    const studies = before.flatMap((p) => p.studies);
    t.ok(studies.length >= 5, `${studies.length} studies shown`);
    t.ok(studies.every((s) => s.checked), 'all studies ticked at first');

    const start = page.locator('#start-upload');
    t.ok(await start.isDisabled(), 'START UPLOAD disabled before consent');
    t.match(await page.locator('#start-hint').innerText(), 'Tick the box above');
    await page.check('#consent');
    t.ok(await start.isEnabled(), 'enabled once consent is ticked');

    // Untick every study: disabled again.
    for (const s of studies) await page.locator(`[data-study-uid="${s.uid}"] input[type=checkbox]`).uncheck();
    t.ok(await start.isDisabled(), 'no study selected: disabled');
    t.match(await page.locator('#start-hint').innerText(), 'Select at least one study.');
    // Keep two studies; comment on one.
    const keep = studies.slice(0, 2);
    for (const s of keep) await page.locator(`[data-study-uid="${s.uid}"] input[type=checkbox]`).check();
    await page.locator(`[data-study-uid="${keep[0].uid}"] textarea`).fill('Please compare with last year.');
    t.match(await page.locator('#selection-summary').innerText(), /^2 studies selected: \d+ images, [\d.]+ kB\./);
    t.ok((await page.getAttribute(`[data-study-uid="${studies[2].uid}"]`, 'class'))!.includes('deselected'), 'an unticked study is marked');

    await page.fill('#contact-email', 'not-an-address');
    t.ok(await start.isDisabled(), 'an invalid e-mail address blocks the start');
    t.match(await page.locator('#contact-email-error').innerText(), 'does not look right');
    await page.fill('#contact-email', 'patient@example.org');
    await page.uncheck('#consent');
    t.ok(await start.isDisabled(), 'consent withdrawn: disabled');
    await page.check('#consent');
    t.ok(await start.isEnabled());

    const sentBefore = requests.filter((r) => !r.startsWith('GET /static/'));
    t.same(sentBefore, [], 'nothing but static files fetched before START UPLOAD (headers never left the browser)');
    await start.click();
    // Every file is sent (no scanner runs here: the appliance holds them, "Validating files").
    await until(page, `document.getElementById('panel-upload')?.dataset.transfer === 'sent'`, 60_000);
    const sent = requests.filter((r) => !r.startsWith('GET /static/'));
    t.equal(sent[0], 'POST /upload/api/uploads', 'first the manifest (after consent)');
    t.ok(sent.slice(1).every((r) => /^(POST|PATCH|HEAD) \/upload\/files|^GET \/upload\/(status|api\/uploads\/[^/]+\/missing)$/.test(r)), 'then only the transfer and its status');
    t.ok(await page.locator('#consent').isDisabled(), 'the selection is locked afterwards');
    t.ok(await page.locator('#add-files').isDisabled());

    const db = new Database(path.join(srv.dataDir, 'uplink.sqlite'), { readonly: true });
    t.teardown(() => db.close());
    const row = db.prepare('SELECT * FROM portal_submissions ORDER BY id DESC').get() as Record<string, string | number>;
    const chosen = JSON.parse(row.studies as string) as { studyUid: string; files: number; comment: string }[];
    t.same(chosen.map((s) => s.studyUid).sort(), keep.map((s) => s.uid).sort(), 'exactly the ticked studies');
    t.equal(chosen.find((s) => s.studyUid === keep[0].uid)!.comment, 'Please compare with last year.');
    const files = db.prepare('SELECT DISTINCT study_uid FROM upload_files').all() as { study_uid: string }[];
    t.same(files.map((f) => f.study_uid).sort(), keep.map((s) => s.uid).sort(), 'only files of the ticked studies were sent');
    for (const s of chosen) {
      const shown = keep.find((k) => k.uid === s.studyUid)!;
      t.match(shown.facts, new RegExp(`\\b${s.files} images?\\b`), 'image counts as shown');
    }
    t.equal(row.contact_email, 'patient@example.org');
    t.same(problems, []);
  });

  t.test('birth-date warning when the images\' birth date differs from the code\'s', async (t) => {
    const files = ['waveform_ecg.dcm', 'CT_small.dcm'].map((f) => path.join(PYDICOM_DIR, f)); // 19710123 and none
    for (const [birth, warn] of [
      ['19700101', true],
      ['19710123', false],
    ] as const) {
      const { page, problems } = await openPage(t, browser);
      await enterCode(page, srv.url, await srv.createCode({ birthDate: birth }));
      await page.setInputFiles('#input-files', files);
      await waitAdds(page, 1);
      const shown = await panel2(page);
      const anon = shown.find((p) => p.heading.endsWith('Anonymous'))!;
      const ct = shown.find((p) => p.heading.includes('CT1'))!;
      if (warn) {
        t.match(anon.warning, /The date of birth in these images \(January 23, 1971\) is not the one the hospital gave/, `code ${birth}: warning`);
        t.ok(await page.locator('[data-birth-mismatch]').first().isVisible());
      } else t.equal(anon.warning, null, `code ${birth}: no warning`);
      t.equal(ct.warning, null, 'no warning for images without a birth date');
      t.same(problems, []);
    }
  });

  t.test('Dutch: from the browser language; the switch asks before dropping added images', async (t) => {
    const { page, problems } = await openPage(t, browser, { locale: 'nl-NL' });
    await page.goto(`${srv.url}/`);
    t.equal(await page.getAttribute('html', 'lang'), 'nl');
    t.equal(await page.locator('label[for=code]').innerText(), 'Uploadcode');
    await enterCode(page, srv.url, await srv.createCode());
    t.equal(await page.locator('#add-files').innerText(), 'Beelden of ZIP-bestand kiezen');
    await page.setInputFiles('#input-files', [path.join(PYDICOM_DIR, 'CT_small.dcm'), path.join(PYDICOM_DIR, 'rtplan.dump')]);
    await waitAdds(page, 1);
    t.match(await page.locator('#add-summary').innerText(), '1 beeld is klaar om te uploaden.');
    t.match(await page.locator('#add-summary').innerText(), '1 bestand is geen DICOM-beeld en wordt niet geüpload.');
    t.match(await page.locator('#patients').innerText(), /19 januari 2004/, 'dates in Dutch');
    // Switching now would drop the images: the page asks. No: stay.
    page.once('dialog', (d) => void d.dismiss());
    await page.click('button[name=lang][value=en]');
    t.equal(await page.getAttribute('html', 'lang'), 'nl', 'dismissed: still Dutch, images kept');
    t.match(await page.locator('#add-summary').innerText(), '1 beeld');
    page.once('dialog', (d) => void d.accept());
    await Promise.all([page.waitForURL(`${srv.url}/upload`), page.click('button[name=lang][value=en]')]);
    await until(page, `document.documentElement.lang === 'en'`);
    t.equal(await page.locator('#add-files').innerText(), 'Select images or ZIP file');
    t.same(problems, []);
  });

  t.test('phone width: nothing wider than the screen', async (t) => {
    const { page, problems } = await openPage(t, browser, { viewport: { width: 360, height: 740 } });
    await page.goto(`${srv.url}/`);
    t.ok((await page.evaluate('document.documentElement.scrollWidth')) as number <= 360, 'start page fits');
    await enterCode(page, srv.url, await srv.createCode());
    await page.setInputFiles('#input-folder', cd);
    await waitAdds(page, 1);
    const width = (await page.evaluate('document.documentElement.scrollWidth')) as number;
    t.ok(width <= 360, `upload page with Panel 2 fits (${width}px)`);
    const box = await page.locator('#start-upload').boundingBox();
    t.ok(box && box.width <= 360 && box.height >= 40, 'START UPLOAD is a full, tappable button');
    t.same(problems, []);
  });
});
