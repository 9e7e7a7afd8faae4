/**
 * The server's record of browser uploads (tables `uploads` and `upload_files`, migration 400): who uploads
 * (an upload code or a logged-in user), what was chosen, and where each file is (see the states in the
 * migration). Pure data access: the rules live in uploads.ts.
 *
 * Durability: the database commits with synchronous=FULL (an fsync of the WAL per commit, blocking the event
 * loop for milliseconds). The per-file bookkeeping of the transfer (a file's tus id, "received", "held",
 * "touched") can be rebuilt from the staged files after a crash (uploads.ts start(): tus files whose bytes all
 * arrived are taken in again; a file whose tus id was lost is sent again), so `setFile` and `touch` commit
 * without waiting for the disk (synchronous=NORMAL for that one statement; the next FULL commit, e.g. the next
 * instance stored, carries them to disk). Settled outcomes that cannot be rebuilt (stored, refused,
 * quarantined) are written with `settleFile` (FULL); `stored` is written in the instance's own transaction.
 */
import { randomBytes } from 'node:crypto';
import { ALPHABET } from '../codes/code-format.ts';
import type Database from 'better-sqlite3';
import type { Db } from '../store/db.ts';
import type { CommitHook } from '../store/study-index.ts';

export type UploadState = 'uploading' | 'validating' | 'complete' | 'cancelled' | 'expired';
export type FileState = 'expected' | 'receiving' | 'received' | 'held' | 'stored' | 'duplicate' | 'already' | 'refused' | 'quarantined' | 'discarded';

/** Files that are settled for good (the upload is complete when every file is). */
export const FINAL_STATES: readonly FileState[] = ['stored', 'duplicate', 'already', 'refused', 'quarantined', 'discarded'];
/** Files the hospital has (stored now, or already before). */
export const KEPT_STATES: readonly FileState[] = ['stored', 'duplicate', 'already'];
export const ACTIVE_UPLOAD_STATES: readonly UploadState[] = ['uploading', 'validating'];

/** Who uploads: a patient or physician with an upload code, or a logged-in source user. */
export type Principal =
  | { kind: 'code'; codeId: number; codeRef: string; institutionId: string }
  | { kind: 'user'; userId: number; userName: string; institutionId: string };

export interface StudyInfo {
  studyUid: string;
  comment: string;
  date: string;
  description: string;
}

export interface UploadRow {
  id: number;
  reference: string;
  codeRef: number | null;
  userRef: number | null;
  actor: string;
  institutionId: string;
  submissionRef: number | null;
  ip: string | null;
  contact: string;
  studies: StudyInfo[];
  state: UploadState;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

export interface FileRow {
  id: number;
  uploadRef: number;
  sopUid: string;
  sopClassUid: string;
  studyUid: string;
  name: string;
  size: number;
  state: FileState;
  tusId: string | null;
  reason: string | null;
  attempts: number;
  instanceRef: number | null;
  updatedAt: string;
}

export interface NewFile {
  sopUid: string;
  sopClassUid: string;
  studyUid: string;
  name: string;
  size: number;
  state: FileState;
}

export interface StateCounts {
  files: number;
  bytes: number;
  byState: Partial<Record<FileState, number>>;
  /** Bytes of files no longer to be sent (received or settled). */
  bytesReceived: number;
}

export interface StudyCounts {
  studyUid: string;
  files: number;
  byState: Partial<Record<FileState, number>>;
}

export interface UploadRecords {
  create(input: { principal: Principal; ip: string | null; contact: string; studies: StudyInfo[]; submissionRef: number | null; files: NewFile[] }): UploadRow;
  get(id: number): UploadRow | null;
  byReference(reference: string): UploadRow | null;
  /** The principal's upload that is not finished (uploading or validating), newest first. */
  active(p: Principal): UploadRow | null;
  owns(p: Principal, u: UploadRow): boolean;
  setState(id: number, state: UploadState, finished?: boolean): void;
  setDetails(id: number, d: { contact: string; studies: StudyInfo[] }): void;
  touch(id: number): void;
  files(uploadId: number): FileRow[];
  file(id: number): FileRow | null;
  fileBySop(uploadId: number, sop: string): FileRow | null;
  fileByTus(tusId: string): FileRow | null;
  addFiles(uploadId: number, files: NewFile[]): void;
  removeFiles(ids: number[]): void;
  /** Transfer bookkeeping (recoverable after a crash): written without waiting for the disk. */
  setFile(id: number, state: FileState, opts?: { reason?: string | null; tusId?: string | null; attempts?: number }): void;
  /** A settled outcome (refused, quarantined, duplicate, discarded): durable when it returns. */
  settleFile(id: number, state: FileState, reason: string | null): void;
  /** SOP Instance UIDs the principal's earlier uploads got into the store (check before send). */
  keptSops(p: Principal, sops: string[]): Set<string>;
  /** Bytes of the distinct files a code's uploads got into the store (chosen again, they are not sent again). */
  keptBytes(codeId: number): number;
  filesInState(states: FileState[]): FileRow[];
  counts(uploadId: number): StateCounts;
  studyCounts(uploadId: number): StudyCounts[];
  /** Settled files that were not kept (refused, quarantined), with name and reason. */
  refusedFiles(uploadId: number, limit: number): { name: string; sopUid: string; studyUid: string; state: FileState; reason: string | null }[];
  /** Every tus id still referenced by a file. */
  tusIds(): Set<string>;
  staleUploads(olderThan: string): UploadRow[];
  /** In the instance's commit transaction: the file of its upload is stored; the code's bytes used grow. */
  hook: CommitHook;
}

interface URow {
  id: number;
  reference: string;
  code_ref: number | null;
  user_ref: number | null;
  actor: string;
  institution_id: string;
  submission_ref: number | null;
  ip: string | null;
  contact: string;
  studies: string;
  state: UploadState;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
}

interface FRow {
  id: number;
  upload_ref: number;
  sop_uid: string;
  sop_class_uid: string;
  study_uid: string;
  name: string;
  size: number;
  state: FileState;
  tus_id: string | null;
  reason: string | null;
  attempts: number;
  instance_ref: number | null;
  updated_at: string;
}

const toUpload = (r: URow): UploadRow => ({
  id: r.id,
  reference: r.reference,
  codeRef: r.code_ref,
  userRef: r.user_ref,
  actor: r.actor,
  institutionId: r.institution_id,
  submissionRef: r.submission_ref,
  ip: r.ip,
  contact: r.contact,
  studies: JSON.parse(r.studies) as StudyInfo[],
  state: r.state,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  finishedAt: r.finished_at,
});

const toFile = (r: FRow): FileRow => ({
  id: r.id,
  uploadRef: r.upload_ref,
  sopUid: r.sop_uid,
  sopClassUid: r.sop_class_uid,
  studyUid: r.study_uid,
  name: r.name,
  size: r.size,
  state: r.state,
  tusId: r.tus_id,
  reason: r.reason,
  attempts: r.attempts,
  instanceRef: r.instance_ref,
  updatedAt: r.updated_at,
});

/** "U-" + 8 Crockford base32 characters (40 random bits), grouped for reading aloud: U-7K3M-9QX2. */
export function newReference(): string {
  const b = randomBytes(8);
  let s = '';
  for (let i = 0; i < 8; i++) s += ALPHABET[b[i] & 31];
  return `U-${s.slice(0, 4)}-${s.slice(4)}`;
}

const now = () => new Date().toISOString();

export function createUploadRecords(db: Db): UploadRecords {
  const insertUpload = db.prepare(
    `INSERT INTO uploads (reference, code_ref, user_ref, actor, institution_id, submission_ref, ip, contact, studies, state, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'uploading', ?, ?)`,
  );
  const insertFile = db.prepare(
    'INSERT INTO upload_files (upload_ref, sop_uid, sop_class_uid, study_uid, name, size, state, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
  );
  const byId = db.prepare('SELECT * FROM uploads WHERE id = ?');
  const byRef = db.prepare('SELECT * FROM uploads WHERE reference = ?');
  const activeByCode = db.prepare("SELECT * FROM uploads WHERE code_ref = ? AND state IN ('uploading', 'validating') ORDER BY id DESC LIMIT 1");
  const activeByUser = db.prepare("SELECT * FROM uploads WHERE user_ref = ? AND code_ref IS NULL AND state IN ('uploading', 'validating') ORDER BY id DESC LIMIT 1");
  const setState = db.prepare('UPDATE uploads SET state = ?, updated_at = ? WHERE id = ?');
  const setFinished = db.prepare('UPDATE uploads SET state = ?, updated_at = ?, finished_at = ? WHERE id = ?');
  const setDetails = db.prepare('UPDATE uploads SET contact = ?, studies = ?, updated_at = ? WHERE id = ?');
  const touch = db.prepare('UPDATE uploads SET updated_at = ? WHERE id = ?');
  const filesOf = db.prepare('SELECT * FROM upload_files WHERE upload_ref = ? ORDER BY id');
  const fileById = db.prepare('SELECT * FROM upload_files WHERE id = ?');
  const fileBySop = db.prepare('SELECT * FROM upload_files WHERE upload_ref = ? AND sop_uid = ?');
  const fileByTus = db.prepare('SELECT * FROM upload_files WHERE tus_id = ?');
  const deleteFile = db.prepare('DELETE FROM upload_files WHERE id = ?');
  const keptByCode = db.prepare(
    "SELECT f.sop_uid FROM upload_files f JOIN uploads u ON u.id = f.upload_ref WHERE u.code_ref = ? AND f.state IN ('stored', 'duplicate', 'already')",
  );
  const keptByUser = db.prepare(
    "SELECT f.sop_uid FROM upload_files f JOIN uploads u ON u.id = f.upload_ref WHERE u.user_ref = ? AND u.code_ref IS NULL AND f.state IN ('stored', 'duplicate', 'already')",
  );
  const keptBytes = db.prepare(
    `SELECT COALESCE(SUM(size), 0) AS n FROM (SELECT f.sop_uid, MAX(f.size) AS size FROM upload_files f JOIN uploads u ON u.id = f.upload_ref
     WHERE u.code_ref = ? AND f.state IN ('stored', 'duplicate', 'already') GROUP BY f.sop_uid)`,
  );
  const counts = db.prepare('SELECT state, COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes FROM upload_files WHERE upload_ref = ? GROUP BY state');
  const studyCounts = db.prepare('SELECT study_uid, state, COUNT(*) AS n FROM upload_files WHERE upload_ref = ? GROUP BY study_uid, state');
  const refused = db.prepare(
    "SELECT name, sop_uid, study_uid, state, reason FROM upload_files WHERE upload_ref = ? AND state IN ('refused', 'quarantined') ORDER BY id LIMIT ?",
  );
  const allTus = db.prepare('SELECT tus_id FROM upload_files WHERE tus_id IS NOT NULL');
  const settle = db.prepare('UPDATE upload_files SET state = ?, reason = ?, updated_at = ? WHERE id = ?');
  const fileStatements = new Map<string, Database.Statement<unknown[]>>();
  /** Run a write that need not wait for the disk (see the header). */
  const relaxed = <T>(fn: () => T): T => {
    if (db.inTransaction) return fn();
    db.pragma('synchronous = NORMAL');
    try {
      return fn();
    } finally {
      db.pragma('synchronous = FULL');
    }
  };
  const stale = db.prepare("SELECT * FROM uploads WHERE state = 'uploading' AND updated_at < ?");
  // The commit hook's statements: the file of the upload that brought the instance, and the code's bytes used.
  const hookStored = db.prepare(
    "UPDATE upload_files SET state = 'stored', instance_ref = ?, reason = NULL, updated_at = ? WHERE upload_ref = ? AND sop_uid = ? AND state <> 'stored' RETURNING size",
  );
  const hookBytes = db.prepare('UPDATE upload_codes SET bytes_used = bytes_used + ? WHERE id = (SELECT code_ref FROM uploads WHERE id = ?)');

  const records: UploadRecords = {
    create(input) {
      return db.transaction(() => {
        const p = input.principal;
        const t = now();
        for (let attempt = 0; ; attempt++) {
          try {
            const r = insertUpload.run(
              newReference(),
              p.kind === 'code' ? p.codeId : null,
              p.kind === 'user' ? p.userId : null,
              p.kind === 'code' ? p.codeRef : p.userName,
              p.institutionId,
              input.submissionRef,
              input.ip,
              input.contact,
              JSON.stringify(input.studies),
              t,
              t,
            );
            const id = Number(r.lastInsertRowid);
            records.addFiles(id, input.files);
            return records.get(id)!;
          } catch (e) {
            if (attempt < 5 && (e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE' && /reference/.test(String(e))) continue;
            throw e;
          }
        }
      })();
    },
    get(id) {
      const r = byId.get(id) as URow | undefined;
      return r ? toUpload(r) : null;
    },
    byReference(reference) {
      const r = byRef.get(reference) as URow | undefined;
      return r ? toUpload(r) : null;
    },
    active(p) {
      const r = (p.kind === 'code' ? activeByCode.get(p.codeId) : activeByUser.get(p.userId)) as URow | undefined;
      return r ? toUpload(r) : null;
    },
    owns(p, u) {
      return p.kind === 'code' ? u.codeRef === p.codeId : u.codeRef === null && u.userRef === p.userId;
    },
    setState(id, state, finished = false) {
      const t = now();
      if (finished) setFinished.run(state, t, t, id);
      else setState.run(state, t, id);
    },
    setDetails(id, d) {
      setDetails.run(d.contact, JSON.stringify(d.studies), now(), id);
    },
    touch(id) {
      relaxed(() => touch.run(now(), id));
    },
    files(uploadId) {
      return (filesOf.all(uploadId) as FRow[]).map(toFile);
    },
    file(id) {
      const r = fileById.get(id) as FRow | undefined;
      return r ? toFile(r) : null;
    },
    fileBySop(uploadId, sop) {
      const r = fileBySop.get(uploadId, sop) as FRow | undefined;
      return r ? toFile(r) : null;
    },
    fileByTus(tusId) {
      const r = fileByTus.get(tusId) as FRow | undefined;
      return r ? toFile(r) : null;
    },
    addFiles(uploadId, files) {
      const t = now();
      db.transaction(() => {
        for (const f of files) insertFile.run(uploadId, f.sopUid, f.sopClassUid, f.studyUid, f.name, f.size, f.state, t);
      })();
    },
    removeFiles(ids) {
      db.transaction(() => {
        for (const id of ids) deleteFile.run(id);
      })();
    },
    setFile(id, state, opts = {}) {
      const sets = ['state = ?', 'updated_at = ?'];
      const args: unknown[] = [state, now()];
      if ('reason' in opts) (sets.push('reason = ?'), args.push(opts.reason ?? null));
      if ('tusId' in opts) (sets.push('tus_id = ?'), args.push(opts.tusId ?? null));
      if (opts.attempts !== undefined) (sets.push('attempts = ?'), args.push(opts.attempts));
      const sql = `UPDATE upload_files SET ${sets.join(', ')} WHERE id = ?`;
      let stmt = fileStatements.get(sql);
      if (!stmt) fileStatements.set(sql, (stmt = db.prepare(sql)));
      const st = stmt;
      relaxed(() => st.run(...args, id));
    },
    settleFile(id, state, reason) {
      settle.run(state, reason, now(), id);
    },
    keptSops(p, sops) {
      const want = new Set(sops);
      const rows = (p.kind === 'code' ? keptByCode.all(p.codeId) : keptByUser.all(p.userId)) as { sop_uid: string }[];
      return new Set(rows.map((r) => r.sop_uid).filter((s) => want.has(s)));
    },
    keptBytes(codeId) {
      return (keptBytes.get(codeId) as { n: number }).n;
    },
    filesInState(states) {
      return (db.prepare(`SELECT * FROM upload_files WHERE state IN (${states.map(() => '?').join(', ')}) ORDER BY id`).all(...states) as FRow[]).map(toFile);
    },
    counts(uploadId) {
      const out: StateCounts = { files: 0, bytes: 0, byState: {}, bytesReceived: 0 };
      for (const r of counts.all(uploadId) as { state: FileState; n: number; bytes: number }[]) {
        out.files += r.n;
        out.bytes += r.bytes;
        out.byState[r.state] = r.n;
        if (r.state !== 'expected' && r.state !== 'receiving') out.bytesReceived += r.bytes;
      }
      return out;
    },
    studyCounts(uploadId) {
      const m = new Map<string, StudyCounts>();
      for (const r of studyCounts.all(uploadId) as { study_uid: string; state: FileState; n: number }[]) {
        const s = m.get(r.study_uid) ?? { studyUid: r.study_uid, files: 0, byState: {} };
        s.files += r.n;
        s.byState[r.state] = r.n;
        m.set(r.study_uid, s);
      }
      return [...m.values()];
    },
    refusedFiles(uploadId, limit) {
      return (refused.all(uploadId, limit) as { name: string; sop_uid: string; study_uid: string; state: FileState; reason: string | null }[]).map((r) => ({
        name: r.name,
        sopUid: r.sop_uid,
        studyUid: r.study_uid,
        state: r.state,
        reason: r.reason,
      }));
    },
    tusIds() {
      return new Set((allTus.all() as { tus_id: string }[]).map((r) => r.tus_id));
    },
    staleUploads(olderThan) {
      return (stale.all(olderThan) as URow[]).map(toUpload);
    },
    hook(_db, ids, rec) {
      if (rec.uploadRef == null) return;
      const row = hookStored.get(ids.instanceId, now(), rec.uploadRef, rec.header.sopInstanceUID) as { size: number } | undefined;
      if (row) hookBytes.run(row.size, rec.uploadRef);
    },
  };
  return records;
}
