/**
 * Where anonymisation keeps what it must remember, in the SQLite index (migration 200-anonymise.sql):
 *  - the pseudonyms handed out, so they stay consistent within a batch (one association / one upload) and a
 *    study, also across a restart mid-upload;
 *  - the original identifiers of each stored study, readable only by admins through
 *    `readOriginalIdentifiers`, which records an audit entry for every read;
 *  - the upload information of each study (who, how, comment, contact, when), in full.
 * Nothing here logs identifiers.
 */
import { randomInt } from 'node:crypto';
import type { ActorKind, AuditLog } from '../audit/audit-log.ts';
import type { Db } from '../store/db.ts';

/** Crockford base 32: no I, L, O, U (nothing to misread, no words). */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A new random value: `prefix` and `chars` characters of crypto randomness (5 bits each), plain ASCII. */
export function randomPseudonym(prefix: string, chars: number): string {
  let s = prefix;
  for (let i = 0; i < chars; i++) s += ALPHABET[randomInt(32)];
  return s;
}

/** Patient ID pseudonyms: 16 characters (LO allows 64; many PACS only 16), 70 random bits. */
export const newPatientId = (): string => randomPseudonym('UP', 14);
/** Accession Number pseudonyms: 16 characters (SH allows 16), 70 random bits. */
export const newAccession = (): string => randomPseudonym('UA', 14);

/** What identifies an original patient: the ID and its issuer; without an ID, the name and birth date. */
export interface PatientKey {
  id: string;
  issuer: string;
  name?: string;
  birthDate?: string;
}

export interface OriginalsSeen {
  patients: { id: string; issuer: string; pseudonym: string }[];
  accessions: { original: string; pseudonym: string }[];
  otherPatientIds: string[];
}

export interface UploadRecord {
  uploadId: string;
  by: 'code' | 'user' | 'node';
  name: string;
  institution: string;
  comment: string;
  contact: string;
  at: string;
}

export interface OriginalIdentifiers {
  studyInstanceUID: string;
  patients: { patientID: string; issuerOfPatientID: string; pseudonym: string }[];
  accessions: { accessionNumber: string; pseudonym: string }[];
  /** Values of Other Patient IDs (0010,1000) and of the Other Patient IDs Sequence, removed from the files. */
  otherPatientIDs: string[];
  recordedAt: string;
}

export interface Actor {
  kind: ActorKind;
  name: string;
  ip?: string;
}

export interface AnonymiseStore {
  /** The pseudonym of an original patient for this batch and study (assigned on first use, persisted at once). */
  patientPseudonym(batch: string, studyUid: string, key: PatientKey): string;
  /** The pseudonym of an original accession within a study (assigned on first use, persisted at once). */
  accessionPseudonym(studyUid: string, original: string): string;
  /** Inside the commit transaction of an instance (same connection): remember the originals it carried for its study. */
  recordOriginals(studyRef: number, batch: string, seen: OriginalsSeen): void;
  /** Inside the commit transaction of an instance (same connection): how its study came in. */
  recordUpload(studyRef: number, batch: string, upload: UploadRecord): void;
  /** Admin only: the original identifiers of a study, or null if it has none recorded. Every call is audited. */
  readOriginalIdentifiers(studyUid: string, actor: Actor): OriginalIdentifiers | null;
  /** The upload information of a study (newest first), full text. */
  readUploadInformation(studyUid: string): UploadRecord[];
}

export function createAnonymiseStore(db: Db, audit: AuditLog): AnonymiseStore {
  const now = () => new Date().toISOString();
  const get = db.prepare('SELECT pseudonym FROM pseudonyms WHERE scope = ? AND attribute = ? AND original_key = ?');
  const put = db.prepare('INSERT OR IGNORE INTO pseudonyms (scope, attribute, original_key, pseudonym, created_at) VALUES (?, ?, ?, ?, ?)');
  const taken = db.prepare('SELECT 1 FROM pseudonyms WHERE attribute = ? AND pseudonym = ? LIMIT 1');
  const studyRef = db.prepare('SELECT id FROM studies WHERE study_uid = ?');
  const originals = db.prepare('SELECT attribute, original, issuer, replacement, recorded_at FROM study_original_ids WHERE study_ref = ? ORDER BY recorded_at, attribute, original');
  const insOriginal = db.prepare(`INSERT OR IGNORE INTO study_original_ids (study_ref, attribute, original, issuer, replacement, batch, recorded_at)
    VALUES (?, ?, ?, ?, ?, ?, ?)`);
  const insUpload = db.prepare(`INSERT OR IGNORE INTO study_uploads (study_ref, upload_id, by, name, institution, comment, contact, at, batch)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  const uploads = db.prepare(`SELECT upload_id AS uploadId, by, name, institution, comment, contact, at FROM study_uploads WHERE study_ref = ? ORDER BY at DESC`);

  const fresh = (attribute: string, make: () => string): string => {
    for (;;) {
      const v = make();
      if (!taken.get(attribute, v)) return v;
    }
  };

  const patientPseudonym = db.transaction((batch: string, studyUid: string, key: PatientKey): string => {
    const k = JSON.stringify(key.id ? [key.id, key.issuer] : ['', key.issuer, key.name ?? '', key.birthDate ?? '']);
    const studyScope = `study:${studyUid}`;
    const batchScope = `batch:${batch}`;
    // A study already given a pseudonym for this patient keeps it (a study may arrive over several
    // associations or uploads); otherwise the batch's pseudonym for the patient; otherwise a new one.
    const existing =
      (get.get(studyScope, 'PatientID', k) as { pseudonym: string } | undefined)?.pseudonym ??
      (get.get(batchScope, 'PatientID', k) as { pseudonym: string } | undefined)?.pseudonym ??
      fresh('PatientID', newPatientId);
    const at = now();
    put.run(studyScope, 'PatientID', k, existing, at);
    put.run(batchScope, 'PatientID', k, existing, at);
    return existing;
  });

  const accessionPseudonym = db.transaction((studyUid: string, original: string): string => {
    const k = JSON.stringify([original]);
    const scope = `study:${studyUid}`;
    const found = (get.get(scope, 'AccessionNumber', k) as { pseudonym: string } | undefined)?.pseudonym;
    if (found) return found;
    const v = fresh('AccessionNumber', newAccession);
    put.run(scope, 'AccessionNumber', k, v, now());
    return v;
  });

  return {
    patientPseudonym: (batch, studyUid, key) => patientPseudonym(batch, studyUid, key),
    accessionPseudonym: (studyUid, original) => accessionPseudonym(studyUid, original),

    recordOriginals(ref, batch, seen) {
      const at = now();
      for (const p of seen.patients) insOriginal.run(ref, 'PatientID', p.id, p.issuer, p.pseudonym, batch, at);
      for (const a of seen.accessions) insOriginal.run(ref, 'AccessionNumber', a.original, '', a.pseudonym, batch, at);
      for (const o of seen.otherPatientIds) insOriginal.run(ref, 'OtherPatientIDs', o, '', '', batch, at);
    },

    recordUpload(ref, batch, u) {
      insUpload.run(ref, u.uploadId, u.by, u.name, u.institution, u.comment, u.contact, u.at, batch);
    },

    readOriginalIdentifiers(studyUid, actor) {
      const ref = (studyRef.get(studyUid) as { id: number } | undefined)?.id;
      const rows = ref === undefined ? [] : (originals.all(ref) as { attribute: string; original: string; issuer: string; replacement: string; recorded_at: string }[]);
      audit.record({
        actorKind: actor.kind,
        actor: actor.name,
        action: 'read-original-identifiers',
        studyUid,
        ip: actor.ip,
        detail: { found: rows.length > 0 },
      });
      if (rows.length === 0) return null;
      return {
        studyInstanceUID: studyUid,
        patients: rows.filter((r) => r.attribute === 'PatientID').map((r) => ({ patientID: r.original, issuerOfPatientID: r.issuer, pseudonym: r.replacement })),
        accessions: rows.filter((r) => r.attribute === 'AccessionNumber').map((r) => ({ accessionNumber: r.original, pseudonym: r.replacement })),
        otherPatientIDs: rows.filter((r) => r.attribute === 'OtherPatientIDs').map((r) => r.original),
        recordedAt: rows[0].recorded_at,
      };
    },

    readUploadInformation(studyUid) {
      const ref = (studyRef.get(studyUid) as { id: number } | undefined)?.id;
      return ref === undefined ? [] : (uploads.all(ref) as UploadRecord[]);
    },
  };
}
