// The message catalogues: English and Dutch have the same keys and the same {placeholders} and plural forms;
// every key a template or the browser bundle uses exists; every error of the error table has a message.
import t from 'tap';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { errorTable } from '../../appliance/errors.ts';
import { loadCatalogues } from '../../server/web/i18n.ts';
import { createTranslate } from '../../views/src/common/translate.ts';
import { ROOT } from '../helpers/server.ts';

const cats = loadCatalogues();

function walk(d: string): string[] {
  return readdirSync(d).flatMap((n) => {
    const p = path.join(d, n);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

const placeholders = (m: unknown) => [...JSON.stringify(m).matchAll(/\{(\w+)\}/g)].map((x) => x[1]).sort().join(',');

t.test('same keys, placeholders and forms in English and Dutch', async (t) => {
  t.same(Object.keys(cats.nl).sort(), Object.keys(cats.en).sort());
  for (const k of Object.keys(cats.en)) {
    const a = cats.en[k];
    const b = cats.nl[k];
    t.equal(typeof a, typeof b, `${k}: same kind`);
    if (typeof a === 'object') t.ok(a.other && typeof b === 'object' && b.other, `${k}: plural with "other"`);
    if (placeholders(a) !== placeholders(b)) t.fail(`${k}: placeholders differ: ${placeholders(a)} vs ${placeholders(b)}`);
  }
});

t.test('every key used by templates and the browser code exists', async (t) => {
  const files = [...walk(path.join(ROOT, 'views', 'templates')), ...walk(path.join(ROOT, 'views', 'src')), ...walk(path.join(ROOT, 'server'))];
  const used = new Set<string>();
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/\bt\(\s*'([\w.]+)'/g)) if (!m[1].endsWith('.')) used.add(m[1]); // 'lang.' + l: built at run time
  }
  t.ok(used.size > 60, `${used.size} keys used`);
  for (const k of used) if (!(k in cats.en)) t.fail(`missing from the catalogue: ${k}`);
  // Keys built at run time: errors and ZIP refusal reasons.
  for (const code of Object.keys(errorTable)) t.ok(`error.${code}` in cats.en, `error.${code}`);
  for (const r of ['entries', 'size', 'ratio', 'broken']) t.ok(`zip.reason.${r}` in cats.en);
  for (const l of ['en', 'nl']) t.ok(`lang.${l}` in cats.en);
});

t.test('the manual\'s words on the buttons', async (t) => {
  t.equal(cats.en['panel1.files'], 'Select images or ZIP file');
  t.equal(cats.en['panel1.folder'], 'Select a folder');
  t.equal(cats.en['panel1.drop'], 'Drag and drop images');
  t.equal(cats.en['panel2.start'], 'START UPLOAD');
  t.equal(cats.en['portal.code.label'], 'Upload code');
});

t.test('translate: placeholders, numbers and plural forms per language', async (t) => {
  const en = createTranslate('en', cats.en);
  const nl = createTranslate('nl', cats.nl);
  t.equal(en('summary.notDicom', { count: 312 }), '312 files are not DICOM images and will not be uploaded.');
  t.equal(en('summary.notDicom', { count: 1 }), '1 file is not a DICOM image and will not be uploaded.');
  t.equal(en('summary.images', { count: 2000 }), '2,000 images are ready to upload.');
  t.equal(nl('summary.images', { count: 2000 }), '2.000 beelden zijn klaar om te uploaden.');
  const missing: string[] = [];
  const x = createTranslate('nl', {}, cats.en, (k) => missing.push(k));
  t.equal(x('portal.code.label'), 'Upload code', 'falls back to English');
  t.same(missing, ['portal.code.label'], 'and reports the gap');
  t.equal(x('no.such.key'), 'no.such.key');
});
