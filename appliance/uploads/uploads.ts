/**
 * Browser uploads (issue 5), the appliance's side: START UPLOAD to 'Upload successful'.
 *
 *   begin     the browser's manifest (after consent): the upload record (one unfinished upload per code or
 *             user: a new START of the same code continues it), check before send (files this code or user
 *             already got into the store are not sent again; files already received are not either), the
 *             code's allowance, the files-per-upload limit. Answers what to send, and where a file's bytes
 *             already are (the tus URL to resume at the server's offset).
 *   files     each file is one tus upload (server/upload/tus.ts) bound to a file of the record: created only
 *             for a file of the manifest, with its announced size; when all its bytes are durably in staging
 *             (dataDir/staging/tus) it is `received` and goes to the intake (upload-intake.ts: the one
 *             ingest path with the upload's origin, upload policy: validate, scan, anonymise, label, commit).
 *   status    the record as the page shows it (htmx polling): Uploading, Validating files, Upload successful
 *             with the receipt, or cancelled; refused files by name with the reason.
 *   cancel    discards everything staged for the upload (tus files, files waiting for intake, held files).
 *
 * Restart: files received but not ingested are ingested again; tus files whose bytes all arrived before a
 * crash are taken in; leftovers are swept. Unfinished uploads with no activity for upload.unfinishedDays
 * expire (their staged files are discarded). Audit: upload.start, upload.resume, upload.finish (per study),
 * upload.cancel, upload.expire.
 */
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../../config/schema.ts';
import type { AuditLog } from '../audit/audit-log.ts';
import { AppError } from '../errors.ts';
import type { Origin, Outcome, StagedFile, UploadInfo } from '../intake/ingest.ts';
import type { Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import type { FileStore } from '../store/file-store.ts';
import type { CommitHook } from '../store/study-index.ts';
import { manifestBytes, withMessageKey, type Manifest } from './manifest.ts';
import { createUploadIntake, removeTusFiles, type UploadIntake } from './upload-intake.ts';
import {
  ACTIVE_UPLOAD_STATES,
  createUploadRecords,
  FINAL_STATES,
  KEPT_STATES,
  type FileRow,
  type FileState,
  type NewFile,
  type Principal,
  type StudyInfo,
  type UploadRecords,
  type UploadRow,
  type UploadState,
} from './upload-records.ts';

export type { Principal, UploadRow, FileRow, FileState, UploadState };

/** Where the tus endpoint is mounted (its upload URLs are TUS_PATH/<id>). */
export const TUS_PATH = '/upload/files';

export interface BeginInput {
  principal: Principal;
  manifest: Manifest;
  ip: string | null;
  /** The code's remaining allowance in bytes (null: no allowance, a logged-in user). */
  allowance: { allowanceBytes: number; bytesUsed: number } | null;
  /** The portal submission recorded with a new upload (the console names the code from it). */
  recordSubmission?: () => number | null;
}

export interface BeginResult {
  upload: UploadRow;
  resumed: boolean;
  /** Files to send, with the tus URL to resume at when the server has some of their bytes. */
  send: { sop: string; url: string | null }[];
  /** Files of the manifest the server has already (received, or kept before): not sent again. */
  done: string[];
}

export interface StudyStatus extends StudyInfo {
  files: number;
  /** Kept by the hospital (stored now or already before). */
  kept: number;
  refused: number;
  /** Received, waiting to be checked (or held for the scanner). */
  checking: number;
  /** Not received yet. */
  toSend: number;
  discarded: number;
}

export interface UploadStatus {
  reference: string;
  state: UploadState;
  createdAt: string;
  finishedAt: string | null;
  files: number;
  bytes: number;
  kept: number;
  /** Of `kept`, already there before this upload (check before send, or from elsewhere). */
  alreadyThere: number;
  refused: number;
  held: number;
  checking: number;
  toSend: number;
  discarded: number;
  studies: StudyStatus[];
  /** Refused files by name with the error code of the reason (MALWARE, NOT_DICOM, ...), at most 200. */
  refusedFiles: { name: string; studyUid: string; reason: string }[];
}

export interface Uploads {
  readonly tusDir: string;
  /** The commit hook: in the instance's transaction, its upload file is stored and the code's bytes used grow. */
  readonly hook: CommitHook;
  readonly records: UploadRecords;
  begin(input: BeginInput): BeginResult;
  /**
   * What the portal page lets the uploader choose before it asks the server: the code's remaining allowance plus
   * the files its uploads already got in (chosen again, those are not sent and not counted; the server checks).
   */
  selectableBytes(code: { id: number; allowanceBytes: number; bytesUsed: number }): number;
  /** The upload to show to this principal: the preferred one (the session's) if theirs, else their unfinished one. */
  current(p: Principal, preferReference?: string | null): UploadRow | null;
  byReference(p: Principal, reference: string): UploadRow | null;
  status(u: UploadRow): UploadStatus;
  /** A tus upload is being created (POST): the file it is for, or an AppError (with an HTTP status). */
  authorizeCreate(p: Principal, meta: { upload?: string | null; sop?: string | null }, size: number | undefined): FileRow;
  fileCreated(file: FileRow, tusId: string): void;
  /** The file and upload a tus id belongs to, if the principal owns it (HEAD, PATCH). */
  forTus(p: Principal, tusId: string): { file: FileRow; upload: UploadRow } | null;
  /**
   * All bytes of a tus upload arrived (durably): take the file in, or refuse it at once (not DICOM). `marker`:
   * its bytes 128-131 if the caller saw them go by (else they are read from the file).
   */
  received(tusId: string, marker?: string): Promise<{ ok: true } | { ok: false; error: AppError }>;
  /** SOP Instance UIDs the browser still has to send (e.g. bytes lost): it sends them again. */
  missing(u: UploadRow): string[];
  cancel(p: Principal, u: UploadRow, ip: string | null): Promise<{ discarded: number; kept: number }>;
  /** ingest's retryHeld settled a held file (appliance.ts wires this). */
  heldOutcome(origin: Origin, outcome: Outcome): void;
  /** For tests and benchmarks: nothing queued for intake or in it. */
  intakeIdle(): boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface UploadsDeps {
  config: Config;
  db: Db;
  store: FileStore;
  audit: AuditLog;
  log: Logger;
  ingest: (file: StagedFile, origin: Origin) => Promise<Outcome>;
  dropHeld: (match: (origin: Origin) => boolean) => Promise<number>;
  /** Default: dataDir/staging/tus. */
  tusDir?: string;
}

const SENDING: readonly FileState[] = ['expected', 'receiving'];
const WAITING: readonly FileState[] = ['received', 'held'];

function count(by: Partial<Record<FileState, number>>, states: readonly FileState[]): number {
  return states.reduce((n, s) => n + (by[s] ?? 0), 0);
}

export function contactOf(m: Pick<Manifest, 'email' | 'phone'>): string {
  return [m.email, m.phone].filter(Boolean).join(', ');
}

export function createUploads(deps: UploadsDeps): Uploads {
  const { config, db, store, audit, log } = deps;
  const records = createUploadRecords(db);
  const tusDir = deps.tusDir ?? path.join(path.resolve(config.dataDir), 'staging', 'tus');
  mkdirSync(tusDir, { recursive: true });
  const stateTimers = new Map<number, NodeJS.Timeout>();
  let sweepTimer: NodeJS.Timeout | null = null;
  let started = false;

  const actorOf = (u: UploadRow) => ({ kind: u.codeRef !== null ? ('code' as const) : ('user' as const), name: u.actor });

  const uploadInfo = (u: UploadRow): UploadInfo => ({
    id: u.reference,
    by: u.codeRef !== null ? 'code' : 'user',
    name: u.codeRef !== null ? '' : u.actor,
    institution: u.institutionId,
    comment: Object.fromEntries(u.studies.filter((s) => s.comment).map((s) => [s.studyUid, s.comment])),
    contact: u.contact,
    at: u.createdAt,
  });

  const originFor = (f: FileRow, u: UploadRow): Origin => ({
    kind: u.codeRef !== null ? 'upload' : 'user',
    policy: 'upload',
    batch: `upload:${u.reference}`,
    actor: actorOf(u),
    remoteIP: u.ip ?? undefined,
    uploadRef: u.id,
    expected: { sopInstanceUID: f.sopUid, sopClassUID: f.sopClassUid },
    info: { upload: uploadInfo(u), uploadFile: f.id },
  });

  /** Work out the upload's state from its files (debounced: many files settle at once). */
  const updateState = (uploadId: number) => {
    const u = records.get(uploadId);
    if (!u || !ACTIVE_UPLOAD_STATES.includes(u.state)) return;
    const c = records.counts(uploadId);
    const sending = count(c.byState, SENDING);
    const waiting = count(c.byState, WAITING);
    if (sending + waiting === 0 && intake.pending(uploadId) === 0) {
      records.setState(uploadId, 'complete', true);
      const studies = records.studyCounts(uploadId);
      for (const s of studies)
        audit.record({
          actorKind: actorOf(u).kind,
          actor: u.actor,
          action: 'upload.finish',
          studyUid: s.studyUid,
          ip: u.ip,
          detail: { reference: u.reference, files: s.files, stored: s.byState.stored ?? 0, alreadyThere: count(s.byState, ['duplicate', 'already']), refused: s.byState.refused ?? 0, quarantined: s.byState.quarantined ?? 0 },
        });
      log.info({ upload: u.reference, files: c.files, stored: c.byState.stored ?? 0, refused: count(c.byState, ['refused', 'quarantined']) }, 'upload complete');
    } else {
      const next: UploadState = sending === 0 ? 'validating' : 'uploading';
      if (next !== u.state) records.setState(uploadId, next);
    }
  };
  const scheduleState = (uploadId: number) => {
    if (stateTimers.has(uploadId)) return;
    const timer = setTimeout(() => {
      stateTimers.delete(uploadId);
      try {
        updateState(uploadId);
      } catch (e) {
        log.error({ err: e, upload: uploadId }, 'upload state update failed');
      }
    }, 100);
    timer.unref();
    stateTimers.set(uploadId, timer);
  };

  const intake: UploadIntake = createUploadIntake({
    records,
    store,
    tusDir,
    ingest: deps.ingest,
    originFor,
    log,
    concurrency: Math.max(1, config.scan.clamd.maxConcurrent),
    onSettled: scheduleState,
  });

  const tusUrl = (tusId: string) => `${TUS_PATH}/${tusId}`;
  const tusData = (tusId: string) => path.join(tusDir, tusId);

  async function readMarker(file: string): Promise<string> {
    const fh = await open(file, 'r');
    try {
      const b = Buffer.alloc(4);
      const { bytesRead } = await fh.read(b, 0, 4, 128);
      return bytesRead === 4 ? b.toString('latin1') : '';
    } finally {
      await fh.close();
    }
  }

  async function takeIn(f: FileRow, u: UploadRow, seen?: string): Promise<{ ok: true } | { ok: false; error: AppError }> {
    // Only DICOM is accepted: a file without the Part 10 marker is refused now, with its reason.
    const marker = seen ?? (await readMarker(tusData(f.tusId!)));
    if (marker !== 'DICM') {
      records.settleFile(f.id, 'refused', 'NOT_DICOM');
      await removeTusFiles(tusDir, f.tusId!);
      log.warn({ upload: u.reference, file: f.id }, 'uploaded file refused: not a DICOM Part 10 file');
      scheduleState(u.id);
      return { ok: false, error: new AppError('NOT_DICOM') };
    }
    records.setFile(f.id, 'received', { reason: null });
    records.touch(u.id);
    intake.enqueue(f.id);
    scheduleState(u.id);
    return { ok: true };
  }

  async function discard(u: UploadRow, state: 'cancelled' | 'expired', by: { kind: 'code' | 'user' | 'system'; name: string }, ip: string | null) {
    records.setState(u.id, state, true);
    await intake.drain(u.id);
    let discarded = 0;
    for (const f of records.files(u.id)) {
      if (FINAL_STATES.includes(f.state)) continue;
      if (f.tusId) await removeTusFiles(tusDir, f.tusId);
      records.settleFile(f.id, 'discarded', null);
      discarded++;
    }
    const held = await deps.dropHeld((o) => o.uploadRef === u.id && o.batch === `upload:${u.reference}`);
    const c = records.counts(u.id);
    const kept = count(c.byState, KEPT_STATES);
    audit.record({
      actorKind: by.kind,
      actor: by.name,
      action: state === 'cancelled' ? 'upload.cancel' : 'upload.expire',
      ip,
      detail: { reference: u.reference, discarded, heldDiscarded: held, kept, refused: count(c.byState, ['refused', 'quarantined']) },
    });
    log.info({ upload: u.reference, discarded, kept, state }, state === 'cancelled' ? 'upload cancelled' : 'unfinished upload expired');
    return { discarded, kept };
  }

  /** Remove tus files no record needs (replaced, settled, of cancelled uploads); at start, any age. */
  async function sweepTus(minAgeMs: number): Promise<number> {
    const wanted = new Map<string, FileRow>();
    for (const f of records.filesInState(['receiving', 'received'])) if (f.tusId) wanted.set(f.tusId, f);
    let n = 0;
    const t = Date.now();
    for (const name of readdirSync(tusDir)) {
      const id = name.endsWith('.json') ? name.slice(0, -5) : name;
      if (wanted.has(id)) continue;
      try {
        if (t - statSync(path.join(tusDir, name)).mtimeMs < minAgeMs) continue;
      } catch {
        continue;
      }
      await removeTusFiles(tusDir, id);
      n++;
    }
    return n;
  }

  async function expireStale(): Promise<void> {
    const before = new Date(Date.now() - config.upload.unfinishedDays * 86_400_000).toISOString();
    for (const u of records.staleUploads(before)) await discard(u, 'expired', { kind: 'system', name: 'uplink' }, null);
  }

  const uploads: Uploads = {
    tusDir,
    hook: records.hook,
    records,

    begin(input) {
      const { principal: p, manifest: m } = input;
      const sops = m.studies.flatMap((s) => s.files.map((f) => f.sop));
      const studies: StudyInfo[] = m.studies.map((s) => ({ studyUid: s.studyUid, comment: s.comment, date: s.date, description: s.description }));
      const contact = contactOf(m);
      let resumed = false;
      const withdrawnTus: string[] = [];
      const upload = db.transaction((): UploadRow => {
        const kept = records.keptSops(p, sops);
        const existing = records.active(p);
        let u: UploadRow;
        if (existing) {
          resumed = true;
          const have = new Map(records.files(existing.id).map((f) => [f.sopUid, f]));
          const wanted = new Set(sops);
          // The newest choice decides what is still to be sent: files chosen before and not now are dropped.
          const withdrawn = [...have.values()].filter((f) => !wanted.has(f.sopUid) && SENDING.includes(f.state));
          for (const f of withdrawn) if (f.tusId) withdrawnTus.push(f.tusId);
          records.removeFiles(withdrawn.map((f) => f.id));
          const fresh: NewFile[] = [];
          for (const s of m.studies)
            for (const f of s.files)
              if (!have.has(f.sop)) fresh.push({ sopUid: f.sop, sopClassUid: f.sopClass, studyUid: s.studyUid, name: f.name, size: f.size, state: kept.has(f.sop) ? 'already' : 'expected' });
          records.addFiles(existing.id, fresh);
          const merged = new Map(existing.studies.map((s) => [s.studyUid, s]));
          for (const s of studies) merged.set(s.studyUid, s);
          records.setDetails(existing.id, { contact: contact || existing.contact, studies: [...merged.values()] });
          u = records.get(existing.id)!;
        } else {
          const files: NewFile[] = m.studies.flatMap((s) =>
            s.files.map((f) => ({ sopUid: f.sop, sopClassUid: f.sopClass, studyUid: s.studyUid, name: f.name, size: f.size, state: (kept.has(f.sop) ? 'already' : 'expected') as FileState })),
          );
          u = records.create({ principal: p, ip: input.ip, contact, studies, submissionRef: input.recordSubmission?.() ?? null, files });
        }
        const c = records.counts(u.id);
        if (c.files > config.upload.maxFilesPerUpload)
          throw withMessageKey(new AppError('TOO_LARGE', `An upload may have at most ${config.upload.maxFilesPerUpload} files.`), 'upload.error.tooManyFiles', { max: config.upload.maxFilesPerUpload });
        if (input.allowance) {
          // Everything not yet in the store counts against what the code has left.
          const notKept = c.bytes - records.files(u.id).filter((f) => KEPT_STATES.includes(f.state) || f.state === 'refused' || f.state === 'quarantined').reduce((n, f) => n + f.size, 0);
          if (notKept > input.allowance.allowanceBytes - input.allowance.bytesUsed) throw new AppError('ALLOWANCE_EXCEEDED');
        }
        if (count(c.byState, SENDING) > 0 && u.state !== 'uploading') records.setState(u.id, 'uploading');
        return records.get(u.id)!;
      })();
      for (const id of withdrawnTus) void removeTusFiles(tusDir, id);

      const byS = new Map(records.files(upload.id).map((f) => [f.sopUid, f]));
      const send: BeginResult['send'] = [];
      const done: string[] = [];
      for (const sop of sops) {
        const f = byS.get(sop)!;
        if (f.state === 'receiving' && f.tusId && !existsSync(tusData(f.tusId))) {
          records.setFile(f.id, 'expected', { tusId: null });
          f.state = 'expected';
        }
        if (f.state === 'expected') send.push({ sop, url: null });
        else if (f.state === 'receiving') send.push({ sop, url: tusUrl(f.tusId!) });
        else done.push(sop);
      }
      audit.record({
        actorKind: actorOf(upload).kind,
        actor: upload.actor,
        action: resumed ? 'upload.resume' : 'upload.start',
        ip: input.ip,
        detail: { reference: upload.reference, studies: m.studies.length, files: sops.length, bytes: manifestBytes(m), toSend: send.length, alreadyThere: done.length },
      });
      log.info({ upload: upload.reference, files: sops.length, toSend: send.length, resumed }, resumed ? 'upload resumed' : 'upload started');
      scheduleState(upload.id);
      return { upload, resumed, send, done };
    },

    selectableBytes(code) {
      return Math.max(0, code.allowanceBytes - code.bytesUsed) + records.keptBytes(code.id);
    },

    current(p, preferReference) {
      if (preferReference) {
        const u = records.byReference(preferReference);
        if (u && records.owns(p, u)) return u;
      }
      return records.active(p);
    },

    byReference(p, reference) {
      const u = records.byReference(reference);
      return u && records.owns(p, u) ? u : null;
    },

    status(u) {
      const c = records.counts(u.id);
      const by = c.byState;
      const perStudy = new Map(records.studyCounts(u.id).map((s) => [s.studyUid, s]));
      const studies: StudyStatus[] = u.studies
        .filter((s) => perStudy.has(s.studyUid))
        .map((s) => {
          const x = perStudy.get(s.studyUid)!.byState;
          return {
            ...s,
            files: perStudy.get(s.studyUid)!.files,
            kept: count(x, KEPT_STATES),
            refused: count(x, ['refused', 'quarantined']),
            checking: count(x, WAITING),
            toSend: count(x, SENDING),
            discarded: x.discarded ?? 0,
          };
        });
      // The stored state follows the files a moment later (debounced): show what the files say now.
      let state = u.state;
      if (ACTIVE_UPLOAD_STATES.includes(state)) state = count(by, SENDING) > 0 ? 'uploading' : 'validating';
      return {
        reference: u.reference,
        state,
        createdAt: u.createdAt,
        finishedAt: u.finishedAt,
        files: c.files,
        bytes: c.bytes,
        kept: count(by, KEPT_STATES),
        alreadyThere: count(by, ['duplicate', 'already']),
        refused: count(by, ['refused', 'quarantined']),
        held: by.held ?? 0,
        checking: count(by, WAITING),
        toSend: count(by, SENDING),
        discarded: by.discarded ?? 0,
        studies,
        refusedFiles: records.refusedFiles(u.id, 200).map((r) => ({ name: r.name, studyUid: r.studyUid, reason: r.state === 'quarantined' ? 'MALWARE' : (r.reason ?? 'INTERNAL') })),
      };
    },

    authorizeCreate(p, meta, size) {
      const u = meta.upload ? records.byReference(meta.upload) : null;
      if (!u || !records.owns(p, u)) throw new AppError('NOT_FOUND', 'There is no such upload. Press START UPLOAD again.');
      if (!ACTIVE_UPLOAD_STATES.includes(u.state)) throw new AppError('CONFLICT', 'This upload has ended. Press START UPLOAD to begin a new one.');
      const f = meta.sop ? records.fileBySop(u.id, meta.sop) : null;
      if (!f) throw new AppError('BAD_REQUEST', 'This file is not part of the upload.');
      if (!SENDING.includes(f.state)) throw new AppError('CONFLICT', 'This file has been received already.');
      if (size === undefined || size !== f.size) throw new AppError('BAD_REQUEST', 'The file\'s size differs from the one announced when the upload started.');
      return f;
    },

    fileCreated(f, tusId) {
      if (f.tusId && f.tusId !== tusId) void removeTusFiles(tusDir, f.tusId);
      records.setFile(f.id, 'receiving', { tusId });
      records.touch(f.uploadRef);
    },

    forTus(p, tusId) {
      const file = records.fileByTus(tusId);
      if (!file) return null;
      const upload = records.get(file.uploadRef);
      if (!upload || !records.owns(p, upload)) return null;
      return { file, upload };
    },

    async received(tusId, marker) {
      const f = records.fileByTus(tusId);
      if (!f) return { ok: true };
      const u = records.get(f.uploadRef)!;
      if (!ACTIVE_UPLOAD_STATES.includes(u.state)) {
        await removeTusFiles(tusDir, tusId);
        return { ok: false, error: new AppError('CONFLICT', 'This upload has ended.') };
      }
      if (f.state !== 'receiving') return { ok: true };
      return takeIn(f, u, marker);
    },

    missing(u) {
      const out: string[] = [];
      for (const f of records.files(u.id)) {
        if (f.state === 'expected') out.push(f.sopUid);
        else if (f.state === 'receiving' && (!f.tusId || !existsSync(tusData(f.tusId)))) out.push(f.sopUid);
      }
      return out;
    },

    async cancel(p, u, ip) {
      if (!records.owns(p, u)) throw new AppError('NOT_FOUND');
      if (!ACTIVE_UPLOAD_STATES.includes(u.state)) throw new AppError('CONFLICT', 'This upload has already ended.');
      return discard(u, 'cancelled', actorOf(u), ip);
    },

    heldOutcome(origin, outcome) {
      const id = origin.info?.uploadFile;
      if (typeof id !== 'number') return;
      const f = records.file(id);
      if (!f) return;
      // `stored` was written by the commit hook already; the others are written here.
      if (f.state === 'held') {
        if (outcome.kind === 'stored') records.settleFile(id, 'stored', null);
        else if (outcome.kind === 'duplicate') records.settleFile(id, 'duplicate', null);
        else if (outcome.kind === 'quarantined') records.settleFile(id, 'quarantined', 'MALWARE');
        else if (outcome.kind === 'rejected') records.settleFile(id, 'refused', outcome.error.code);
      }
      scheduleState(f.uploadRef);
    },

    intakeIdle: () => intake.idle() && stateTimers.size === 0,

    async start() {
      if (started) return;
      started = true;
      // Bytes that all arrived before a stop, but were not taken in yet.
      for (const f of records.filesInState(['receiving'])) {
        if (!f.tusId) continue;
        const u = records.get(f.uploadRef);
        if (!u || !ACTIVE_UPLOAD_STATES.includes(u.state)) continue;
        let size = -1;
        try {
          size = statSync(tusData(f.tusId)).size;
        } catch {
          /* gone: sent again */
        }
        if (size === f.size) await takeIn(f, u);
      }
      for (const f of records.filesInState(['received'])) {
        const u = records.get(f.uploadRef);
        if (u && ACTIVE_UPLOAD_STATES.includes(u.state)) intake.enqueue(f.id);
      }
      const swept = await sweepTus(0);
      if (swept) log.info({ files: swept }, 'removed staged upload files no upload needs');
      for (const u of db.prepare("SELECT id FROM uploads WHERE state IN ('uploading', 'validating')").all() as { id: number }[]) scheduleState(u.id);
      await expireStale();
      const every = async () => {
        try {
          await expireStale();
          await sweepTus(3_600_000);
        } catch (e) {
          log.error({ err: e }, 'upload housekeeping failed');
        }
      };
      sweepTimer = setInterval(() => void every(), 10 * 60_000);
      sweepTimer.unref();
    },

    async stop() {
      if (sweepTimer) clearInterval(sweepTimer);
      sweepTimer = null;
      await intake.stop();
      for (const [id, timer] of stateTimers) {
        clearTimeout(timer);
        try {
          updateState(id);
        } catch {
          /* closing */
        }
      }
      stateTimers.clear();
    },
  };
  return uploads;
}
