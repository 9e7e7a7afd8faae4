// The patient merge job (appliance/merge/patient-merge.ts) on a real in-process appliance (database, store, ingest):
// a merge found in the local index rewrites every instance's header (new patient; Other Patient IDs and the
// sequence gone; nested IDs of the old patient replaced; pixel data and everything else kept), moves the study
// in the index (the old patient row goes), keeps the SHA-256 and size of each file, and is audited before / after.
// A crash between replacing a file and indexing it (the state left on disk recreated by hand) is recovered at the
// next start before the store check, and the merge finishes; a file that cannot be rewritten fails the merge with
// the reason (partly merged, visible), and "continue" finishes it once the file is repaired; a name the study's
// character set cannot hold is refused before anything is written.
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import Database from 'better-sqlite3';
import { createAppliance, type Appliance } from '../../appliance/appliance.ts';
import { silentLogger } from '../../appliance/log.ts';
import { mergeRules } from '../../appliance/merge/merge-rules.ts';
import { rewrite } from '../../appliance/dicom/rewrite.ts';
import { runningMarker } from '../../appliance/store/consistency.ts';
import { dcmdump } from '../helpers/dcmtk.ts';
import { writeTestConfig } from '../helpers/server.ts';
import { makeStudies, type TestInstance } from '../intake/lib/studies.ts';
import { copyWithNewUids } from '../helpers/samples.ts';
import { pixelDataBytes } from './lib/merge-world.ts';

const by = { kind: 'user' as const, name: 'alice', ip: '127.0.0.1' };

async function world(t: Test) {
  const dir = t.testdir();
  const { config } = await writeTestConfig(path.join(dir, 'uplink'), { policies: { upload: { scan: false } } });
  let appliance: Appliance = createAppliance(config, silentLogger());
  await appliance.start();
  t.teardown(() => appliance.stop());
  let n = 0;
  const ingest = async (files: TestInstance[], policy = 'modality') => {
    for (const f of files) {
      const staged = appliance.store.stagingPath('.dcm');
      copyFileSync(f.file, staged);
      const o = await appliance.ingest.ingest({ path: staged }, { kind: 'dicom', policy, batch: `assoc:${n++}`, actor: { kind: 'node', name: 'CT' } });
      if (o.kind !== 'stored') throw new Error(`not stored: ${JSON.stringify(o)}`);
    }
  };
  const make = (name: string, specs: Parameters<typeof makeStudies>[1]) => makeStudies(path.join(dir, name), specs);
  const one = <T>(sql: string, ...args: unknown[]) => appliance.db.prepare(sql).get(...args) as T;
  const all = <T>(sql: string, ...args: unknown[]) => appliance.db.prepare(sql).all(...args) as T[];
  const files = (studyUid: string) =>
    all<{ id: number; sop_uid: string; path: string; size: number; sha256: string }>(
      'SELECT i.id, i.sop_uid, i.path, i.size, i.sha256 FROM instances i JOIN series se ON se.id = i.series_ref JOIN studies st ON st.id = se.study_ref WHERE st.study_uid = ? ORDER BY i.id',
      studyUid,
    ).map((r) => ({ ...r, abs: path.join(config.dataDir, 'store', r.path) }));
  return {
    dir,
    config,
    get appliance() {
      return appliance;
    },
    /** Stop, run `between` (the appliance is down), start again. */
    async restart(between: () => void | Promise<void>) {
      await appliance.stop();
      await between();
      appliance = createAppliance(config, silentLogger());
      await appliance.start();
    },
    ingest,
    make,
    one,
    all,
    files,
  };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

t.test('merge with a patient of the local index', async (t) => {
  const w = await world(t);
  const right = await w.make('right', [{ patient: 'P-RIGHT', sample: 'CT_small.dcm', studies: [{ accession: 'A-R', instances: 1 }] }]);
  execFileSync('dcmodify', ['-nb', '-i', '(0010,0010)=Right^Rita', '-i', '(0010,0030)=19800202', '-i', '(0010,0040)=F', right[0].file], { stdio: 'pipe' });
  const wrong = await w.make('wrong', [{ patient: 'P-WRONG', sample: 'CT_small.dcm', studies: [{ accession: 'A-W', instances: 2 }] }]);
  await w.ingest(right);
  await w.ingest(wrong);
  const study = wrong[0].study;
  const merge = w.appliance.merge;
  const before = w.files(study).map((f) => ({ ...f, bytes: readFileSync(f.abs) }));

  t.throws(() => merge.searchIndex({}), /Give a name/, 'an empty search is refused');
  const found = merge.searchIndex({ name: 'rita right' });
  t.match(found, { ok: true, source: 'index', truncated: false });
  t.same(found.candidates, [{ patientId: 'P-RIGHT', issuer: 'ORIG-ISSUER-P-RIGHT', name: 'Right^Rita', birthDate: '19800202', sex: 'F', studies: 1 }], 'each word anywhere in the name');
  t.same(merge.searchIndex({ patientId: 'P-RIGHT' }).candidates.map((c) => c.patientId), ['P-RIGHT'], 'by patient ID (exact)');
  t.same(merge.searchIndex({ patientId: 'P-RIGHT', birthDate: '19800203' }).candidates, [], 'criteria combine with AND');

  const target = found.candidates[0];
  const preview = merge.preview(study, target);
  t.match(preview, { instances: 2, knownPatient: true, forwardTo: null, before: { patientId: 'P-WRONG', issuer: 'ORIG-ISSUER-P-WRONG' } });
  t.same(preview.blockers, [], 'nothing blocks it');
  t.ok(['patientId', 'issuer', 'name', 'birthDate'].every((f) => preview.changed.includes(f as never)), `what changes: ${preview.changed.join(', ')}`);
  t.match(merge.preview(study, { ...target, sex: 'X' }).blockers, [{ kind: 'invalid', fields: ['sex'] }], 'an invalid value blocks');
  t.match(merge.preview(right[0].study, target).blockers, [{ kind: 'same' }], 'the same patient blocks');

  const job = merge.start(study, target, { source: 'index', forward: true, by });
  t.match(job, { state: 'running', total: 2, forwardTo: null }, 'no dicom.pacs: nothing to forward to');
  t.throws(() => merge.start(study, target, { source: 'index', forward: false, by }), { code: 'CONFLICT' }, 'one merge of a study at a time');
  t.ok(merge.running(study));
  await merge.settled(job.id);
  t.match(merge.get(job.id), { state: 'done', done: 2, remaining: 0, error: null });

  // the files: the new patient, no Other Patient IDs, pixel data as it was; the index agrees with them
  for (const f of w.files(study)) {
    const bytes = readFileSync(f.abs);
    t.equal(sha(bytes), f.sha256, 'the index has the SHA-256 of the new file');
    t.equal(bytes.length, f.size);
    const old = before.find((b) => b.sop_uid === f.sop_uid)!;
    t.not(f.sha256, old.sha256);
    t.ok(pixelDataBytes(bytes).equals(pixelDataBytes(old.bytes)), 'pixel data byte for byte');
    const dump = (await dcmdump([f.abs])).stdout;
    t.match(dump, /\(0010,0010\) PN \[Right\^Rita\]/);
    t.match(dump, /\(0010,0020\) LO \[P-RIGHT\]/);
    t.match(dump, /\(0010,0021\) LO \[ORIG-ISSUER-P-RIGHT\]/);
    t.match(dump, /\(0010,0030\) DA \[19800202\]/);
    t.match(dump, /\(0010,0040\) CS \[F\]/);
    t.notMatch(dump, /P-WRONG/, 'no trace of the old ID (Other Patient IDs and their sequence are gone)');
    t.notMatch(dump, /\(0010,1000\)|\(0010,1002\)/);
    t.match(dump, /\(0008,0050\) SH \[A-W\]/, 'the rest as it was');
  }
  t.same(w.one('SELECT p.patient_id, p.patient_name FROM studies s JOIN patients p ON p.id = s.patient_ref WHERE s.study_uid = ?', study), { patient_id: 'P-RIGHT', patient_name: 'Right^Rita' }, 'the study moved');
  t.equal(w.one<{ n: number }>('SELECT count(*) AS n FROM studies s JOIN patients p ON p.id = s.patient_ref WHERE p.patient_id = ?', 'P-RIGHT').n, 2, 'to the patient of the other study');
  t.equal(w.one<{ n: number }>("SELECT count(*) AS n FROM patients WHERE patient_id = 'P-WRONG'").n, 0, 'the old patient row is gone');
  const audit = w.all<{ action: string; actor: string; detail: string }>("SELECT action, actor, detail FROM audit WHERE action LIKE 'merge%' ORDER BY id");
  t.same(audit.map((a) => a.action), ['merge.start', 'merge']);
  t.match(JSON.parse(audit[1].detail), { before: { patientId: 'P-WRONG', name: preview.before.name }, after: { patientId: 'P-RIGHT', name: 'Right^Rita' }, instances: 2, source: 'index' });
  t.match(merge.latest(study), { id: job.id, state: 'done' });

  // An image of the study that arrives after the merge carries the old patient: merging onto the same patient
  // again is then allowed, and rewrites it.
  t.match(merge.preview(study, target).blockers, [{ kind: 'same' }], 'merged: the same patient again is blocked');
  const [late] = copyWithNewUids([wrong[0].file], path.join(w.dir, 'late'));
  await w.ingest([{ ...wrong[0], file: late }]);
  const again = merge.preview(study, target);
  t.equal(again.lateArrivals, 1, 'one image arrived after the merge');
  t.same(again.blockers, [], 'so merging again is allowed');
  const job2 = merge.start(study, target, { source: 'index', forward: false, by });
  await merge.settled(job2.id);
  t.match(merge.get(job2.id), { state: 'done', done: 3 });
  for (const f of w.files(study)) t.match((await dcmdump(['+P', '0010,0020', f.abs])).stdout, /\[P-RIGHT\]/, 'every image, the late one too');
  t.equal(merge.preview(study, target).lateArrivals, 0);
});

t.test('a crash between replacing a file and indexing it: recovered before the store check, then finished', async (t) => {
  const w = await world(t);
  const inst = await w.make('s', [{ patient: 'P-OLD', sample: 'CT_small.dcm', studies: [{ accession: 'A1', instances: 3 }] }]);
  await w.ingest(inst);
  const study = inst[0].study;
  const target = { patientId: 'P-NEW-AND-LONGER', issuer: 'HOSPITAL', name: 'Newname^With^Longer^Parts', birthDate: '19991231', sex: 'O' };
  const before = w.appliance.merge.current(study)!;
  const files = w.files(study);
  let replacedSize = 0;
  await w.restart(async () => {
    // The state a crash leaves: a running merge whose first instance's file was replaced (the rename happened),
    // but whose transaction (size, SHA-256, progress) did not; the previous run did not shut down cleanly.
    const staged = path.join(w.dir, 'merged.dcm');
    await rewrite(files[0].abs, staged, mergeRules(before, target));
    copyFileSync(staged, files[0].abs);
    replacedSize = readFileSync(files[0].abs).length;
    const db = new Database(path.join(w.config.dataDir, 'uplink.sqlite'));
    const at = new Date().toISOString();
    db.prepare(
      `INSERT INTO study_merges (study_uid, state, before_json, after_json, source, total, current_instance, requested_by, created_at, updated_at)
       VALUES (?, 'running', ?, ?, 'index', 3, ?, 'alice', ?, ?)`,
    ).run(study, JSON.stringify(before), JSON.stringify(target), files[0].id, at, at);
    db.close();
    writeFileSync(runningMarker(w.config.dataDir), '1');
  });
  t.not(replacedSize, files[0].size, 'the replaced file has another size than the index said (the store check would take it for damaged)');
  const report = w.appliance.health().storeCheck!;
  t.equal(report.unclean, true, 'the store check ran (unclean stop)');
  t.same(report.missingFiles, [], 'and found nothing missing or damaged');
  const job = w.appliance.merge.latest(study)!;
  await w.appliance.merge.settled(job.id);
  t.match(w.appliance.merge.get(job.id), { state: 'done', done: 3 }, 'resumed at start and finished');
  t.equal(w.files(study).length, 3, 'every instance still indexed');
  for (const f of w.files(study)) {
    const bytes = readFileSync(f.abs);
    t.equal(sha(bytes), f.sha256);
    t.match((await dcmdump([f.abs])).stdout, /\(0010,0020\) LO \[P-NEW-AND-LONGER\]/);
  }
  t.same(w.one('SELECT p.patient_id, p.issuer FROM studies s JOIN patients p ON p.id = s.patient_ref WHERE s.study_uid = ?', study), { patient_id: 'P-NEW-AND-LONGER', issuer: 'HOSPITAL' });
  const first = readFileSync(w.files(study)[0].abs);
  t.equal(first.length, replacedSize, 'the first instance, rewritten again, is the same file (the rewrite is idempotent)');
});

t.test('a file that cannot be rewritten: failed with the reason, partly merged, continued after the repair', async (t) => {
  const w = await world(t);
  const inst = await w.make('s', [{ patient: 'P-OLD', sample: 'CT_small.dcm', studies: [{ accession: 'A1', instances: 3 }] }]);
  await w.ingest(inst);
  const study = inst[0].study;
  const files = w.files(study);
  const good = readFileSync(files[1].abs);
  writeFileSync(files[1].abs, Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), Buffer.from('not a meta group at all')]));
  const merge = w.appliance.merge;
  const target = { patientId: 'P-NEW', issuer: '', name: 'New^Patient', birthDate: '', sex: '' };
  const job = merge.start(study, target, { source: 'index', forward: false, by });
  await merge.settled(job.id);
  const failed = merge.get(job.id)!;
  t.match(failed, { state: 'failed', done: 1, remaining: 2 }, 'stopped at the second instance');
  t.match(failed.error, new RegExp(files[1].sop_uid), 'the reason names the instance');
  t.equal(merge.current(study)!.patientId, 'P-OLD', 'the index still has the old patient');
  t.match((await dcmdump([files[0].abs])).stdout, /\(0010,0020\) LO \[P-NEW\]/, 'the first file already carries the new one');
  t.equal(w.one<{ n: number }>("SELECT count(*) AS n FROM audit WHERE action = 'merge.failed'").n, 1, 'audited');
  t.notOk(merge.running(study));

  writeFileSync(files[1].abs, good);
  merge.retry(study, by);
  await merge.settled(job.id);
  t.match(merge.get(job.id), { state: 'done', done: 3, error: null }, 'continued and finished');
  t.equal(merge.current(study)!.patientId, 'P-NEW');
  for (const f of w.files(study)) t.equal(sha(readFileSync(f.abs)), f.sha256, 'index and files agree');
  t.same(w.all<{ action: string }>("SELECT action FROM audit WHERE action LIKE 'merge%' ORDER BY id").map((a) => a.action), ['merge.start', 'merge.failed', 'merge.retry', 'merge']);
  t.throws(() => merge.retry(study, by), { code: 'CONFLICT' }, 'nothing to continue any more');
});

t.test("a name the study's character set cannot hold is refused before anything is written", async (t) => {
  const w = await world(t);
  const inst = await w.make('s', [{ patient: 'P-OLD', sample: 'CT_small.dcm', studies: [{ accession: 'A1', instances: 1 }] }]);
  await w.ingest(inst);
  const study = inst[0].study;
  const charset = w.one<{ charset: string }>('SELECT charset FROM studies WHERE study_uid = ?', study).charset;
  const target = { patientId: 'P-NEW', issuer: '', name: 'Łukasiewicz^Jan', birthDate: '', sex: '' };
  const p = w.appliance.merge.preview(study, target);
  t.match(p.blockers, [{ kind: 'charset', fields: ['name'] }], `"Ł" does not fit ${charset || 'the default repertoire'}`);
  t.throws(() => w.appliance.merge.start(study, target, { source: 'index', forward: false, by }), { code: 'BAD_REQUEST' });
  t.equal(w.one<{ n: number }>('SELECT count(*) AS n FROM study_merges').n, 0, 'no merge recorded');
  t.same(w.appliance.merge.preview(study, { ...target, name: 'Lukasiewicz^Jan' }).blockers, [], 'plain letters fit');
});
