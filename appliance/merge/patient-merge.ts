/**
 * Patient merge / reconcile (console, issue 7): link a study to the right patient. The admin finds the patient
 * in the hospital PACS (C-FIND, PATIENT level, Patient Root; dicom.pacs) or in the local index, checks the
 * before / after, and the appliance rewrites the patient attributes of every instance of the study, header only
 * (merge-rules.ts), moves the study to that patient in the index, keeps before / after in the audit trail and,
 * if asked, forwards the corrected study to dicom.pacs again.
 *
 * A merge is a job (table study_merges, migration 700) so that it survives a stop or a crash and is never
 * half-done without anyone seeing it:
 *   per instance, in id order: rewrite the stored file into staging -> read it back (the chosen patient, the
 *   same SOP Instance UID) -> current_instance = id -> fsync, rename over the stored file, fsync the directory
 *   (store.replace) -> one transaction: the instance's size and SHA-256, done + 1, last_instance = id;
 *   then one transaction: no instance left -> the study moves to the (new) patient row, the old row goes if no
 *   study uses it, the job is done, audit 'merge' (before / after), and the re-forward is queued (audited
 *   'forward' by the forwarding queue).
 * At start `recover()` runs BEFORE the store check: the instance a crash caught between the rename and its
 * transaction gets the size and SHA-256 of the file that is there (old or new, both complete), so the check
 * never mistakes it for a damaged file; `resume()` then continues every running job (the rewrite is idempotent).
 * A job that fails (unreadable file, a character set that cannot hold the new name, ...) is 'failed' with the
 * reason, audited 'merge.failed'; the console shows how far it got and offers to try again.
 * Instances that arrive for the study while it is being merged are merged too (the job ends only when none is
 * left after the last one done, checked in the final transaction). Instances that arrive after a merge carry what
 * they came with: merging the study again onto the same patient is then allowed (and rewrites them).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Config, NodeConfig } from '../../config/schema.ts';
import type { ActorKind, AuditLog } from '../audit/audit-log.ts';
import { readHeader } from '../dicom/header.ts';
import { rewrite } from '../dicom/rewrite.ts';
import { find as cFind, type FindOptions, type FindResult } from '../dimse/find-scu.ts';
import { AppError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import type { FileStore } from '../store/file-store.ts';
import { mergeRules } from './merge-rules.ts';
import { changedFields, checkIdentity, sameIdentity, unencodableFields, type IdentityField, type PatientIdentity } from './patient-identity.ts';

export type { PatientIdentity } from './patient-identity.ts';

export interface MergeActor {
  kind: ActorKind;
  name: string;
  ip?: string | null;
}

/** What the admin searched for: any of these (at least one). Birth date YYYYMMDD. */
export interface PatientSearch {
  name?: string;
  patientId?: string;
  birthDate?: string;
}

export interface PatientCandidate extends PatientIdentity {
  /** Studies of this patient the source knows of (null: not told). */
  studies: number | null;
}

export interface SearchOutcome {
  ok: boolean;
  source: 'pacs' | 'index';
  /** The PACS node searched. */
  node?: string;
  candidates: PatientCandidate[];
  truncated: boolean;
  /** What happened, in words (the reason when not ok). */
  detail: string;
}

export type MergeState = 'running' | 'done' | 'failed';

export interface MergeJob {
  id: number;
  studyUid: string;
  state: MergeState;
  before: PatientIdentity;
  after: PatientIdentity;
  source: string;
  forwardTo: string | null;
  total: number;
  done: number;
  /** Instances of the study not rewritten yet. */
  remaining: number;
  requestedBy: string;
  error: string | null;
  forwardedAt: string | null;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

export interface MergePreview {
  studyUid: string;
  before: PatientIdentity;
  after: PatientIdentity;
  changed: IdentityField[];
  instances: number;
  /** Whether any instance of the study is in the local index under the chosen patient already (another study). */
  knownPatient: boolean;
  /**
   * Instances that arrived after the study's last finished merge (they still carry what they came with). Merging
   * again onto the same patient is allowed only for them.
   */
  lateArrivals: number;
  /** Why it cannot be applied (empty: it can). */
  blockers: MergeBlocker[];
  /** The node the corrected study can be forwarded to again (dicom.pacs with send: true), or null. */
  forwardTo: string | null;
}

export type MergeBlocker =
  | { kind: 'invalid'; fields: IdentityField[] }
  | { kind: 'same' }
  | { kind: 'running' }
  | { kind: 'charset'; fields: IdentityField[]; charset: string }
  | { kind: 'empty' };

export interface PatientMerge {
  /** The hospital PACS node (dicom.pacs), if configured. */
  pacs(): NodeConfig | null;
  /** C-FIND the hospital PACS at PATIENT level. Never throws for network or peer problems (ok: false, detail). */
  searchPacs(q: PatientSearch, opts?: { signal?: AbortSignal }): Promise<SearchOutcome>;
  /** Patients of the local index. */
  searchIndex(q: PatientSearch): SearchOutcome;
  /** The study's patient as the index has it (null: no such study). */
  current(studyUid: string): PatientIdentity | null;
  preview(studyUid: string, target: Partial<Record<IdentityField, unknown>>): MergePreview;
  /** Start a merge (checked as preview does: CONFLICT / BAD_REQUEST otherwise); it runs in the background. */
  start(studyUid: string, target: Partial<Record<IdentityField, unknown>>, opts: { source: string; forward: boolean; by: MergeActor }): MergeJob;
  /** Continue a failed merge where it stopped. */
  retry(studyUid: string, by: MergeActor): MergeJob;
  /** The latest merge of a study, or null. */
  latest(studyUid: string): MergeJob | null;
  get(id: number): MergeJob | null;
  /** Is a merge of this study running? (Transfer, download and delete wait for it.) */
  running(studyUid: string): boolean;
  /** Before the store check at start: make the index agree with files a crash caught mid-replace. */
  recover(): Promise<number>;
  /** After start: continue running jobs (in the background). Returns how many. */
  resume(): number;
  /** Resolves once the running jobs stopped after their current instance (they stay 'running', resumed next start). */
  stop(): Promise<void>;
  /** Resolves when the job is no longer running in this process (tests). */
  settled(id: number): Promise<void>;
}

export interface PatientMergeDeps {
  config: Config;
  db: Db;
  store: FileStore;
  audit: AuditLog;
  log: Logger;
  /** DICOM transfer of the corrected study (appliance.forward.enqueueStudy: audited there). */
  forward: { enqueueStudy(studyUid: string, destination: string, by: MergeActor): unknown };
  /** C-FIND SCU (tests may replace it). */
  find?: (node: { aeTitle: string; host: string; port: number }, query: Record<string, string>, level: 'PATIENT', opts: FindOptions) => Promise<FindResult>;
  /** Most candidates a search shows. Default 50. */
  searchLimit?: number;
}

interface JobRow {
  id: number;
  study_uid: string;
  state: MergeState;
  before_json: string;
  after_json: string;
  source: string;
  forward_to: string | null;
  total: number;
  done: number;
  last_instance: number;
  current_instance: number | null;
  requested_by: string;
  ip: string | null;
  error: string | null;
  forwarded_at: string | null;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
}

/** Words of a name search, for "each word somewhere in the name" (commas, spaces and ^ separate words). */
function nameWords(name: string | undefined): string[] {
  return (name ?? '')
    .split(/[\s,^]+/)
    .map((w) => w.replace(/[*?\\]/g, ''))
    .filter(Boolean)
    .slice(0, 5);
}

async function sha256File(file: string): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    h.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: h.digest('hex'), size };
}

export function createPatientMerge(deps: PatientMergeDeps): PatientMerge {
  const { config, db, store, audit, log } = deps;
  const findScu = deps.find ?? cFind;
  const limit = deps.searchLimit ?? 50;
  const now = () => new Date().toISOString();

  const studyPatient = db.prepare(`
    SELECT st.id AS study_ref, st.charset, p.id AS patient_ref, p.patient_id, p.issuer, p.patient_name, p.birth_date, p.sex
    FROM studies st JOIN patients p ON p.id = st.patient_ref WHERE st.study_uid = ?`);
  const countInstances = db.prepare(`
    SELECT count(*) AS n FROM instances i JOIN series se ON se.id = i.series_ref JOIN studies st ON st.id = se.study_ref
    WHERE st.study_uid = ? AND i.id > ?`);
  const nextInstance = db.prepare(`
    SELECT i.id, i.path, i.sop_uid FROM instances i JOIN series se ON se.id = i.series_ref JOIN studies st ON st.id = se.study_ref
    WHERE st.study_uid = ? AND i.id > ? ORDER BY i.id LIMIT 1`);
  const patientKnown = db.prepare('SELECT 1 FROM patients WHERE patient_id = ? AND issuer = ?');
  const lateArrivals = db.prepare(`
    SELECT count(*) AS n FROM instances i JOIN series se ON se.id = i.series_ref JOIN studies st ON st.id = se.study_ref
    WHERE st.study_uid = @uid AND i.received_at > (SELECT max(finished_at) FROM study_merges WHERE study_uid = @uid AND state = 'done')`);
  const jobById = db.prepare('SELECT * FROM study_merges WHERE id = ?');
  const latestJob = db.prepare('SELECT * FROM study_merges WHERE study_uid = ? ORDER BY id DESC LIMIT 1');
  const runningJob = db.prepare("SELECT id FROM study_merges WHERE study_uid = ? AND state = 'running'");
  const runningJobs = db.prepare("SELECT * FROM study_merges WHERE state = 'running' ORDER BY id");
  const insertJob = db.prepare(`
    INSERT INTO study_merges (study_uid, state, before_json, after_json, source, forward_to, total, requested_by, ip, created_at, updated_at)
    VALUES (@studyUid, 'running', @before, @after, @source, @forwardTo, @total, @by, @ip, @at, @at) RETURNING id`);
  const setCurrent = db.prepare('UPDATE study_merges SET current_instance = ?, updated_at = ? WHERE id = ?');
  const setInstanceFile = db.prepare('UPDATE instances SET size = ?, sha256 = ? WHERE id = ?');
  const instanceById = db.prepare('SELECT id, path, size, sha256 FROM instances WHERE id = ?');
  const stepDone = db.prepare('UPDATE study_merges SET done = done + 1, last_instance = ?, current_instance = NULL, updated_at = ? WHERE id = ?');
  const setFailed = db.prepare("UPDATE study_merges SET state = 'failed', error = ?, current_instance = NULL, updated_at = ?, finished_at = ? WHERE id = ?");
  const setRunningAgain = db.prepare("UPDATE study_merges SET state = 'running', error = NULL, updated_at = ?, finished_at = NULL WHERE id = ? AND state = 'failed'");
  const upsertPatient = db.prepare(`
    INSERT INTO patients (patient_id, issuer, patient_name, birth_date, sex) VALUES (@patientId, @issuer, @name, @birthDate, @sex)
    ON CONFLICT (patient_id, issuer) DO UPDATE SET patient_name = excluded.patient_name, birth_date = excluded.birth_date, sex = excluded.sex
    RETURNING id`);
  const moveStudy = db.prepare('UPDATE studies SET patient_ref = ?, updated_at = ? WHERE id = ?');
  const pruneOldPatient = db.prepare('DELETE FROM patients WHERE id = ? AND NOT EXISTS (SELECT 1 FROM studies WHERE patient_ref = ?)');
  const setDone = db.prepare("UPDATE study_merges SET state = 'done', current_instance = NULL, updated_at = @at, finished_at = @at, forwarded_at = @forwardedAt, error = @error WHERE id = @id");

  const toJob = (r: JobRow): MergeJob => ({
    id: r.id,
    studyUid: r.study_uid,
    state: r.state,
    before: JSON.parse(r.before_json) as PatientIdentity,
    after: JSON.parse(r.after_json) as PatientIdentity,
    source: r.source,
    forwardTo: r.forward_to,
    total: r.total,
    done: r.done,
    remaining: r.state === 'done' ? 0 : (countInstances.get(r.study_uid, r.last_instance) as { n: number }).n,
    requestedBy: r.requested_by,
    error: r.error,
    forwardedAt: r.forwarded_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    finishedAt: r.finished_at,
  });

  const pacsNode = (): NodeConfig | null => (config.dicom.pacs ? (config.dicom.nodes.find((n) => n.name === config.dicom.pacs) ?? null) : null);
  const forwardNode = (): string | null => {
    const n = pacsNode();
    return n && n.send ? n.name : null;
  };

  const current = (studyUid: string): (PatientIdentity & { studyRef: number; patientRef: number; charset: string }) | null => {
    const r = studyPatient.get(studyUid) as
      | { study_ref: number; charset: string; patient_ref: number; patient_id: string; issuer: string; patient_name: string; birth_date: string; sex: string }
      | undefined;
    if (!r) return null;
    return {
      studyRef: r.study_ref,
      patientRef: r.patient_ref,
      charset: r.charset,
      patientId: r.patient_id,
      issuer: r.issuer,
      name: r.patient_name,
      birthDate: r.birth_date,
      sex: r.sex,
    };
  };
  const identityOf = (c: PatientIdentity): PatientIdentity => ({ patientId: c.patientId, issuer: c.issuer, name: c.name, birthDate: c.birthDate, sex: c.sex });

  const running = new Map<number, Promise<void>>();
  let stopping = false;

  function preview(studyUid: string, target: Partial<Record<IdentityField, unknown>>): MergePreview {
    const cur = current(studyUid);
    if (!cur) throw new AppError('NOT_FOUND', 'There is no such study.');
    const before = identityOf(cur);
    const { identity: after, problems } = checkIdentity(target);
    const instances = (countInstances.get(studyUid, 0) as { n: number }).n;
    const late = (lateArrivals.get({ uid: studyUid }) as { n: number }).n;
    const blockers: MergeBlocker[] = [];
    if (problems.length) blockers.push({ kind: 'invalid', fields: problems });
    else if (sameIdentity(before, after) && late === 0) blockers.push({ kind: 'same' });
    if (runningJob.get(studyUid)) blockers.push({ kind: 'running' });
    const lossy = problems.length ? [] : unencodableFields(after, cur.charset);
    if (lossy.length) blockers.push({ kind: 'charset', fields: lossy, charset: cur.charset || 'ISO_IR 6' });
    if (!instances) blockers.push({ kind: 'empty' });
    return {
      studyUid,
      before,
      after,
      changed: changedFields(before, after),
      instances,
      knownPatient: !!patientKnown.get(after.patientId, after.issuer),
      lateArrivals: late,
      blockers,
      forwardTo: forwardNode(),
    };
  }

  function fail(job: JobRow, reason: string): void {
    const at = now();
    db.transaction(() => {
      setFailed.run(reason, at, at, job.id);
      const j = jobById.get(job.id) as JobRow;
      audit.record({
        actorKind: 'user',
        actor: job.requested_by,
        action: 'merge.failed',
        studyUid: job.study_uid,
        ip: job.ip,
        detail: { merge: job.id, reason, done: j.done, total: j.total },
      });
    })();
    log.error({ merge: job.id, study: job.study_uid, reason }, 'patient merge failed; the study is only partly merged');
  }

  /** The last step: no instance left -> move the study, done, audit, queue the re-forward. Returns false if instances are left. */
  const finish = db.transaction((id: number): boolean => {
    const job = jobById.get(id) as JobRow;
    if ((countInstances.get(job.study_uid, job.last_instance) as { n: number }).n > 0) return false;
    const before = JSON.parse(job.before_json) as PatientIdentity;
    const after = JSON.parse(job.after_json) as PatientIdentity;
    const cur = current(job.study_uid);
    const at = now();
    if (cur) {
      const patientRef = (upsertPatient.get(after) as { id: number }).id;
      moveStudy.run(patientRef, at, cur.studyRef);
      if (patientRef !== cur.patientRef) pruneOldPatient.run(cur.patientRef, cur.patientRef);
    }
    audit.record({
      actorKind: 'user',
      actor: job.requested_by,
      action: 'merge',
      studyUid: job.study_uid,
      ip: job.ip,
      detail: { merge: job.id, before, after, source: job.source, instances: job.done, forwardTo: job.forward_to },
    });
    let forwardedAt: string | null = null;
    let error: string | null = null;
    if (job.forward_to && cur) {
      try {
        deps.forward.enqueueStudy(job.study_uid, job.forward_to, { kind: 'user', name: job.requested_by, ip: job.ip });
        forwardedAt = at;
      } catch (e) {
        error = `not forwarded again: ${(e as Error).message}`;
      }
    }
    setDone.run({ id, at, forwardedAt, error });
    return true;
  });

  async function runJob(id: number): Promise<void> {
    for (;;) {
      if (stopping) return;
      const job = jobById.get(id) as JobRow | undefined;
      if (!job || job.state !== 'running') return;
      const inst = nextInstance.get(job.study_uid, job.last_instance) as { id: number; path: string; sop_uid: string } | undefined;
      if (!inst) {
        if (finish(id)) {
          log.info({ merge: id, study: job.study_uid, instances: job.done }, 'patient merge done');
          return;
        }
        continue;
      }
      const before = JSON.parse(job.before_json) as PatientIdentity;
      const after = JSON.parse(job.after_json) as PatientIdentity;
      const staged = store.stagingPath('.dcm');
      try {
        const result = await rewrite(store.absolute(inst.path), staged, mergeRules(before, after));
        const h = await readHeader(staged);
        const wrong: string[] = [];
        if (h.sopInstanceUID !== inst.sop_uid) wrong.push('SOP Instance UID');
        if (h.studyInstanceUID !== job.study_uid) wrong.push('Study Instance UID');
        if (h.patientID !== after.patientId) wrong.push('Patient ID');
        if (h.issuerOfPatientID !== after.issuer) wrong.push('Issuer of Patient ID');
        if (h.patientName !== after.name) wrong.push("Patient's Name");
        if (h.patientBirthDate !== after.birthDate) wrong.push("Patient's Birth Date");
        if (h.patientSex !== after.sex) wrong.push("Patient's Sex");
        if (wrong.length) {
          throw new AppError(
            'BAD_REQUEST',
            `instance ${inst.sop_uid}: the rewritten file does not read back as the chosen patient (${wrong.join(', ')}; character set "${h.specificCharacterSet || 'ISO_IR 6'}")`,
          );
        }
        setCurrent.run(inst.id, now(), id);
        await store.replace(staged, inst.path);
        db.transaction(() => {
          setInstanceFile.run(result.size, result.sha256, inst.id);
          stepDone.run(inst.id, now(), id);
        })();
      } catch (e) {
        await store.remove(staged).catch(() => undefined);
        const message = (e as Error).message;
        const reason = message.startsWith(`instance ${inst.sop_uid}`) ? message : `instance ${inst.sop_uid}: ${message}`;
        // The file may have been replaced before the failure: make the index agree with what is there.
        await reconcileInstance(inst.id).catch(() => undefined);
        fail(job, reason);
        return;
      }
    }
  }

  /** Give an instance the size and SHA-256 of the file at its path (old or new: both complete). */
  async function reconcileInstance(instanceId: number): Promise<void> {
    const row = instanceById.get(instanceId) as { id: number; path: string; size: number; sha256: string } | undefined;
    if (!row) return;
    const actual = await sha256File(store.absolute(row.path));
    if (actual.size !== row.size || actual.sha256 !== row.sha256) setInstanceFile.run(actual.size, actual.sha256, row.id);
  }

  function launch(id: number): void {
    if (running.has(id)) return;
    const p = runJob(id)
      .catch((e) => log.error({ err: e, merge: id }, 'patient merge crashed'))
      .finally(() => running.delete(id));
    running.set(id, p);
  }

  return {
    pacs: pacsNode,

    async searchPacs(q, opts = {}) {
      const node = pacsNode();
      if (!node) return { ok: false, source: 'pacs', candidates: [], truncated: false, detail: 'no hospital PACS is configured (dicom.pacs)' };
      const query: Record<string, string> = {};
      const words = nameWords(q.name);
      if (words.length) query.PatientName = `${words.join('*')}*`;
      if (q.patientId?.trim()) query.PatientID = q.patientId.trim();
      if (q.birthDate) query.PatientBirthDate = q.birthDate;
      if (!Object.keys(query).length) throw new AppError('BAD_REQUEST', 'Give a name, a patient ID or a birth date to search for.');
      const r = await findScu({ aeTitle: node.aeTitle, host: node.host, port: node.port }, query, 'PATIENT', {
        callingAeTitle: config.dicom.aeTitle,
        limit,
        model: 'patient',
        signal: opts.signal,
        logger: log,
      });
      log.info({ peer: node.name, ok: r.ok, matches: r.matches.length, status: r.status }, 'patient search in the PACS');
      const candidates: PatientCandidate[] = r.matches
        .filter((m) => m.patientID)
        .map((m) => ({
          patientId: m.patientID ?? '',
          issuer: m.issuerOfPatientID ?? '',
          name: (m.patientName ?? '').replace(/\^+$/, ''),
          birthDate: m.patientBirthDate ?? '',
          sex: m.patientSex ?? '',
          studies: m.numberOfPatientRelatedStudies && /^\d+$/.test(m.numberOfPatientRelatedStudies) ? Number(m.numberOfPatientRelatedStudies) : null,
        }));
      return { ok: r.ok, source: 'pacs', node: node.name, candidates, truncated: r.truncated, detail: r.detail };
    },

    searchIndex(q) {
      const w: string[] = [];
      const args: unknown[] = [];
      for (const word of nameWords(q.name)) {
        w.push("replace(p.patient_name, '^', ' ') LIKE ? ESCAPE '\\'");
        args.push(`%${word.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
      }
      if (q.patientId?.trim()) (w.push('p.patient_id = ?'), args.push(q.patientId.trim()));
      if (q.birthDate) (w.push('p.birth_date = ?'), args.push(q.birthDate));
      if (!w.length) throw new AppError('BAD_REQUEST', 'Give a name, a patient ID or a birth date to search for.');
      const rows = db
        .prepare(
          `SELECT p.patient_id, p.issuer, p.patient_name, p.birth_date, p.sex, (SELECT count(*) FROM studies s WHERE s.patient_ref = p.id) AS studies
           FROM patients p WHERE ${w.join(' AND ')} ORDER BY p.patient_name COLLATE NOCASE, p.patient_id LIMIT ?`,
        )
        .all(...args, limit + 1) as { patient_id: string; issuer: string; patient_name: string; birth_date: string; sex: string; studies: number }[];
      const candidates = rows.slice(0, limit).map((r) => ({ patientId: r.patient_id, issuer: r.issuer, name: r.patient_name, birthDate: r.birth_date, sex: r.sex, studies: r.studies }));
      return { ok: true, source: 'index', candidates, truncated: rows.length > limit, detail: `${candidates.length} in the local index` };
    },

    current: (uid) => {
      const c = current(uid);
      return c ? identityOf(c) : null;
    },

    preview,

    start(studyUid, target, opts) {
      const p = preview(studyUid, target);
      const blocker = p.blockers[0];
      if (blocker) {
        if (blocker.kind === 'running') throw new AppError('CONFLICT', 'A merge of this study is already running.');
        if (blocker.kind === 'same') throw new AppError('BAD_REQUEST', 'The study already belongs to this patient.');
        if (blocker.kind === 'charset') throw new AppError('BAD_REQUEST', `The study's character set cannot hold the new ${blocker.fields.join(', ')}.`);
        if (blocker.kind === 'empty') throw new AppError('BAD_REQUEST', 'The study has no instances.');
        throw new AppError('BAD_REQUEST', `Not a valid patient: ${blocker.fields.join(', ')}.`);
      }
      const at = now();
      let id: number;
      try {
        id = db.transaction(() => {
          const jobId = (insertJob.get({
            studyUid,
            before: JSON.stringify(p.before),
            after: JSON.stringify(p.after),
            source: opts.source,
            forwardTo: opts.forward ? p.forwardTo : null,
            total: p.instances,
            by: opts.by.name,
            ip: opts.by.ip ?? null,
            at,
          }) as { id: number }).id;
          audit.record({
            actorKind: opts.by.kind,
            actor: opts.by.name,
            action: 'merge.start',
            studyUid,
            ip: opts.by.ip ?? null,
            detail: { merge: jobId, before: p.before, after: p.after, source: opts.source, instances: p.instances, forwardTo: opts.forward ? p.forwardTo : null },
          });
          return jobId;
        })();
      } catch (e) {
        if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') throw new AppError('CONFLICT', 'A merge of this study is already running.');
        throw e;
      }
      log.info({ merge: id, study: studyUid, instances: p.instances, source: opts.source }, 'patient merge started');
      launch(id);
      return toJob(jobById.get(id) as JobRow);
    },

    retry(studyUid, by) {
      const last = latestJob.get(studyUid) as JobRow | undefined;
      if (!last || last.state !== 'failed') throw new AppError('CONFLICT', 'There is no failed merge of this study to continue.');
      db.transaction(() => {
        setRunningAgain.run(now(), last.id);
        audit.record({ actorKind: by.kind, actor: by.name, action: 'merge.retry', studyUid, ip: by.ip ?? null, detail: { merge: last.id, done: last.done } });
      })();
      launch(last.id);
      return toJob(jobById.get(last.id) as JobRow);
    },

    latest(studyUid) {
      const r = latestJob.get(studyUid) as JobRow | undefined;
      return r ? toJob(r) : null;
    },

    get(id) {
      const r = jobById.get(id) as JobRow | undefined;
      return r ? toJob(r) : null;
    },

    running: (studyUid) => !!runningJob.get(studyUid),

    async recover() {
      let n = 0;
      for (const job of runningJobs.all() as JobRow[]) {
        if (job.current_instance !== null) {
          await reconcileInstance(job.current_instance);
          setCurrent.run(null, now(), job.id);
        }
        n++;
      }
      if (n) log.warn({ merges: n }, 'patient merges were interrupted by the last stop: they continue now');
      return n;
    },

    resume() {
      stopping = false;
      const jobs = runningJobs.all() as JobRow[];
      for (const j of jobs) launch(j.id);
      return jobs.length;
    },

    async stop() {
      stopping = true;
      await Promise.allSettled([...running.values()]);
    },

    async settled(id) {
      await running.get(id);
    },
  };
}
