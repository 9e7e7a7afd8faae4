/**
 * The study index: patient, study, series and instance rows in SQLite, written in one transaction per
 * committed instance (together with whatever else must commit with it, e.g. forwarding jobs).
 */
import type { Db } from './db.ts';
import type { DicomHeader } from '../dicom/header.ts';

export type OriginKind = 'dicom' | 'upload' | 'user' | 'import';

export interface InstanceRecord {
  header: DicomHeader;
  path: string;
  size: number;
  sha256: string;
  originKind: OriginKind;
  callingAE?: string;
  remoteIP?: string;
  uploadRef?: number;
  /** The intake policy it was stored under (a key of config.policies); commit hooks (auto-forward) use it. */
  policy?: string;
  /** Applied when this instance creates its study. */
  labels: string[];
  workflowStatus: string | null;
}

export interface CommittedIds {
  instanceId: number;
  seriesId: number;
  studyId: number;
  patientId: number;
  studyCreated: boolean;
}

export interface StoredInstance {
  id: number;
  sop_uid: string;
  sop_class_uid: string;
  transfer_syntax: string;
  path: string;
  size: number;
  sha256: string;
  study_uid: string;
  series_uid: string;
}

/** Work that must commit in the same transaction as an instance (runs inside it; throw to roll back). */
export type CommitHook = (db: Db, ids: CommittedIds, rec: InstanceRecord) => void;

export interface StudyIndex {
  findInstance(sopInstanceUID: string): StoredInstance | undefined;
  commitInstance(rec: InstanceRecord, hooks?: CommitHook[]): CommittedIds;
  /** Every instance (id, path, size) in id order, for the start-up consistency check. */
  allInstanceFiles(): Iterable<{ id: number; path: string; size: number; sop_uid: string }>;
  removeInstances(ids: number[]): void;
  counts(): { patients: number; studies: number; series: number; instances: number };
}

export function createStudyIndex(db: Db): StudyIndex {
  const now = () => new Date().toISOString();
  const findInstance = db.prepare(`
    SELECT i.id, i.sop_uid, i.sop_class_uid, i.transfer_syntax, i.path, i.size, i.sha256, st.study_uid, se.series_uid
    FROM instances i JOIN series se ON se.id = i.series_ref JOIN studies st ON st.id = se.study_ref
    WHERE i.sop_uid = ?`);
  const upsertPatient = db.prepare(`
    INSERT INTO patients (patient_id, issuer, patient_name, birth_date, sex) VALUES (@patientID, @issuer, @patientName, @birthDate, @sex)
    ON CONFLICT (patient_id, issuer) DO UPDATE SET
      patient_name = CASE WHEN patient_name = '' THEN excluded.patient_name ELSE patient_name END,
      birth_date = CASE WHEN birth_date = '' THEN excluded.birth_date ELSE birth_date END,
      sex = CASE WHEN sex = '' THEN excluded.sex ELSE sex END
    RETURNING id`);
  const findStudy = db.prepare('SELECT id FROM studies WHERE study_uid = ?');
  const insertStudy = db.prepare(`
    INSERT INTO studies (study_uid, patient_ref, study_date, study_time, accession, study_id, description, referring_physician,
      charset, workflow_status, origin_kind, created_at, updated_at)
    VALUES (@studyUID, @patientRef, @studyDate, @studyTime, @accession, @studyID, @description, @referring, @charset,
      @workflowStatus, @originKind, @at, @at)
    RETURNING id`);
  const touchStudy = db.prepare('UPDATE studies SET updated_at = ? WHERE id = ?');
  const addLabel = db.prepare('INSERT OR IGNORE INTO study_labels (study_ref, label) VALUES (?, ?)');
  const upsertSeries = db.prepare(`
    INSERT INTO series (series_uid, study_ref, modality, series_number, description) VALUES (@seriesUID, @studyRef, @modality, @number, @description)
    ON CONFLICT (series_uid) DO UPDATE SET
      modality = CASE WHEN modality = '' THEN excluded.modality ELSE modality END
    RETURNING id`);
  const insertInstance = db.prepare(`
    INSERT INTO instances (sop_uid, series_ref, sop_class_uid, instance_number, frames, transfer_syntax, path, size, sha256,
      origin_kind, calling_ae, remote_ip, upload_ref, received_at)
    VALUES (@sopUID, @seriesRef, @sopClassUID, @instanceNumber, @frames, @ts, @path, @size, @sha256, @originKind, @callingAE,
      @remoteIP, @uploadRef, @at)
    RETURNING id`);
  const allFiles = db.prepare('SELECT id, path, size, sop_uid FROM instances ORDER BY id');
  const deleteInstance = db.prepare('DELETE FROM instances WHERE id = ?');
  const pruneSeries = db.prepare('DELETE FROM series WHERE NOT EXISTS (SELECT 1 FROM instances WHERE series_ref = series.id)');
  const pruneStudies = db.prepare('DELETE FROM studies WHERE NOT EXISTS (SELECT 1 FROM series WHERE study_ref = studies.id)');
  const prunePatients = db.prepare('DELETE FROM patients WHERE NOT EXISTS (SELECT 1 FROM studies WHERE patient_ref = patients.id)');

  const commit = db.transaction((rec: InstanceRecord, hooks: CommitHook[]): CommittedIds => {
    const h = rec.header;
    const at = now();
    const patientId = (upsertPatient.get({
      patientID: h.patientID,
      issuer: h.issuerOfPatientID,
      patientName: h.patientName,
      birthDate: h.patientBirthDate,
      sex: h.patientSex,
    }) as { id: number }).id;
    let studyId = (findStudy.get(h.studyInstanceUID) as { id: number } | undefined)?.id;
    const studyCreated = studyId === undefined;
    if (studyId === undefined) {
      studyId = (insertStudy.get({
        studyUID: h.studyInstanceUID,
        patientRef: patientId,
        studyDate: h.studyDate,
        studyTime: h.studyTime,
        accession: h.accessionNumber,
        studyID: h.studyID,
        description: h.studyDescription,
        referring: h.referringPhysicianName,
        charset: h.specificCharacterSet,
        workflowStatus: rec.workflowStatus,
        originKind: rec.originKind,
        at,
      }) as { id: number }).id;
      for (const l of rec.labels) addLabel.run(studyId, l);
    } else touchStudy.run(at, studyId);
    const seriesId = (upsertSeries.get({
      seriesUID: h.seriesInstanceUID,
      studyRef: studyId,
      modality: h.modality,
      number: h.seriesNumber,
      description: h.seriesDescription,
    }) as { id: number }).id;
    const instanceId = (insertInstance.get({
      sopUID: h.sopInstanceUID,
      seriesRef: seriesId,
      sopClassUID: h.sopClassUID,
      instanceNumber: h.instanceNumber,
      frames: h.numberOfFrames,
      ts: h.transferSyntaxUID,
      path: rec.path,
      size: rec.size,
      sha256: rec.sha256,
      originKind: rec.originKind,
      callingAE: rec.callingAE ?? null,
      remoteIP: rec.remoteIP ?? null,
      uploadRef: rec.uploadRef ?? null,
      at,
    }) as { id: number }).id;
    const ids = { instanceId, seriesId, studyId, patientId, studyCreated };
    for (const hook of hooks) hook(db, ids, rec);
    return ids;
  });

  const remove = db.transaction((ids: number[]) => {
    for (const id of ids) deleteInstance.run(id);
    pruneSeries.run();
    pruneStudies.run();
    prunePatients.run();
  });

  return {
    findInstance: (uid) => findInstance.get(uid) as StoredInstance | undefined,
    commitInstance: (rec, hooks = []) => commit(rec, hooks),
    allInstanceFiles: () => allFiles.iterate() as Iterable<{ id: number; path: string; size: number; sop_uid: string }>,
    removeInstances: (ids) => remove(ids),
    counts: () =>
      db.prepare(`SELECT (SELECT count(*) FROM patients) AS patients, (SELECT count(*) FROM studies) AS studies,
        (SELECT count(*) FROM series) AS series, (SELECT count(*) FROM instances) AS instances`).get() as {
        patients: number;
        studies: number;
        series: number;
        instances: number;
      },
  };
}
