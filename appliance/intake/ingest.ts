/**
 * The one ingest path. Every origin (C-STORE, browser upload, local import) hands a staged file to
 * `ingest(file, origin)`, which returns an outcome and never drops a file silently:
 *   stage (done by the caller) -> validate -> (duplicate?) -> scan -> transform -> commit -> (enqueue, in the commit)
 * Success is reported only after the file is durably in the store and its index rows are committed.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Config, PolicyConfig } from '../../config/schema.ts';
import type { AuditLog, ActorKind } from '../audit/audit-log.ts';
import { checkIdentity, readHeader, readHeaderFromBuffer, type DicomHeader } from '../dicom/header.ts';
import { AppError, toAppError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Scanner } from '../scan/scanner.ts';
import type { Db } from '../store/db.ts';
import type { FileStore } from '../store/file-store.ts';
import type { CommitHook, OriginKind, StudyIndex } from '../store/study-index.ts';

/**
 * Upload information (Origin.info.upload), filled by whoever hands files to ingest for an upload (the browser
 * upload; the C-STORE SCP leaves it out and the transform step derives it from the node). The transform step
 * stamps it in the UPLINK private block of each file (text in the file's own character set) and keeps the full
 * text in the index (study_uploads), for policies that anonymise or label.
 */
export interface UploadInfo {
  /** The upload's id / reference number shown to the uploader. */
  id: string;
  /** How it came: 'code' (patient or physician with an upload code), 'user' (logged-in user), 'node' (DICOM node). */
  by: 'code' | 'user' | 'node';
  /** Who: the user's or node's name; for a code, its holder's name or label if any, never the code itself. */
  name?: string;
  /** Institution id (config institutions[].id) of the code or user. */
  institution?: string;
  /** The uploader's comment per study, keyed by Study Instance UID (the files' own; anonymisation keeps UIDs). */
  comment?: Record<string, string>;
  /** E-mail address or mobile number the uploader gave. */
  contact?: string;
  /** ISO 8601 time the upload was started (default: when the instance is ingested). */
  at?: string;
}

export interface OriginInfo {
  upload?: UploadInfo;
  [key: string]: unknown;
}

export interface Origin {
  kind: OriginKind;
  /** Name of the intake policy (a key of config.policies). */
  policy: string;
  /** Consistency scope for pseudonyms: one association or one upload ("assoc:<id>", "upload:<id>"). */
  batch: string;
  /** Who, for the audit trail and the index. */
  actor: { kind: ActorKind; name: string };
  callingAE?: string;
  remoteIP?: string;
  uploadRef?: number;
  /** C-STORE: the UIDs the command announced; the dataset must carry the same. */
  expected?: { sopInstanceUID: string; sopClassUID: string };
  /** Facts for the transform step: `upload` (see UploadInfo); other keys are ignored by it. */
  info?: OriginInfo;
}

export interface StagedFile {
  /** A Part 10 file in staging (or held). Ingest owns it from here: it is moved or removed. */
  path: string;
  /** SHA-256 of the whole file, if the caller computed it while writing. */
  sha256?: string;
  /** The whole file, if the caller still has it in memory (small files): it is parsed from here. */
  content?: Buffer;
  /** The caller fsynced the file already. */
  synced?: boolean;
}

export type Outcome =
  | { kind: 'stored'; sopInstanceUID: string; studyInstanceUID: string; instanceId: number; transformed: boolean }
  | { kind: 'duplicate'; sopInstanceUID: string }
  | { kind: 'quarantined'; sopInstanceUID?: string; signature: string; reason: string }
  | { kind: 'rejected'; error: AppError }
  | { kind: 'retry'; error: AppError; held: boolean };

export interface Transformed {
  /** The rewritten file (in staging). */
  path: string;
  header: DicomHeader;
  sha256: string;
  size: number;
  /** Extra work committed with the instance (e.g. original identifiers into the index). */
  hook?: CommitHook;
}

/** Applies a policy's header changes (anonymise, label, sanitise the preamble). Null: keep the file as it is. */
export interface Transformer {
  apply(file: string, header: DicomHeader, policy: PolicyConfig, origin: Origin): Promise<Transformed | null>;
}

export interface IngestDeps {
  config: Config;
  log: Logger;
  db: Db;
  store: FileStore;
  index: StudyIndex;
  audit: AuditLog;
  scanner?: Scanner;
  transformer?: Transformer;
  /** Work committed with every stored instance (e.g. forwarding jobs). */
  hooks?: CommitHook[];
  /**
   * Told the outcome of each held file once it is settled (stored, duplicate, quarantined, rejected) by
   * `retryHeld`, with the origin it was held with (e.g. the browser upload records which file it was).
   */
  onHeldOutcome?: (origin: Origin, outcome: Outcome) => void;
}

export interface Ingest {
  ingest(file: StagedFile, origin: Origin): Promise<Outcome>;
  /** Try held files again (e.g. when the scanner is back). Returns the outcomes. */
  retryHeld(): Promise<Outcome[]>;
  heldCount(): number;
  /** Remove the held files whose origin matches (e.g. of a cancelled upload); returns how many. */
  dropHeld(match: (origin: Origin) => boolean): Promise<number>;
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

export function createIngest(deps: IngestDeps): Ingest {
  const { config, log, store, index, audit, db } = deps;
  const locks = new Map<string, Promise<unknown>>();
  const insertHeld = db.prepare('INSERT INTO held_files (path, origin, reason, held_at) VALUES (?, ?, ?, ?)');
  const listHeld = db.prepare('SELECT id, path, origin FROM held_files ORDER BY id');
  const deleteHeld = db.prepare('DELETE FROM held_files WHERE id = ?');
  const bumpHeld = db.prepare('UPDATE held_files SET attempts = attempts + 1 WHERE id = ?');
  const countHeld = db.prepare('SELECT count(*) AS n FROM held_files');
  const heldById = db.prepare('SELECT id FROM held_files WHERE id = ?');

  /** Serialise work on one SOP Instance UID (two senders of the same instance at once). */
  async function withLock<T>(uid: string, fn: () => Promise<T>): Promise<T> {
    const prev = locks.get(uid) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    locks.set(uid, tail);
    try {
      return await run;
    } finally {
      if (locks.get(uid) === tail) locks.delete(uid);
    }
  }

  async function validate(file: StagedFile, origin: Origin): Promise<DicomHeader> {
    const header = file.content ? await readHeaderFromBuffer(file.content, { full: true }) : await readHeader(file.path, { full: true });
    checkIdentity(header);
    if (origin.expected) {
      if (header.sopInstanceUID !== origin.expected.sopInstanceUID) throw new AppError('UID_MISMATCH');
      // DCMTK's storescp keeps such instances, and so do we (the dataset's own class is what we index).
      if (header.sopClassUID !== origin.expected.sopClassUID)
        log.warn({ sop: header.sopInstanceUID, requested: origin.expected.sopClassUID, dataset: header.sopClassUID }, 'SOP Class UID of the dataset differs from the C-STORE request');
    }
    return header;
  }

  async function hold(file: StagedFile, origin: Origin, err: AppError): Promise<Outcome> {
    const dest = await store.moveTo('held', file.path, `${Date.now().toString(36)}-${path.basename(file.path)}`);
    insertHeld.run(dest, JSON.stringify(origin), err.message, new Date().toISOString());
    log.warn({ batch: origin.batch, held: path.basename(dest), reason: err.code }, 'file held until the scanner is available');
    return { kind: 'retry', error: err, held: true };
  }

  async function run(file: StagedFile, origin: Origin, fromHeld: boolean): Promise<Outcome> {
    const policy = config.policies[origin.policy];
    if (!policy) throw new AppError('INTERNAL', `unknown intake policy ${origin.policy}`);
    let header: DicomHeader;
    try {
      header = await validate(file, origin);
    } catch (e) {
      const err = toAppError(e);
      await store.remove(file.path);
      log.warn({ batch: origin.batch, code: err.code, reason: err.message }, 'instance rejected');
      return { kind: 'rejected', error: err };
    }
    const uid = header.sopInstanceUID;
    return withLock(uid, async () => {
      const toRemove: string[] = [];
      try {
        if (index.findInstance(uid)) {
          await store.remove(file.path);
          log.info({ sop: uid, batch: origin.batch }, 'duplicate instance acknowledged, not stored again');
          return { kind: 'duplicate', sopInstanceUID: uid } as Outcome;
        }
        if (policy.scan) {
          if (!deps.scanner) throw new AppError('SCANNER_UNAVAILABLE', 'No malware scanner is configured.');
          let result;
          try {
            result = await deps.scanner.scan(file.path);
          } catch (e) {
            const err = toAppError(e);
            if (err.code !== 'SCANNER_UNAVAILABLE') throw err;
            // Browser uploads (by code or by a logged-in user) are held; a DICOM sender is told to retry.
            if ((origin.kind === 'upload' || origin.kind === 'user') && !fromHeld) return await hold(file, origin, err);
            throw err;
          }
          if (result.verdict === 'infected') {
            const name = `${Date.now().toString(36)}-${uid}.dcm`;
            await store.moveTo('quarantine', file.path, name);
            audit.record({
              actorKind: origin.actor.kind,
              actor: origin.actor.name,
              action: 'quarantine',
              studyUid: header.studyInstanceUID,
              ip: origin.remoteIP,
              detail: { sopInstanceUID: uid, signature: result.signature, file: name, batch: origin.batch },
            });
            log.warn({ sop: uid, signature: result.signature, batch: origin.batch }, 'malware found; file quarantined');
            return { kind: 'quarantined', sopInstanceUID: uid, signature: result.signature, reason: `Malware found: ${result.signature}` } as Outcome;
          }
        }
        let finalPath = file.path;
        let finalHeader = header;
        let sha256 = file.sha256;
        let size: number | undefined;
        const hooks = [...(deps.hooks ?? [])];
        let transformed = false;
        const t = deps.transformer ? await deps.transformer.apply(file.path, header, policy, origin) : null;
        if (t) {
          toRemove.push(file.path);
          finalPath = t.path;
          finalHeader = t.header;
          sha256 = t.sha256;
          size = t.size;
          transformed = true;
          if (t.hook) hooks.unshift(t.hook);
        }
        size ??= file.content?.length ?? (await stat(finalPath)).size;
        sha256 ??= await sha256File(finalPath);
        // File fsync, rename; the directory fsync runs while the index commits (both before the acknowledgement).
        const { rel, durable } = await store.commit(finalPath, { studyInstanceUID: finalHeader.studyInstanceUID, sopInstanceUID: uid }, { alreadySynced: !transformed && file.synced });
        let ids;
        try {
          ids = index.commitInstance(
            {
              header: finalHeader,
              path: rel,
              size,
              sha256,
              originKind: origin.kind,
              callingAE: origin.callingAE,
              remoteIP: origin.remoteIP,
              uploadRef: origin.uploadRef,
              policy: origin.policy,
              labels: policy.label ? [policy.label] : [],
              workflowStatus: policy.workflowStatus,
            },
            hooks,
          );
        } catch (e) {
          // The file is in the store but not indexed: remove it so store and index agree.
          await durable.catch(() => undefined);
          await store.remove(store.absolute(rel));
          throw e;
        }
        await durable;
        for (const f of toRemove) await store.remove(f);
        log.info({ sop: uid, study: finalHeader.studyInstanceUID, size, batch: origin.batch, transformed }, 'instance stored');
        return { kind: 'stored', sopInstanceUID: uid, studyInstanceUID: finalHeader.studyInstanceUID, instanceId: ids.instanceId, transformed } as Outcome;
      } catch (e) {
        const err = toAppError(e);
        for (const f of [file.path, ...toRemove]) await store.remove(f).catch(() => undefined);
        const transient = err.code === 'SCANNER_UNAVAILABLE' || err.code === 'DISK_FULL' || err.code === 'UNAVAILABLE';
        if (err.code === 'INTERNAL') log.error({ err: e, sop: uid, batch: origin.batch }, 'ingest failed');
        else log.warn({ sop: uid, batch: origin.batch, code: err.code, reason: err.message }, 'ingest failed');
        return transient ? { kind: 'retry', error: err, held: false } : { kind: 'rejected', error: err };
      }
    });
  }

  return {
    ingest: (file, origin) => run(file, origin, false),
    heldCount: () => (countHeld.get() as { n: number }).n,
    async retryHeld() {
      const outcomes: Outcome[] = [];
      for (const row of listHeld.all() as { id: number; path: string; origin: string }[]) {
        // Dropped meanwhile (its upload was cancelled): nothing to do.
        if (!heldById.get(row.id)) continue;
        bumpHeld.run(row.id);
        const origin = JSON.parse(row.origin) as Origin;
        // The held file stays put if the scanner is still unavailable (run() does not move held files again).
        const staged = store.stagingPath('.held');
        const { copyFile } = await import('node:fs/promises');
        try {
          await copyFile(row.path, staged);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !heldById.get(row.id)) continue;
          throw e;
        }
        const outcome = await run({ path: staged }, origin, true);
        outcomes.push(outcome);
        if (outcome.kind === 'retry') continue;
        deleteHeld.run(row.id);
        await store.remove(row.path);
        try {
          deps.onHeldOutcome?.(origin, outcome);
        } catch (e) {
          log.error({ err: e, batch: origin.batch }, 'held-outcome listener failed');
        }
      }
      return outcomes;
    },
    async dropHeld(match) {
      let n = 0;
      for (const row of listHeld.all() as { id: number; path: string; origin: string }[]) {
        let origin: Origin;
        try {
          origin = JSON.parse(row.origin) as Origin;
        } catch {
          continue;
        }
        if (!match(origin)) continue;
        deleteHeld.run(row.id);
        await store.remove(row.path);
        n++;
      }
      return n;
    },
  };
}
