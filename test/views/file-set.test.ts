// The browser's set of added files (views/src/files/file-set.ts, in Node): images counted once by SOP Instance
// UID whatever way they came in; non-DICOM files counted once; grouping into patients, studies and series with
// counts; DICOMDIR references checked (missing, unreadable; CD-style names); nested ZIPs and refused ZIPs
// reported; the File objects of the chosen studies handed out grouped by study.
import t from 'tap';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { inspectFile } from '../../views/src/dicom/inspect.ts';
import { createFileSet, normalisePath, type Candidate, type Source } from '../../views/src/files/file-set.ts';
import { DICOMDIR_TREES, PYDICOM_DIR } from '../helpers/samples.ts';

function walk(d: string): string[] {
  return readdirSync(d).flatMap((n) => {
    const p = path.join(d, n);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

/** Candidates from real files, with paths relative to `base` under a top folder `top` (as webkitRelativePath). */
function candidates(files: string[], base: string, top: string, source: Source = 'folder'): Candidate[] {
  return files.map((f) => {
    const st = statSync(f);
    return { file: new File([readFileSync(f)], path.basename(f), { lastModified: st.mtimeMs }), path: `${top}/${path.relative(base, f)}`, source };
  });
}

async function inspectAll(cands: Candidate[]) {
  return Promise.all(cands.map(async (candidate) => ({ candidate, result: await inspectFile(candidate.file) })));
}

/** pydicom's DICOMDIR tree: the DICOMDIR at its top and the three patient folders it lists. */
const treeFiles = () => walk(DICOMDIR_TREES).filter((f) => /\/(77654033|98892001|98892003)\//.test(f) || f === path.join(DICOMDIR_TREES, 'DICOMDIR'));

t.test('a CD folder: patients, studies, series, counts; all DICOMDIR references found', async (t) => {
  const set = createFileSet();
  const out = set.add(await inspectAll(candidates(treeFiles(), DICOMDIR_TREES, 'CD')));
  const images = treeFiles().filter((f) => !f.endsWith('DICOMDIR'));
  t.equal(out.added, images.length, `${images.length} images`);
  t.equal(set.size(), images.length);
  const r = set.report();
  t.same(r.dicomdirs, [], 'every file the DICOMDIR lists is there and readable');
  t.equal(r.notDicom, 0);
  const patients = set.patients();
  t.same([...new Set(patients.map((p) => p.name))].sort(), ['Doe^Archibald', 'Doe^Peter']);
  const archibald = patients.find((p) => p.name === 'Doe^Archibald')!;
  t.ok(archibald, 'Doe^Archibald');
  const cr = archibald.studies.find((s) => s.description === 'XR C Spine Comp Min 4 Views')!;
  t.match(cr, { date: '20010101', modalities: ['CR'], imageCount: 3 });
  t.equal(cr.series.length, 3);
  t.equal(patients.reduce((n, p) => n + p.studies.reduce((m, s) => m + s.imageCount, 0), 0), images.length, 'every image in some study');
  const bytes = patients.flatMap((p) => p.studies).reduce((n, s) => n + s.bytes, 0);
  t.equal(bytes, images.reduce((n, f) => n + statSync(f).size, 0));
  const grouped = set.filesForStudies([cr.uid]);
  t.same([...grouped.keys()], [cr.uid]);
  t.equal(grouped.get(cr.uid)!.length, 3);
  t.ok(grouped.get(cr.uid)!.every((i) => i.file instanceof File && i.header.studyInstanceUid === cr.uid));
});

t.test('the same images by another way, twice: counted once', async (t) => {
  const set = createFileSet();
  const files = treeFiles().filter((f) => f.includes('77654033'));
  set.add(await inspectAll(candidates(files, DICOMDIR_TREES, 'CD', 'folder')));
  const again = set.add(await inspectAll(candidates(files, path.dirname(files[0]), '', 'drop')));
  t.equal(again.added, 0);
  t.equal(again.duplicates, files.length);
  t.equal(set.size(), files.length);
  t.equal(set.report().duplicates, files.length);
  // Non-DICOM: the same name, size and date counted once; a different file with the same name counted.
  const readme = (content: string, lastModified = 1000): Candidate => ({ file: new File([content], 'README.TXT', { lastModified }), path: 'README.TXT', source: 'files' });
  set.add(await inspectAll([readme('hello'), readme('hello'), readme('other text')]));
  t.equal(set.report().notDicom, 2);
});

t.test('DICOMDIR: missing and unreadable references, CD names (case, ;1)', async (t) => {
  const set = createFileSet();
  const all = treeFiles();
  const missing = path.join(DICOMDIR_TREES, '77654033', 'CR1', '6154');
  const broken = path.join(DICOMDIR_TREES, '98892001', 'CT5N', '2392');
  const kept = all.filter((f) => f !== missing && f !== broken);
  const cands = candidates(kept, DICOMDIR_TREES, 'CDROM');
  // CD file systems: upper case with ";1" versions.
  for (const c of cands) if (!c.path.endsWith('DICOMDIR')) c.path = `${c.path.toUpperCase()};1`;
  cands.push({ file: new File([Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), Buffer.from('broken')])], '2392'), path: 'CDROM/98892001/CT5N/2392', source: 'folder' });
  cands.push({ file: new File(['[autorun]'], 'AUTORUN.INF'), path: 'CDROM/AUTORUN.INF', source: 'folder' });
  set.add(await inspectAll(cands));
  const r = set.report();
  t.equal(r.dicomdirs.length, 1);
  t.same(r.dicomdirs[0], { folder: 'CDROM', missing: ['77654033/CR1/6154'], unreadable: ['98892001/CT5N/2392'] });
  t.same(r.unreadable.map((u) => u.path), ['CDROM/98892001/CT5N/2392']);
  t.equal(r.notDicom, 1);
  t.equal(normalisePath('cd\\Dir\\file.;1'), 'CD/DIR/FILE');
});

t.test('a DICOMDIR chosen alone: everything it lists is missing', async (t) => {
  const set = createFileSet();
  const dd = path.join(DICOMDIR_TREES, 'DICOMDIR');
  set.add(await inspectAll([{ file: new File([readFileSync(dd)], 'DICOMDIR'), path: 'DICOMDIR', source: 'files' }]));
  const r = set.report();
  t.equal(r.dicomdirs.length, 1);
  t.equal(r.dicomdirs[0].folder, '');
  t.ok(r.dicomdirs[0].missing.length > 30);
  t.equal(set.size(), 0, 'a DICOMDIR is not an image');
});

t.test('ZIPs: returned for opening; inside a ZIP not opened but reported; refusals reported', async (t) => {
  const set = createFileSet();
  const zipBytes = Buffer.from('PK\x03\x04' + '\0'.repeat(40), 'latin1');
  const out = set.add([
    { candidate: { file: new File([zipBytes], 'cd.zip'), path: 'cd.zip', source: 'files' }, result: { kind: 'zip' } },
    { candidate: { file: new File([zipBytes], 'inner.zip'), path: 'cd.zip/inner.zip', source: 'zip' }, result: { kind: 'zip' } },
  ]);
  t.same(out.zips.map((z) => z.path), ['cd.zip']);
  set.refuseZip('bomb.zip', 'ratio');
  const r = set.report();
  t.same(r.nestedZips, ['cd.zip/inner.zip']);
  t.same(r.refusedZips, [{ path: 'bomb.zip', reason: 'ratio' }]);
  set.clear();
  t.same(set.report(), { images: 0, duplicates: 0, notDicom: 0, unreadable: [], dicomdirs: [], nestedZips: [], refusedZips: [] });
});

t.test('studies of one patient sorted newest first; images from other samples', async (t) => {
  const set = createFileSet();
  const files = ['CT_small.dcm', 'MR_small.dcm', 'waveform_ecg.dcm'].map((f) => path.join(PYDICOM_DIR, f));
  set.add(await inspectAll(candidates(files, PYDICOM_DIR, 'x', 'files')));
  const names = set.patients().map((p) => p.name);
  t.same(names, ['Anonymous', 'CompressedSamples^CT1', 'CompressedSamples^MR1']);
  t.equal(set.patients()[0].birthDate, '19710123');
});
