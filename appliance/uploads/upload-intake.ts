/**
 * Intake of uploaded files: each file whose bytes are all durably in staging (state `received`) goes through
 * the one ingest path with its upload's origin, a few at a time (scan.clamd.maxConcurrent). The outcome is
 * written to the file's record; `stored` is written by the commit hook in the instance's own transaction.
 *
 * The tus file stays where it is while ingest works on a hard link to it (same file system), so a crash at any
 * point leaves either the tus file (ingested again after the restart: the SOP Instance UID makes a second
 * commit impossible) or a settled record. It is removed once the outcome is recorded, except after a
 * transient failure (disk full, ...): then the file is tried again later, with a growing delay.
 */
import { link, rm } from 'node:fs/promises';
import path from 'node:path';
import { toAppError } from '../errors.ts';
import type { Origin, Outcome, StagedFile } from '../intake/ingest.ts';
import type { Logger } from '../log.ts';
import type { FileStore } from '../store/file-store.ts';
import { ACTIVE_UPLOAD_STATES, type FileRow, type UploadRecords, type UploadRow } from './upload-records.ts';

export interface UploadIntakeDeps {
  records: UploadRecords;
  store: FileStore;
  tusDir: string;
  ingest: (file: StagedFile, origin: Origin) => Promise<Outcome>;
  originFor: (file: FileRow, upload: UploadRow) => Origin;
  log: Logger;
  concurrency: number;
  /** A file of this upload settled (or changed state): the upload's state may change. */
  onSettled: (uploadId: number) => void;
}

export interface UploadIntake {
  enqueue(fileId: number): void;
  /** Files of the upload queued or in the ingest path. */
  pending(uploadId: number): number;
  /** Forget the upload's queued files and wait for those in the ingest path (cancel). */
  drain(uploadId: number): Promise<void>;
  /** Idle: nothing queued or in the ingest path (tests, benchmarks). */
  idle(): boolean;
  stop(): Promise<void>;
}

/** Remove a tus upload's data and its info file. */
export async function removeTusFiles(tusDir: string, tusId: string): Promise<void> {
  await rm(path.join(tusDir, tusId), { force: true });
  await rm(path.join(tusDir, `${tusId}.json`), { force: true });
}

export function createUploadIntake(deps: UploadIntakeDeps): UploadIntake {
  const { records, store, tusDir, log } = deps;
  const queue: { fileId: number; uploadId: number }[] = [];
  const queued = new Set<number>();
  const active = new Map<number, { uploadId: number; done: Promise<void> }>();
  const timers = new Set<NodeJS.Timeout>();
  let stopped = false;

  const pump = () => {
    while (!stopped && active.size < deps.concurrency && queue.length) {
      const item = queue.shift()!;
      queued.delete(item.fileId);
      const done = run(item.fileId)
        .catch((e) => log.error({ err: e, file: item.fileId }, 'upload intake failed'))
        .finally(() => {
          active.delete(item.fileId);
          deps.onSettled(item.uploadId);
          pump();
        });
      active.set(item.fileId, { uploadId: item.uploadId, done });
    }
  };

  async function settle(f: FileRow, outcome: Outcome): Promise<void> {
    switch (outcome.kind) {
      case 'stored':
        // The commit hook marked it in the instance's transaction; this only covers a hook that did not match.
        if (records.file(f.id)?.state !== 'stored') records.settleFile(f.id, 'stored', null);
        break;
      case 'duplicate':
        records.settleFile(f.id, 'duplicate', null);
        break;
      case 'quarantined':
        records.settleFile(f.id, 'quarantined', 'MALWARE');
        break;
      case 'rejected':
        records.settleFile(f.id, 'refused', outcome.error.code);
        break;
      case 'retry':
        if (outcome.held) {
          records.settleFile(f.id, 'held', outcome.error.code);
          break;
        }
        {
          // Transient (disk full, ...): the tus file stays; try again later.
          const attempts = f.attempts + 1;
          records.setFile(f.id, 'received', { attempts, reason: outcome.error.code });
          const delay = Math.min(300_000, 1000 * 2 ** Math.min(attempts, 9));
          log.warn({ file: f.id, code: outcome.error.code, attempts, retryInMs: delay }, 'uploaded file could not be ingested now; trying again later');
          const timer = setTimeout(() => {
            timers.delete(timer);
            intake.enqueue(f.id);
          }, delay);
          timer.unref();
          timers.add(timer);
          return;
        }
    }
    if (f.tusId) await removeTusFiles(tusDir, f.tusId);
  }

  async function run(fileId: number): Promise<void> {
    const f = records.file(fileId);
    if (!f || f.state !== 'received' || !f.tusId) return;
    const u = records.get(f.uploadRef);
    if (!u || !ACTIVE_UPLOAD_STATES.includes(u.state)) return;
    const staged = store.stagingPath('.upload');
    try {
      await link(path.join(tusDir, f.tusId), staged);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      // The bytes are gone (should not happen): the browser is asked for the file again.
      log.error({ file: f.id, upload: u.reference }, 'received file missing from staging: asking the browser for it again');
      records.setFile(f.id, 'expected', { tusId: null, reason: null });
      return;
    }
    let outcome: Outcome;
    try {
      outcome = await deps.ingest({ path: staged }, deps.originFor(f, u));
    } catch (e) {
      await store.remove(staged).catch(() => undefined);
      outcome = { kind: 'retry', error: toAppError(e), held: false };
    }
    await settle(f, outcome);
  }

  const intake: UploadIntake = {
    enqueue(fileId) {
      if (stopped || queued.has(fileId) || active.has(fileId)) return;
      const f = records.file(fileId);
      if (!f) return;
      queued.add(fileId);
      queue.push({ fileId, uploadId: f.uploadRef });
      pump();
    },
    pending(uploadId) {
      let n = 0;
      for (const q of queue) if (q.uploadId === uploadId) n++;
      for (const a of active.values()) if (a.uploadId === uploadId) n++;
      return n;
    },
    async drain(uploadId) {
      for (let i = queue.length - 1; i >= 0; i--)
        if (queue[i].uploadId === uploadId) {
          queued.delete(queue[i].fileId);
          queue.splice(i, 1);
        }
      await Promise.all([...active.values()].filter((a) => a.uploadId === uploadId).map((a) => a.done));
    },
    idle() {
      return queue.length === 0 && active.size === 0;
    },
    async stop() {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      queue.length = 0;
      queued.clear();
      await Promise.all([...active.values()].map((a) => a.done));
    },
  };
  return intake;
}
