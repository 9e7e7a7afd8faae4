/**
 * Deleting a study (console, admins, confirmed): its files, its index rows and its forwarding jobs, audited
 * with what was deleted.
 *
 * Order, so that a crash at any point leaves no index row pointing to a missing file (the start-up store check's
 * rule, store/consistency.ts):
 *   1. one transaction: the study's instances, series, study row (labels, original identifiers and upload
 *      information go with it: ON DELETE CASCADE), forwarding jobs (cascade from the instances: pending ones are
 *      cancelled, and a batch on the wire records nothing for rows that are gone), the patient row if no other
 *      study uses it, and the audit entry 'delete';
 *   2. then the files are removed. A crash between 1 and 2 leaves files without index rows: the next start
 *      (unclean) removes them as never acknowledged, the same rule as for a crash during ingest.
 * A study being merged is not deleted (CONFLICT) until the merge is over.
 */
import { rmdir } from 'node:fs/promises';
import path from 'node:path';
import type { ActorKind, AuditLog } from '../audit/audit-log.ts';
import { AppError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import type { FileStore } from '../store/file-store.ts';
import { fsyncPath } from '../store/file-store.ts';

export interface DeleteActor {
  kind: ActorKind;
  name: string;
  ip?: string | null;
}

/** What a deletion removes (shown before it, and recorded in the audit trail). */
export interface DeleteSummary {
  studyUid: string;
  patient: { patientId: string; issuer: string; name: string; birthDate: string; sex: string };
  studyDate: string;
  description: string;
  accession: string;
  series: number;
  instances: number;
  bytes: number;
  /** Forwarding jobs not done yet (queued, sending, retrying, failed): cancelled by the deletion. */
  pendingJobs: number;
}

export interface DeleteResult extends DeleteSummary {
  filesRemoved: number;
  /** Files that could not be removed now (removed at the next start after an unclean stop, or by hand). */
  filesLeft: number;
}

export interface StudyDelete {
  summary(studyUid: string): DeleteSummary | null;
  delete(studyUid: string, by: DeleteActor): Promise<DeleteResult>;
}

export function createStudyDelete(deps: { db: Db; store: FileStore; audit: AuditLog; log: Logger; busy?: (studyUid: string) => string | null }): StudyDelete {
  const { db, store, audit, log } = deps;
  const studyRow = db.prepare(`
    SELECT st.id, st.study_uid, st.study_date, st.description, st.accession, p.id AS patient_ref, p.patient_id, p.issuer, p.patient_name,
      p.birth_date, p.sex
    FROM studies st JOIN patients p ON p.id = st.patient_ref WHERE st.study_uid = ?`);
  const counts = db.prepare(`
    SELECT (SELECT count(*) FROM series WHERE study_ref = @id) AS series,
      (SELECT count(*) FROM instances i JOIN series se ON se.id = i.series_ref WHERE se.study_ref = @id) AS instances,
      (SELECT coalesce(sum(i.size), 0) FROM instances i JOIN series se ON se.id = i.series_ref WHERE se.study_ref = @id) AS bytes,
      (SELECT count(*) FROM forward_jobs f JOIN instances i ON i.id = f.instance_ref JOIN series se ON se.id = i.series_ref
        WHERE se.study_ref = @id AND f.state <> 'done') AS pending`);
  const files = db.prepare('SELECT i.path FROM instances i JOIN series se ON se.id = i.series_ref WHERE se.study_ref = ?');
  const deleteInstances = db.prepare('DELETE FROM instances WHERE series_ref IN (SELECT id FROM series WHERE study_ref = ?)');
  const deleteSeries = db.prepare('DELETE FROM series WHERE study_ref = ?');
  const deleteStudy = db.prepare('DELETE FROM studies WHERE id = ?');
  const prunePatient = db.prepare('DELETE FROM patients WHERE id = ? AND NOT EXISTS (SELECT 1 FROM studies WHERE patient_ref = ?)');

  type Row = {
    id: number;
    study_uid: string;
    study_date: string;
    description: string;
    accession: string;
    patient_ref: number;
    patient_id: string;
    issuer: string;
    patient_name: string;
    birth_date: string;
    sex: string;
  };

  const summarise = (r: Row): DeleteSummary => {
    const c = counts.get({ id: r.id }) as { series: number; instances: number; bytes: number; pending: number };
    return {
      studyUid: r.study_uid,
      patient: { patientId: r.patient_id, issuer: r.issuer, name: r.patient_name, birthDate: r.birth_date, sex: r.sex },
      studyDate: r.study_date,
      description: r.description,
      accession: r.accession,
      series: c.series,
      instances: c.instances,
      bytes: c.bytes,
      pendingJobs: c.pending,
    };
  };

  const removeRows = db.transaction((studyUid: string, by: DeleteActor): { summary: DeleteSummary; paths: string[] } => {
    const r = studyRow.get(studyUid) as Row | undefined;
    if (!r) throw new AppError('NOT_FOUND', 'There is no such study.');
    const summary = summarise(r);
    const paths = (files.all(r.id) as { path: string }[]).map((f) => f.path);
    deleteInstances.run(r.id);
    deleteSeries.run(r.id);
    deleteStudy.run(r.id);
    prunePatient.run(r.patient_ref, r.patient_ref);
    audit.record({
      actorKind: by.kind,
      actor: by.name,
      action: 'delete',
      studyUid,
      ip: by.ip ?? null,
      detail: { ...summary, studyUid: undefined, forwardJobsCancelled: summary.pendingJobs, pendingJobs: undefined },
    });
    return { summary, paths };
  });

  return {
    summary(studyUid) {
      const r = studyRow.get(studyUid) as Row | undefined;
      return r ? summarise(r) : null;
    },
    async delete(studyUid, by) {
      const why = deps.busy?.(studyUid);
      if (why) throw new AppError('CONFLICT', why);
      const { summary, paths } = removeRows(studyUid, by);
      let removed = 0;
      let left = 0;
      const dirs = new Set<string>();
      for (const rel of paths) {
        const abs = store.absolute(rel);
        try {
          await store.remove(abs);
          removed++;
          dirs.add(path.dirname(abs));
        } catch (e) {
          left++;
          log.warn({ err: e, study: studyUid }, 'a deleted study\'s file could not be removed');
        }
      }
      // The study's folder goes when it is empty (the store keeps a folder per study); the removals made durable
      // (not needed for consistency: a file that comes back after a crash has no row, and is removed at start).
      for (const d of dirs) {
        const gone = await rmdir(d).then(
          () => true,
          () => false, // not empty (another study's files) or already gone
        );
        await fsyncPath(gone ? path.dirname(d) : d).catch(() => undefined);
      }
      log.info({ study: studyUid, instances: summary.instances, bytes: summary.bytes, removed, left }, 'study deleted');
      return { ...summary, filesRemoved: removed, filesLeft: left };
    },
  };
}
