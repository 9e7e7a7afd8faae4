// The portal in headless Chromium against the real server: a code made with the real CLI is entered; images
// are added by each of the three ways (the button answered by the file chooser; pydicom's DICOMDIR tree as a
// folder; a drop built in the page), a ZIP of real samples, and a CD-like folder with non-DICOM files and a
// DICOMDIR listing a missing and an unreadable file. Panel 2 shows what DCMTK reads from the same files.
// Any mix adds to one set; the same image twice counts once. No CSP violation or script error on the way.
import t from 'tap';
import { copyFileSync, cpSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { zipSync } from 'fflate';
import { launchBrowser, openPage } from '../helpers/browser.ts';
import { DICOMDIR_TREES, PYDICOM_DIR } from '../helpers/samples.ts';
import { startServer } from '../helpers/server.ts';
import { displayName, enterCode, expectedFromDcmdump, panel2, waitAdds } from './lib/portal-page.ts';

function walk(d: string): string[] {
  return readdirSync(d).flatMap((n) => {
    const p = path.join(d, n);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

const text = (page: import('playwright-core').Page, sel: string) => page.locator(sel).innerText();

t.test('three ways in, ZIP, a CD with problems', async (t) => {
  const srv = await startServer(t);
  const browser = await launchBrowser(t);
  const dir = t.testdir();

  /** A copy of pydicom's DICOMDIR tree: the DICOMDIR and the three patient folders it lists. */
  const cd = path.join(dir, 'CD');
  mkdirSync(cd);
  copyFileSync(path.join(DICOMDIR_TREES, 'DICOMDIR'), path.join(cd, 'DICOMDIR'));
  for (const p of ['77654033', '98892001', '98892003']) cpSync(path.join(DICOMDIR_TREES, p), path.join(cd, p), { recursive: true });
  const cdImages = walk(cd).filter((f) => !f.endsWith('DICOMDIR'));
  const expectCd = expectedFromDcmdump(cdImages);

  t.test('1. Select images or ZIP file: the button opens the file chooser', async (t) => {
    const { page, problems } = await openPage(t, browser);
    await enterCode(page, srv.url, await srv.createCode());
    t.equal(await page.getAttribute('#panel-check', 'hidden'), '', 'Panel 2 is not shown before images are added');
    const files = ['CT_small.dcm', 'MR_small.dcm', 'waveform_ecg.dcm', 'JPEG2000.dcm'].map((f) => path.join(PYDICOM_DIR, f));
    const readme = path.join(dir, 'README.TXT');
    writeFileSync(readme, 'Open VIEWER.EXE to look at the images.');
    const chooser = page.waitForEvent('filechooser');
    await page.click('#add-files');
    const fc = await chooser;
    t.ok(fc.isMultiple(), 'several files at once');
    await fc.setFiles([...files, readme]);
    await waitAdds(page, 1);
    t.match(await text(page, '#add-summary'), '4 images are ready to upload.');
    t.match(await text(page, '#add-summary'), '1 file is not a DICOM image and will not be uploaded.');
    t.equal(await page.getAttribute('#panel-check', 'hidden'), null, 'Panel 2 appears');
    const shown = await panel2(page);
    const exp = expectedFromDcmdump(files);
    const uids = shown.flatMap((p) => p.studies.map((s) => s.uid));
    t.same(new Set(uids), new Set(exp.studies.keys()), 'the studies DCMTK finds');
    for (const p of shown)
      for (const s of p.studies) {
        const e = exp.studies.get(s.uid)!;
        t.ok(p.heading.endsWith(displayName(e.patientName)), `patient "${displayName(e.patientName)}" shown`);
        t.equal(s.date, e.date ? `${e.date.slice(0, 4)}-${e.date.slice(4, 6)}-${e.date.slice(6, 8)}` : '', `study date ${e.date}`);
        t.match(s.facts, new RegExp(`\\b${e.images} images?\\b`));
      }
    t.same(problems, []);
  });

  t.test('2. Select a folder: the pydicom DICOMDIR tree as a CD', async (t) => {
    const { page, problems } = await openPage(t, browser);
    await enterCode(page, srv.url, await srv.createCode());
    await page.setInputFiles('#input-folder', cd);
    await waitAdds(page, 1);
    t.match(await text(page, '#add-summary'), `${cdImages.length} images are ready to upload.`);
    t.equal(await text(page, '#add-errors'), '', 'every file the DICOMDIR lists was found and read');
    const shown = await panel2(page);
    const studies = shown.flatMap((p) => p.studies.map((s) => ({ ...s, heading: p.heading })));
    t.equal(studies.length, expectCd.studies.size, `${expectCd.studies.size} studies`);
    for (const s of studies) {
      const e = expectCd.studies.get(s.uid);
      if (!e) {
        t.fail(`unexpected study ${s.uid}`);
        continue;
      }
      t.ok(s.heading.endsWith(displayName(e.patientName)), `${displayName(e.patientName)}`);
      t.equal(s.date.replace(/-/g, ''), e.date, `date ${e.date}`);
      t.match(s.facts, new RegExp(`\\b${e.images} images?\\b`), `${e.images} images`);
    }
    const names = shown.map((p) => p.heading);
    t.ok(names.some((n) => n.includes('Doe, Archibald')), 'Doe^Archibald shown as "Doe, Archibald"');
    t.match(await page.locator('#patients').innerText(), /January 1, 2001|1 January 2001/, 'the study date in words');
    t.same(problems, []);
  });

  t.test('3. Drag and drop images: a drop built in the page; then the same again by the button: counted once', async (t) => {
    const { page, problems } = await openPage(t, browser);
    await enterCode(page, srv.url, await srv.createCode());
    const names = ['CT_small.dcm', 'MR_small.dcm', 'rtplan.dcm'];
    const payload = names.map((n) => ({ name: n, b64: readFileSync(path.join(PYDICOM_DIR, n)).toString('base64') }));
    await page.evaluate(
      `((files) => {
        const dt = new DataTransfer();
        for (const f of files) {
          const bin = atob(f.b64);
          const bytes = new Uint8Array(bin.length);
          for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
          dt.items.add(new File([bytes], f.name));
        }
        const zone = document.getElementById('drop-zone');
        for (const type of ['dragenter', 'dragover', 'drop']) zone.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
      })(${JSON.stringify(payload)})`,
    );
    await waitAdds(page, 1);
    t.match(await text(page, '#add-summary'), '3 images are ready to upload.');
    const fc = page.waitForEvent('filechooser');
    await page.click('#add-files');
    await (await fc).setFiles(names.map((n) => path.join(PYDICOM_DIR, n)).concat(path.join(PYDICOM_DIR, 'liver_1frame.dcm')));
    await waitAdds(page, 2);
    t.match(await text(page, '#add-summary'), '4 images are ready to upload.', 'one new image');
    t.match(await text(page, '#add-summary'), '3 images were added more than once; each is counted once.');
    t.same(problems, []);
  });

  t.test('a ZIP of real samples, with a ZIP inside it and a text file', async (t) => {
    const { page, problems } = await openPage(t, browser);
    await enterCode(page, srv.url, await srv.createCode());
    const s = (f: string) => new Uint8Array(readFileSync(path.join(PYDICOM_DIR, f)));
    const zipPath = path.join(dir, 'images.zip');
    writeFileSync(
      zipPath,
      zipSync({
        'exam/CT_small.dcm': s('CT_small.dcm'),
        'exam/series 2/MR_small.dcm': s('MR_small.dcm'),
        'exam/IM000001': s('waveform_ecg.dcm'),
        'README.txt': new TextEncoder().encode('read me'),
        'more/inner.zip': zipSync({ 'JPEG2000.dcm': s('JPEG2000.dcm') }),
      }),
    );
    const fc = page.waitForEvent('filechooser');
    await page.click('#add-files');
    await (await fc).setFiles(zipPath);
    await waitAdds(page, 1);
    t.match(await text(page, '#add-summary'), '3 images are ready to upload.', 'the three images inside the ZIP');
    t.match(await text(page, '#add-summary'), '1 file is not a DICOM image');
    t.match(await text(page, '#add-errors'), '1 ZIP file inside a ZIP file was not opened: images.zip/more/inner.zip');
    const heads = (await panel2(page)).map((p) => p.heading).join('|');
    t.match(heads, 'CompressedSamples, CT1');
    t.match(heads, 'Anonymous');
    t.notMatch(heads, 'NM1', 'nothing from the inner ZIP');
    t.same(problems, []);
  });

  t.test('a CD folder with non-DICOM files and a DICOMDIR listing a missing and an unreadable file', async (t) => {
    const { page, problems } = await openPage(t, browser);
    await enterCode(page, srv.url, await srv.createCode());
    const bad = path.join(dir, 'BADCD');
    cpSync(cd, bad, { recursive: true });
    rmSync(path.join(bad, '77654033', 'CR1', '6154'));
    writeFileSync(path.join(bad, '98892001', 'CT5N', '2392'), Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), Buffer.from('this is not a header')]));
    writeFileSync(path.join(bad, 'AUTORUN.INF'), '[autorun]\nopen=VIEWER.EXE\n');
    writeFileSync(path.join(bad, 'VIEWER.EXE'), Buffer.concat([Buffer.from('MZ'), Buffer.alloc(4000, 7)]));
    writeFileSync(path.join(bad, 'REPORT.PDF'), '%PDF-1.4\n%\n1 0 obj\n<<>>\nendobj\n');
    writeFileSync(path.join(bad, 'INDEX.HTM'), '<html><body>viewer</body></html>');
    await page.setInputFiles('#input-folder', bad);
    await waitAdds(page, 1);
    t.match(await text(page, '#add-summary'), `${cdImages.length - 2} images are ready to upload.`);
    t.match(await text(page, '#add-summary'), '4 files are not DICOM images and will not be uploaded.');
    const errors = await text(page, '#add-errors');
    t.match(errors, 'The DICOMDIR in BADCD lists 1 file that is missing: 77654033/CR1/6154');
    t.match(errors, 'The DICOMDIR in BADCD lists 1 file that cannot be read: 98892001/CT5N/2392');
    t.match(errors, '1 file looks like a DICOM image but cannot be read, and will not be uploaded: BADCD/98892001/CT5N/2392');
    t.equal(await page.getAttribute('#add-errors', 'role'), 'alert', 'announced');
    t.same(problems, []);
  });

  t.test('a DICOMDIR chosen on its own: the missing files are reported with a hint', async (t) => {
    const { page } = await openPage(t, browser);
    await enterCode(page, srv.url, await srv.createCode());
    const fc = page.waitForEvent('filechooser');
    await page.click('#add-files');
    await (await fc).setFiles(path.join(cd, 'DICOMDIR'));
    await waitAdds(page, 1);
    t.match(await text(page, '#add-errors'), `The DICOMDIR in the top folder lists ${cdImages.length} files that are missing`);
    t.match(await text(page, '#add-errors'), 'choose the whole folder or the CD/DVD drive with “Select a folder” instead');
    t.equal(await page.getAttribute('#panel-check', 'hidden'), '', 'no images: no Panel 2');
  });
});
