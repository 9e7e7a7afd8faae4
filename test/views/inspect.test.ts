// Reading headers in the browser (views/src/dicom/inspect.ts, run here in Node on the same Blob API):
// every pydicom sample is recognised by content (not name), its header read up to Pixel Data with dcmjs; the
// fast path (prefilter) and dcmjs on the whole header agree; a tiny first read grows until the header is
// whole; DICOMDIRs list their references; ZIPs and other files are told apart. Checked against DCMTK's dcmdump.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { zipSync } from 'fflate';
import { inspectFile } from '../../views/src/dicom/inspect.ts';
import { prefilter } from '../../views/src/dicom/prefilter.ts';
import { DICOMDIR_TREES, PYDICOM_DIR, validSamples } from '../helpers/samples.ts';

const blobOf = (f: string) => new Blob([readFileSync(f)]);

function walk(d: string): string[] {
  return readdirSync(d).flatMap((n) => {
    const p = path.join(d, n);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

/** Tag values as DCMTK prints them ("" when empty or absent). */
function dump(file: string, tags: string[]): Record<string, string> {
  // +p: nested elements are printed with their sequence path, so "(tag) " at the start is top level.
  const out = execFileSync('dcmdump', ['-q', '+p', '+L', ...tags.flatMap((x) => ['+P', x]), file], { encoding: 'latin1' });
  const res: Record<string, string> = {};
  for (const tag of tags) {
    const line = out.split('\n').find((l) => l.toLowerCase().startsWith(`(${tag.toLowerCase()}) `));
    const m = line ? /\[(.*?)\]/.exec(line) : null;
    // A value DCMTK leaves as UN (unknown VR) is printed as hex bytes: decode it.
    const un = line ? /\) UN ([0-9a-f]{2}(?:\\[0-9a-f]{2})*)/.exec(line) : null;
    res[tag] = m ? m[1].trim() : un ? Buffer.from(un[1].split('\\').map((x) => parseInt(x, 16))).toString('latin1').replace(/[\0 ]+$/, '') : '';
  }
  return res;
}

t.test('every valid sample: identifiers, patient and study as dcmdump reads them', async (t) => {
  const tags = ['0008,0018', '0020,000d', '0020,000e', '0010,0010', '0010,0020', '0008,0020', '0008,0060'];
  let n = 0;
  let without = 0;
  for (const f of validSamples()) {
    const r = await inspectFile(blobOf(f));
    const d = dump(f, tags);
    if (!d['0008,0018'] || !d['0020,000d'] || !d['0020,000e']) {
      // No SOP / Study / Series Instance UID at the top level (test files with only private data): such a
      // file cannot be placed in a study, so the uploader is told it cannot be read.
      t.equal(r.kind, 'unreadable', `${path.basename(f)} lacks identifiers: unreadable`);
      without++;
      continue;
    }
    if (r.kind !== 'dicom') {
      t.fail(`${path.basename(f)}: ${r.kind} ${'reason' in r ? r.reason : ''}`);
      continue;
    }
    const h = r.header;
    const same =
      h.sopInstanceUid === d['0008,0018'] &&
      h.studyInstanceUid === d['0020,000d'] &&
      h.seriesInstanceUid === d['0020,000e'] &&
      h.patientId === d['0010,0020'] &&
      h.studyDate === d['0008,0020'] &&
      h.modality === d['0008,0060'] &&
      h.patientName.replace(/\s+$/, '') === d['0010,0010'];
    t.ok(same, `${path.basename(f)} matches dcmdump`) || t.comment(JSON.stringify({ h, d }));
    n++;
  }
  t.ok(n > 40, `${n} samples compared (${without} without identifiers)`);
});

t.test('fast path, full dcmjs path and a 300-byte first read agree on every pydicom file', async (t) => {
  let compared = 0;
  const differ: string[] = [];
  for (const f of walk(PYDICOM_DIR)) {
    const b = blobOf(f);
    const fast = JSON.stringify(await inspectFile(b));
    const full = JSON.stringify(await inspectFile(b, { noPrefilter: true }));
    const small = JSON.stringify(await inspectFile(b, { firstRead: 300 }));
    compared++;
    if (fast !== small) differ.push(`${path.relative(PYDICOM_DIR, f)}: first read size changes the result`);
    // A file cut off after group 0028 is whole for the fast path (it stops there), unreadable for full dcmjs.
    if (fast !== full && path.basename(f) !== 'rtplan_truncated.dcm') differ.push(`${path.relative(PYDICOM_DIR, f)}: fast != full`);
  }
  t.same(differ, []);
  t.ok(compared > 150, `${compared} files`);
});

t.test('recognised by content, not by name', async (t) => {
  const ct = readFileSync(path.join(PYDICOM_DIR, 'CT_small.dcm'));
  const r = await inspectFile(new File([ct], 'IM000001'));
  t.equal(r.kind, 'dicom', 'an extensionless CD name');
  t.same(await inspectFile(new File([Buffer.from('[autorun]\nopen=viewer.exe\n')], 'image.dcm')), { kind: 'not-dicom' }, 'a .dcm name without DICM');
  t.same(await inspectFile(new File([Buffer.from('%PDF-1.4\n' + 'x'.repeat(300))], 'report.pdf')), { kind: 'not-dicom' });
  t.same(await inspectFile(new File([], 'empty')), { kind: 'not-dicom' });
  const zip = zipSync({ 'a/CT_small.dcm': new Uint8Array(ct) });
  t.same(await inspectFile(new File([zip], 'images')), { kind: 'zip' }, 'a ZIP without .zip');
  // DICM at 128 but garbage after it: unreadable (reported to the uploader), not "not DICOM".
  const junk = Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), Buffer.from('\x02\x00\x10\x00UI\xff\xffgarbage')]);
  t.equal((await inspectFile(new File([junk], 'x'))).kind, 'unreadable');
  // A ZIP signature in the preamble of a real DICOM file: DICOM wins (the preamble is free-form).
  const dual = Buffer.from(ct);
  dual.write('PK\x03\x04', 0, 'latin1');
  t.equal((await inspectFile(new File([dual], 'dual'))).kind, 'dicom');
});

t.test('DICOMDIR: references listed', async (t) => {
  const r = await inspectFile(blobOf(path.join(DICOMDIR_TREES, 'DICOMDIR')));
  if (r.kind !== 'dicomdir') return t.fail(`got ${r.kind}`);
  const listed = walk(DICOMDIR_TREES)
    .map((f) => path.relative(DICOMDIR_TREES, f))
    .filter((p) => /^(77654033|98892001|98892003)\//.test(p));
  t.equal(r.refs.length, listed.length, `${r.refs.length} references, one per image file of the three patients`);
  t.same(new Set(r.refs.map((x) => x.fileId.join('/'))), new Set(listed));
  t.match(r.refs[0], { fileId: ['77654033', 'CR1', '6154'], sopInstanceUid: '1.3.6.1.4.1.5962.1.1.0.0.0.1196527414.5534.0.11' });
});

t.test('prefilter: keeps only the wanted elements, asks for more when cut short', async (t) => {
  const buf = readFileSync(path.join(PYDICOM_DIR, 'CT_small.dcm'));
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length);
  const r = prefilter(ab, true);
  if (r.kind !== 'ok') return t.fail(r.kind);
  t.ok(r.buffer.byteLength < 1500, `filtered header is ${r.buffer.byteLength} bytes (file ${buf.length})`);
  t.same(prefilter(ab.slice(0, 600), false), { kind: 'need-more' });
  t.same(prefilter(ab.slice(0, 600), true), { kind: 'fallback' }, 'a file that really ends there: the full path decides');
  const dfl = readFileSync(path.join(PYDICOM_DIR, 'image_dfl.dcm'));
  t.same(prefilter(dfl.buffer.slice(dfl.byteOffset, dfl.byteOffset + dfl.length), true), { kind: 'fallback' }, 'deflated: full path');
});
