// 2,000 small real files (pydicom samples copied with new UIDs by DCMTK) added with the file chooser in headless
// Chromium: all are read (in Web Workers, dcmjs) and shown in Panel 2. The time from the files arriving to Panel
// 2 showing them, and the longest main-thread task meanwhile (a freeze would show there), are printed, not
// asserted (machines differ).
import t from 'tap';
import { readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launchBrowser, openPage } from '../helpers/browser.ts';
import { copyWithNewUids, PYDICOM_DIR } from '../helpers/samples.ts';
import { startServer } from '../helpers/server.ts';
import { enterCode, panel2, waitAdds } from './lib/portal-page.ts';

t.test('2,000 files', async (t) => {
  const dir = path.join(t.testdir(), 'many');
  const sources = ['MR_small.dcm', 'CT_small.dcm', 'liver_1frame.dcm', 'JPEG2000.dcm'].map((f) => path.join(PYDICOM_DIR, f));
  const made = Date.now();
  copyWithNewUids(Array.from({ length: 2000 }, (_, i) => sources[i % sources.length]), dir);
  const files = readdirSync(dir).map((f) => path.join(dir, f));
  const bytes = files.reduce((n, f) => n + statSync(f).size, 0);
  t.equal(files.length, 2000);
  t.comment(`made 2,000 files (${(bytes / 1e6).toFixed(1)} MB) in ${Date.now() - made} ms`);

  const srv = await startServer(t);
  const browser = await launchBrowser(t);
  const { page, problems } = await openPage(t, browser);
  await enterCode(page, srv.url, await srv.createCode());
  const chooser = page.waitForEvent('filechooser');
  await page.click('#add-files');
  const wall = Date.now();
  await (await chooser).setFiles(files);
  await waitAdds(page, 1, 300_000);
  const wallMs = Date.now() - wall;

  t.match(await page.locator('#add-summary').innerText(), /^2,000 images are ready to upload\./);
  const studies = (await panel2(page)).flatMap((p) => p.studies);
  t.equal(studies.length, 4, 'four studies (one per source sample)');
  for (const s of studies) t.match(s.facts, /\b500 images\b/);
  t.same(problems, []);

  const ms = Number(await page.getAttribute('#portal', 'data-last-add-ms'));
  const longest = Number((await page.getAttribute('#portal', 'data-longest-task-ms')) ?? 0);
  t.comment(`TIMING 2,000 files: ${ms} ms from the files arriving in the page to Panel 2 showing them (${(ms / 2000).toFixed(2)} ms/file); ` +
    `${wallMs} ms including Playwright handing the files to the chooser; longest main-thread task ${longest} ms ` +
    `(it includes Chromium building the 2,000-entry FileList); ${os.cpus().length} CPUs, ${Math.max(2, Math.min(4, os.cpus().length - 1))} header workers`);
});
