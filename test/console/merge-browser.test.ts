// The console's second half end to end in headless Chromium against the real appliance (server/main.ts as a child
// process) with real peers: Orthanc as the hospital PACS holding the right patient, a second Orthanc, DCMTK.
// A study arrives from a node with the "upload" policy (anonymised, forwarded to the PACS); the admin finds the
// right patient by C-FIND in the PACS, checks the before / after and applies the merge with "forward again": the
// index and the PACS's copy show the corrected patient, with the pixel data unchanged. Then the study goes to the
// second Orthanc by DICOM transfer (progress to done); the Nodes page checks connections (C-ECHO) and shows the
// queue per node (retrying with the next attempt, failed with the reason, Resend); the study is downloaded as a
// ZIP (files byte for byte the stored ones, a DICOMDIR dcmdump and pydicom read) and deleted (confirmed: gone from
// index and store); the audit trail lists the merge, transfers, the download and the deletion.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { unzipSync } from 'fflate';
import { launchBrowser, openPage } from '../helpers/browser.ts';
import { dcmdump } from '../helpers/dcmtk.ts';
import { ADMIN } from './lib/world.ts';
import { HOSPITAL, orthancCopies, pixelDataBytes, startMergeWorld, waitFor } from './lib/merge-world.ts';

t.test('merge, transfer, nodes, download and delete in a browser', async (t) => {
  const w = await startMergeWorld(t, {
    pacs2: true,
    nodes: [
      // nothing listens there: retrying
      { name: 'OFFLINE', aeTitle: 'OFFLINE', host: '127.0.0.1', port: 9, allow: [], send: true },
    ],
  });
  const { srv, db, studyUid } = w;
  const pacs = w.pacs!;
  const pacs2 = w.pacs2!;
  const out = () => srv.output();
  const q = <T>(sql: string, ...args: unknown[]) => db.prepare(sql).all(...args) as T[];
  const one = <T>(sql: string, ...args: unknown[]) => db.prepare(sql).get(...args) as T;
  const doneJobs = (dest: string) => one<{ n: number }>("SELECT count(*) AS n FROM forward_jobs WHERE destination = ? AND state = 'done'", dest).n;

  // The upload policy forwarded the anonymised study to the PACS.
  await waitFor(() => doneJobs('PACS') === 2, 'the study forwarded to the PACS', 30_000, out);
  const pseudonym = one<{ patient_id: string }>('SELECT p.patient_id FROM studies s JOIN patients p ON p.id = s.patient_ref WHERE s.study_uid = ?', studyUid).patient_id;
  t.match(pseudonym, /^UP[0-9A-Z]{14}$/, 'stored under a pseudonym');
  const storedBefore = q<{ sop_uid: string; path: string; sha256: string }>('SELECT sop_uid, path, sha256 FROM instances ORDER BY id');
  const pixelsBefore = new Map(storedBefore.map((r) => [r.sop_uid, pixelDataBytes(readFileSync(path.join(srv.dataDir, 'store', r.path)))]));
  for (const s of w.sent) t.ok(pixelDataBytes(readFileSync(s.file)).equals(pixelsBefore.get(s.sop)!), 'stored pixel data = the sent pixel data');

  const browser = await launchBrowser(t);
  const { page, problems } = await openPage(t, browser);
  await page.goto(`${srv.url}/login?next=${encodeURIComponent(`/admin/studies/${studyUid}`)}`);
  await page.fill('#login-name', ADMIN.name);
  await page.fill('#login-password', ADMIN.password);
  await Promise.all([page.waitForURL(`${srv.url}/admin/studies/${studyUid}`), page.click('#login-submit')]);

  // ---- merge: C-FIND in the PACS, choose, before / after, apply with "forward again"
  t.ok(await page.isChecked('#merge-source-pacs'), 'the hospital PACS is searched by default');
  await page.fill('#merge-name', 'jansen');
  await page.click('#merge-search-submit');
  await page.waitForSelector('#merge-results');
  t.match(await page.textContent('#merge-results-heading'), /1 patient found\s+in the hospital PACS \(PACS\)/);
  const row = page.locator(`#merge-results tr[data-patient-id="${HOSPITAL.patientId}"]`);
  t.match(await row.textContent(), /Jansen, Pieter[\s\S]*HOSP-4711[\s\S]*Jan 1, 1970[\s\S]*male/, 'the match: name, ID, birth date, sex');
  t.equal(await page.evaluate('document.activeElement && document.activeElement.id'), 'merge-results-heading', 'focus on the results');
  await row.locator('button.merge-choose').click();
  await page.waitForSelector('#merge-preview');
  const cells = async (field: string) => (await page.locator(`#merge-preview tr[data-field="${field}"] td`).allTextContents()).map((s) => s.trim());
  t.same(await cells('patientId'), [pseudonym, 'HOSP-4711 (changes)'], 'before / after: Patient ID');
  t.same(await cells('issuer'), ['UPLINK', '– (changes)'], 'the anonymisation issuer goes');
  t.equal((await cells('name'))[1], 'Jansen, Pieter (changes)');
  t.match(await page.textContent('#merge-apply-form'), /2 images will be rewritten \(header only\)/);
  t.ok(await page.isChecked('#merge-forward'), 'forward again: ticked');
  await page.click('#merge-apply');
  await page.waitForSelector('#merge-notice');
  await page.waitForSelector('#panel-notice:has-text("Merge done")', { timeout: 30_000 });
  await page.waitForFunction("document.activeElement && document.activeElement.id === 'panel-notice'");
  t.pass('when the merge ends, the panel shows the outcome and focus moves to it');
  t.match(await page.textContent('#panel-notice'), /2 images now carry the chosen patient, and the study is being forwarded to PACS again/);
  t.equal(await page.textContent('#stored-patient-id'), 'HOSP-4711', 'the panel shows the new patient');
  t.match(await page.textContent('#panel-heading'), /^Jansen, Pieter/);

  // the index: the study moved to the hospital patient; the pseudonym patient is gone; files and hashes agree
  t.same(one('SELECT p.patient_id, p.issuer, p.patient_name, p.birth_date, p.sex FROM studies s JOIN patients p ON p.id = s.patient_ref WHERE s.study_uid = ?', studyUid), {
    patient_id: 'HOSP-4711',
    issuer: '',
    patient_name: 'Jansen^Pieter',
    birth_date: '19700101',
    sex: 'M',
  });
  t.equal(one<{ n: number }>('SELECT count(*) AS n FROM patients WHERE patient_id = ?', pseudonym).n, 0, 'the pseudonym patient row is gone');
  const { createHash } = await import('node:crypto');
  for (const r of q<{ sop_uid: string; path: string; sha256: string; size: number }>('SELECT sop_uid, path, sha256, size FROM instances')) {
    const file = readFileSync(path.join(srv.dataDir, 'store', r.path));
    t.equal(createHash('sha256').update(file).digest('hex'), r.sha256, 'the index has the new file\'s SHA-256');
    t.equal(file.length, r.size);
    t.not(r.sha256, storedBefore.find((b) => b.sop_uid === r.sop_uid)!.sha256, 'the file changed');
    t.ok(pixelDataBytes(file).equals(pixelsBefore.get(r.sop_uid)!), 'pixel data unchanged');
    const dump = (await dcmdump(['+P', '0010,0020', '+P', '0010,0010', '+P', '0010,1000', '+P', '0010,0021', path.join(srv.dataDir, 'store', r.path)])).stdout;
    t.match(dump, /\(0010,0010\) PN \[Jansen\^Pieter\]/);
    t.match(dump, /\(0010,0020\) LO \[HOSP-4711\]/);
    t.notMatch(dump, /\(0010,1000\)|\(0010,0021\)/, 'no Other Patient IDs, no issuer left');
  }

  // the PACS: the corrected study arrived again (Orthanc keeps instances per patient: the old copy stays under the pseudonym)
  await waitFor(async () => {
    const copies = await orthancCopies(pacs, w.sent[0].sop);
    return copies.some((c) => c.patientId === 'HOSP-4711');
  }, 'the corrected study in the PACS', 30_000, out);
  for (const s of w.sent) {
    const copies = await orthancCopies(pacs, s.sop);
    const corrected = copies.find((c) => c.patientId === 'HOSP-4711');
    t.ok(corrected, `the PACS has ${s.sop} under HOSP-4711`);
    t.equal(corrected!.name, 'Jansen^Pieter');
    t.ok(pixelDataBytes(corrected!.file).equals(pixelsBefore.get(s.sop)!), 'the PACS copy has the same pixel data');
  }
  const patients = (await (await fetch(`${pacs.url}/tools/find`, { method: 'POST', body: JSON.stringify({ Level: 'Study', Query: { PatientID: 'HOSP-4711' } }) })).json()) as string[];
  t.equal(patients.length, 2, 'in the PACS, HOSP-4711 now has the earlier study and this one');

  // ---- DICOM transfer of the study to the second Orthanc, progress to done
  await page.selectOption('#transfer-destination', 'PACS2');
  await page.click('#transfer-send');
  await page.waitForSelector('#transfer-notice:has-text("2 images queued for PACS2.")');
  await page.waitForSelector('#transfer-progress li[data-destination="PACS2"][data-state="done"]', { timeout: 30_000 });
  t.match(await page.textContent('#transfer-progress li[data-destination="PACS2"]'), /PACS2: done\s+2 of 2 images sent, 0 failed/);
  t.equal(await page.textContent('#transfer-notice'), '2 images queued for PACS2.', 'the progress refreshed itself; the notice and the form stayed');
  t.equal(await page.inputValue('#transfer-destination'), 'PACS2');
  t.equal(await pacs2.countInstances(), 2, 'the second Orthanc has the study');
  t.same((await orthancCopies(pacs2, w.sent[1].sop)).map((c) => c.patientId), ['HOSP-4711'], 'with the corrected patient');
  // one series to a node that does not answer: retrying
  await page.selectOption('#transfer-what', { index: 1 });
  await page.selectOption('#transfer-destination', 'OFFLINE');
  await page.click('#transfer-send');
  await page.waitForSelector('#transfer-progress li[data-destination="OFFLINE"][data-state="retrying"]', { timeout: 30_000 });
  t.match(await page.textContent('#transfer-progress li[data-destination="OFFLINE"]'), /Next attempt/);
  // the whole study to a node whose AE title is wrong: refused for good
  await page.selectOption('#transfer-what', '');
  await page.selectOption('#transfer-destination', 'MISNAMED');
  await page.click('#transfer-send');
  await page.waitForSelector('#transfer-progress li[data-destination="MISNAMED"][data-state="failed"]', { timeout: 30_000 });
  t.match(await page.textContent('#transfer-progress li[data-destination="MISNAMED"]'), /failed\s+0 of 2 images sent, 2 failed[\s\S]*reject/i, 'failed, with the reason');

  // ---- Nodes: C-ECHO each way, the queue per node, Resend
  await page.click('.console-nav a[href="/admin/nodes"]');
  await page.waitForURL(`${srv.url}/admin/nodes`);
  t.same(await page.evaluate("[...document.querySelectorAll('#nodes-table tbody tr')].map((r) => r.dataset.node)"), ['PARTNER', 'PACS', 'PACS2', 'MISNAMED', 'OFFLINE']);
  t.match(await page.textContent('tr[data-node="PACS"]'), /hospital PACS[\s\S]*PACS[\s\S]*127\.0\.0\.1:\d+[\s\S]*nothing[\s\S]*yes/);
  t.match(await page.textContent('tr[data-node="PARTNER"]'), /C-ECHO, C-STORE, C-FIND[\s\S]*no[\s\S]*upload/);
  await page.click('tr[data-node="PACS2"] .echo-button');
  await page.waitForSelector('tr[data-node="PACS2"] [data-echo]');
  t.equal(await page.getAttribute('tr[data-node="PACS2"] [data-echo]', 'data-echo'), 'ok');
  t.match(await page.textContent('tr[data-node="PACS2"] .echo-result'), /Answered in \d+ ms/);
  await page.click('tr[data-node="OFFLINE"] .echo-button');
  await page.waitForSelector('tr[data-node="OFFLINE"] [data-echo]');
  t.equal(await page.getAttribute('tr[data-node="OFFLINE"] [data-echo]', 'data-echo'), 'failed');
  t.match(await page.textContent('tr[data-node="OFFLINE"] .echo-result'), /No connection[\s\S]*refused/);
  const offline = page.locator('section.destination[data-destination="OFFLINE"]');
  t.match(await offline.locator('[data-count="retrying"]').textContent(), /retrying: 2/i);
  t.match(await offline.textContent(), /Last problem: .*refused/);
  t.match(await offline.locator(`tr[data-study="${studyUid}"]`).textContent(), /retrying[\s\S]*Jansen, Pieter[\s\S]*0 of 2 images sent[\s\S]*Next attempt/i);
  t.match(await page.textContent('section.destination[data-destination="PACS2"] [data-count="done"]'), /done: 2/i);
  const misnamed = page.locator('section.destination[data-destination="MISNAMED"]');
  t.match(await misnamed.locator('[data-count="failed"]').textContent(), /failed: 2/i);
  t.match(await misnamed.locator(`tr[data-study="${studyUid}"]`).textContent(), /failed[\s\S]*0 of 2 images sent, 2 failed[\s\S]*reject/i, 'failed, with the reason');
  await misnamed.locator(`tr[data-study="${studyUid}"] button.resend-study`).click();
  await page.waitForSelector('#queue-notice');
  t.match(await page.textContent('#queue-notice'), /2 images queued for MISNAMED again\./, 'Resend one study');
  await offline.locator('button.resend-node').click();
  await page.waitForSelector('#queue-notice:has-text("OFFLINE")');
  t.match(await page.textContent('#queue-notice'), /2 images queued for OFFLINE again\./, 'Resend what failed to a node');
  t.ok(one<{ n: number }>("SELECT count(*) AS n FROM audit WHERE action = 'forward-resend' AND actor = 'alice'").n >= 1, 'the resend is audited');

  // ---- download the ZIP: the stored files byte for byte, and a DICOMDIR
  await page.goto(`${srv.url}/admin/studies/${studyUid}`);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-zip')]);
  t.match(download.suggestedFilename(), /^study-(\d{8}-)?[0-9.]+\.zip$/);
  const zip = unzipSync(readFileSync((await download.path())!));
  const names = Object.keys(zip).sort();
  t.same(names, ['DICOM/ST000001/SE000001/IM000001', 'DICOM/ST000001/SE000001/IM000002', 'DICOMDIR']);
  const stored = q<{ sop_uid: string; path: string }>('SELECT sop_uid, path FROM instances');
  const unzipped = path.join(w.dir, 'unzipped');
  for (const [name, bytes] of Object.entries(zip)) {
    mkdirSync(path.dirname(path.join(unzipped, name)), { recursive: true });
    writeFileSync(path.join(unzipped, name), bytes);
  }
  for (const name of names.filter((n) => n.startsWith('DICOM/'))) {
    const bytes = Buffer.from(zip[name]);
    const match = stored.find((s) => readFileSync(path.join(srv.dataDir, 'store', s.path)).equals(bytes));
    t.ok(match, `${name} is a stored file, byte for byte`);
  }
  const dd = await dcmdump([path.join(unzipped, 'DICOMDIR')]);
  t.equal(dd.code, 0, 'dcmdump reads the DICOMDIR');
  t.equal((dd.stdout.match(/CS \[IMAGE\]/g) ?? []).length, 2, 'two IMAGE records');
  t.match(dd.stdout, /PN \[Jansen\^Pieter\]/);
  const fileSet = execFileSync('/usr/bin/python3', [
    '-c',
    'import sys, pydicom\nfrom pydicom.fileset import FileSet\nfs = FileSet(pydicom.dcmread(sys.argv[1]))\nfor i in fs: print(i.FileID, i.SOPInstanceUID, i.load().SOPInstanceUID)',
    path.join(unzipped, 'DICOMDIR'),
  ]).toString();
  const listed = fileSet.trim().split('\n').map((l) => l.split(' '));
  t.equal(listed.length, 2, 'pydicom follows the DICOMDIR to both files');
  for (const [, recorded, inFile] of listed) t.equal(recorded, inFile, 'each record names the SOP Instance of the file it points to');

  // ---- delete: confirm, gone from index and store
  await page.click('#delete-study');
  await page.waitForSelector('#delete-confirm');
  t.equal(await page.evaluate('document.activeElement && document.activeElement.id'), 'delete-confirm', 'focus on the confirmation');
  t.match(await page.textContent('#delete-summary'), /Jansen, Pieter[\s\S]*2 images in 1 series/);
  const files = q<{ path: string }>('SELECT path FROM instances').map((r) => path.join(srv.dataDir, 'store', r.path));
  await page.click('#delete-confirm');
  await page.waitForSelector('#panel-notice:has-text("The study was deleted")');
  t.equal(one<{ n: number }>('SELECT count(*) AS n FROM studies WHERE study_uid = ?', studyUid).n, 0, 'no study row');
  t.equal(one<{ n: number }>('SELECT count(*) AS n FROM instances').n, 0, 'no instance rows');
  t.equal(one<{ n: number }>('SELECT count(*) AS n FROM forward_jobs WHERE study_uid = ?', studyUid).n, 0, 'no forwarding jobs (the retrying ones cancelled)');
  t.ok(files.every((f) => !existsSync(f)), 'the files are gone from the store');
  const deleted = JSON.parse(one<{ detail: string }>("SELECT detail FROM audit WHERE action = 'delete'").detail);
  t.match(deleted, { patient: { patientId: 'HOSP-4711', name: 'Jansen^Pieter' }, instances: 2, series: 1 }, 'what was deleted is in the audit trail');

  // ---- the audit trail lists them all
  await page.goto(`${srv.url}/admin/audit`);
  const listedActions = new Set((await page.evaluate("[...document.querySelectorAll('tr[data-action]')].map((tr) => tr.dataset.action)")) as string[]);
  for (const a of ['merge.start', 'merge', 'forward', 'forward-resend', 'download', 'delete']) t.ok(listedActions.has(a), `the trail lists ${a}`);
  const merge = JSON.parse(one<{ detail: string }>("SELECT detail FROM audit WHERE action = 'merge'").detail);
  t.match(merge, { before: { patientId: pseudonym, issuer: 'UPLINK' }, after: HOSPITAL, source: 'pacs:PACS', instances: 2, forwardTo: 'PACS' }, 'before / after of the merge');
  t.same(
    q<{ detail: string }>("SELECT detail FROM audit WHERE action = 'forward' AND actor = 'alice' ORDER BY id").map((r) => JSON.parse(r.detail).destination),
    ['PACS', 'PACS2', 'OFFLINE', 'MISNAMED'],
    'the re-forward and the transfers',
  );
  t.notMatch(out(), /HOSP-4711|Jansen|jansen/, 'no patient data in the server log');
  t.same(problems, [], 'no CSP violation, script error or console error');
});
