/** An in-process forwarding world for unit tests: config, SQLite index, audit, queue, hook and a fake clock. */
import { merge, validate } from '../../../config/load.ts';
import { defaults, type Config } from '../../../config/schema.ts';
import { createAuditLog, type AuditLog } from '../../../appliance/audit/audit-log.ts';
import type { DicomHeader } from '../../../appliance/dicom/header.ts';
import { createForwardHook } from '../../../appliance/forward/forward-hook.ts';
import { createForwardQueue, type ForwardQueue, type JobState } from '../../../appliance/forward/forward-queue.ts';
import { openDb, type Db } from '../../../appliance/store/db.ts';
import { createStudyIndex, type CommitHook, type StudyIndex } from '../../../appliance/store/study-index.ts';

export interface World {
  config: Config;
  db: Db;
  index: StudyIndex;
  audit: AuditLog;
  queue: ForwardQueue;
  hook: CommitHook;
  /** The queue's clock: a fixed time (T0) that tests move, or null for real time. */
  clock: { now: number | null };
  now(): number;
  /** Commit an instance (with the forward hook) under `policy`. Returns its id. */
  add(i: { study: string; series?: string; sop: string; size?: number; policy?: string; hooks?: CommitHook[] }): number;
  states(): Record<string, JobState>;
  job(sop: string, destination: string): Record<string, any> | undefined;
  close(): void;
}

export const T0 = Date.UTC(2030, 0, 1, 12, 0, 0);

export function forwardWorld(dataDir: string, overrides: Record<string, unknown> = {}): World {
  const config = validate(
    merge(
      merge(defaults, {
        dataDir,
        dicom: {
          pacs: 'PACS',
          nodes: [
            { name: 'PACS', aeTitle: 'PACS', host: '127.0.0.1', port: 1, allow: [], send: true },
            { name: 'OTHER', aeTitle: 'OTHER', host: '127.0.0.1', port: 2, allow: [], send: true },
            { name: 'MOD', aeTitle: 'MOD', host: '127.0.0.1', port: 3, allow: ['store'], send: false },
          ],
        },
        policies: { partner: { anonymise: false, label: null, workflowStatus: null, scan: false, forwardTo: ['OTHER'] }, upload: { forwardTo: ['OTHER'] } },
        forward: { retryInitialSeconds: 1, retryMaxSeconds: 4, giveUpAfterHours: 1 },
      }),
      overrides,
    ),
  );
  const db = openDb(dataDir);
  const index = createStudyIndex(db);
  const audit = createAuditLog(db);
  const clock: { now: number | null } = { now: T0 };
  const now = () => clock.now ?? Date.now();
  const queue = createForwardQueue({ db, config, audit, now });
  const hook = createForwardHook({ config, queue, settleMs: 0, now });
  const header = (i: { study: string; series?: string; sop: string }): DicomHeader => ({
    transferSyntaxUID: '1.2.840.10008.1.2.1',
    sopClassUID: '1.2.840.10008.5.1.4.1.1.7',
    sopInstanceUID: i.sop,
    studyInstanceUID: i.study,
    seriesInstanceUID: i.series ?? `${i.study}.1`,
    specificCharacterSet: '',
    patientName: 'TEST^PATIENT',
    patientID: 'PID1',
    issuerOfPatientID: '',
    patientBirthDate: '',
    patientSex: '',
    studyDate: '',
    studyTime: '',
    accessionNumber: '',
    studyID: '',
    studyDescription: '',
    referringPhysicianName: '',
    modality: 'OT',
    seriesNumber: '1',
    seriesDescription: '',
    instanceNumber: '1',
    numberOfFrames: '',
    preamble: 'zero',
    metaSopClassUID: '1.2.840.10008.5.1.4.1.1.7',
    metaSopInstanceUID: i.sop,
    datasetOffset: 0,
    complete: true,
    size: i.sop.length,
  });
  return {
    config,
    db,
    index,
    audit,
    queue,
    hook,
    clock,
    now,
    add(i) {
      return index.commitInstance(
        { header: header(i), path: `x/${i.sop}.dcm`, size: i.size ?? 1000, sha256: '0', originKind: 'dicom', labels: [], workflowStatus: null, policy: i.policy ?? 'modality' },
        i.hooks ?? [hook],
      ).instanceId;
    },
    states() {
      const out: Record<string, JobState> = {};
      for (const r of db.prepare('SELECT sop_uid, destination, state FROM forward_jobs ORDER BY id').all() as { sop_uid: string; destination: string; state: JobState }[])
        out[`${r.sop_uid}>${r.destination}`] = r.state;
      return out;
    },
    job: (sop, destination) => db.prepare('SELECT * FROM forward_jobs WHERE sop_uid = ? AND destination = ?').get(sop, destination) as Record<string, any> | undefined,
    close: () => db.close(),
  };
}

/** Poll `check` until it returns true (every 5 ms, up to `ms`). */
export async function until(check: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
