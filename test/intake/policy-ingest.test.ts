/**
 * Intake policies through the one ingest path of an in-process appliance (createAppliance): anonymisation
 * consistent per batch and per study, also across a restart; originals in the index only, read through the
 * audited admin API; labels, workflow status and upload information; PE / ELF preambles; bad files refused
 * with a clear reason while the process carries on; logs free of identifiers.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import { createAppliance, type Appliance } from '../../appliance/appliance.ts';
import { readHeader } from '../../appliance/dicom/header.ts';
import { Tags } from '../../appliance/dicom/dictionary.ts';
import type { Origin, Outcome } from '../../appliance/intake/ingest.ts';
import { createLogger } from '../../appliance/log.ts';
import { merge, validate } from '../../config/load.ts';
import { defaults } from '../../config/schema.ts';
import { datasetBytes, filesUnder } from '../helpers/dicom-files.ts';
import { PYDICOM_DIR } from '../helpers/samples.ts';
import { EXPLICIT_LE, el, ids, item, part10, seq } from '../dicom/lib/build.ts';
import { flatten } from '../dicom/lib/compare.ts';
import { makeStudies, type TestInstance } from './lib/studies.ts';

interface World {
  app: Appliance;
  logs: string[];
}

function start(dataDir: string, logs: string[]): World {
  const config = validate(
    merge(defaults, {
      dataDir,
      anonymise: { issuer: 'HOSPITAL-X' },
      // clamd is the upload issue's: this test is about the transform
      policies: { upload: { scan: false }, modality: {} },
    }),
  );
  const sink = new Writable({
    write(chunk, _e, cb) {
      logs.push(String(chunk));
      cb();
    },
  });
  return { app: createAppliance(config, createLogger('debug', sink)), logs };
}

async function ingestCopy(app: Appliance, file: string, origin: Origin): Promise<Outcome> {
  const staged = app.store.stagingPath('.test');
  copyFileSync(file, staged);
  return app.ingest.ingest({ path: staged }, origin);
}

const upload = (batch: string, comment: Record<string, string> = {}): Origin => ({
  kind: 'upload',
  policy: 'upload',
  batch,
  actor: { kind: 'code', name: 'code-holder' },
  remoteIP: '127.0.0.1',
  info: { upload: { id: batch.replace(/^upload:/, 'U-'), by: 'code', name: 'Dr. Łukasz', comment, contact: 'łukasz@example.org +48 600', institution: 'default' } },
});

function studyRow(app: Appliance, studyUid: string) {
  return app.db
    .prepare(
      `SELECT p.patient_id, p.issuer, s.accession, s.workflow_status,
        (SELECT group_concat(label) FROM study_labels l WHERE l.study_ref = s.id) AS labels
       FROM studies s JOIN patients p ON p.id = s.patient_ref WHERE s.study_uid = ?`,
    )
    .get(studyUid) as { patient_id: string; issuer: string; accession: string; workflow_status: string; labels: string };
}

t.test('upload policy through ingest: pseudonyms, originals, labels, upload information, restart', async (t) => {
  const dir = t.testdir();
  const dataDir = path.join(dir, 'data');
  const logs: string[] = [];
  let w = start(dataDir, logs);
  const set = await makeStudies(path.join(dir, 'in'), [
    { patient: 'ORIG-PAT-A', sample: 'CT_small.dcm', studies: [{ accession: 'ORIG-ACC-A1', instances: 2 }, { accession: 'ORIG-ACC-A2', instances: 1 }, { accession: 'ORIG-ACC-A3', instances: 1 }] },
    { patient: 'ORIG-PAT-B', sample: 'MR_small.dcm', studies: [{ accession: 'ORIG-ACC-B1', instances: 2 }] },
  ]);
  const byStudy = new Map<string, TestInstance[]>();
  for (const i of set) byStudy.set(i.study, [...(byStudy.get(i.study) ?? []), i]);
  const [s1, s2, s3, s4] = [...byStudy.keys()]; // A1, A2, A3 (patient A), B1 (patient B)
  const comment = { [s1]: 'Knee, left – compare with 2019 (Łódź)', [s4]: 'Brain MRI' };

  // batch 1: all of patient A's first study and all of patient B, and A2
  for (const i of [...byStudy.get(s1)!, ...byStudy.get(s4)!, ...byStudy.get(s2)!]) {
    const o = await ingestCopy(w.app, i.file, upload('upload:1', comment));
    t.equal(o.kind, 'stored', `${i.sop} stored`);
    t.ok(o.kind === 'stored' && o.transformed, 'transformed');
  }
  const r1 = studyRow(w.app, s1);
  const r2 = studyRow(w.app, s2);
  const r4 = studyRow(w.app, s4);
  t.match(r1.patient_id, /^UP[0-9A-Z]{14}$/, 'a pseudonym in the index');
  t.equal(r2.patient_id, r1.patient_id, 'same original patient, same batch: same pseudonym in both studies');
  t.not(r4.patient_id, r1.patient_id, 'another patient: another pseudonym');
  t.equal(r1.issuer, 'HOSPITAL-X', 'configured issuer');
  t.not(r1.accession, r2.accession, 'one accession per study');
  t.match(r1.accession, /^UA[0-9A-Z]{14}$/);
  t.equal(r1.labels, 'Uploaded');
  t.equal(r1.workflow_status, 'Finalized');

  // every stored file agrees with the index and carries no original
  const stored = filesUnder(w.app.store.storeDir);
  t.equal(stored.length, 5);
  for (const f of stored) {
    const h = await readHeader(f, { full: true });
    const row = studyRow(w.app, h.studyInstanceUID);
    t.equal(h.patientID, row.patient_id, 'file Patient ID = index');
    t.equal(h.accessionNumber, row.accession, 'file Accession Number = index');
    const bytes = readFileSync(f).toString('latin1');
    t.notMatch(bytes, /ORIG-|OTHER-|1234ABCD/, 'no original identifier in the stored file');
  }

  // the admin API: originals, audited
  const before = w.app.audit.list({ action: 'read-original-identifiers' }).length;
  const orig = w.app.anonymise.readOriginalIdentifiers(s1, { kind: 'user', name: 'admin', ip: '10.0.0.9' });
  t.same(orig?.patients, [{ patientID: 'ORIG-PAT-A', issuerOfPatientID: 'ORIG-ISSUER-ORIG-PAT-A', pseudonym: r1.patient_id }]);
  t.same(orig?.accessions, [{ accessionNumber: 'ORIG-ACC-A1', pseudonym: r1.accession }]);
  // CT_small's own Other Patient IDs Sequence has two items; dcmodify replaced the first item's ID
  t.same(orig?.otherPatientIDs.sort(), ['1234ABCD', 'OTHER-ORIG-PAT-A-1', 'OTHER-ORIG-PAT-A-2', 'OTHER-ORIG-PAT-A-SEQ']);
  const audit = w.app.audit.list({ action: 'read-original-identifiers' });
  t.equal(audit.length, before + 1, 'the read is audited');
  t.match(audit[0], { actor: 'admin', actor_kind: 'user', study_uid: s1, ip: '10.0.0.9' });
  t.equal(w.app.anonymise.readOriginalIdentifiers('1.2.3.999', { kind: 'user', name: 'admin' }), null, 'unknown study: null');
  t.equal(w.app.audit.list({ action: 'read-original-identifiers' }).length, before + 2, 'also audited');

  // upload information: full text in the index, the file's character set in the private block
  const info = w.app.anonymise.readUploadInformation(s1);
  t.match(info, [{ uploadId: 'U-1', by: 'code', name: 'Dr. Łukasz', comment: comment[s1], contact: 'łukasz@example.org +48 600', institution: 'default' }]);
  const f1 = stored.find((f) => path.basename(f) === `${byStudy.get(s1)![0].sop}.dcm`)!;
  const flat = await flatten(f1);
  const creator = flat.elements.find((e) => e.key.length === 8 && e.tag >>> 16 === 0x11 && e.bytes?.toString('latin1').trim() === 'UPLINK')!;
  const blockEl = (n: number) => flat.elements.find((e) => e.tag === ((0x00110000 | ((creator.tag & 0xff) << 8) | n) >>> 0))?.bytes?.toString('latin1');
  t.equal(blockEl(0x01), 'Uploaded', 'label stamped');
  t.equal(blockEl(0x02), 'U-1 ', 'upload id stamped');
  t.equal(blockEl(0x03), 'CODE', 'how it came');
  // CT_small is ISO_IR 100: Ł is not in Latin-1, the en dash neither
  t.equal(blockEl(0x05), 'Knee, left ? compare with 2019 (?ód?) ', 'comment in the file character set, the rest replaced');
  t.equal(blockEl(0x06), '?ukasz@example.org +48 600', 'contact');

  // batch 2, another association: a new study of patient A gets a new pseudonym; more of study A1 keeps A1's
  const more = await makeStudies(path.join(dir, 'in2'), [{ patient: 'ORIG-PAT-A', sample: 'CT_small.dcm', studies: [{ accession: 'ORIG-ACC-A1', instances: 1 }] }]);
  // make it an instance of study A1 (same Study Instance UID)
  const { execFileSync } = await import('node:child_process');
  execFileSync('dcmodify', ['-nb', '-m', `(0020,000d)=${s1}`, more[0].file]);
  const o2 = await ingestCopy(w.app, more[0].file, { ...upload('assoc:77'), kind: 'dicom', actor: { kind: 'node', name: 'PARTNER' }, info: undefined });
  t.equal(o2.kind, 'stored');
  const o3 = await ingestCopy(w.app, byStudy.get(s3)![0].file, upload('upload:2'));
  t.equal(o3.kind, 'stored');
  const r3 = studyRow(w.app, s3);
  t.not(r3.patient_id, r1.patient_id, 'another batch: a new pseudonym for the same original patient');
  const h2 = await readHeader(w.app.store.absolute(w.app.index.findInstance(more[0].sop)!.path));
  t.equal(h2.patientID, r1.patient_id, 'a study arriving again keeps its patient pseudonym');
  t.equal(h2.accessionNumber, r1.accession, 'and its accession');
  t.match(w.app.anonymise.readUploadInformation(s1).map((u) => u.by).sort(), ['code', 'node'], 'both arrivals recorded');

  // restart mid-upload: batch 1 continues after the appliance is rebuilt on the same data
  await w.app.stop();
  w = start(dataDir, logs);
  t.teardown(() => w.app.stop());
  const late = await makeStudies(path.join(dir, 'in3'), [{ patient: 'ORIG-PAT-A', sample: 'CT_small.dcm', studies: [{ accession: 'ORIG-ACC-A9', instances: 1 }] }]);
  const o4 = await ingestCopy(w.app, late[0].file, upload('upload:1'));
  t.equal(o4.kind, 'stored');
  t.equal(studyRow(w.app, late[0].study).patient_id, r1.patient_id, 'after a restart, batch 1 still maps patient A to the same pseudonym');

  // nothing identifying in the logs
  const all = logs.join('');
  t.notMatch(all, /ORIG-|OTHER-|Łukasz|łukasz/, 'no original identifier, name or contact logged');
  for (const p of [r1.patient_id, r4.patient_id, r1.accession]) t.notOk(all.includes(p), 'no pseudonym logged either');
  t.same(readdirSync(w.app.store.stagingDir), [], 'staging is empty');
});

t.test('preambles: PE and ELF zeroed, flagged and audited whatever the policy; modality policy otherwise keeps bytes', async (t) => {
  const dir = t.testdir();
  const logs: string[] = [];
  const w = start(path.join(dir, 'data'), logs);
  t.teardown(() => w.app.stop());
  const [a, b, c] = await makeStudies(path.join(dir, 'in'), [{ patient: 'ORIG-PE', sample: 'MR_small.dcm', studies: [{ accession: 'ORIG-ACC-PE', instances: 3 }] }]);
  const pe = path.join(dir, 'pe.dcm');
  const elf = path.join(dir, 'elf.dcm');
  const peBytes = readFileSync(a.file);
  Buffer.from('MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff', 'latin1').copy(peBytes, 0);
  writeFileSync(pe, peBytes);
  const elfBytes = readFileSync(b.file);
  Buffer.from('\x7fELF\x02\x01\x01\x00', 'latin1').copy(elfBytes, 0);
  writeFileSync(elf, elfBytes);
  const node: Origin = { kind: 'dicom', policy: 'modality', batch: 'assoc:1', actor: { kind: 'node', name: 'CT1' }, remoteIP: '127.0.0.1' };

  const o1 = await ingestCopy(w.app, pe, node);
  t.equal(o1.kind, 'stored');
  t.ok(o1.kind === 'stored' && o1.transformed, 'rewritten for its preamble alone');
  const stored1 = w.app.store.absolute(w.app.index.findInstance(a.sop)!.path);
  t.ok(readFileSync(stored1).subarray(0, 128).every((x) => x === 0), 'preamble zeroed');
  t.ok(datasetBytes(stored1).equals(datasetBytes(pe)), 'modality policy: the dataset is untouched');
  const audits = w.app.audit.list({ action: 'preamble-sanitised' });
  t.equal(audits.length, 1, 'audited');
  t.match(JSON.parse(audits[0].detail!), { sopInstanceUID: a.sop, preamble: 'pe' });
  t.match(logs.join(''), /CVE-2019-11687/, 'logged');

  const o2 = await ingestCopy(w.app, elf, upload('upload:pe'));
  t.equal(o2.kind, 'stored');
  const stored2 = w.app.store.absolute(w.app.index.findInstance(b.sop)!.path);
  t.ok(readFileSync(stored2).subarray(0, 128).every((x) => x === 0), 'ELF preamble zeroed');
  t.match(JSON.parse(w.app.audit.list({ action: 'preamble-sanitised' })[0].detail!), { preamble: 'elf' });
  t.not((await readHeader(stored2)).patientID, 'ORIG-PE', 'and anonymised by the upload policy');

  const o3 = await ingestCopy(w.app, c.file, node);
  t.ok(o3.kind === 'stored' && !o3.transformed, 'modality policy, zero preamble: not rewritten');
  const stored3 = w.app.store.absolute(w.app.index.findInstance(c.sop)!.path);
  t.equal(createHash('sha256').update(readFileSync(stored3)).digest('hex'), createHash('sha256').update(readFileSync(c.file)).digest('hex'), 'stored byte for byte');
});

t.test('refused with a clear reason, the process carries on', async (t) => {
  const dir = t.testdir();
  const logs: string[] = [];
  const w = start(path.join(dir, 'data'), logs);
  t.teardown(() => w.app.stop());
  const uids = (n: number) => ({ sop: `1.2.826.0.1.3680043.2.1125.9.${n}`, study: '1.2.826.0.1.3680043.2.1125.9.100', series: '1.2.826.0.1.3680043.2.1125.9.101' });
  const file = (name: string, body: Buffer) => {
    const f = path.join(dir, name);
    writeFileSync(f, body);
    return f;
  };
  const enc = EXPLICIT_LE;
  const withIds = (n: number, middle: Buffer[]) => {
    const { g08, g20 } = ids(enc, uids(n));
    return part10('1.2.840.10008.1.2.1', [...g08, el(enc, Tags.PatientID, 'LO', 'ORIG-X'), ...middle, ...g20], { sopInstance: uids(n).sop });
  };
  const nest = (depth: number): Buffer => (depth === 0 ? el(enc, Tags.PatientID, 'LO', 'DEEP') : seq(enc, 0x00400275, [item(enc, [nest(depth - 1)], false)], false));
  const cases: [string, string, RegExp][] = [
    [path.join(PYDICOM_DIR, 'MR_truncated.dcm'), 'TRUNCATED', /ends/],
    [path.join(PYDICOM_DIR, 'rtplan_truncated.dcm'), 'TRUNCATED', /ends/],
    [file('huge.dcm', withIds(1, [el(enc, 0x00110010, 'LO', 'X'), el(enc, 0x00111001, 'OB', Buffer.alloc(16), 0xfffffff0)])), 'TRUNCATED', /4294967280 bytes declared/],
    [file('deep.dcm', withIds(2, [el(enc, 0x00110010, 'LO', 'X'), nest(40)])), 'TOO_COMPLEX', /nested more than 32 deep/],
    [file('not-dicom.dcm', Buffer.from('MZ this is not DICOM at all'.padEnd(400, '.'))), 'NOT_DICOM', /DICM/],
  ];
  for (const [f, code, re] of cases) {
    const o = await ingestCopy(w.app, f, upload('upload:bad'));
    t.equal(o.kind, 'rejected', `${path.basename(f)}: rejected`);
    if (o.kind === 'rejected') {
      t.equal(o.error.code, code, `${path.basename(f)}: ${code}`);
      t.match(o.error.message, re, `${path.basename(f)}: ${o.error.message}`);
    }
  }
  // 30 levels is within the limits: stored, the deep Patient ID replaced
  const ok = file('deep-ok.dcm', withIds(3, [el(enc, 0x00110010, 'LO', 'X'), nest(30)]));
  const o = await ingestCopy(w.app, ok, upload('upload:bad'));
  t.equal(o.kind, 'stored', 'a file nested 30 deep is stored');
  const stored = w.app.store.absolute(w.app.index.findInstance(uids(3).sop)!.path);
  t.notMatch(readFileSync(stored).toString('latin1'), /DEEP|ORIG-X/, 'its nested Patient ID replaced too');
  t.same(readdirSync(w.app.store.stagingDir), [], 'nothing left in staging');
  t.equal(w.app.index.counts().instances, 1);
});
