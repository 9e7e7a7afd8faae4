/**
 * A study as a ZIP file (console download), streamed: the stored files as they are (byte for byte), laid out as
 * a DICOM File-set with a DICOMDIR at the top (dicomdir.ts), so the unpacked folder opens in viewers and burns
 * to a CD as it is:
 *   DICOMDIR
 *   DICOM/ST000001/SE000001/IM000001      (series in series number order, instances in instance number order)
 * Memory stays bounded whatever the study's size: archiver reads one file at a time (lazily opened) as the
 * response drains; only the DICOMDIR (a few hundred bytes per instance) is built in memory. Entries are
 * deflated at level 1 (uncompressed pixel data shrinks, compressed data costs little); ZIP64 where needed.
 */
import { ZipArchive } from 'archiver';
import type { Db } from '../store/db.ts';
import type { FileStore } from '../store/file-store.ts';
import { buildDicomdir, fileIdComponent, type DicomdirSeries } from './dicomdir.ts';

export interface ZipEntry {
  /** Name in the ZIP (File ID joined with "/"). */
  name: string;
  /** Relative to the store. */
  path: string;
  size: number;
  sha256: string;
  sopInstanceUid: string;
}

export interface ZipPlan {
  studyUid: string;
  entries: ZipEntry[];
  dicomdir: Buffer;
  /** Bytes of the stored files. */
  bytes: number;
  /** A name for the download (no patient data). */
  filename: string;
}

export interface StudyZip {
  /** What the ZIP of a study holds (null: no such study). */
  plan(studyUid: string): ZipPlan | null;
  /** The ZIP as a stream; it ends (or errors) on its own, abort() stops it. */
  stream(plan: ZipPlan): ZipArchive;
}

const numeric = (s: string) => (/^[+-]?\d{1,12}$/.test(s.trim()) ? Number(s.trim()) : Number.POSITIVE_INFINITY);

export function createStudyZip(deps: { db: Db; store: FileStore }): StudyZip {
  const { db, store } = deps;
  const studyRow = db.prepare(`
    SELECT st.id, st.study_uid, st.study_date, st.study_time, st.study_id, st.accession, st.description, p.patient_id, p.patient_name
    FROM studies st JOIN patients p ON p.id = st.patient_ref WHERE st.study_uid = ?`);
  const seriesRows = db.prepare('SELECT id, series_uid, modality, series_number FROM series WHERE study_ref = ? ORDER BY id');
  const instanceRows = db.prepare(
    'SELECT sop_uid, sop_class_uid, transfer_syntax, instance_number, path, size, sha256 FROM instances WHERE series_ref = ? ORDER BY id',
  );

  return {
    plan(studyUid) {
      const st = studyRow.get(studyUid) as
        | { id: number; study_uid: string; study_date: string; study_time: string; study_id: string; accession: string; description: string; patient_id: string; patient_name: string }
        | undefined;
      if (!st) return null;
      type S = { id: number; series_uid: string; modality: string; series_number: string };
      type I = { sop_uid: string; sop_class_uid: string; transfer_syntax: string; instance_number: string; path: string; size: number; sha256: string };
      const series = (seriesRows.all(st.id) as S[]).sort((a, b) => numeric(a.series_number) - numeric(b.series_number) || a.id - b.id);
      const entries: ZipEntry[] = [];
      const dirSeries: DicomdirSeries[] = [];
      const studyDir = fileIdComponent('ST', 1);
      series.forEach((s, si) => {
        const seriesDir = fileIdComponent('SE', si + 1);
        const instances = (instanceRows.all(s.id) as I[]).map((r, i) => ({ ...r, i })).sort((a, b) => numeric(a.instance_number) - numeric(b.instance_number) || a.i - b.i);
        if (!instances.length) return;
        dirSeries.push({
          seriesUid: s.series_uid,
          modality: s.modality,
          seriesNumber: s.series_number,
          images: instances.map((r, ii) => {
            const fileId = ['DICOM', studyDir, seriesDir, fileIdComponent('IM', ii + 1)];
            entries.push({ name: fileId.join('/'), path: r.path, size: r.size, sha256: r.sha256, sopInstanceUid: r.sop_uid });
            return { fileId, sopClassUid: r.sop_class_uid, sopInstanceUid: r.sop_uid, transferSyntaxUid: r.transfer_syntax, instanceNumber: r.instance_number };
          }),
        });
      });
      const dicomdir = buildDicomdir(
        {
          patient: { patientId: st.patient_id, name: st.patient_name },
          studyUid: st.study_uid,
          studyDate: st.study_date,
          studyTime: st.study_time,
          studyId: st.study_id,
          accession: st.accession,
          description: st.description,
          series: dirSeries,
        },
        { fileSetId: 'UPLINK' },
      );
      const date = /^\d{8}$/.test(st.study_date) ? `${st.study_date}-` : '';
      return { studyUid, entries, dicomdir, bytes: entries.reduce((n, e) => n + e.size, 0), filename: `study-${date}${studyUid}.zip` };
    },

    stream(plan) {
      const zip = new ZipArchive({ zlib: { level: 1 } });
      const date = new Date();
      zip.append(plan.dicomdir, { name: 'DICOMDIR', date });
      for (const e of plan.entries) zip.file(store.absolute(e.path), { name: e.name, date });
      void zip.finalize().catch(() => undefined); // errors also come as 'error' events, which the caller handles
      return zip;
    },
  };
}
