// The study ZIP (appliance/studies/study-zip.ts, dicomdir.ts) on a real in-process appliance: one study made of
// pydicom samples in five transfer syntaxes (explicit and implicit little endian, big endian, JPEG 2000, RLE), a
// non-image object (RT Dose) and a series whose instance numbers are out of order, with a non-ASCII patient name.
// Every file in the ZIP is the stored file byte for byte, in the layout DICOM/ST/SE/IM ordered by series and
// instance number; the DICOMDIR is read by DCMTK (dcmdump) and pydicom's FileSet, which follows each record to
// its file and finds the SOP Instance and transfer syntax the record names; the name survives (UTF-8 record).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { copyFileSync, createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { unzipSync } from 'fflate';
import { createAppliance } from '../../appliance/appliance.ts';
import { silentLogger } from '../../appliance/log.ts';
import { createStudyZip } from '../../appliance/studies/study-zip.ts';
import { dcmdump } from '../helpers/dcmtk.ts';
import { copyWithNewUids, PYDICOM_DIR } from '../helpers/samples.ts';
import { writeTestConfig } from '../helpers/server.ts';

const NAME = 'Müller^Jürgen';

t.test('a study as a ZIP with a DICOMDIR', async (t) => {
  const dir = t.testdir();
  const { config } = await writeTestConfig(path.join(dir, 'uplink'));
  const appliance = createAppliance(config, silentLogger());
  await appliance.start();
  t.teardown(() => appliance.stop());

  // series number -> files; series 1 has three instances numbered 3, 1, 2 (in arrival order)
  const study = '1.2.826.0.1.3680043.8.498.4711';
  const series: [number, string[]][] = [
    [4, ['MR_small_bigendian.dcm']],
    [1, ['CT_small.dcm', 'CT_small.dcm', 'CT_small.dcm']],
    [3, ['JPEG2000.dcm', 'SC_rgb_rle.dcm']],
    [2, ['MR_small_implicit.dcm', 'rtdose.dcm']],
  ];
  const files: string[] = [];
  for (const [number, samples] of series) {
    const copies = copyWithNewUids(samples.map((s) => path.join(PYDICOM_DIR, s)), path.join(dir, `series-${number}`));
    // one series per group: the same Series Instance UID for all its files
    const seriesUid = `${study}.${number}`;
    copies.forEach((f, i) => {
      execFileSync('dcmodify', [
        '-nb', '-ie',
        '-i', `(0020,000D)=${study}`,
        '-i', `(0020,000E)=${seriesUid}`,
        '-i', `(0020,0011)=${number}`,
        '-i', '(0008,0005)=ISO_IR 192',
        '-i', `(0010,0010)=${NAME}`,
        '-i', '(0010,0020)=PID-1',
        ...(number === 1 ? ['-i', `(0020,0013)=${[3, 1, 2][i]}`] : []),
        f,
      ], { stdio: 'pipe' });
    });
    files.push(...copies);
  }
  let n = 0;
  for (const f of files) {
    const staged = appliance.store.stagingPath('.dcm');
    copyFileSync(f, staged);
    const o = await appliance.ingest.ingest({ path: staged }, { kind: 'dicom', policy: 'modality', batch: `assoc:${n++}`, actor: { kind: 'node', name: 'CT' } });
    t.equal(o.kind, 'stored', `${path.basename(f)} stored`);
  }

  const zip = createStudyZip({ db: appliance.db, store: appliance.store });
  t.equal(zip.plan('1.2.3.404'), null, 'no such study: no plan');
  const plan = zip.plan(study)!;
  t.equal(plan.entries.length, 8);
  const zipFile = path.join(dir, 'study.zip');
  await pipeline(zip.stream(plan), createWriteStream(zipFile));
  const entries = unzipSync(readFileSync(zipFile));
  const names = Object.keys(entries).sort();
  t.same(names, [
    'DICOM/ST000001/SE000001/IM000001',
    'DICOM/ST000001/SE000001/IM000002',
    'DICOM/ST000001/SE000001/IM000003',
    'DICOM/ST000001/SE000002/IM000001',
    'DICOM/ST000001/SE000002/IM000002',
    'DICOM/ST000001/SE000003/IM000001',
    'DICOM/ST000001/SE000003/IM000002',
    'DICOM/ST000001/SE000004/IM000001',
    'DICOMDIR',
  ]);
  const out = path.join(dir, 'unzipped');
  for (const [name, bytes] of Object.entries(entries)) {
    mkdirSync(path.dirname(path.join(out, name)), { recursive: true });
    writeFileSync(path.join(out, name), bytes);
  }
  const storedPath = appliance.db.prepare('SELECT path FROM instances WHERE sop_uid = ?');
  for (const name of names.filter((x) => x !== 'DICOMDIR')) {
    const dump = (await dcmdump(['+P', '0008,0018', '+P', '0020,0011', '+P', '0020,0013', path.join(out, name)])).stdout;
    const sop = /\(0008,0018\) UI \[([0-9.]+)\]/.exec(dump)![1];
    const stored = readFileSync(path.join(config.dataDir, 'store', (storedPath.get(sop) as { path: string }).path));
    t.ok(stored.equals(Buffer.from(entries[name])), `${name}: the stored file, byte for byte`);
    const se = Number(/SE0*(\d+)/.exec(name)![1]);
    t.match(dump, new RegExp(`\\(0020,0011\\) IS \\[${se}\\]`), `${name}: series number ${se}`);
    if (se === 1) t.match(dump, new RegExp(`\\(0020,0013\\) IS \\[${Number(/IM0*(\d+)/.exec(name)![1])}\\]`), `${name}: instances in instance number order`);
  }

  const dd = await dcmdump([path.join(out, 'DICOMDIR')]);
  t.equal(dd.code, 0, 'dcmdump reads the DICOMDIR');
  t.match(dd.stdout, /MediaStorageDirectoryStorage/);
  t.equal((dd.stdout.match(/CS \[IMAGE\]/g) ?? []).length, 8);
  t.equal((dd.stdout.match(/CS \[SERIES\]/g) ?? []).length, 4);
  const py = execFileSync('/usr/bin/python3', [
    '-c',
    [
      'import sys, json, pydicom',
      'from pydicom.fileset import FileSet',
      'fs = FileSet(pydicom.dcmread(sys.argv[1]))',
      'out = []',
      'for i in fs:',
      '    ds = i.load()',
      '    r = i.node._record',
      '    out.append([i.FileID, r.ReferencedSOPInstanceUIDInFile, ds.SOPInstanceUID, r.ReferencedTransferSyntaxUIDInFile, str(ds.file_meta.TransferSyntaxUID), r.ReferencedSOPClassUIDInFile, ds.SOPClassUID])',
      'pat = fs.find(PatientID="PID-1")[0].node.parent.parent.parent._record',
      'print(json.dumps({"records": out, "name": str(pat.PatientName)}))',
    ].join('\n'),
    path.join(out, 'DICOMDIR'),
  ]).toString();
  const r = JSON.parse(py) as { records: string[][]; name: string };
  t.equal(r.records.length, 8, 'pydicom follows the DICOMDIR to all eight files');
  for (const [fileId, recSop, sop, recTs, ts, recClass, cls] of r.records) {
    t.equal(recSop, sop, `${fileId}: the SOP Instance UID the record names`);
    t.equal(recTs, ts, `${fileId}: its transfer syntax`);
    t.equal(recClass, cls, `${fileId}: its SOP class`);
  }
  t.same(new Set(r.records.map((x) => x[4])).size, 5, 'five transfer syntaxes in the set');
  t.equal(r.name, NAME, 'the patient name survives (the record says ISO_IR 192)');
});
