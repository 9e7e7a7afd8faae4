// Uploads that survive what happens to them, in headless Chromium against the real appliance (server/main.ts
// as `npm start` runs it) and a real clamd:
//   - the appliance killed with SIGKILL mid-upload and started again: the page resumes by itself and the
//     upload ends complete, every file stored once (no duplicates), nothing left staged;
//   - the tab closed mid-upload, the code entered again in a new browser session and the same files added:
//     the same upload continues from the server's offsets;
//   - clamd stopped during an upload: the files are held (nothing stored unscanned), the page says so and may be
//     closed; once clamd is back they are scanned and stored, and the upload ends complete.
import { statSync } from 'node:fs';
import path from 'node:path';
import type { Page, Route } from 'playwright-core';
import t from 'tap';
import { readHeader } from '../../appliance/dicom/header.ts';
import { benchSet } from '../bench/fixtures.ts';
import { flatten, pixelTail } from '../dicom/lib/compare.ts';
import { launchBrowser, openPage } from '../helpers/browser.ts';
import { enterCode, waitAdds } from '../views/lib/portal-page.ts';
import { files, query, startClamd, startKillable, startUpload, transferState, until, waitServerState, worldConfig } from './lib/world.ts';

const CHUNK = 65536;

interface Held {
  routes: Route[];
  log: { method: string; path: string; offset: number }[];
  /** Hold PATCH requests for which this says so (until released). */
  hold: (r: { path: string; patchesOfUrl: number; patches: number }) => boolean;
}

async function watchTus(page: Page): Promise<Held> {
  const held: Held = { routes: [], log: [], hold: () => false };
  const perUrl = new Map<string, number>();
  let patches = 0;
  await page.route('**/upload/files**', async (route) => {
    const req = route.request();
    const p = new URL(req.url()).pathname;
    held.log.push({ method: req.method(), path: p, offset: Number((await req.headerValue('upload-offset')) ?? -1) });
    if (req.method() === 'PATCH') {
      perUrl.set(p, (perUrl.get(p) ?? 0) + 1);
      patches++;
      if (held.hold({ path: p, patchesOfUrl: perUrl.get(p)!, patches })) {
        held.routes.push(route);
        return;
      }
    }
    await route.continue().catch(() => undefined);
  });
  return held;
}

async function waitFor(what: string, fn: () => boolean, timeout = 60_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function sopsOf(set: string[]): Promise<string[]> {
  return Promise.all(set.map(async (f) => (await readHeader(f)).sopInstanceUID));
}

t.test('uploads that survive', async (t) => {
  const clamd = await startClamd(t);
  const srv = await startKillable(t, worldConfig(clamd, { upload: { chunkBytes: CHUNK, parallelFiles: 3 } }));
  const browser = await launchBrowser(t);
  const tusDir = path.join(srv.dataDir, 'staging', 'tus');
  const storedOf = (sops: string[]) => query<{ sop_uid: string; path: string }>(srv.dataDir, `SELECT sop_uid, path FROM instances WHERE sop_uid IN (${sops.map(() => '?').join(',')})`, ...sops);

  t.test('SIGKILL mid-upload, started again: the page resumes; complete, no duplicates', async (t) => {
    const set = benchSet('upload-kill', 8, 512);
    const sops = await sopsOf(set);
    const { page, problems } = await openPage(t, browser, { // The appliance is gone for a while: failed requests are reported on the console (htmx logs its own).
      allowConsoleErrors: /Failed to load resource|ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE|ERR_CONNECTION_RESET|htmx:sendError|htmx:afterRequest/, });
    await enterCode(page, srv.url, await srv.createCode());
    const tus = await watchTus(page);
    // Two files go through; after that every file stops at its third chunk.
    const through = new Set<string>();
    tus.hold = (r) => {
      if (through.has(r.path)) return false;
      if (through.size < 2 && r.patchesOfUrl === 1) through.add(r.path);
      return !through.has(r.path) && r.patchesOfUrl >= 3;
    };
    await page.setInputFiles('#input-files', set);
    await waitAdds(page, 1);
    await startUpload(page);
    await waitFor('two files stored and others held mid-file', () => storedOf(sops).length === 2 && tus.routes.length >= 1);
    await srv.kill('SIGKILL');
    // What the server had of each file part-way when it died.
    const partial = query<{ tus_id: string }>(srv.dataDir, "SELECT tus_id FROM upload_files WHERE state = 'receiving'").map((p) => ({
      ...p,
      had: statSync(path.join(tusDir, p.tus_id)).size,
    }));
    t.ok(partial.length >= 1 && partial.every((p) => p.had > 0), `${partial.length} files part-way on the server`);
    t.pass('the appliance was killed');
    const seen = tus.log.length;
    tus.hold = () => false;
    for (const r of tus.routes.splice(0)) await r.continue().catch(() => undefined);
    await srv.start();
    await waitServerState(page, 'complete');

    t.equal(await page.locator('#upload-kept').innerText(), '8 of 8 images received by the hospital');
    const stored = storedOf(sops);
    t.same(stored.map((s) => s.sop_uid).sort(), [...sops].sort(), 'every file stored once');
    t.equal(query(srv.dataDir, 'SELECT sop_uid FROM instances GROUP BY sop_uid HAVING COUNT(*) > 1').length, 0, 'no duplicates');
    t.equal(files(path.join(srv.dataDir, 'store')).filter((f) => sops.some((s) => f.endsWith(`${s}.dcm`))).length, 8, 'eight files in the store');
    // The part-way files went on from what the server had (the held chunks, or after asking with HEAD).
    const after = tus.log.slice(seen);
    for (const p of partial)
      t.equal(after.find((e) => e.path === `/upload/files/${p.tus_id}` && e.method === 'PATCH')?.offset, p.had, `a part-way file continued at ${p.had}, not from 0`);
    for (const s of stored) {
      const o = set[sops.indexOf(s.sop_uid)];
      const f = path.join(srv.dataDir, 'store', s.path);
      if (!pixelTail(o, await flatten(o)).equals(pixelTail(f, await flatten(f)))) t.fail(`pixel data of ${path.basename(o)} changed`);
    }
    t.same(files(tusDir), [], 'nothing left staged');
    t.same(problems, []);
  });

  t.test('the tab closed mid-upload; the code again and the same files: the same upload continues', async (t) => {
    const set = benchSet('upload-tab', 4, 512);
    const sops = await sopsOf(set);
    const code = await srv.createCode();
    const first = await openPage(t, browser);
    await enterCode(first.page, srv.url, code);
    const tusA = await watchTus(first.page);
    tusA.hold = (r) => r.patchesOfUrl >= 3;
    await first.page.setInputFiles('#input-files', set);
    await waitAdds(first.page, 1);
    await startUpload(first.page);
    await waitFor('three files part-way', () => tusA.routes.length >= 3);
    const reference = await first.page.evaluate(`document.getElementById('panel-upload').dataset.reference`);
    const partial = query<{ tus_id: string }>(srv.dataDir, "SELECT tus_id FROM upload_files WHERE state = 'receiving'");
    t.equal(partial.length, 3, 'three files part-way on the server');
    await first.context.close();
    t.pass('the tab was closed');

    const second = await openPage(t, browser);
    await enterCode(second.page, srv.url, code);
    await waitServerState(second.page, 'uploading');
    t.match(await second.page.locator('#upload-resume-hint').innerText(), 'add the same images again and press START UPLOAD');
    const tusB = await watchTus(second.page);
    await second.page.setInputFiles('#input-files', set);
    await waitAdds(second.page, 1);
    await startUpload(second.page);
    await waitServerState(second.page, 'complete');
    t.equal(await second.page.evaluate(`document.getElementById('panel-upload').dataset.reference`), reference, 'the same upload');
    t.equal(await second.page.locator('#upload-reference').innerText(), reference);
    for (const p of partial) {
      const url = `/upload/files/${p.tus_id}`;
      const mine = tusB.log.filter((e) => e.path === url);
      t.equal(mine[0]?.method, 'HEAD', 'asked the server where the file stands');
      t.equal(mine.find((e) => e.method === 'PATCH')?.offset, 3 * CHUNK, 'continued at the server\'s offset');
    }
    t.equal(tusB.log.filter((e) => e.method === 'POST').length, 1, 'only the file never started is created anew');
    t.equal(storedOf(sops).length, 4, 'all four stored');
    t.same(second.problems, []);
  });

  t.test('clamd stopped during an upload: held, nothing stored unscanned; finished once clamd is back', async (t) => {
    const set = benchSet('upload-held', 4, 512);
    const sops = await sopsOf(set);
    const { page, problems } = await openPage(t, browser);
    await enterCode(page, srv.url, await srv.createCode());
    const tus = await watchTus(page);
    tus.hold = (r) => r.patchesOfUrl >= 3;
    await page.setInputFiles('#input-files', set);
    await waitAdds(page, 1);
    await startUpload(page);
    await waitFor('three files part-way', () => tus.routes.length >= 3);
    await clamd.stop();
    t.pass('clamd stopped');
    tus.hold = () => false;
    for (const r of tus.routes.splice(0)) await r.continue().catch(() => undefined);
    await until(page, `document.getElementById('upload-held') !== null && document.getElementById('upload-server').dataset.held === '4'`, 60_000);
    t.equal(await transferState(page), 'sent', 'every file sent');
    t.equal(await page.locator('#upload-state').innerText(), 'Validating files');
    t.match(await page.locator('#upload-held').innerText(), 'The malware scanner is not available at the moment. 4 images are kept safely');
    t.match(await page.locator('#upload-note').innerText(), 'you may close your browser');
    t.ok(await page.locator('#upload-keep-open').isHidden(), 'no longer "Do not close your browser"');
    t.equal(storedOf(sops).length, 0, 'nothing stored unscanned');
    t.equal(query(srv.dataDir, 'SELECT * FROM held_files').length, 4, 'four files held');
    t.equal(files(path.join(srv.dataDir, 'held')).length, 4, 'in the held area');

    await clamd.restart();
    t.pass('clamd is back');
    await waitServerState(page, 'complete');
    t.equal(await page.locator('#upload-kept').innerText(), '4 of 4 images received by the hospital');
    t.equal(storedOf(sops).length, 4, 'scanned, then stored');
    t.equal(query(srv.dataDir, 'SELECT * FROM held_files').length, 0, 'nothing held any more');
    t.same(files(path.join(srv.dataDir, 'held')), []);
    t.same(problems, []);
  });
});
