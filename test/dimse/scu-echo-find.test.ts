/** C-ECHO and C-FIND SCU against Orthanc (seeded with DCMTK's dcmsend), and their failures in words. */
import t from 'tap';
import net from 'node:net';
import path from 'node:path';
import { readHeader, type DicomHeader } from '../../appliance/dicom/header.ts';
import { echo } from '../../appliance/dimse/echo-scu.ts';
import { find } from '../../appliance/dimse/find-scu.ts';
import { freePort } from '../helpers/net.ts';
import { PYDICOM_DIR } from '../helpers/samples.ts';
import { startOrthanc, type Orthanc } from '../helpers/orthanc.ts';
import { dcmsend } from '../helpers/dcmtk.ts';

const CHARSETS = path.join(PYDICOM_DIR, '..', 'charset_files');
const seeds = [path.join(PYDICOM_DIR, 'CT_small.dcm'), path.join(PYDICOM_DIR, 'MR_small.dcm'), path.join(CHARSETS, 'chrFren.dcm'), path.join(CHARSETS, 'chrX1.dcm')];

/** A person name without trailing empty components or groups (PS3.5 6.2: they may be left out). */
const pn = (s: string | undefined) => (s ?? '').replace(/[=^ ]+$/, '');

let orthanc: Orthanc;
const headers: DicomHeader[] = [];

t.before(async () => {
  // Orthanc answers C-FIND in its DefaultEncoding (Latin-1 unless set), which cannot hold ideographic names.
  orthanc = await startOrthanc({ dir: t.testdir(), config: { DefaultEncoding: 'Utf8' } });
  const r = await dcmsend(['-aet', 'UPLINK', '-aec', orthanc.aeTitle, '127.0.0.1', String(orthanc.dicomPort), ...seeds]);
  if (r.code !== 0) throw new Error(`seeding Orthanc failed: ${r.stderr}`);
  for (const s of seeds) headers.push(await readHeader(s));
});
t.teardown(() => orthanc?.stop());

t.test('C-ECHO', async (t) => {
  const ok = await echo(orthanc.node, { callingAeTitle: 'UPLINK' });
  t.ok(ok.ok, ok.detail);
  t.equal(ok.status, 0);
  t.match(ok.detail, /Success/);
  t.ok(ok.ms >= 0 && ok.ms < 10000, `took ${ok.ms} ms`);

  const port = await freePort();
  const refused = await echo({ aeTitle: 'NOBODY', host: '127.0.0.1', port }, { callingAeTitle: 'UPLINK' });
  t.notOk(refused.ok);
  t.match(refused.detail, /connection refused/);

  // A server that accepts TCP and never says anything: the association timeout, in words.
  const mute = net.createServer(() => {});
  await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => mute.close(() => r())));
  mute.on('connection', (s) => t.teardown(() => s.destroy()));
  const silent = await echo({ aeTitle: 'MUTE', host: '127.0.0.1', port: (mute.address() as net.AddressInfo).port }, { callingAeTitle: 'UPLINK', timeouts: { associationMs: 500 } });
  t.notOk(silent.ok);
  t.match(silent.detail, /no answer to the association request .* within 500 ms/);
});

t.test('C-FIND at PATIENT level', async (t) => {
  const fren = headers[2];
  const r = await find(orthanc.node, { PatientID: fren.patientID }, 'PATIENT', { callingAeTitle: 'UPLINK' });
  t.ok(r.ok, r.detail);
  t.equal(r.matches.length, 1, 'one patient');
  const m = r.matches[0];
  t.equal(m.patientID, fren.patientID);
  t.equal(m.patientName, fren.patientName, `name decoded from its character set (${m.patientName})`);
  t.equal(m.patientSex ?? '', fren.patientSex);
  t.equal(m.patientBirthDate ?? '', fren.patientBirthDate);

  const all = await find(orthanc.node, { PatientID: '*' }, 'PATIENT', { callingAeTitle: 'UPLINK' });
  t.ok(all.ok, all.detail);
  t.same(
    all.matches.map((x) => x.patientID).sort(),
    [...new Set(headers.map((h) => h.patientID))].sort(),
    'every patient, by wildcard',
  );
  const x1 = all.matches.find((x) => x.patientID === headers[3].patientID)!;
  t.equal(pn(x1.patientName), pn(headers[3].patientName), `UTF-8 name with its ideographic group intact (${x1.patientName})`);

  const byName = await find(orthanc.node, { PatientName: fren.patientName }, 'PATIENT', { callingAeTitle: 'UPLINK' });
  t.same(
    byName.matches.map((x) => x.patientID),
    [fren.patientID],
    'a query value with accents matches (sent as ISO_IR 192)',
  );
});

t.test('C-FIND at STUDY level, and lower levels', async (t) => {
  const ct = headers[0];
  const r = await find(orthanc.node, { StudyInstanceUID: ct.studyInstanceUID }, 'STUDY', { callingAeTitle: 'UPLINK' });
  t.ok(r.ok, r.detail);
  t.equal(r.matches.length, 1);
  const m = r.matches[0];
  t.equal(m.studyInstanceUID, ct.studyInstanceUID);
  t.equal(m.patientID, ct.patientID);
  t.equal(m.patientName, ct.patientName);
  t.equal(m.studyDate ?? '', ct.studyDate);
  t.equal(m.accessionNumber ?? '', ct.accessionNumber);
  t.equal(m.studyDescription ?? '', ct.studyDescription);
  t.same(m.modalitiesInStudy, [ct.modality], 'modalities in study');
  t.equal(m.numberOfStudyRelatedInstances, '1');
  t.equal(m.attributes.StudyInstanceUID, ct.studyInstanceUID, 'raw attributes by keyword too');

  const studies = await find(orthanc.node, {}, 'STUDY', { callingAeTitle: 'UPLINK' });
  t.equal(studies.matches.length, new Set(headers.map((h) => h.studyInstanceUID)).size, 'universal query: every study');
  t.notOk(studies.truncated);

  const capped = await find(orthanc.node, {}, 'STUDY', { callingAeTitle: 'UPLINK', limit: 2 });
  t.ok(capped.ok, capped.detail);
  t.equal(capped.matches.length, 2, 'stopped at the limit');
  t.ok(capped.truncated, 'and says there was more');

  const series = await find(orthanc.node, { StudyInstanceUID: ct.studyInstanceUID }, 'SERIES', { callingAeTitle: 'UPLINK' });
  t.same(
    series.matches.map((s) => [s.seriesInstanceUID, s.modality]),
    [[ct.seriesInstanceUID, ct.modality]],
    'SERIES level',
  );
  const images = await find(orthanc.node, { StudyInstanceUID: ct.studyInstanceUID, SeriesInstanceUID: ct.seriesInstanceUID }, 'IMAGE', { callingAeTitle: 'UPLINK' });
  t.same(
    images.matches.map((s) => s.sopInstanceUID),
    [ct.sopInstanceUID],
    'IMAGE level',
  );

  const bad = await find(orthanc.node, { NotAKeyword: 'x' }, 'STUDY', { callingAeTitle: 'UPLINK' });
  t.notOk(bad.ok);
  t.match(bad.detail, /unknown attribute keyword/);

  const wrongAe = await find({ ...orthanc.node, aeTitle: 'WRONG' }, {}, 'STUDY', { callingAeTitle: 'UPLINK' });
  t.notOk(wrongAe.ok);
  t.match(wrongAe.detail, /called AE title not recognised/);
});
