// Opening ZIP files in the browser (views/src/files/zip-reader.ts with fflate, in Node): real samples come out
// byte for byte with their folder paths; stored and deflated entries; a nested ZIP comes out as a plain file
// (the set reports it, it is not opened); limits on entry count, unpacked size and compression ratio refuse the
// whole ZIP; damaged and encrypted-looking archives are refused, not half-read.
import t from 'tap';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { zipSync, Zip, ZipPassThrough } from 'fflate';
import { cleanEntryName, readZip } from '../../views/src/files/zip-reader.ts';
import { PYDICOM_DIR } from '../helpers/samples.ts';

const limits = { maxEntries: 100, maxBytes: 50 * 1024 * 1024, maxRatio: 200 };
const sample = (f: string) => new Uint8Array(readFileSync(path.join(PYDICOM_DIR, f)));
const bytesOf = async (f: File) => Buffer.from(await f.arrayBuffer());

t.test('entries out byte for byte, with paths; nested ZIP as a file', async (t) => {
  const inner = zipSync({ 'x.dcm': sample('MR_small.dcm') });
  const zip = zipSync({
    'study/CT_small.dcm': [sample('CT_small.dcm'), { level: 6 }],
    'study/sub/MR_small.dcm': [sample('MR_small.dcm'), { level: 0 }],
    'README.txt': new TextEncoder().encode('viewer inside'),
    'more/inner.zip': inner,
    'empty-folder/': new Uint8Array(0),
  });
  const r = await readZip(new File([zip], 'cd.zip'), limits);
  if (!r.ok) return t.fail(`refused: ${r.reason}`);
  t.same(r.entries.map((e) => e.path).sort(), ['README.txt', 'more/inner.zip', 'study/CT_small.dcm', 'study/sub/MR_small.dcm']);
  const ct = r.entries.find((e) => e.path === 'study/CT_small.dcm')!;
  t.same(await bytesOf(ct.file), Buffer.from(sample('CT_small.dcm')), 'deflated entry identical');
  t.equal(ct.file.name, 'CT_small.dcm');
  t.same(await bytesOf(r.entries.find((e) => e.path.endsWith('MR_small.dcm'))!.file), Buffer.from(sample('MR_small.dcm')), 'stored entry identical');
  t.same(await bytesOf(r.entries.find((e) => e.path.endsWith('inner.zip'))!.file), Buffer.from(inner), 'the nested ZIP is handed out unopened');
});

t.test('a streamed ZIP (sizes in data descriptors) is read too', async (t) => {
  const chunks: Uint8Array[] = [];
  const z = new Zip((err, data) => {
    if (err) throw err;
    chunks.push(data);
  });
  const e = new ZipPassThrough('a/MR_small.dcm');
  z.add(e);
  e.push(sample('MR_small.dcm'), true);
  z.end();
  const r = await readZip(new File(chunks as unknown as ConstructorParameters<typeof File>[0], 's.zip'), limits);
  t.ok(r.ok);
  if (r.ok) t.same(await bytesOf(r.entries[0].file), Buffer.from(sample('MR_small.dcm')));
});

t.test('limits: too many entries, too large, a ZIP bomb', async (t) => {
  const many: Record<string, Uint8Array> = {};
  for (let i = 0; i < 101; i++) many[`f${i}`] = new Uint8Array([i]);
  t.same(await readZip(new File([zipSync(many)], 'many.zip'), limits), { ok: false, reason: 'entries' });

  const big = zipSync({ a: [new Uint8Array(6 * 1024 * 1024).fill(7), { level: 0 }] });
  t.same(await readZip(new File([big], 'big.zip'), { ...limits, maxBytes: 5 * 1024 * 1024 }), { ok: false, reason: 'size' });

  const bomb = zipSync({ 'zeros.dcm': [new Uint8Array(40 * 1024 * 1024), { level: 9 }] });
  t.ok(bomb.length < 100_000, `40 MB of zeros pack into ${bomb.length} bytes`);
  t.same(await readZip(new File([bomb], 'bomb.zip'), limits), { ok: false, reason: 'ratio' });
  // Just under the ratio: fine.
  const ok = zipSync({ 'x.dcm': [new Uint8Array(2 * 1024 * 1024).fill(1), { level: 9 }] });
  t.same((await readZip(new File([ok], 'ok.zip'), { ...limits, maxRatio: 100_000 })).ok, true);
});

t.test('damaged archives are refused whole', async (t) => {
  const zip = zipSync({ 'a.dcm': [sample('CT_small.dcm'), { level: 6 }], 'b.dcm': [sample('MR_small.dcm'), { level: 6 }] });
  const cut = zip.slice(0, Math.floor(zip.length / 3));
  t.same(await readZip(new File([cut], 'cut.zip'), limits), { ok: false, reason: 'broken' }, 'cut off');
  const garbled = Uint8Array.from(zip);
  for (let i = 60; i < 400; i++) garbled[i] ^= 0x5a; // inside the first deflate stream
  t.same(await readZip(new File([garbled], 'garbled.zip'), limits), { ok: false, reason: 'broken' }, 'corrupt deflate data');
  const lzma = Uint8Array.from(zipSync({ 'a.dcm': [sample('MR_small.dcm'), { level: 0 }] }));
  lzma[8] = 14; // compression method: LZMA
  t.same(await readZip(new File([lzma], 'lzma.zip'), limits), { ok: false, reason: 'broken' }, 'unsupported compression');
});

t.test('entry names are cleaned', async (t) => {
  t.equal(cleanEntryName('/a/./b/../c\\d'), 'a/c/d');
  t.equal(cleanEntryName('../../etc/passwd'), 'etc/passwd');
});
