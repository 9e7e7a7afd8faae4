/**
 * `npm run bench:upload`: about 1 GB of real-sized CT images (2,000 x 525 KB, benchSet('ct-512', 2000, 512))
 * uploaded from headless Chromium through the portal (code entered, files added, consent, START UPLOAD) to
 * 'Upload successful', against the real appliance as `npm start` runs it (tus with fsynced chunks, clamd scan,
 * anonymise + label rewrite, durable commit, index), with a private clamd (the test signature set). Printed
 * next to two baselines measured in the same run on the same bytes:
 *   - clamd's own INSTREAM rate (test/bench/clamd-instream.ts, concurrency scan.clamd.maxConcurrent), with a
 *     cold cache, as the upload sees it (clamd is restarted before the upload so both start cold);
 *   - a plain tus upload from the same browser with the same chunk size and parallelism to a bare @tus/server
 *     with its file store (no session, no fsync, no processing).
 * The machine is shared: the load average is printed with the figures. Not a pass/fail test.
 *
 *   npm run bench:upload [-- --files 2000] [--size 512]
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { FileStore } from '@tus/file-store';
import { Server } from '@tus/server';
import { build } from 'esbuild';
import { defaults } from '../../config/schema.ts';
import { launchBrowser, openPage } from '../helpers/browser.ts';
import { startTestClamd } from '../helpers/clamd.ts';
import { freePort } from '../helpers/net.ts';
import { ROOT, startServer } from '../helpers/server.ts';
import { enterCode, until, waitAdds } from '../views/lib/portal-page.ts';
import { formatInstreamResult, measureClamdInstream } from './clamd-instream.ts';
import { benchSet } from './fixtures.ts';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const COUNT = arg('files', 2000);
const SIZE = arg('size', 512);
const CHUNK = defaults.upload.chunkBytes;
const PARALLEL = defaults.upload.parallelFiles;
const SCAN_CONCURRENCY = defaults.scan.clamd.maxConcurrent;

const cleanup: (() => unknown)[] = [];
const t = { teardown: (fn: () => unknown) => void cleanup.unshift(fn) };
const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
const mbps = (bytes: number, s: number) => bytes / 1e6 / s;

/** The bare tus baseline: a page with tus-js-client, a @tus/server with its file store, nothing else. */
async function plainTusServer(dir: string): Promise<{ url: string; close(): Promise<void> }> {
  const bundle = await build({
    stdin: {
      contents: `
        import * as tus from 'tus-js-client';
        window.runBench = (chunkSize, parallel) => new Promise((resolve, reject) => {
          const files = [...document.getElementById('f').files];
          let next = 0, done = 0;
          const t0 = performance.now();
          const one = () => {
            if (next >= files.length) return;
            const file = files[next++];
            const u = new tus.Upload(file, { endpoint: '/files', chunkSize, retryDelays: [0, 1000], storeFingerprintForResuming: false,
              metadata: { name: file.name },
              onSuccess: () => { done++; if (done === files.length) resolve(performance.now() - t0); else one(); },
              onError: reject });
            u.start();
          };
          for (let i = 0; i < parallel; i++) one();
        });`,
      resolveDir: ROOT,
      loader: 'js',
    },
    bundle: true,
    format: 'iife',
    platform: 'browser',
    write: false,
    logLevel: 'warning',
  });
  const js = bundle.outputFiles[0].contents;
  const tus = new Server({ path: '/files', datastore: new FileStore({ directory: dir }), relativeLocation: true });
  const server = http.createServer((req, res) => {
    if (req.url === '/') {
      res.setHeader('Content-Type', 'text/html');
      res.end('<!doctype html><html><body><input type="file" id="f" multiple><script src="/bench.js"></script></body></html>');
    } else if (req.url === '/bench.js') {
      res.setHeader('Content-Type', 'text/javascript');
      res.end(js);
    } else void tus.handle(req, res);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

async function main(): Promise<void> {
  console.log(`Upload benchmark: ${COUNT} CT files of ${SIZE}x${SIZE} (chunks ${CHUNK / 1048576} MiB, ${PARALLEL} files in parallel, scan concurrency ${SCAN_CONCURRENCY}), ${os.cpus().length} cores`);
  const files = benchSet('ct-512', COUNT, SIZE);
  const bytes = files.reduce((n, f) => n + statSync(f).size, 0);
  console.log(`${files.length} files, ${(bytes / 1e6).toFixed(1)} MB; load average before: ${load()}`);
  const work = mkdtempSync(path.join(os.tmpdir(), 'uplink-bench-upload-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));

  // 1. clamd's own rate on these bytes (cold cache), then a fresh clamd (cold again) for the upload.
  const clamd = await startTestClamd(t, path.join(work, 'clamd'), { limits: { streamMaxBytes: 2 ** 31 - 1, maxFileBytes: 2 ** 31 - 1, maxScanBytes: 2 ** 32 - 1, maxThreads: 12 } });
  const instream = await measureClamdInstream({ host: '127.0.0.1', port: clamd.port, files, concurrency: SCAN_CONCURRENCY });
  console.log(formatInstreamResult(instream, 'clamd INSTREAM (cold cache)'));
  await clamd.restart();

  const browser = await launchBrowser(t);

  // 2. A plain tus upload of the same files from the same browser.
  let plainRate = 0;
  const plainDir = path.join(work, 'plain-tus');
  const plain = await plainTusServer(plainDir);
  t.teardown(() => plain.close());
  {
    const { page } = await openPage(t, browser);
    await page.goto(plain.url);
    await page.setInputFiles('#f', files);
    const ms = (await page.evaluate(`runBench(${CHUNK}, ${PARALLEL})`)) as number;
    plainRate = mbps(bytes, ms / 1000);
    console.log(`plain tus (no processing): ${(bytes / 1e6).toFixed(1)} MB in ${(ms / 1000).toFixed(2)} s = ${plainRate.toFixed(1)} MB/s`);
    await page.close();
    rmSync(plainDir, { recursive: true, force: true });
  }

  // 3. The portal, START UPLOAD to 'Upload successful', on the real appliance.
  const srv = await startServer(t, {
    dir: path.join(work, 'uplink'),
    config: { scan: { clamd: { host: '127.0.0.1', port: clamd.port, manage: false } }, log: { level: 'warn' } },
  });
  const { page, problems } = await openPage(t, browser);
  await enterCode(page, srv.url, await srv.createCode());
  const tAdd = performance.now();
  await page.setInputFiles('#input-files', files);
  await waitAdds(page, 1, 300_000);
  const addMs = performance.now() - tAdd;
  await page.check('#consent');
  const t0 = performance.now();
  await page.click('#start-upload');
  await until(page, `document.getElementById('panel-upload')?.dataset.transfer === 'sent'`, 1_800_000);
  const sentS = (performance.now() - t0) / 1000;
  await until(page, `document.getElementById('upload-server')?.dataset.state === 'complete'`, 1_800_000);
  const doneS = (performance.now() - t0) / 1000;
  const kept = await page.locator('#upload-kept').innerText();
  const loadAfter = load();
  if (problems.length) console.log('page problems:', problems);

  const upload = mbps(bytes, doneS);
  console.log(`files read in the browser: ${(addMs / 1000).toFixed(1)} s (not part of the upload time)`);
  console.log(`Uplink upload: START UPLOAD -> all sent ${sentS.toFixed(2)} s (${mbps(bytes, sentS).toFixed(1)} MB/s), -> 'Upload successful' ${doneS.toFixed(2)} s = ${upload.toFixed(1)} MB/s (${kept})`);
  console.log(
    `\nresult: Uplink ${upload.toFixed(1)} MB/s = ${(upload / instream.mbPerSec).toFixed(2)}x clamd INSTREAM (${instream.mbPerSec.toFixed(1)} MB/s), ` +
      `${(upload / plainRate).toFixed(2)}x plain tus (${plainRate.toFixed(1)} MB/s); goal >= 0.7x clamd`,
  );
  console.log(`load average (1, 5, 15 min) after: ${loadAfter}`);
}

main()
  .catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const fn of cleanup) await Promise.resolve(fn()).catch(() => undefined);
  });
