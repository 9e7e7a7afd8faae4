/**
 * The real path: the appliance as `npm start` runs it (server/main.ts), a partner node whose C-STOREs get
 * the "upload" policy, DCMTK dcmsend sending a multi-study set of two original patients in their own
 * transfer syntaxes, DCMTK findscu asking what was stored: new Patient IDs (one per original patient) and new
 * accessions (one per study); the originals only in the index.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import t from 'tap';
import { createAuditLog } from '../../appliance/audit/audit-log.ts';
import { readHeader } from '../../appliance/dicom/header.ts';
import { createAnonymiseStore } from '../../appliance/intake/anonymise-store.ts';
import { startAppliance } from '../helpers/appliance.ts';
import { filesUnder } from '../helpers/dicom-files.ts';
import { EXPLICIT_LE, el, ids, item, part10, seq } from '../dicom/lib/build.ts';
import { makeStudies } from './lib/studies.ts';

const run = promisify(execFile);
const env = { ...process.env, TCP_NODELAY: '1' };

async function findStudies(port: number): Promise<Record<string, string>[]> {
  const keys = ['QueryRetrieveLevel=STUDY', 'StudyInstanceUID', 'PatientID', 'IssuerOfPatientID', 'AccessionNumber', 'NumberOfStudyRelatedInstances'];
  const r = await run('findscu', ['-S', '-v', '-aet', 'PARTNER', '-aec', 'UPLINK', '127.0.0.1', String(port), ...keys.flatMap((k) => ['-k', k])], { env, maxBuffer: 16 << 20 });
  const out = `${r.stdout}${r.stderr}`;
  return out
    .split(/Find Response: \d+ \(Pending\)/)
    .slice(1)
    .map((block) => {
      const row: Record<string, string> = {};
      for (const m of block.matchAll(/\(([0-9a-f]{4},[0-9a-f]{4})\) \w\w (?:\[([^\]]*)\]|\(no value available\))/gi)) row[m[1].toLowerCase()] = (m[2] ?? '').replace(/[\0 ]+$/, '');
      return row;
    });
}

t.test('a node with the upload policy: C-STORE a multi-study set, C-FIND the pseudonyms', async (t) => {
  const dir = t.testdir();
  const set = await makeStudies(path.join(dir, 'in'), [
    { patient: 'ORIG-PAT-A', sample: 'CT_small.dcm', studies: [{ accession: 'ORIG-ACC-A1', instances: 2 }, { accession: 'ORIG-ACC-A2', instances: 2 }] },
    { patient: 'ORIG-PAT-B', sample: 'MR_small_jp2klossless.dcm', studies: [{ accession: 'ORIG-ACC-B1', instances: 2 }] },
    { patient: 'ORIG-PAT-B', sample: 'MR_small_bigendian.dcm', studies: [{ accession: 'ORIG-ACC-B2', instances: 1 }] },
  ]);
  const app = await startAppliance({
    dir,
    nodes: [{ name: 'PARTNER', aeTitle: 'PARTNER', policy: 'upload' }],
    // the malware scanner belongs to the upload issue; this test is about the transform
    config: { anonymise: { issuer: 'HOSP-ISSUER' }, policies: { upload: { scan: false } } },
  });
  let stopped = false;
  t.teardown(async () => {
    if (!stopped) await app.stop();
  });

  // dcmsend proposes each file's own transfer syntax (explicit LE, JPEG 2000, big endian)
  const send = await run('dcmsend', ['-aet', 'PARTNER', '-aec', 'UPLINK', '127.0.0.1', String(app.dicomPort), ...set.map((i) => i.file)], { env }).then(
    (r) => ({ code: 0, out: r.stdout + r.stderr }),
    (e) => ({ code: e.code as number, out: `${e.stdout}${e.stderr}` }),
  );
  t.equal(send.code, 0, `dcmsend succeeded\n${send.out}`);

  const rows = await findStudies(app.dicomPort);
  const studies = [...new Set(set.map((i) => i.study))];
  t.equal(rows.length, studies.length, 'one C-FIND match per study');
  const row = (study: string) => rows.find((r) => r['0020,000d'] === study)!;
  const patientOf = new Map<string, string>();
  const accessions = new Set<string>();
  for (const study of studies) {
    const original = set.find((i) => i.study === study)!;
    const r = row(study);
    t.ok(r, `study ${study} found`);
    t.match(r['0010,0020'], /^UP[0-9A-Z]{14}$/, 'a new Patient ID');
    t.match(r['0008,0050'], /^UA[0-9A-Z]{14}$/, 'a new Accession Number');
    t.equal(r['0010,0021'], 'HOSP-ISSUER', 'the configured issuer');
    t.equal(r['0020,1208'], String(set.filter((i) => i.study === study).length), 'every instance stored');
    const seen = patientOf.get(original.patient);
    if (seen) t.equal(r['0010,0020'], seen, `${original.patient}: the same new Patient ID in each of its studies`);
    patientOf.set(original.patient, r['0010,0020']);
    t.notOk(accessions.has(r['0008,0050']), 'one accession per study');
    accessions.add(r['0008,0050']);
  }
  t.equal(new Set(patientOf.values()).size, 2, 'two original patients, two new Patient IDs');

  // sequences nested 40 deep (DCMTK sends them): refused with a reason, the next instance is stored
  const enc = EXPLICIT_LE;
  const uids = { sop: '1.2.826.0.1.3680043.2.1125.7.1', study: '1.2.826.0.1.3680043.2.1125.7.2', series: '1.2.826.0.1.3680043.2.1125.7.3' };
  const nest = (d: number): Buffer => (d === 0 ? el(enc, 0x00100020, 'LO', 'ORIG-DEEP') : seq(enc, 0x00400275, [item(enc, [nest(d - 1)], false)], false));
  const { g08, g20 } = ids(enc, uids);
  const deep = path.join(dir, 'deep.dcm');
  writeFileSync(deep, part10('1.2.840.10008.1.2.1', [...g08, el(enc, 0x00100020, 'LO', 'ORIG-DEEP'), ...g20, nest(40)], { sopInstance: uids.sop }));
  const bad = await run('dcmsend', ['-v', '-aet', 'PARTNER', '-aec', 'UPLINK', '127.0.0.1', String(app.dicomPort), deep], { env }).then(
    (r) => r.stdout + r.stderr,
    (e) => `${e.stdout}${e.stderr}`,
  );
  t.match(bad, /C-STORE Response \(Error: CannotUnderstand\)/, 'a failure status (0xC000) for the deep file');
  await app.waitForLog(/nested more than 32 deep/);
  const more = await makeStudies(path.join(dir, 'in2'), [{ patient: 'ORIG-PAT-C', sample: 'MR_small.dcm', studies: [{ accession: 'ORIG-ACC-C1', instances: 1 }] }]);
  const again = await run('dcmsend', ['-aet', 'PARTNER', '-aec', 'UPLINK', '127.0.0.1', String(app.dicomPort), more[0].file], { env }).then(() => 0, (e) => e.code as number);
  t.equal(again, 0, 'the appliance carries on: the next instance is stored');
  set.push(...more);
  studies.push(more[0].study);
  const rows2 = await findStudies(app.dicomPort);
  rows.push(rows2.find((r) => r['0020,000d'] === more[0].study)!);
  t.ok(rows[rows.length - 1], 'and found');
  t.notMatch(app.output(), /ORIG-|OTHER-/, 'the log holds no original identifier');

  const stopCode = await app.stop();
  stopped = true;
  t.equal(stopCode, 0, 'clean stop');

  // the store: every file carries its study's pseudonyms, no original
  const stored = filesUnder(path.join(app.dataDir, 'store'));
  t.equal(stored.length, set.length);
  for (const f of stored) {
    const h = await readHeader(f, { full: true });
    t.equal(h.patientID, row(h.studyInstanceUID)['0010,0020'], 'file = C-FIND Patient ID');
    t.equal(h.accessionNumber, row(h.studyInstanceUID)['0008,0050'], 'file = C-FIND accession');
    t.notMatch(readFileSync(f).toString('latin1'), /ORIG-|OTHER-|1234ABCD/, 'no original in the stored file');
  }

  // the index: originals (read through the audited admin API), labels, status, how it came
  const db = new Database(path.join(app.dataDir, 'uplink.sqlite'));
  t.teardown(() => db.close());
  const audit = createAuditLog(db);
  const anon = createAnonymiseStore(db, audit);
  for (const study of studies) {
    const original = set.find((i) => i.study === study)!;
    const o = anon.readOriginalIdentifiers(study, { kind: 'user', name: 'admin' });
    t.same(o?.patients.map((p) => [p.patientID, p.pseudonym]), [[original.patient, row(study)['0010,0020']]], 'original Patient ID kept in the index');
    t.same(o?.accessions.map((a) => [a.accessionNumber, a.pseudonym]), [[original.accession, row(study)['0008,0050']]], 'original accession kept in the index');
    const s = db.prepare(`SELECT workflow_status, (SELECT group_concat(label) FROM study_labels WHERE study_ref = studies.id) AS labels FROM studies WHERE study_uid = ?`).get(study) as { workflow_status: string; labels: string };
    t.same(s, { workflow_status: 'Finalized', labels: 'Uploaded' }, 'labelled Uploaded, Finalized');
    t.match(anon.readUploadInformation(study), [{ by: 'node', name: 'PARTNER', uploadId: /^assoc:/ }], 'came from the PARTNER node');
  }
  t.equal(audit.list({ action: 'read-original-identifiers' }).length, studies.length, 'each read audited');
});
