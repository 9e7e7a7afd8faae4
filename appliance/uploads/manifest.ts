/**
 * What the browser sends when the uploader presses START UPLOAD (after consent): the chosen studies, each with
 * the files it will send (SOP Instance UID, SOP Class UID, size, name), the comment per study and the contact.
 * Untrusted input: shape, lengths, UIDs, sizes and counts are checked here (BAD_REQUEST / TOO_LARGE).
 */
import { AppError } from '../errors.ts';

export interface ManifestFile {
  sop: string;
  sopClass: string;
  size: number;
  /** The file's name or path within what the uploader chose (for reports), at most 255 characters. */
  name: string;
}

export interface ManifestStudy {
  studyUid: string;
  comment: string;
  /** DICOM DA and the description as the browser read them (shown back on the receipt only). */
  date: string;
  description: string;
  files: ManifestFile[];
}

export interface Manifest {
  studies: ManifestStudy[];
  email: string;
  phone: string;
}

export interface ManifestLimits {
  maxFiles: number;
  maxFileBytes: number;
}

const UID_RE = /^[0-9]+(\.[0-9]+)*$/;

/**
 * An error whose text the web edge can show in the uploader's language: `key` names a catalogue message taking
 * `params` (e.g. upload.error.tooManyFiles {max}).
 */
export function withMessageKey(err: AppError, key: string, params: Record<string, number | string> = {}): AppError {
  return Object.assign(err, { messageKey: key, messageParams: params });
}
const EMAIL_RE = /^[^\s@<>"]{1,64}@[^\s@<>"]+\.[^\s@<>"]{2,}$/;
const PHONE_RE = /^\+?[0-9 ().\-/]{6,30}$/;

function text(v: unknown, max: number, name: string): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string' || v.length > max) throw new AppError('BAD_REQUEST', `${name} must be text of at most ${max} characters.`);
  return v.replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, ' ').trim();
}

function uid(v: unknown, name: string): string {
  if (typeof v !== 'string' || v.length > 64 || !UID_RE.test(v)) throw new AppError('BAD_REQUEST', `${name} is missing or not a valid UID.`);
  return v;
}

/** Check a START UPLOAD body. Every SOP Instance UID appears once; sizes are whole bytes within the limits. */
export function parseManifest(body: unknown, limits: ManifestLimits): Manifest {
  if (typeof body !== 'object' || body === null) throw new AppError('BAD_REQUEST');
  const b = body as Record<string, unknown>;
  if (!Array.isArray(b.studies) || b.studies.length === 0 || b.studies.length > 1000) throw new AppError('BAD_REQUEST', 'Choose at least one study.');
  const seenStudies = new Set<string>();
  const seenSops = new Set<string>();
  let count = 0;
  const studies = b.studies.map((x): ManifestStudy => {
    const s = (x ?? {}) as Record<string, unknown>;
    const studyUid = uid(s.studyUid, 'studyUid');
    if (seenStudies.has(studyUid)) throw new AppError('BAD_REQUEST', 'A study is listed twice.');
    seenStudies.add(studyUid);
    if (!Array.isArray(s.files) || s.files.length === 0) throw new AppError('BAD_REQUEST', 'Each study needs its files.');
    count += s.files.length;
    if (count > limits.maxFiles) throw withMessageKey(new AppError('TOO_LARGE', `An upload may have at most ${limits.maxFiles} files.`), 'upload.error.tooManyFiles', { max: limits.maxFiles });
    const files = s.files.map((y): ManifestFile => {
      const f = (y ?? {}) as Record<string, unknown>;
      const sop = uid(f.sop, 'sop');
      if (seenSops.has(sop)) throw new AppError('BAD_REQUEST', 'A file (SOP Instance UID) is listed twice.');
      seenSops.add(sop);
      const size = f.size;
      if (!Number.isSafeInteger(size) || (size as number) < 1) throw new AppError('BAD_REQUEST', 'Each file needs its size in bytes.');
      if ((size as number) > limits.maxFileBytes) throw withMessageKey(new AppError('TOO_LARGE', `A file may be at most ${limits.maxFileBytes} bytes.`), 'upload.error.fileTooLarge', { max: limits.maxFileBytes });
      return { sop, sopClass: uid(f.sopClass, 'sopClass'), size: size as number, name: text(f.name, 1024, 'name').slice(-255) || sop };
    });
    const date = text(s.date, 16, 'date');
    return {
      studyUid,
      comment: text(s.comment, 2000, 'comment'),
      date: /^\d{8}$/.test(date) ? date : '',
      description: text(s.description, 128, 'description'),
      files,
    };
  });
  const email = text(b.email, 254, 'email');
  const phone = text(b.phone, 30, 'phone');
  if (email && !EMAIL_RE.test(email)) throw new AppError('BAD_REQUEST', 'The e-mail address is not valid.');
  if (phone && !PHONE_RE.test(phone)) throw new AppError('BAD_REQUEST', 'The mobile number is not valid.');
  return { studies, email, phone };
}

export function manifestBytes(m: Manifest): number {
  return m.studies.reduce((n, s) => n + s.files.reduce((k, f) => k + f.size, 0), 0);
}
