// C-FIND SCP against DCMTK findscu: Patient Root and Study Root, every level, each matching kind
// (universal, single value, wildcard, date range, UID list), computed attributes, the result limit and C-CANCEL.
import t from 'tap';
import path from 'node:path';
import { startAppliance } from '../helpers/appliance.ts';
import { dcmdump, dcmsend, runDcmtk, storescu } from '../helpers/dcmtk.ts';
import { copyWithNewUids, PYDICOM_DIR } from '../helpers/samples.ts';

const FILES = ['CT_small.dcm', 'MR_small.dcm', 'JPEG2000.dcm', 'SC_rgb_rle.dcm', 'rtplan.dcm', 'waveform_ecg.dcm', 'test-SR.dcm'].map((f) => path.join(PYDICOM_DIR, f));

type Row = Record<string, string>;
interface FindResult {
  rows: Row[];
  out: string;
  code: number;
}

/** Run findscu and parse each pending response's dataset into { "(0010,0010)": value }. */
async function findscu(port: number, model: '-P' | '-S', keys: string[], extra: string[] = []): Promise<FindResult> {
  const args = [model, '-v', '-aet', 'FINDSCU', '-aec', 'UPLINK', ...extra, '127.0.0.1', String(port), ...keys.flatMap((k) => ['-k', k])];
  const r = await runDcmtk('findscu', args);
  const out = `${r.stdout}${r.stderr}`;
  const code = r.code;
  const rows: Row[] = [];
  for (const block of out.split(/Find Response: \d+ \(Pending\)/).slice(1)) {
    const row: Row = {};
    // Values print as [text], =UIDName (well-known UIDs) or "(no value available)".
    for (const m of block.matchAll(/\(([0-9a-f]{4},[0-9a-f]{4})\) \w\w (?:\[([^\]]*)\]|=(\w+)|\(no value available\))/gi)) row[`(${m[1].toUpperCase()})`] = (m[2] ?? m[3] ?? '').replace(/[\0 ]+$/, ''); // network values keep their padding in findscu's dump
    rows.push(row);
  }
  return { rows, out, code };
}

async function dump(file: string, tag: string): Promise<string> {
  const r = await dcmdump(['+P', tag, file]);
  return /\[([^\]]*)\]/.exec(r.stdout)?.[1] ?? '';
}

t.test('C-FIND', async (t) => {
  const dir = t.testdir();
  const app = await startAppliance({
    dir: path.join(dir, 'uplink'),
    nodes: [{ name: 'WS', aeTitle: 'FINDSCU', allow: ['find'] }, { name: 'MOD', aeTitle: 'STORESCU', allow: ['store'] }],
  });
  t.teardown(() => app.stop());
  const p = app.dicomPort;
  await dcmsend(['-aet', 'STORESCU', '-aec', 'UPLINK', '127.0.0.1', String(p), ...FILES]);

  const studyUid = Object.fromEntries(await Promise.all(FILES.map(async (f) => [path.basename(f), await dump(f, '0020,000d')])));
  const seriesUid = Object.fromEntries(await Promise.all(FILES.map(async (f) => [path.basename(f), await dump(f, '0020,000e')])));
  const sopUid = Object.fromEntries(await Promise.all(FILES.map(async (f) => [path.basename(f), await dump(f, '0008,0018')])));

  await t.test('PATIENT level (Patient Root): wildcard *, counts', async (t) => {
    const r = await findscu(p, '-P', ['QueryRetrieveLevel=PATIENT', 'PatientName=CompressedSamples*', 'PatientID', 'NumberOfPatientRelatedStudies', 'NumberOfPatientRelatedInstances']);
    t.same(r.rows.map((x) => x['(0010,0020)']).sort(), ['1CT1', '4MR1', '8NM1'], 'the three CompressedSamples patients');
    t.ok(r.rows.every((x) => x['(0020,1200)'] === '1' && x['(0020,1204)'] === '1'), 'one study and one instance each');
  });

  await t.test('wildcard ? and case-insensitive person names', async (t) => {
    const r = await findscu(p, '-P', ['QueryRetrieveLevel=PATIENT', 'PatientName=lestrade^?', 'PatientID']);
    t.same(r.rows.map((x) => x['(0010,0020)']), ['ID1']);
  });

  await t.test('single value matching at STUDY level (Study Root), patient attributes included', async (t) => {
    const r = await findscu(p, '-S', ['QueryRetrieveLevel=STUDY', 'PatientID=1CT1', 'StudyInstanceUID', 'PatientName', 'ModalitiesInStudy', 'NumberOfStudyRelatedSeries', 'NumberOfStudyRelatedInstances', 'AccessionNumber']);
    t.equal(r.rows.length, 1);
    t.equal(r.rows[0]['(0020,000D)'], studyUid['CT_small.dcm']);
    t.equal(r.rows[0]['(0010,0010)'], 'CompressedSamples^CT1');
    t.equal(r.rows[0]['(0008,0061)'], 'CT');
    t.equal(r.rows[0]['(0020,1206)'], '1');
    t.equal(r.rows[0]['(0020,1208)'], '1');
    t.ok('(0008,0050)' in r.rows[0], 'a requested key the study has no value for is returned (empty)');
  });

  await t.test('date range matching', async (t) => {
    const r = await findscu(p, '-S', ['QueryRetrieveLevel=STUDY', 'StudyDate=20040101-20041231', 'PatientID']);
    t.same(r.rows.map((x) => x['(0010,0020)']).sort(), ['1CT1', '4MR1', '8NM1'], 'studies of 2004');
    const open = await findscu(p, '-S', ['QueryRetrieveLevel=STUDY', 'StudyDate=20130101-', 'PatientID']);
    t.same(open.rows.map((x) => x['(0010,0020)']).sort(), ['642341', 'ID1'], 'open-ended range: 2013 and later');
    const before = await findscu(p, '-S', ['QueryRetrieveLevel=STUDY', 'StudyDate=-20031231', 'PatientID']);
    t.same(before.rows.map((x) => x['(0010,0020)']), ['id00001'], 'open-start range: up to 2003');
    const birth = await findscu(p, '-P', ['QueryRetrieveLevel=PATIENT', 'PatientBirthDate=19710101-19711231', 'PatientID']);
    t.same(birth.rows.map((x) => x['(0010,0020)']), ['642341'], 'birth date range');
  });

  await t.test('UID list matching and universal matching', async (t) => {
    const list = `StudyInstanceUID=${studyUid['MR_small.dcm']}\\${studyUid['rtplan.dcm']}`;
    const r = await findscu(p, '-S', ['QueryRetrieveLevel=STUDY', list, 'PatientID']);
    t.same(r.rows.map((x) => x['(0010,0020)']).sort(), ['4MR1', 'id00001']);
    const all = await findscu(p, '-S', ['QueryRetrieveLevel=STUDY', 'StudyInstanceUID', 'StudyDate']);
    t.equal(all.rows.length, FILES.length, 'universal matching returns every study');
  });

  await t.test('SERIES and IMAGE levels', async (t) => {
    const s = await findscu(p, '-S', ['QueryRetrieveLevel=SERIES', `StudyInstanceUID=${studyUid['MR_small.dcm']}`, 'SeriesInstanceUID', 'Modality', 'NumberOfSeriesRelatedInstances']);
    t.equal(s.rows.length, 1);
    t.equal(s.rows[0]['(0020,000E)'], seriesUid['MR_small.dcm']);
    t.equal(s.rows[0]['(0008,0060)'], 'MR');
    t.equal(s.rows[0]['(0020,1209)'], '1');
    const mods = await findscu(p, '-S', ['QueryRetrieveLevel=SERIES', 'Modality=RTPLAN\\ECG', 'SeriesInstanceUID']);
    t.same(mods.rows.map((x) => x['(0020,000E)']).sort(), [seriesUid['rtplan.dcm'], seriesUid['waveform_ecg.dcm']].sort(), 'multi-value match on Modality');
    const i = await findscu(p, '-P', ['QueryRetrieveLevel=IMAGE', `SeriesInstanceUID=${seriesUid['SC_rgb_rle.dcm']}`, 'SOPInstanceUID', 'SOPClassUID']);
    t.same(i.rows.map((x) => x['(0008,0018)']), [sopUid['SC_rgb_rle.dcm']]);
    t.equal(i.rows[0]['(0008,0016)'], 'SecondaryCaptureImageStorage', 'SOP Class UID 1.2.840.10008.5.1.4.1.1.7');
  });

  await t.test('a level the information model does not have is refused', async (t) => {
    const r = await findscu(p, '-S', ['QueryRetrieveLevel=PATIENT', 'PatientID']);
    t.equal(r.rows.length, 0);
    t.match(r.out, /Final Find Response \(Error: DataSetDoesNotMatchSOPClass\)/, 'refused with 0xA900');
  });

  await t.test('result limit and C-CANCEL', async (t) => {
    const copies = copyWithNewUids(Array(120).fill(path.join(PYDICOM_DIR, 'CT_small.dcm')), path.join(dir, 'many'));
    await storescu(['-aet', 'STORESCU', '-aec', 'UPLINK', '127.0.0.1', String(p), ...copies]);
    const all = await findscu(p, '-S', ['QueryRetrieveLevel=IMAGE', `SeriesInstanceUID=${seriesUid['CT_small.dcm']}`, 'SOPInstanceUID']);
    t.equal(all.rows.length, 121, 'all 121 instances of the series');
    const cancelled = await findscu(p, '-S', ['QueryRetrieveLevel=IMAGE', `SeriesInstanceUID=${seriesUid['CT_small.dcm']}`, 'SOPInstanceUID'], ['--cancel', '1']);
    t.ok(cancelled.rows.length < 121, `C-CANCEL stopped the responses (${cancelled.rows.length} of 121)`);
    t.match(cancelled.out, /Received Final Find Response \(Cancel/, 'the final status says cancelled');
  });
});

t.test('dicom.findLimit cuts results off', async (t) => {
  const app = await startAppliance({ dir: t.testdir(), nodes: [{ name: 'WS', aeTitle: 'FINDSCU', allow: ['find'] }, { name: 'MOD', aeTitle: 'STORESCU', allow: ['store'] }], dicom: { findLimit: 3 } });
  t.teardown(() => app.stop());
  await dcmsend(['-aet', 'STORESCU', '-aec', 'UPLINK', '127.0.0.1', String(app.dicomPort), ...FILES]);
  const r = await findscu(app.dicomPort, '-S', ['QueryRetrieveLevel=STUDY', 'StudyInstanceUID']);
  t.equal(r.rows.length, 3, 'at most dicom.findLimit matches');
  await app.waitForLog(/C-FIND result cut off at dicom.findLimit/);
  t.pass('the cut-off is logged');
});
