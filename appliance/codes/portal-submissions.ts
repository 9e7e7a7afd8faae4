/**
 * What an uploader agreed to share when pressing START UPLOAD: the chosen studies (UID, image count, bytes,
 * comment) and an optional contact, recorded under the code with an audit entry. Until the resumable
 * transfer exists this is all START UPLOAD does; the upload issue links its uploads to these rows.
 */
import type { AuditLog } from '../audit/audit-log.ts';
import { AppError } from '../errors.ts';
import type { Db } from '../store/db.ts';
import type { UploadCode } from './upload-codes.ts';

export interface SubmittedStudy {
  studyUid: string;
  files: number;
  bytes: number;
  comment: string;
}

export interface Submission {
  studies: SubmittedStudy[];
  email: string | null;
  phone: string | null;
}

export interface PortalSubmissions {
  /** Check the shape and limits of a submission (BAD_REQUEST / TOO_LARGE / ALLOWANCE_EXCEEDED). */
  parse(body: unknown, code: UploadCode, limits: { maxFiles: number; remainingBytes: number }): Submission;
  record(code: UploadCode, s: Submission, ip: string | null): { id: number; reference: string };
}

const UID_RE = /^[0-9]+(\.[0-9]+)*$/;
const EMAIL_RE = /^[^\s@<>"]{1,64}@[^\s@<>"]+\.[^\s@<>"]{2,}$/;
const PHONE_RE = /^\+?[0-9 ().\-/]{6,30}$/;

function str(v: unknown, max: number, name: string): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string' || v.length > max) throw new AppError('BAD_REQUEST', `${name} must be text of at most ${max} characters.`);
  return v.trim();
}

/** A reference an uploader can quote to the hospital: "P-" + the row id. */
export function submissionReference(id: number): string {
  return `P-${String(id).padStart(6, '0')}`;
}

export function createPortalSubmissions(db: Db, audit: AuditLog): PortalSubmissions {
  const insert = db.prepare(
    'INSERT INTO portal_submissions (code_ref, created_at, ip, contact_email, contact_phone, total_files, total_bytes, studies) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
  );
  return {
    parse(body, _code, limits) {
      if (typeof body !== 'object' || body === null) throw new AppError('BAD_REQUEST');
      const b = body as Record<string, unknown>;
      if (!Array.isArray(b.studies) || b.studies.length === 0 || b.studies.length > 1000) throw new AppError('BAD_REQUEST', 'Choose at least one study.');
      const seen = new Set<string>();
      const studies = b.studies.map((x): SubmittedStudy => {
        const s = (x ?? {}) as Record<string, unknown>;
        const studyUid = str(s.studyUid, 64, 'studyUid');
        if (!UID_RE.test(studyUid) || seen.has(studyUid)) throw new AppError('BAD_REQUEST', 'A study UID is missing, invalid or repeated.');
        seen.add(studyUid);
        const files = s.files;
        const bytes = s.bytes;
        if (!Number.isSafeInteger(files) || (files as number) < 1) throw new AppError('BAD_REQUEST', 'Each study needs a number of files.');
        if (!Number.isSafeInteger(bytes) || (bytes as number) < 0) throw new AppError('BAD_REQUEST', 'Each study needs a size in bytes.');
        return { studyUid, files: files as number, bytes: bytes as number, comment: str(s.comment, 2000, 'comment') };
      });
      const email = str(b.email, 254, 'email');
      const phone = str(b.phone, 30, 'phone');
      if (email && !EMAIL_RE.test(email)) throw new AppError('BAD_REQUEST', 'The e-mail address is not valid.');
      if (phone && !PHONE_RE.test(phone)) throw new AppError('BAD_REQUEST', 'The mobile number is not valid.');
      const totalFiles = studies.reduce((n, s) => n + s.files, 0);
      const totalBytes = studies.reduce((n, s) => n + s.bytes, 0);
      if (totalFiles > limits.maxFiles) throw new AppError('TOO_LARGE', `An upload may have at most ${limits.maxFiles} files.`);
      if (totalBytes > limits.remainingBytes) throw new AppError('ALLOWANCE_EXCEEDED');
      return { studies, email: email || null, phone: phone || null };
    },
    record(code, s, ip) {
      const totalFiles = s.studies.reduce((n, x) => n + x.files, 0);
      const totalBytes = s.studies.reduce((n, x) => n + x.bytes, 0);
      return db.transaction(() => {
        const r = insert.run(code.id, new Date().toISOString(), ip, s.email, s.phone, totalFiles, totalBytes, JSON.stringify(s.studies));
        const id = Number(r.lastInsertRowid);
        const reference = submissionReference(id);
        for (const st of s.studies)
          audit.record({
            actorKind: 'code',
            actor: code.ref,
            action: 'upload.consent',
            studyUid: st.studyUid,
            ip,
            detail: { reference, files: st.files, bytes: st.bytes, commentGiven: st.comment !== '', contactGiven: !!(s.email || s.phone) },
          });
        return { id, reference };
      })();
    },
  };
}
