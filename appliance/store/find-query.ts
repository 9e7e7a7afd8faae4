/**
 * C-FIND matching against the index (PS3.4 C.2.2.2): universal, single value, wildcard (* and ?), date and
 * time range, and UID list matching, at PATIENT, STUDY, SERIES and IMAGE level. Keys are DICOM keywords;
 * the result holds every requested key (those the index does not know are returned empty).
 */
import type { Db } from './db.ts';

export type Level = 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE';
type Kind = 'text' | 'pn' | 'uid' | 'date' | 'time' | 'exact';

interface KeyDef {
  column: string;
  kind: Kind;
  /** Lowest level (closest to the patient) whose table holds the column. */
  table: 'p' | 's' | 'se' | 'i';
}

const keys: Record<string, KeyDef> = {
  PatientName: { column: 'p.patient_name', kind: 'pn', table: 'p' },
  PatientID: { column: 'p.patient_id', kind: 'text', table: 'p' },
  IssuerOfPatientID: { column: 'p.issuer', kind: 'text', table: 'p' },
  PatientBirthDate: { column: 'p.birth_date', kind: 'date', table: 'p' },
  PatientSex: { column: 'p.sex', kind: 'exact', table: 'p' },
  StudyInstanceUID: { column: 's.study_uid', kind: 'uid', table: 's' },
  StudyDate: { column: 's.study_date', kind: 'date', table: 's' },
  StudyTime: { column: 's.study_time', kind: 'time', table: 's' },
  AccessionNumber: { column: 's.accession', kind: 'text', table: 's' },
  StudyID: { column: 's.study_id', kind: 'text', table: 's' },
  StudyDescription: { column: 's.description', kind: 'text', table: 's' },
  ReferringPhysicianName: { column: 's.referring_physician', kind: 'pn', table: 's' },
  SeriesInstanceUID: { column: 'se.series_uid', kind: 'uid', table: 'se' },
  Modality: { column: 'se.modality', kind: 'exact', table: 'se' },
  SeriesNumber: { column: 'se.series_number', kind: 'exact', table: 'se' },
  SeriesDescription: { column: 'se.description', kind: 'text', table: 'se' },
  SOPInstanceUID: { column: 'i.sop_uid', kind: 'uid', table: 'i' },
  SOPClassUID: { column: 'i.sop_class_uid', kind: 'uid', table: 'i' },
  InstanceNumber: { column: 'i.instance_number', kind: 'exact', table: 'i' },
  NumberOfFrames: { column: 'i.frames', kind: 'exact', table: 'i' },
};

/** Computed attributes: SQL expressions per level where they make sense. */
const computed: Record<string, { levels: Level[]; sql: string; numeric: boolean }> = {
  NumberOfPatientRelatedStudies: { levels: ['PATIENT'], sql: '(SELECT count(*) FROM studies x WHERE x.patient_ref = p.id)', numeric: true },
  NumberOfPatientRelatedSeries: {
    levels: ['PATIENT'],
    sql: '(SELECT count(*) FROM series x JOIN studies y ON y.id = x.study_ref WHERE y.patient_ref = p.id)',
    numeric: true,
  },
  NumberOfPatientRelatedInstances: {
    levels: ['PATIENT'],
    sql: '(SELECT count(*) FROM instances x JOIN series y ON y.id = x.series_ref JOIN studies z ON z.id = y.study_ref WHERE z.patient_ref = p.id)',
    numeric: true,
  },
  ModalitiesInStudy: {
    levels: ['STUDY'],
    sql: "(SELECT group_concat(m, '\\') FROM (SELECT DISTINCT x.modality AS m FROM series x WHERE x.study_ref = s.id AND x.modality <> '' ORDER BY 1))",
    numeric: false,
  },
  NumberOfStudyRelatedSeries: { levels: ['STUDY'], sql: '(SELECT count(*) FROM series x WHERE x.study_ref = s.id)', numeric: true },
  NumberOfStudyRelatedInstances: {
    levels: ['STUDY'],
    sql: '(SELECT count(*) FROM instances x JOIN series y ON y.id = x.series_ref WHERE y.study_ref = s.id)',
    numeric: true,
  },
  NumberOfSeriesRelatedInstances: { levels: ['SERIES'], sql: '(SELECT count(*) FROM instances x WHERE x.series_ref = se.id)', numeric: true },
};

const levelTables: Record<Level, ('p' | 's' | 'se' | 'i')[]> = {
  PATIENT: ['p'],
  STUDY: ['p', 's'],
  SERIES: ['p', 's', 'se'],
  IMAGE: ['p', 's', 'se', 'i'],
};

const fromClause: Record<Level, string> = {
  PATIENT: 'patients p',
  STUDY: 'studies s JOIN patients p ON p.id = s.patient_ref',
  SERIES: 'series se JOIN studies s ON s.id = se.study_ref JOIN patients p ON p.id = s.patient_ref',
  IMAGE: 'instances i JOIN series se ON se.id = i.series_ref JOIN studies s ON s.id = se.study_ref JOIN patients p ON p.id = s.patient_ref',
};

const orderClause: Record<Level, string> = {
  PATIENT: 'p.patient_name, p.id',
  STUDY: 's.study_date DESC, s.study_time DESC, s.id',
  SERIES: 'CAST(se.series_number AS INTEGER), se.id',
  IMAGE: 'CAST(i.instance_number AS INTEGER), i.id',
};

/** DICOM wildcards to a GLOB pattern ('[' is the only other GLOB metacharacter; escape it). */
function toGlob(v: string): string {
  return v.replace(/\[/g, '[[]');
}

const hasWildcard = (v: string) => v.includes('*') || v.includes('?');

function condition(def: KeyDef, raw: string, args: unknown[]): string | null {
  const v = raw.trim();
  if (v === '' || v === '*') return null; // universal matching
  const col = def.column;
  switch (def.kind) {
    case 'uid': {
      const list = v.split('\\').map((s) => s.trim()).filter(Boolean);
      if (list.length === 1) {
        args.push(list[0]);
        return `${col} = ?`;
      }
      args.push(...list);
      return `${col} IN (${list.map(() => '?').join(', ')})`;
    }
    case 'date':
    case 'time': {
      const norm = (s: string) => (def.kind === 'date' ? s.replace(/[.-]/g, '') : s.replace(/:/g, ''));
      if (v.includes('-')) {
        const [from, to] = v.split('-', 2).map((s) => norm(s.trim()));
        const parts: string[] = [];
        if (from) (parts.push(`${col} >= ?`), args.push(from));
        if (to) {
          // A time range's upper bound includes the whole of its last unit (e.g. "-1200" includes 120059.99).
          if (def.kind === 'time') (parts.push(`${col} <= ?`), args.push(`${to}\uffff`));
          else (parts.push(`${col} <= ?`), args.push(to));
        }
        parts.push(`${col} <> ''`);
        return parts.join(' AND ');
      }
      if (hasWildcard(v)) {
        args.push(toGlob(v));
        return `${col} GLOB ?`;
      }
      if (def.kind === 'time') {
        args.push(norm(v), `${norm(v)}\uffff`);
        return `(${col} >= ? AND ${col} <= ?)`;
      }
      args.push(norm(v));
      return `${col} = ?`;
    }
    case 'pn': {
      // Person names match case-insensitively (PS3.4 C.2.2.2.1: PN may be matched without regard to case).
      if (hasWildcard(v)) {
        args.push(toGlob(v).toLowerCase());
        return `lower(${col}) GLOB ?`;
      }
      args.push(v.toLowerCase());
      return `lower(${col}) = ?`;
    }
    default: {
      if (def.kind !== 'exact' && hasWildcard(v)) {
        args.push(toGlob(v));
        return `${col} GLOB ?`;
      }
      if (def.kind === 'exact' && v.includes('\\')) {
        const list = v.split('\\');
        args.push(...list);
        return `${col} IN (${list.map(() => '?').join(', ')})`;
      }
      if (hasWildcard(v)) {
        args.push(toGlob(v));
        return `${col} GLOB ?`;
      }
      args.push(v);
      return `${col} = ?`;
    }
  }
}

export interface FindResult {
  rows: Record<string, string | number>[];
  /** True when more rows matched than the limit allowed. */
  truncated: boolean;
}

/**
 * Run a query. `query` maps DICOM keywords to the requested value ('' = return it, match anything).
 * Returns for each match an object holding exactly the requested keys.
 */
export function findInIndex(db: Db, level: Level, query: Record<string, string>, limit: number): FindResult {
  const tables = levelTables[level];
  const where: string[] = [];
  const args: unknown[] = [];
  const select: string[] = [];
  const requested = Object.keys(query);
  for (const k of requested) {
    const def = keys[k];
    if (def && tables.includes(def.table)) {
      select.push(`${def.column} AS "${k}"`);
      const c = condition(def, query[k], args);
      if (c) where.push(c);
      continue;
    }
    const comp = computed[k];
    if (comp && comp.levels.includes(level)) {
      select.push(`${comp.sql} AS "${k}"`);
      if (k === 'ModalitiesInStudy' && query[k].trim() !== '' && query[k].trim() !== '*') {
        // Matches when any series of the study has one of the given modalities.
        const list = query[k].split('\\').map((s) => s.trim()).filter(Boolean);
        const conds = list.map((m) => {
          args.push(toGlob(m));
          return 'x.modality GLOB ?';
        });
        where.push(`EXISTS (SELECT 1 FROM series x WHERE x.study_ref = s.id AND (${conds.join(' OR ')}))`);
      }
    }
  }
  if (select.length === 0) select.push('1 AS "_"');
  const sql = `SELECT ${select.join(', ')} FROM ${fromClause[level]} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY ${orderClause[level]} LIMIT ?`;
  const found = db.prepare(sql).all(...args, limit + 1) as Record<string, string | number | null>[];
  const truncated = found.length > limit;
  const rows = found.slice(0, limit).map((r) => {
    const out: Record<string, string | number> = {};
    for (const k of requested) out[k] = r[k] ?? '';
    return out;
  });
  return { rows, truncated };
}

export const knownFindKeys = new Set([...Object.keys(keys), ...Object.keys(computed)]);
export const numericFindKeys = new Set(Object.entries(computed).filter(([, c]) => c.numeric).map(([k]) => k));
