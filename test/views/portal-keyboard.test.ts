// Keyboard only, in headless Chromium: the code entered and sent with Enter; each of the three ways in reached
// with Tab and opened with Enter (the drop zone also with Space), each answered by the file chooser; focus
// always visible; a study unticked with Space, consent ticked with Space, START UPLOAD pressed with Enter.
import t from 'tap';
import type { Page } from 'playwright-core';
import { cpSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { launchBrowser, openPage } from '../helpers/browser.ts';
import { DICOMDIR_TREES, PYDICOM_DIR } from '../helpers/samples.ts';
import { startServer } from '../helpers/server.ts';
import { focusedId, panel2, until, waitAdds } from './lib/portal-page.ts';

/** Press Tab until the element with this id has focus; the number of presses, or a failure. */
async function tabTo(page: Page, id: string, max = 60): Promise<number> {
  for (let i = 1; i <= max; i++) {
    await page.keyboard.press('Tab');
    if ((await focusedId(page)) === id) return i;
  }
  throw new Error(`#${id} not reached with ${max} presses of Tab`);
}

/** The focused element shows a focus ring (outline of at least 2px, not "none"). */
async function focusVisible(page: Page): Promise<boolean> {
  return (await page.evaluate(`(() => { const s = getComputedStyle(document.activeElement); return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2; })()`)) as boolean;
}

t.test('keyboard only', async (t) => {
  const srv = await startServer(t);
  const browser = await launchBrowser(t);
  const { page, problems } = await openPage(t, browser);
  const folder = path.join(t.testdir(), 'disc');
  mkdirSync(folder);
  cpSync(path.join(DICOMDIR_TREES, '77654033'), path.join(folder, '77654033'), { recursive: true });

  await page.goto(`${srv.url}/`);
  t.equal(await focusedId(page), 'code', 'the code field has focus on arrival');
  await page.keyboard.type((await srv.createCode()).toLowerCase());
  await Promise.all([page.waitForURL(`${srv.url}/upload`), page.keyboard.press('Enter')]);
  await page.waitForSelector('#add-files:not([disabled])');

  // 1. Select images or ZIP file
  t.ok((await tabTo(page, 'add-files')) > 0, 'Tab reaches "Select images or ZIP file"');
  t.ok(await focusVisible(page), 'focus is visible');
  let chooser = page.waitForEvent('filechooser');
  await page.keyboard.press('Enter');
  await (await chooser).setFiles([path.join(PYDICOM_DIR, 'CT_small.dcm')]);
  await waitAdds(page, 1);

  // 2. Select a folder
  await page.focus('#add-files');
  await tabTo(page, 'add-folder');
  t.ok(await focusVisible(page), 'focus is visible');
  chooser = page.waitForEvent('filechooser');
  await page.keyboard.press('Enter');
  await (await chooser).setFiles(folder);
  await waitAdds(page, 2);

  // 3. Drag and drop images: the zone is focusable; Enter and Space open the file chooser.
  await page.focus('#add-folder');
  await tabTo(page, 'drop-zone');
  t.ok(await focusVisible(page), 'the drop zone shows focus');
  t.equal(await page.getAttribute('#drop-zone', 'aria-disabled'), 'false');
  chooser = page.waitForEvent('filechooser');
  await page.keyboard.press('Enter');
  await (await chooser).setFiles([path.join(PYDICOM_DIR, 'MR_small.dcm')]);
  await waitAdds(page, 3);
  chooser = page.waitForEvent('filechooser');
  await page.keyboard.press(' ');
  await (await chooser).setFiles([path.join(PYDICOM_DIR, 'waveform_ecg.dcm')]);
  await waitAdds(page, 4);

  const shown = await panel2(page);
  const studies = shown.flatMap((p) => p.studies);
  t.ok(studies.length >= 5, `${studies.length} studies from the three ways`);
  t.match(await page.locator('#add-summary').innerText(), /^10 images are ready to upload\./);

  // Untick the first study with Space.
  const firstBox = await page.evaluate(`document.querySelector('#patients .study input[type=checkbox]').id`);
  await page.focus('#drop-zone');
  await tabTo(page, firstBox as string);
  t.ok(await focusVisible(page));
  await page.keyboard.press(' ');
  t.equal((await panel2(page)).flatMap((p) => p.studies)[0].checked, false, 'unticked with Space');

  // Consent with Space, START UPLOAD with Enter.
  await tabTo(page, 'consent', 200);
  t.ok(await page.locator('#start-upload').isDisabled());
  await page.keyboard.press(' ');
  t.ok(await page.locator('#consent').isChecked());
  await tabTo(page, 'start-upload');
  t.ok(await focusVisible(page), 'START UPLOAD shows focus');
  await page.keyboard.press('Enter');
  // The upload starts (test/upload covers it end to end): every chosen file is sent, the state announced.
  await until(page, `document.getElementById('panel-upload')?.dataset.transfer === 'sent'`, 60_000);
  t.pass(`START UPLOAD with Enter sent the ${studies.length - 1} chosen studies`);
  t.equal(await page.getAttribute('#upload-live', 'aria-live'), 'polite', 'the upload state is announced');
  t.equal(await page.getAttribute('#add-progress', 'aria-live'), 'polite', 'progress is announced');
  t.same(problems, []);
});
