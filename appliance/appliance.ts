/**
 * The appliance: database, file store, index, audit trail, the one ingest path and the DICOM node, built
 * from the config. The composition root (server/main.ts) creates it, starts it, and stops it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config/schema.ts';
import { createAuditLog, type AuditLog } from './audit/audit-log.ts';
import { createDicomServer, type DicomServer } from './dimse/scp.ts';
import { createForwarding, type Forwarding, type ForwardingDeps } from './forward/forwarding.ts';
import { createAnonymiseStore, type AnonymiseStore } from './intake/anonymise-store.ts';
import { createPatientMerge, type PatientMerge } from './merge/patient-merge.ts';
import { createIngest, type Ingest, type Transformer } from './intake/ingest.ts';
import { createTransformer } from './intake/transform.ts';
import { child, type Logger } from './log.ts';
import { createClamdScanner } from './scan/clamd-scanner.ts';
import { startManagedClamd, type ManagedClamd } from './scan/managed-clamd.ts';
import { waitUntilAvailable, type Scanner, type ScannerStatus } from './scan/scanner.ts';
import { checkStore, markCleanShutdown, type ConsistencyReport } from './store/consistency.ts';
import { openDb, type Db } from './store/db.ts';
import { createFileStore, type FileStore } from './store/file-store.ts';
import { createStudyIndex, type CommitHook, type StudyIndex } from './store/study-index.ts';
import { createUploads, type Uploads } from './uploads/uploads.ts';

export interface Health {
  ok: boolean;
  db: boolean;
  dicom: boolean;
  associations: number;
  storeCheck: ConsistencyReport | null;
  /** The scanner's last known state (refreshed in the background), and files held for it. */
  scanner: ScannerStatus & { managed: boolean; testSignaturesOnly: boolean; held: number };
}

export interface Appliance {
  readonly config: Config;
  readonly db: Db;
  readonly store: FileStore;
  readonly index: StudyIndex;
  readonly audit: AuditLog;
  /** Pseudonyms, original identifiers (admin only: readOriginalIdentifiers audits every read) and upload information. */
  readonly anonymise: AnonymiseStore;
  readonly ingest: Ingest;
  readonly dicom: DicomServer;
  readonly scanner: Scanner;
  /** Forwarding and DICOM transfer: queue status, enqueue a study or series, resend, C-ECHO (forward/forwarding.ts). */
  readonly forward: Forwarding;
  /** Browser uploads (START UPLOAD to 'Upload successful'): records, intake, cancel (uploads/uploads.ts). */
  readonly uploads: Uploads;
  /** Patient merge / reconcile of a study (merge/patient-merge.ts): search, preview, the resumable rewrite job. */
  readonly merge: PatientMerge;
  /** Start the DICOM listener (after the start-up checks), and the managed clamd in the background. */
  start(): Promise<{ dicom: { host: string; port: number } }>;
  stop(): Promise<void>;
  health(): Health;
}

export interface ApplianceOptions {
  /** Default: clamd at scan.clamd.host/port (started by us when scan.clamd.manage). */
  scanner?: Scanner;
  /** Default: the policy transformer (intake/transform.ts): anonymise, label, sanitise preambles. */
  transformer?: Transformer;
  hooks?: CommitHook[];
  /** Forwarding worker options (tests): see ForwardingDeps. */
  forward?: Pick<ForwardingDeps, 'worker' | 'settleMs'>;
}

export function createAppliance(config: Config, root: Logger, opts: ApplianceOptions = {}): Appliance {
  const dbLog = child(root, 'db');
  const db = openDb(config.dataDir, dbLog);
  const store = createFileStore(config.dataDir);
  const index = createStudyIndex(db);
  const audit = createAuditLog(db);
  const anonymise = createAnonymiseStore(db, audit);
  const transformer = opts.transformer ?? createTransformer({ config, log: child(root, 'intake'), store, audit, anon: anonymise });
  const scanLog = child(root, 'scan');
  const scanner = opts.scanner ?? createClamdScanner(config, scanLog);
  const forward = createForwarding({ config, db, audit, store, log: child(root, 'forward'), ...opts.forward });
  // Browser uploads hand their files to the ingest path below (the functions run once it exists).
  const uploads = createUploads({
    config,
    db,
    store,
    audit,
    log: child(root, 'intake'),
    ingest: (file, origin) => ingest.ingest(file, origin),
    dropHeld: (match) => ingest.dropHeld(match),
  });
  const ingest = createIngest({
    config,
    log: child(root, 'intake'),
    db,
    store,
    index,
    audit,
    scanner,
    transformer,
    // Forwarding jobs (and an upload's file record) are written in the transaction that commits the instance.
    hooks: [forward.hook, uploads.hook, ...(opts.hooks ?? [])],
    onHeldOutcome: (origin, outcome) => uploads.heldOutcome(origin, outcome),
  });
  const dicom = createDicomServer({ config, log: child(root, 'dicom'), db, store, ingest });
  const merge = createPatientMerge({ config, db, store, audit, log: child(root, 'store'), forward });
  let report: ConsistencyReport | null = null;
  let dbOpen = true;
  let managed: ManagedClamd | undefined;
  let scannerState: ScannerStatus = { available: false, signatures: 'none', detail: 'not checked yet' };
  const background = new AbortController();
  const tasks: Promise<unknown>[] = [];

  /**
   * Start our own clamd in the background (it loads its signatures for a while: a minute with freshclam's, so
   * never hold up the start for it); if it cannot start, say why and try again every 30 s. Once it runs, it
   * restarts itself if it crashes (managed-clamd.ts).
   */
  async function runManagedClamd(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        managed = await startManagedClamd(config, scanLog);
        if (signal.aborted) await managed.stop();
        return;
      } catch (e) {
        scanLog.error({ reason: (e as Error).message }, 'the managed clamd did not start: uploads are held until a scanner is available; trying again in 30 s');
        await sleep(30000, undefined, { signal }).catch(() => undefined);
      }
    }
  }

  /** Keep the scanner's state fresh for /healthz, and scan held files again once the scanner is available. */
  async function watchScanner(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      scannerState = await scanner.status();
      if (scannerState.available && ingest.heldCount() > 0) {
        const outcomes = await ingest.retryHeld();
        scanLog.info({ retried: outcomes.length, stillHeld: ingest.heldCount() }, 'held files scanned again');
      } else if (!scannerState.available && ingest.heldCount() > 0) {
        await waitUntilAvailable(scanner, { signal, intervalMs: 2000 }).catch(() => undefined);
        continue;
      }
      await sleep(5000, undefined, { signal }).catch(() => undefined);
    }
  }

  return {
    config,
    db,
    store,
    index,
    audit,
    anonymise,
    ingest,
    dicom,
    scanner,
    forward,
    uploads,
    merge,
    async start() {
      // A merge a crash interrupted mid-replace: its instance gets the size and hash of the file that is there,
      // before the store check compares sizes.
      await merge.recover();
      report = checkStore(config.dataDir, store, index, child(root, 'store'));
      // Uploaded files received before a stop are taken in again; leftovers swept.
      await uploads.start();
      const addr = await dicom.listen();
      if (config.scan.clamd.manage) tasks.push(runManagedClamd(background.signal));
      tasks.push(watchScanner(background.signal).catch((e) => scanLog.error({ err: e }, 'scanner watch failed')));
      // Resumes jobs a crash left 'sending', then sends whatever is due.
      forward.start();
      // Merges interrupted by the last stop continue.
      merge.resume();
      return { dicom: addr };
    },
    async stop() {
      background.abort();
      await dicom.close();
      // Files in the upload intake finish their ingest before the database closes.
      await uploads.stop();
      // A running merge stops after its current instance (and continues at the next start).
      await merge.stop();
      // Undelivered jobs go back to the queue before the database closes.
      await forward.stop();
      await Promise.allSettled(tasks);
      await managed?.stop();
      if (dbOpen) {
        db.close();
        dbOpen = false;
      }
      markCleanShutdown(config.dataDir);
    },
    health() {
      let dbOk = dbOpen;
      if (dbOk) {
        try {
          db.prepare('SELECT 1').get();
        } catch {
          dbOk = false;
        }
      }
      return {
        ok: dbOk && dicom.listening,
        db: dbOk,
        dicom: dicom.listening,
        associations: dicom.activeAssociations(),
        storeCheck: report,
        scanner: { ...scannerState, managed: config.scan.clamd.manage, testSignaturesOnly: managed?.testSignaturesOnly ?? false, held: dbOk ? ingest.heldCount() : 0 },
      };
    },
  };
}
