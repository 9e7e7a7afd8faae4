// START UPLOAD to 'Upload successful' in headless Chromium, with a real clamd and the real appliance (as
// `npm start` runs it): real samples and a pydicom DICOMDIR tree, plus a DICOM file carrying EICAR and one
// carrying clamav-testfiles' clam.zip, then DCMTK findscu and the index: new Patient IDs and accessions,
// label 'Uploaded', status 'Finalized', comments and contact kept, pixel data byte-identical to the files
// chosen, the two files refused by name and quarantined (audited). Then PAUSE/RESUME UPLOAD (continued at the
// server's offset), the network cut mid-file (retried, resumed), CANCEL UPLOAD (nothing left staged) and an
// upload over the code's allowance (refused before anything is sent).
import { copyFileSync, cpSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Page, Route } from 'playwright-core';
import t from 'tap';
import { readHeader } from '../../appliance/dicom/header.ts';
import { benchSet } from '../bench/fixtures.ts';
import { flatten, pixelTail } from '../dicom/lib/compare.ts';
import { launchBrowser, openPage } from '../helpers/browser.ts';
import { DICOMDIR_TREES, PYDICOM_DIR, copyWithNewUids } from '../helpers/samples.ts';
import { enterCode, waitAdds } from '../views/lib/portal-page.ts';
import { files, findStudies, query, startUpload, startWorld, transferState, until, waitServerState, withEicarPreamble, withPrivateBlob } from './lib/world.ts';

const SAMPLES = ['CT_small.dcm', 'MR_small.dcm', 'MR_small_bigendian.dcm', 'JPEG2000.dcm', 'SC_rgb_rle.dcm', 'image_dfl.dcm', 'rtplan.dcm', 'waveform_ecg.dcm'];

interface Tus {
  /** Every tus request seen: method, URL path, Upload-Offset (PATCH). */
  log: { method: string; path: string; offset: number }[];
}

/** Watch (and optionally interfere with) the page's tus requests. */
async function routeTus(page: Page, decide: (route: Route, n: { method: string; path: string; offset: number; patchesOfUrl: number }) => Promise<'continue' | 'handled'>): Promise<Tus> {
  const log: Tus['log'] = [];
  const patches = new Map<string, number>();
  await page.route('**/upload/files**', async (route) => {
    const req = route.request();
    const p = new URL(req.url()).pathname;
    const offset = Number((await req.headerValue('upload-offset')) ?? -1);
    const entry = { method: req.method(), path: p, offset };
    log.push(entry);
    if (req.method() === 'PATCH') patches.set(p, (patches.get(p) ?? 0) + 1);
    const how = await decide(route, { ...entry, patchesOfUrl: patches.get(p) ?? 0 });
    if (how === 'continue') await route.continue().catch(() => undefined);
  });
  return { log };
}

t.test('uploading from the portal page', async (t) => {
  const { srv } = await startWorld(t, { config: { upload: { chunkBytes: 65536, parallelFiles: 3 } } });
  const browser = await launchBrowser(t);
  const dir = t.testdir();
  const tusDir = path.join(srv.dataDir, 'staging', 'tus');

  t.test('real samples and a DICOMDIR tree: anonymised, labelled, stored as chosen; malware refused', async (t) => {
    const chosen = path.join(dir, 'chosen');
    const cd = path.join(chosen, 'CD');
    mkdirSync(cd, { recursive: true });
    copyFileSync(path.join(DICOMDIR_TREES, 'DICOMDIR'), path.join(cd, 'DICOMDIR'));
    for (const p of ['77654033', '98892001', '98892003']) cpSync(path.join(DICOMDIR_TREES, p), path.join(cd, p), { recursive: true });
    // Samples share SOP Instance UIDs: copies with their own (DCMTK dcmodify), studies kept.
    copyWithNewUids(
      SAMPLES.map((f) => path.join(PYDICOM_DIR, f)),
      path.join(chosen, 'samples'),
    );
    const bad = path.join(dir, 'bad');
    const [eicarSrc, zipSrc] = copyWithNewUids([path.join(PYDICOM_DIR, 'CT_small.dcm'), path.join(PYDICOM_DIR, 'CT_small.dcm')], bad, { study: true });
    const eicar = withEicarPreamble(eicarSrc, path.join(chosen, 'EICAR.DCM'));
    const zipped = withPrivateBlob(zipSrc, path.join(chosen, 'ZIPPED.DCM'), (await import('node:fs')).readFileSync('/usr/share/clamav-testfiles/clam.zip'));

    // What was chosen, read independently of the page: SOP Instance UID -> file and original identifiers.
    const originals = new Map<string, { file: string; patientId: string; accession: string; study: string }>();
    for (const f of files(chosen)) {
      if (path.basename(f) === 'DICOMDIR') continue;
      const h = await readHeader(f).catch(() => null);
      if (h) originals.set(h.sopInstanceUID, { file: f, patientId: h.patientID, accession: h.accessionNumber, study: h.studyInstanceUID });
    }
    const bySop = [...originals.keys()];
    const studies = [...new Set([...originals.values()].map((o) => o.study))];
    const malwareSops = new Set([(await readHeader(eicar)).sopInstanceUID, (await readHeader(zipped)).sopInstanceUID]);

    const { page, problems } = await openPage(t, browser);
    await enterCode(page, srv.url, await srv.createCode());
    await page.setInputFiles('#input-folder', chosen);
    await waitAdds(page, 1);
    // Comments on two studies, and a contact.
    const shown = (await page.evaluate(`[...document.querySelectorAll('#patients .study')].map((s) => s.dataset.studyUid)`)) as string[];
    t.same([...shown].sort(), [...studies].sort(), 'Panel 2 shows every study chosen');
    const commented = shown.slice(0, 2);
    await page.locator(`[data-study-uid="${commented[0]}"] textarea`).fill('Please compare with the scan of May.');
    await page.locator(`[data-study-uid="${commented[1]}"] textarea`).fill('Zweite Meinung: “Knie” ✓');
    await page.fill('#contact-email', 'patient@example.org');
    await page.fill('#contact-phone', '+31 6 1234 5678');
    await startUpload(page);
    await until(page, `document.getElementById('panel-upload')?.dataset.transfer === 'sending' || document.getElementById('panel-upload')?.dataset.transfer === 'sent'`);
    t.ok(await page.locator('#upload-keep-open').isVisible() || (await transferState(page)) === 'sent', '"Do not close your browser during upload" while sending');
    await waitServerState(page, 'complete');

    // The page: the manual's words, the receipt, and the two refused files by name with the reason.
    t.equal(await page.locator('#upload-state').innerText(), 'Upload successful');
    const reference = await page.locator('#upload-reference').innerText();
    t.match(reference, /^U-[0-9A-Z]{4}-[0-9A-Z]{4}$/, 'a reference number');
    t.equal(await page.locator('#upload-kept').innerText(), `${bySop.length - 2} of ${bySop.length} images received by the hospital`);
    const refused = await page.locator('#upload-refused').innerText();
    t.match(refused, 'These 2 files were not accepted:');
    for (const name of ['EICAR.DCM', 'ZIPPED.DCM']) t.match(refused, `${name}: The file was refused: the malware scanner found a threat in it.`);
    t.match(await page.locator('#upload-done-note').innerText(), 'You may now close your browser, or start a new upload.');
    t.equal(await page.evaluate('document.activeElement?.id'), 'upload-state', 'focus moves to the outcome');
    t.ok(await page.locator('#upload-transfer').isHidden(), 'the transfer controls are gone');
    t.equal(await page.locator('#upload-studies').count(), 1);

    // The index: every file chosen is stored once, except the two with malware, quarantined and audited.
    const stored = query<{ sop_uid: string; path: string }>(srv.dataDir, 'SELECT sop_uid, path FROM instances');
    t.same(stored.map((s) => s.sop_uid).sort(), bySop.filter((s) => !malwareSops.has(s)).sort(), 'every file chosen stored, none twice, no malware');
    const quarantine = query<{ detail: string }>(srv.dataDir, "SELECT detail FROM audit WHERE action = 'quarantine'");
    t.same(quarantine.map((q) => JSON.parse(q.detail).signature).sort(), ['Uplink.Test.EICAR.UNOFFICIAL', 'Uplink.Test.File.clam.exe.UNOFFICIAL']);
    t.equal(files(path.join(srv.dataDir, 'quarantine')).length, 2, 'both in the quarantine area');
    t.same(files(tusDir), [], 'nothing left staged');

    const rows = query<{ study_uid: string; workflow_status: string; labels: string; comment: string | null; contact: string | null; upload_id: string | null }>(
      srv.dataDir,
      `SELECT st.study_uid, st.workflow_status, (SELECT group_concat(label) FROM study_labels WHERE study_ref = st.id) AS labels,
              u.comment, u.contact, u.upload_id
       FROM studies st LEFT JOIN study_uploads u ON u.study_ref = st.id`,
    );
    const uploaded = rows.filter((r) => studies.includes(r.study_uid));
    t.equal(uploaded.length, studies.length - 2, 'one row per stored study');
    for (const r of uploaded) {
      t.equal(r.labels, 'Uploaded', `label of ${r.study_uid}`);
      t.equal(r.workflow_status, 'Finalized');
      t.equal(r.upload_id, reference, 'the upload it came with');
      t.equal(r.contact, 'patient@example.org, +31 6 1234 5678', 'contact kept');
    }
    t.equal(uploaded.find((r) => r.study_uid === commented[0])?.comment, 'Please compare with the scan of May.', 'comment kept');
    t.equal(uploaded.find((r) => r.study_uid === commented[1])?.comment, 'Zweite Meinung: “Knie” ✓', 'comment kept (full text in the index)');

    // C-FIND (DCMTK): new Patient IDs and accession numbers; the originals are nowhere in the answers.
    const found = await findStudies(srv.dicomPort);
    const malwareStudies = new Set([...malwareSops].map((s) => originals.get(s)!.study));
    for (const study of studies) {
      const orig = [...originals.values()].filter((o) => o.study === study);
      const f = found.find((r) => r['0020,000d'] === study);
      if (malwareStudies.has(study)) {
        t.notOk(f, 'the studies of the two malware files were not stored');
        continue;
      }
      t.ok(f, `C-FIND finds ${study}`);
      if (!f) continue;
      t.not(f['0010,0020'], orig[0].patientId, 'a new Patient ID');
      t.equal(f['0010,0021'], 'UPLINK', 'issued by the appliance');
      t.ok(f['0008,0050'], 'an accession number');
      t.not(f['0008,0050'], orig[0].accession, 'a new accession number');
      t.equal(Number(f['0020,1208']), orig.length, 'all its images');
    }

    // Pixel data byte for byte as chosen.
    let compared = 0;
    for (const s of stored) {
      const o = originals.get(s.sop_uid)!;
      const before = pixelTail(o.file, await flatten(o.file));
      const afterFile = path.join(srv.dataDir, 'store', s.path);
      const after = pixelTail(afterFile, await flatten(afterFile));
      if (!before.length) continue;
      compared++;
      if (!before.equals(after)) t.fail(`pixel data of ${path.basename(o.file)} changed`);
    }
    t.ok(compared >= 8, `pixel data identical in ${compared} files`);

    // A reload shows the server's record.
    await page.reload();
    await waitServerState(page, 'complete');
    t.equal(await page.locator('#upload-reference').innerText(), reference, 'the receipt again after a reload');
    t.same(problems, []);
  });

  t.test('PAUSE UPLOAD, then RESUME UPLOAD: continued at the server\'s offset', async (t) => {
    const set = benchSet('upload-pause', 4, 512);
    const { page, problems } = await openPage(t, browser);
    await enterCode(page, srv.url, await srv.createCode());
    // Hold each file's third chunk (the first goes with the POST creating it), so the transfer is mid-file when
    // PAUSE UPLOAD is pressed.
    let hold = true;
    const held: Route[] = [];
    const tus = await routeTus(page, async (route, r) => {
      if (hold && r.method === 'PATCH' && r.patchesOfUrl >= 2) {
        held.push(route);
        return 'handled';
      }
      return 'continue';
    });
    await page.setInputFiles('#input-files', set);
    await waitAdds(page, 1);
    await startUpload(page);
    await until(page, `document.getElementById('panel-upload')?.dataset.transfer === 'sending'`);
    const deadline = Date.now() + 30_000;
    while (held.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    t.equal(held.length, 3, 'three files in flight, each with two chunks on the server');
    t.equal(await page.locator('#upload-pause').innerText(), 'PAUSE UPLOAD');
    await until(page, `document.getElementById('panel-upload').dataset.percent === '18'`);
    t.match(await page.locator('#upload-figures').innerText(), /^18% sent \(393\.2 kB of 2\.1 MB\)/, 'overall progress: six chunks of 64 KiB');
    t.match(await page.locator('#upload-studies').innerText(), /: 0 of 4 images sent$/, 'images sent per study');
    await page.click('#upload-pause');
    t.equal(await transferState(page), 'paused');
    t.equal(await page.locator('#upload-pause').innerText(), 'RESUME UPLOAD');
    t.match(await page.locator('#upload-note').innerText(), 'Paused. Press RESUME UPLOAD to continue.');
    // Leaving the page during an upload asks first.
    const asked = new Promise<string>((resolve) => page.once('dialog', (d) => (resolve(d.type()), void d.dismiss())));
    await page.evaluate('location.href = "/manual"').catch(() => undefined);
    t.equal(await asked, 'beforeunload', 'leaving asks first');
    t.equal(new URL(page.url()).pathname, '/upload', 'and stays when told to');
    hold = false;
    for (const r of held) await r.abort().catch(() => undefined);
    const partial = query<{ tus_id: string; state: string }>(srv.dataDir, "SELECT tus_id, state FROM upload_files WHERE state = 'receiving'");
    t.equal(partial.length, 3, 'three files partly on the server');
    const seen = tus.log.length;
    await page.click('#upload-pause');
    t.equal(await transferState(page), 'sending');
    await waitServerState(page, 'complete');
    const after = tus.log.slice(seen);
    for (const p of partial) {
      const url = `/upload/files/${p.tus_id}`;
      const patches = after.filter((e) => e.path === url && e.method === 'PATCH');
      t.ok(patches.length > 0 && patches[0].offset === 2 * 65536, `${p.tus_id}: resumed at 131072, not from 0`);
      t.ok(after.some((e) => e.path === url && e.method === 'HEAD'), 'after asking the server where it stands');
    }
    t.equal(await page.locator('#upload-kept').innerText(), '4 of 4 images received by the hospital');
    const sops = await Promise.all(set.map(async (f) => (await readHeader(f)).sopInstanceUID));
    t.equal(query(srv.dataDir, `SELECT * FROM instances WHERE sop_uid IN (${sops.map(() => '?').join(',')})`, ...sops).length, 4);
    t.same(problems, []);
  });

  t.test('the network cut mid-file: retried, and resumed where the server stands', async (t) => {
    const set = benchSet('upload-netcut', 3, 512);
    const { page, problems } = await openPage(t, browser, { allowConsoleErrors: /ERR_INTERNET_DISCONNECTED|Failed to load resource/ });
    await enterCode(page, srv.url, await srv.createCode());
    let cut = 0;
    let cutUrl = '';
    const tus = await routeTus(page, async (route, r) => {
      // After the first file's third chunk, the network is gone for the next four requests to that file.
      if (!cutUrl && r.method === 'PATCH' && r.patchesOfUrl === 3) cutUrl = r.path;
      if (cutUrl === r.path && cut < 4) {
        cut++;
        await route.abort('internetdisconnected');
        return 'handled';
      }
      return 'continue';
    });
    await page.setInputFiles('#input-files', set);
    await waitAdds(page, 1);
    await startUpload(page);
    await waitServerState(page, 'complete');
    t.equal(cut, 4, 'four requests failed');
    const after = tus.log.filter((e) => e.path === cutUrl);
    const lastPatch = after.filter((e) => e.method === 'PATCH').pop()!;
    t.ok(after.some((e) => e.method === 'HEAD'), 'the browser asked where the server stands');
    t.ok(after.filter((e) => e.method === 'PATCH' && e.offset === 3 * 65536).length >= 2, 'the cut chunk was sent again from the server\'s offset');
    t.ok(lastPatch.offset > 0, 'never from the start');
    t.equal(await page.locator('#upload-kept').innerText(), '3 of 3 images received by the hospital');
    const sops = await Promise.all(set.map(async (f) => (await readHeader(f)).sopInstanceUID));
    const stored = query<{ sop_uid: string; path: string }>(srv.dataDir, `SELECT sop_uid, path FROM instances WHERE sop_uid IN (${sops.map(() => '?').join(',')})`, ...sops);
    t.equal(stored.length, 3, 'each file stored once');
    for (const s of stored) {
      const o = set[sops.indexOf(s.sop_uid)];
      t.ok(pixelTail(o, await flatten(o)).equals(pixelTail(path.join(srv.dataDir, 'store', s.path), await flatten(path.join(srv.dataDir, 'store', s.path)))), 'pixel data intact');
    }
    t.same(problems, []);
  });

  t.test('CANCEL UPLOAD: the server discards what it had staged, and the page says so', async (t) => {
    const set = benchSet('upload-cancel', 3, 512);
    const { page, problems } = await openPage(t, browser);
    await enterCode(page, srv.url, await srv.createCode());
    const held: Route[] = [];
    await routeTus(page, async (route, r) => {
      if (r.method === 'PATCH' && r.patchesOfUrl >= 2) {
        held.push(route);
        return 'handled';
      }
      return 'continue';
    });
    page.on('dialog', (d) => void d.accept());
    await page.setInputFiles('#input-files', set);
    await waitAdds(page, 1);
    await startUpload(page);
    const deadline = Date.now() + 30_000;
    while (held.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    t.equal(held.length, 3, 'three files partly sent');
    t.ok(files(tusDir).length >= 6, 'their bytes are staged');
    await page.click('#upload-cancel');
    await waitServerState(page, 'cancelled');
    for (const r of held) await r.abort().catch(() => undefined);
    t.equal(await transferState(page), 'cancelled');
    t.equal(await page.locator('#upload-state').innerText(), 'Upload cancelled');
    t.match(await page.locator('#upload-cancelled').innerText(), '3 images not yet received and checked have been discarded.');
    t.same(files(tusDir), [], 'nothing left staged');
    t.same(files(path.join(srv.dataDir, 'staging', 'incoming')), []);
    const sops = await Promise.all(set.map(async (f) => (await readHeader(f)).sopInstanceUID));
    t.equal(query(srv.dataDir, `SELECT * FROM instances WHERE sop_uid IN (${sops.map(() => '?').join(',')})`, ...sops).length, 0, 'nothing stored');
    t.ok(await page.locator('#start-upload').isEnabled(), 'the selection is free again: START UPLOAD may be pressed again');
    t.same(problems, []);
  });

  t.test('over the code\'s allowance: refused before anything is sent', async (t) => {
    const set = benchSet('upload-pause', 4, 512);
    const { page, context, problems } = await openPage(t, browser);
    await enterCode(page, srv.url, await srv.createCode({ maxBytes: '1000000' }));
    const requests: string[] = [];
    context.on('request', (r) => requests.push(`${r.method()} ${new URL(r.url()).pathname}`));
    await page.setInputFiles('#input-files', set);
    await waitAdds(page, 1);
    await page.check('#consent');
    t.ok(await page.locator('#start-upload').isDisabled(), 'START UPLOAD stays disabled');
    t.match(await page.locator('#selection-summary').innerText(), /The selected images \([\d.]+ MB\) are more than your upload code allows \(1 MB\)/);
    t.same(requests.filter((r) => !r.startsWith('GET /static/') && r !== 'GET /upload/status'), [], 'nothing sent');
    t.same(problems, []);
  });
});
