/**
 * The console's read side of the study index: the worklist (filtered, sorted, paged) and one study's details
 * for the study information panel. Patient IDs and Accession Numbers are the stored ones (pseudonyms where a
 * policy anonymised); the originals are read only through AnonymiseStore.readOriginalIdentifiers (audited).
 *
 * Filters (all optional, combined with AND):
 *   patientName  contains, case-insensitive, "^" in stored names matched as a space ("doe john" finds Doe^John)
 *   patientId    contains, case-insensitive
 *   dateFrom/To  Study Date range, YYYYMMDD, inclusive
 *   modality     a series of the study has it
 *   label        the study carries it ("Contains Label")
 *   status       workflow status ('-' : none)
 *   origin       'upload' (portal: code or user), 'node' (DICOM C-STORE), 'import'
 *   studyUids    only these (the forwarding-state filter resolves to a list of studies)
 */
import type { Db } from '../store/db.ts';

export type SortKey = 'date' | 'patient' | 'received';
export type SortDir = 'asc' | 'desc';
export type OriginFilter = 'upload' | 'node' | 'import';

export interface StudyFilter {
  patientName?: string;
  patientId?: string;
  dateFrom?: string;
  dateTo?: string;
  modality?: string;
  label?: string;
  status?: string;
  origin?: OriginFilter;
  studyUids?: string[];
}

export interface StudyListQuery {
  filter: StudyFilter;
  sort: SortKey;
  dir: SortDir;
  page: number;
  pageSize: number;
}

export interface StudyListRow {
  studyUid: string;
  patientName: string;
  patientId: string;
  issuer: string;
  birthDate: string;
  sex: string;
  studyDate: string;
  studyTime: string;
  accession: string;
  description: string;
  modalities: string[];
  labels: string[];
  workflowStatus: string | null;
  originKind: string;
  receivedAt: string;
  series: number;
  instances: number;
}

export interface StudyList {
  rows: StudyListRow[];
  total: number;
  page: number;
  pages: number;
  pageSize: number;
}

export interface SeriesDetail {
  seriesUid: string;
  number: string;
  modality: string;
  description: string;
  images: number;
  bytes: number;
}

export interface StudyDetail {
  studyUid: string;
  patient: { patientId: string; issuer: string; name: string; birthDate: string; sex: string };
  studyDate: string;
  studyTime: string;
  accession: string;
  studyId: string;
  description: string;
  referringPhysician: string;
  workflowStatus: string | null;
  originKind: string;
  createdAt: string;
  updatedAt: string;
  labels: string[];
  series: SeriesDetail[];
  instances: number;
  bytes: number;
  /** Where instances came from over DICOM (calling AE title and address), with counts. */
  senders: { callingAe: string; remoteIp: string; instances: number; first: string; last: string }[];
  /** Upload codes whose uploader chose this study (portal submissions), newest first: the code's public ref only. */
  codes: { ref: string; institutionId: string; at: string }[];
  /** Files of this study the malware scanner refused (quarantined), from the audit trail. */
  quarantined: { at: string; signature: string }[];
  /** Whether original identifiers were recorded (anonymised study): admins may reveal them. */
  hasOriginals: boolean;
}

/** Characters LIKE treats specially, escaped with "\". */
function likeContains(s: string): string {
  return `%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

const ORDER: Record<SortKey, string> = {
  date: 'st.study_date {dir}, st.study_time {dir}',
  patient: 'p.patient_name COLLATE NOCASE {dir}',
  received: 'st.created_at {dir}',
};

export interface StudyQuery {
  list(q: StudyListQuery): StudyList;
  detail(studyUid: string): StudyDetail | null;
  /** Modalities present in the index (for the filter's choices). */
  modalities(): string[];
  exists(studyUid: string): boolean;
}

export function createStudyQuery(db: Db): StudyQuery {
  const where = (f: StudyFilter): { sql: string; args: unknown[] } => {
    const w: string[] = [];
    const args: unknown[] = [];
    if (f.patientName) {
      w.push("replace(p.patient_name, '^', ' ') LIKE ? ESCAPE '\\'");
      args.push(likeContains(f.patientName.replace(/\^/g, ' ')));
    }
    if (f.patientId) {
      w.push("p.patient_id LIKE ? ESCAPE '\\'");
      args.push(likeContains(f.patientId));
    }
    if (f.dateFrom) {
      w.push("st.study_date <> '' AND st.study_date >= ?");
      args.push(f.dateFrom);
    }
    if (f.dateTo) {
      w.push("st.study_date <> '' AND st.study_date <= ?");
      args.push(f.dateTo);
    }
    if (f.modality) {
      w.push('EXISTS (SELECT 1 FROM series se WHERE se.study_ref = st.id AND se.modality = ?)');
      args.push(f.modality);
    }
    if (f.label) {
      w.push('EXISTS (SELECT 1 FROM study_labels l WHERE l.study_ref = st.id AND l.label = ?)');
      args.push(f.label);
    }
    if (f.status === '-') w.push('st.workflow_status IS NULL');
    else if (f.status) {
      w.push('st.workflow_status = ?');
      args.push(f.status);
    }
    if (f.origin === 'upload') w.push("st.origin_kind IN ('upload', 'user')");
    else if (f.origin === 'node') w.push("st.origin_kind = 'dicom'");
    else if (f.origin === 'import') w.push("st.origin_kind = 'import'");
    if (f.studyUids) {
      w.push('st.study_uid IN (SELECT value FROM json_each(?))');
      args.push(JSON.stringify(f.studyUids));
    }
    return { sql: w.length ? `WHERE ${w.join(' AND ')}` : '', args };
  };

  const labelsOf = db.prepare('SELECT label FROM study_labels WHERE study_ref = ? ORDER BY label');

  return {
    list(q) {
      const { sql, args } = where(q.filter);
      const from = 'FROM studies st JOIN patients p ON p.id = st.patient_ref';
      const total = (db.prepare(`SELECT COUNT(*) AS n ${from} ${sql}`).get(...args) as { n: number }).n;
      const pageSize = Math.max(1, Math.min(500, Math.floor(q.pageSize)));
      const pages = Math.max(1, Math.ceil(total / pageSize));
      const page = Math.min(Math.max(1, Math.floor(q.page) || 1), pages);
      const dir = q.dir === 'asc' ? 'ASC' : 'DESC';
      const order = `${ORDER[q.sort] ?? ORDER.received}, st.id ${dir}`.replace(/\{dir\}/g, dir);
      const rows = db
        .prepare(
          `SELECT st.id, st.study_uid, p.patient_name, p.patient_id, p.issuer, p.birth_date, p.sex, st.study_date, st.study_time,
             st.accession, st.description, st.workflow_status, st.origin_kind, st.created_at,
             (SELECT group_concat(m, '\\') FROM (SELECT DISTINCT se.modality AS m FROM series se WHERE se.study_ref = st.id AND se.modality <> '' ORDER BY 1)) AS modalities,
             (SELECT COUNT(*) FROM series se WHERE se.study_ref = st.id) AS series,
             (SELECT COUNT(*) FROM instances i JOIN series se ON se.id = i.series_ref WHERE se.study_ref = st.id) AS instances
           ${from} ${sql} ORDER BY ${order} LIMIT ? OFFSET ?`,
        )
        .all(...args, pageSize, (page - 1) * pageSize) as Record<string, any>[];
      return {
        total,
        page,
        pages,
        pageSize,
        rows: rows.map((r) => ({
          studyUid: r.study_uid,
          patientName: r.patient_name,
          patientId: r.patient_id,
          issuer: r.issuer,
          birthDate: r.birth_date,
          sex: r.sex,
          studyDate: r.study_date,
          studyTime: r.study_time,
          accession: r.accession,
          description: r.description,
          modalities: r.modalities ? String(r.modalities).split('\\') : [],
          labels: (labelsOf.all(r.id) as { label: string }[]).map((x) => x.label),
          workflowStatus: r.workflow_status,
          originKind: r.origin_kind,
          receivedAt: r.created_at,
          series: r.series,
          instances: r.instances,
        })),
      };
    },

    detail(studyUid) {
      if (typeof studyUid !== 'string') return null;
      const st = db
        .prepare(
          `SELECT st.*, p.patient_id, p.issuer, p.patient_name, p.birth_date, p.sex
           FROM studies st JOIN patients p ON p.id = st.patient_ref WHERE st.study_uid = ?`,
        )
        .get(studyUid) as Record<string, any> | undefined;
      if (!st) return null;
      const series = db
        .prepare(
          `SELECT se.series_uid, se.series_number, se.modality, se.description, COUNT(i.id) AS images, COALESCE(SUM(i.size), 0) AS bytes
           FROM series se LEFT JOIN instances i ON i.series_ref = se.id WHERE se.study_ref = ?
           GROUP BY se.id ORDER BY CAST(se.series_number AS INTEGER), se.series_number, se.id`,
        )
        .all(st.id) as Record<string, any>[];
      const senders = db
        .prepare(
          `SELECT COALESCE(i.calling_ae, '') AS calling_ae, COALESCE(i.remote_ip, '') AS remote_ip, COUNT(*) AS n, MIN(i.received_at) AS first, MAX(i.received_at) AS last
           FROM instances i JOIN series se ON se.id = i.series_ref
           WHERE se.study_ref = ? AND (i.calling_ae IS NOT NULL OR i.remote_ip IS NOT NULL)
           GROUP BY 1, 2 ORDER BY first`,
        )
        .all(st.id) as Record<string, any>[];
      const codes = db
        .prepare(
          `SELECT c.ref, c.institution_id, MAX(s.created_at) AS at
           FROM portal_submissions s JOIN upload_codes c ON c.id = s.code_ref, json_each(s.studies) j
           WHERE json_extract(j.value, '$.studyUid') = ? GROUP BY c.id ORDER BY at DESC`,
        )
        .all(studyUid) as { ref: string; institution_id: string; at: string }[];
      const quarantined = db
        .prepare("SELECT at, json_extract(detail, '$.signature') AS signature FROM audit WHERE action = 'quarantine' AND study_uid = ? ORDER BY id")
        .all(studyUid) as { at: string; signature: string | null }[];
      const hasOriginals = !!db.prepare('SELECT 1 FROM study_original_ids WHERE study_ref = ? LIMIT 1').get(st.id);
      const seriesOut = series.map((r) => ({
        seriesUid: r.series_uid,
        number: r.series_number,
        modality: r.modality,
        description: r.description,
        images: r.images,
        bytes: r.bytes,
      }));
      return {
        studyUid,
        patient: { patientId: st.patient_id, issuer: st.issuer, name: st.patient_name, birthDate: st.birth_date, sex: st.sex },
        studyDate: st.study_date,
        studyTime: st.study_time,
        accession: st.accession,
        studyId: st.study_id,
        description: st.description,
        referringPhysician: st.referring_physician,
        workflowStatus: st.workflow_status,
        originKind: st.origin_kind,
        createdAt: st.created_at,
        updatedAt: st.updated_at,
        labels: (labelsOf.all(st.id) as { label: string }[]).map((x) => x.label),
        series: seriesOut,
        instances: seriesOut.reduce((n, s) => n + s.images, 0),
        bytes: seriesOut.reduce((n, s) => n + s.bytes, 0),
        senders: senders.map((r) => ({ callingAe: r.calling_ae, remoteIp: r.remote_ip, instances: r.n, first: r.first, last: r.last })),
        codes: codes.map((c) => ({ ref: c.ref, institutionId: c.institution_id, at: c.at })),
        quarantined: quarantined.map((q) => ({ at: q.at, signature: q.signature ?? '' })),
        hasOriginals,
      };
    },

    modalities() {
      return (db.prepare("SELECT DISTINCT modality FROM series WHERE modality <> '' ORDER BY 1").all() as { modality: string }[]).map((r) => r.modality);
    },

    exists(studyUid) {
      return typeof studyUid === 'string' && !!db.prepare('SELECT 1 FROM studies WHERE study_uid = ?').get(studyUid);
    },
  };
}
