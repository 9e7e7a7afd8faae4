/**
 * The appliance: database, file store, index, audit trail, the one ingest path and the DICOM node, built
 * from the config. The composition root (server/main.ts) creates it, starts it, and stops it.
 */
import type { Config } from '../config/schema.ts';
import { createAuditLog, type AuditLog } from './audit/audit-log.ts';
import { createDicomServer, type DicomServer } from './dimse/scp.ts';
import { createAnonymiseStore, type AnonymiseStore } from './intake/anonymise-store.ts';
import { createIngest, type Ingest, type Transformer } from './intake/ingest.ts';
import { createTransformer } from './intake/transform.ts';
import { child, type Logger } from './log.ts';
import type { Scanner } from './scan/scanner.ts';
import { checkStore, markCleanShutdown, type ConsistencyReport } from './store/consistency.ts';
import { openDb, type Db } from './store/db.ts';
import { createFileStore, type FileStore } from './store/file-store.ts';
import { createStudyIndex, type CommitHook, type StudyIndex } from './store/study-index.ts';

export interface Health {
  ok: boolean;
  db: boolean;
  dicom: boolean;
  associations: number;
  storeCheck: ConsistencyReport | null;
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
  /** Start the DICOM listener (after the start-up checks). */
  start(): Promise<{ dicom: { host: string; port: number } }>;
  stop(): Promise<void>;
  health(): Health;
}

export interface ApplianceOptions {
  scanner?: Scanner;
  /** Default: the policy transformer (intake/transform.ts): anonymise, label, sanitise preambles. */
  transformer?: Transformer;
  hooks?: CommitHook[];
}

export function createAppliance(config: Config, root: Logger, opts: ApplianceOptions = {}): Appliance {
  const dbLog = child(root, 'db');
  const db = openDb(config.dataDir, dbLog);
  const store = createFileStore(config.dataDir);
  const index = createStudyIndex(db);
  const audit = createAuditLog(db);
  const anonymise = createAnonymiseStore(db, audit);
  const transformer = opts.transformer ?? createTransformer({ config, log: child(root, 'intake'), store, audit, anon: anonymise });
  const ingest = createIngest({
    config,
    log: child(root, 'intake'),
    db,
    store,
    index,
    audit,
    scanner: opts.scanner,
    transformer,
    hooks: opts.hooks,
  });
  const dicom = createDicomServer({ config, log: child(root, 'dicom'), db, store, ingest });
  let report: ConsistencyReport | null = null;
  let dbOpen = true;

  return {
    config,
    db,
    store,
    index,
    audit,
    anonymise,
    ingest,
    dicom,
    async start() {
      report = checkStore(config.dataDir, store, index, child(root, 'store'));
      const addr = await dicom.listen();
      return { dicom: addr };
    },
    async stop() {
      await dicom.close();
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
      return { ok: dbOk && dicom.listening, db: dbOk, dicom: dicom.listening, associations: dicom.activeAssociations(), storeCheck: report };
    },
  };
}
