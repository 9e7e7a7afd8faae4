#!/usr/bin/env node
// Builds the browser bundle into views/static/build/ (run by config/setup.mjs when views/src is newer than
// build/.stamp, and by `npm run build`):
//   app.js            every page's script (views/src/app.ts): htmx CSRF header, language switch, the portal page
//   header-worker.js  the Web Worker reading DICOM headers with dcmjs (views/src/dicom/header-worker.ts)
//   zip-worker.js     the Web Worker opening ZIP files with fflate (views/src/files/zip-worker.ts)
//   console.js        the admin console's focus and print behaviour (views/src/console/console.ts)
//   htmx.min.js       copied from node_modules/htmx.org
// Each file is written to a temporary name and renamed, so parallel builds (tests) never see half a file.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.join(here, 'static', 'build');
const require = (await import('node:module')).createRequire(import.meta.url);
mkdirSync(out, { recursive: true });

const tmpName = (f) => `${f}.${process.pid}.tmp`;
function writeAtomic(file, data) {
  writeFileSync(tmpName(file), data);
  renameSync(tmpName(file), file);
}

const started = Date.now();
const result = await build({
  entryPoints: {
    app: path.join(here, 'src', 'app.ts'),
    'header-worker': path.join(here, 'src', 'dicom', 'header-worker.ts'),
    'zip-worker': path.join(here, 'src', 'files', 'zip-worker.ts'),
    console: path.join(here, 'src', 'console', 'console.ts'),
  },
  outdir: out,
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: ['chrome100', 'firefox100', 'safari15', 'edge100'],
  minify: true,
  sourcemap: 'linked',
  legalComments: 'linked',
  write: false,
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': '"production"' },
});
for (const f of result.outputFiles) writeAtomic(f.path, f.contents);

const htmx = require.resolve('htmx.org/dist/htmx.min.js');
copyFileSync(htmx, tmpName(path.join(out, 'htmx.min.js')));
renameSync(tmpName(path.join(out, 'htmx.min.js')), path.join(out, 'htmx.min.js'));

writeAtomic(path.join(out, '.stamp'), `${new Date().toISOString()}\n`);
const sizes = result.outputFiles.filter((f) => f.path.endsWith('.js')).map((f) => `${path.basename(f.path)} ${(f.contents.length / 1024).toFixed(0)} kB`);
console.log(`[build] browser bundle in ${Date.now() - started} ms: ${sizes.join(', ')}`);
