// Deleting a study (appliance/studies/study-delete.ts) on a real in-process appliance: the study's index rows
// (instances, series, study, labels, original identifiers, upload information), its forwarding jobs (pending ones
// cancelled) and its files go; the patient row only with its last study; the audit entry says what was deleted.
// A crash after the index commit and before the files are removed (files that could not be removed stand for it)
// leaves files without rows, never rows without files: the next start (unclean) removes them. A study being merged
// is not deleted.
import t from 'tap';
import { copyFileSync, existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createAppliance, type Appliance } from '../../appliance/appliance.ts';
import { silentLogger } from '../../appliance/log.ts';
import { runningMarker } from '../../appliance/store/consistency.ts';
import { createStudyDelete } from '../../appliance/studies/study-delete.ts';
import { writeTestConfig } from '../helpers/server.ts';
import { makeStudies } from '../intake/lib/studies.ts';

const by = { kind: 'user' as const, name: 'alice', ip: '127.0.0.1' };

t.test('delete a study: rows, jobs and files; the patient with its last study; audited', async (t) => {
  const dir = t.testdir();
  const { config } = await writeTestConfig(path.join(dir, 'uplink'), {
    // pending forwarding: a node nothing listens on
    dicom: { nodes: [{ name: 'NOWHERE', aeTitle: 'NOWHERE', host: '127.0.0.1', port: 9, send: true }] },
    policies: { upload: { scan: false, forwardTo: ['NOWHERE'] } },
  });
  let appliance: Appliance = createAppliance(config, silentLogger());
  await appliance.start();
  t.teardown(() => appliance.stop());
  const sent = await makeStudies(path.join(dir, 'in'), [{ patient: 'P1', sample: 'CT_small.dcm', studies: [{ accession: 'A1', instances: 2 }, { accession: 'A2', instances: 1 }] }]);
  for (const f of sent) {
    const staged = appliance.store.stagingPath('.dcm');
    copyFileSync(f.file, staged);
    // the upload policy: anonymised (original identifiers recorded), labelled, forwarded; one association
    const o = await appliance.ingest.ingest({ path: staged }, { kind: 'dicom', policy: 'upload', batch: 'assoc:one', actor: { kind: 'node', name: 'PARTNER' } });
    t.equal(o.kind, 'stored');
  }
  const [first, , second] = [sent[0].study, sent[1].study, sent[2].study];
  t.not(first, second);
  const count = (sql: string, ...args: unknown[]) => (appliance.db.prepare(sql).get(...args) as { n: number }).n;
  const ref = (uid: string) => (appliance.db.prepare('SELECT id FROM studies WHERE study_uid = ?').get(uid) as { id: number }).id;
  const firstRef = ref(first);
  const filesOf = (uid: string) =>
    (appliance.db.prepare('SELECT i.path FROM instances i JOIN series se ON se.id = i.series_ref JOIN studies st ON st.id = se.study_ref WHERE st.study_uid = ?').all(uid) as { path: string }[]).map((r) =>
      path.join(config.dataDir, 'store', r.path),
    );
  const firstFiles = filesOf(first);
  t.equal(count('SELECT count(*) AS n FROM patients'), 1, 'both studies belong to one patient row');
  t.equal(count('SELECT count(*) AS n FROM forward_jobs WHERE study_uid = ?', first), 2, 'two forwarding jobs pending');
  t.ok(count('SELECT count(*) AS n FROM study_original_ids WHERE study_ref = ?', firstRef) > 0, 'originals recorded');
  t.ok(count('SELECT count(*) AS n FROM study_labels WHERE study_ref = ?', firstRef) > 0, 'labelled');

  const deletion = createStudyDelete({ db: appliance.db, store: appliance.store, audit: appliance.audit, log: silentLogger() });
  t.match(deletion.summary(first), { instances: 2, series: 1, pendingJobs: 2, patient: { patientId: /^UP/ } });
  const r = await deletion.delete(first, by);
  t.match(r, { instances: 2, filesRemoved: 2, filesLeft: 0 });
  t.equal(count('SELECT count(*) AS n FROM studies WHERE study_uid = ?', first), 0, 'no study row');
  t.equal(count('SELECT count(*) AS n FROM series WHERE study_ref = ?', firstRef), 0, 'no series rows');
  t.equal(count('SELECT count(*) AS n FROM forward_jobs WHERE study_uid = ?', first), 0, 'its forwarding jobs cancelled');
  for (const table of ['study_labels', 'study_original_ids', 'study_uploads']) t.equal(count(`SELECT count(*) AS n FROM ${table} WHERE study_ref = ?`, firstRef), 0, `no ${table} rows`);
  t.ok(firstFiles.every((f) => !existsSync(f)), 'its files are gone');
  t.ok(firstFiles.every((f) => !existsSync(path.dirname(f)) || filesOf(second).some((g) => path.dirname(g) === path.dirname(f))), "and its folder, unless another study's files are in it");
  t.equal(count('SELECT count(*) AS n FROM instances'), 1, 'the other study is untouched');
  t.equal(count('SELECT count(*) AS n FROM patients'), 1, 'the patient stays: another study has it');
  const entry = appliance.db.prepare("SELECT actor, study_uid, detail FROM audit WHERE action = 'delete'").get() as { actor: string; study_uid: string; detail: string };
  t.match(entry, { actor: 'alice', study_uid: first });
  t.match(JSON.parse(entry.detail), { instances: 2, series: 1, forwardJobsCancelled: 2, accession: /^UA/, patient: { patientId: /^UP/ } }, 'what was deleted');
  await t.rejects(deletion.delete(first, by), { code: 'NOT_FOUND' }, 'twice: not found');

  // busy (a merge running): nothing happens
  const busy = createStudyDelete({ db: appliance.db, store: appliance.store, audit: appliance.audit, log: silentLogger(), busy: () => 'being merged' });
  await t.rejects(busy.delete(second, by), { code: 'CONFLICT' });
  t.equal(count('SELECT count(*) AS n FROM studies WHERE study_uid = ?', second), 1, 'not deleted while busy');

  // a crash after the commit, before the files went (here: they cannot be removed) ...
  const secondFiles = filesOf(second);
  const stuck = createStudyDelete({
    db: appliance.db,
    store: { ...appliance.store, remove: async () => Promise.reject(new Error('gone before it could')) },
    audit: appliance.audit,
    log: silentLogger(),
  });
  t.match(await stuck.delete(second, by), { filesRemoved: 0, filesLeft: 1 });
  t.equal(count('SELECT count(*) AS n FROM instances'), 0, 'no row points to a file any more');
  t.equal(count('SELECT count(*) AS n FROM patients'), 0, 'the patient went with its last study');
  t.ok(secondFiles.every((f) => existsSync(f)), 'the file is still there');
  // ... is cleaned up at the next start, as files without rows are after any crash
  await appliance.stop();
  writeFileSync(runningMarker(config.dataDir), '1');
  appliance = createAppliance(config, silentLogger());
  await appliance.start();
  t.match(appliance.health().storeCheck, { unclean: true, orphanFilesRemoved: 1 });
  t.ok(secondFiles.every((f) => !existsSync(f)), 'removed at start');
});
