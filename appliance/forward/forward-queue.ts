/**
 * The persistent forwarding queue (SQLite table forward_jobs, migration 500): one row per stored instance and
 * destination node, with its state (queued / sending / done / retrying / failed), attempts, next attempt,
 * the last DIMSE status and its meaning in words, and whether it was transcoded.
 *
 * Who writes what:
 * - the commit hook (forward-hook.ts) inserts jobs in the transaction that stores the instance;
 * - admin actions (console, `uplink forward ...`) enqueue a whole study or series to a node, or resend what
 *   failed; each is audited. The CLI runs in another process on the same database (WAL): the worker polls;
 * - the worker (forward-worker.ts, the appliance process only) claims due jobs, sends them and records the
 *   outcomes. It alone moves jobs to and from 'sending'; a row re-queued by a person while it is being sent
 *   is left queued (sent again), because outcome updates only apply to rows still 'sending'.
 * Status reads (per study and destination, per destination, per job) are for the console and the CLI.
 */
import type { Config } from '../../config/schema.ts';
import type { ActorKind, AuditLog } from '../audit/audit-log.ts';
import { AppError } from '../errors.ts';
import type { Db } from '../store/db.ts';
import { retryDelayMs, shouldGiveUp, type RetryPolicy } from './backoff.ts';
import { takeBatch, type BatchCaps } from './batch.ts';
import { notSendableReason, sendableNode, sendableNodes } from './destinations.ts';

export type JobState = 'queued' | 'sending' | 'done' | 'retrying' | 'failed';
export const JOB_STATES: readonly JobState[] = ['queued', 'sending', 'done', 'retrying', 'failed'];

/** Who asked (audit trail): a console user, or the operating-system user of the CLI. */
export interface Actor {
  kind: ActorKind;
  name: string;
  ip?: string | null;
}

export interface ForwardJob {
  id: number;
  instanceId: number;
  destination: string;
  studyUid: string;
  seriesUid: string;
  sopInstanceUid: string;
  state: JobState;
  /** 'policy:<name>' for auto-forward, else how a person asked ('console', 'cli', ...). */
  origin: string;
  requestedBy: string | null;
  attempts: number;
  nextAttemptAt: string;
  firstFailureAt: string | null;
  lastStatus: number | null;
  lastMeaning: string | null;
  transcoded: { from: string; to: string } | null;
  createdAt: string;
  updatedAt: string;
  sentAt: string | null;
  doneAt: string | null;
}

/** Forwarding of one study to one destination. */
export interface ForwardProgress {
  studyUid: string;
  destination: string;
  /**
   * Summary: 'sending' if any instance is on the wire, else 'retrying' if any waits for a retry, else
   * 'queued' if any waits, else 'failed' if any failed, else 'done'.
   */
  state: JobState;
  total: number;
  queued: number;
  sending: number;
  done: number;
  retrying: number;
  failed: number;
  /** Instances delivered in another transfer syntax than the stored one. */
  transcoded: number;
  /** Earliest next attempt of a waiting (queued or retrying) instance. */
  nextAttemptAt: string | null;
  /** The latest problem (of a retrying or failed instance), with its status when there was one. */
  lastStatus: number | null;
  lastMeaning: string | null;
  updatedAt: string;
}

/** The queue of one destination. */
export interface DestinationSummary {
  destination: string;
  /** Whether it is (still) a node with send: true. */
  configured: boolean;
  aeTitle: string | null;
  host: string | null;
  port: number | null;
  queued: number;
  sending: number;
  retrying: number;
  failed: number;
  done: number;
  /** Studies with instances not done yet (queued, sending, retrying or failed). */
  pendingStudies: number;
  nextAttemptAt: string | null;
  lastMeaning: string | null;
}

export interface EnqueueResult {
  destination: string;
  studyUid: string;
  seriesUid?: string;
  /** Instances of the study (or series) queued. */
  instances: number;
  /** Jobs that did not exist yet. */
  created: number;
  /** Jobs that existed (in any state) and were queued again. */
  requeued: number;
}

/** A job the worker took to send, with what it needs from the index. */
export interface ClaimedJob {
  id: number;
  instanceId: number;
  sopInstanceUid: string;
  sopClassUid: string;
  transferSyntax: string;
  /** Relative to the store. */
  path: string;
  size: number;
  attempts: number;
  firstFailureAt: string | null;
}

export type JobResult =
  | { job: ClaimedJob; kind: 'done'; status?: number; meaning: string; transcoded?: { from: string; to: string } }
  | { job: ClaimedJob; kind: 'retry' | 'failed'; status?: number; meaning: string }
  /** Not sent (the appliance is stopping): back to queued, no attempt counted. */
  | { job: ClaimedJob; kind: 'release' };

export interface RecordSummary {
  done: number;
  retrying: number;
  failed: number;
  gaveUp: number;
  released: number;
  /** Earliest next attempt given to a retrying job (ms), if any. */
  nextRetryMs: number | null;
}

export interface StatusFilter {
  destination?: string;
  /** Only (study, destination) pairs with at least one job in this state. */
  state?: JobState;
  studyUid?: string;
  limit?: number;
  offset?: number;
}

export interface ForwardQueue {
  // ---- status (console, CLI)
  /** Forwarding of one study, one entry per destination it has jobs for. */
  studyStatus(studyUid: string): ForwardProgress[];
  /** (study, destination) pairs, most recently changed first. */
  studies(filter?: StatusFilter): ForwardProgress[];
  /** Every configured destination (send: true) and every other destination that still has jobs. */
  destinations(): DestinationSummary[];
  /** Single jobs (instances), most recently changed first. */
  jobs(filter?: StatusFilter): ForwardJob[];
  // ---- admin actions (audited)
  /** Queue every instance of a study for a destination (again, if sent before). */
  enqueueStudy(studyUid: string, destination: string, by: Actor, origin?: string): EnqueueResult;
  enqueueSeries(seriesUid: string, destination: string, by: Actor, origin?: string): EnqueueResult;
  /** Queue failed (and retrying) jobs again now, optionally only of one destination and/or study. Returns the count. */
  resend(filter: { destination?: string; studyUid?: string }, by: Actor): number;
  // ---- auto-forward (inside the instance's commit transaction)
  insertForInstance(ids: { instanceId: number }, uids: { studyUid: string; seriesUid: string; sopInstanceUid: string }, destinations: string[], origin: string, dueMs: number): number;
  // ---- the worker
  /** Jobs left 'sending' by a previous run (crash, kill) are queued again. Returns the count. */
  resumeInterrupted(): number;
  /** Unfinished jobs for destinations that are no longer sendable nodes are failed with the reason. Returns the count. */
  failUnconfigured(): number;
  /** (destination, study) groups with due jobs, earliest first. */
  dueGroups(limit?: number): { destination: string; studyUid: string; due: string }[];
  /** Take up to the caps of the group's due jobs and mark them 'sending'. */
  claim(destination: string, studyUid: string, caps: BatchCaps): ClaimedJob[];
  /** Record outcomes (one transaction). Only rows still 'sending' change. */
  record(results: JobResult[]): RecordSummary;
  /** Earliest next attempt of any waiting job (ms), or null. */
  nextDue(): number | null;
}

export interface ForwardQueueDeps {
  db: Db;
  config: Config;
  audit?: AuditLog;
  /** Clock (ms). Default Date.now. */
  now?: () => number;
}

interface JobRow {
  id: number;
  instance_ref: number;
  destination: string;
  study_uid: string;
  series_uid: string;
  sop_uid: string;
  state: JobState;
  origin: string;
  requested_by: string | null;
  attempts: number;
  next_attempt_at: string;
  first_failure_at: string | null;
  last_status: number | null;
  last_meaning: string | null;
  transcoded_from: string | null;
  transcoded_to: string | null;
  created_at: string;
  updated_at: string;
  sent_at: string | null;
  done_at: string | null;
}

interface ProgressRow {
  study_uid: string;
  destination: string;
  total: number;
  queued: number;
  sending: number;
  done: number;
  retrying: number;
  failed: number;
  transcoded: number;
  next_attempt_at: string | null;
  updated_at: string;
  last_status: number | null;
  last_meaning: string | null;
}

export function summaryState(c: { queued: number; sending: number; retrying: number; failed: number }): JobState {
  if (c.sending) return 'sending';
  if (c.retrying) return 'retrying';
  if (c.queued) return 'queued';
  if (c.failed) return 'failed';
  return 'done';
}

function toJob(r: JobRow): ForwardJob {
  return {
    id: r.id,
    instanceId: r.instance_ref,
    destination: r.destination,
    studyUid: r.study_uid,
    seriesUid: r.series_uid,
    sopInstanceUid: r.sop_uid,
    state: r.state,
    origin: r.origin,
    requestedBy: r.requested_by,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    firstFailureAt: r.first_failure_at,
    lastStatus: r.last_status,
    lastMeaning: r.last_meaning,
    transcoded: r.transcoded_from && r.transcoded_to ? { from: r.transcoded_from, to: r.transcoded_to } : null,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    sentAt: r.sent_at,
    doneAt: r.done_at,
  };
}

function toProgress(r: ProgressRow): ForwardProgress {
  return {
    studyUid: r.study_uid,
    destination: r.destination,
    state: summaryState(r),
    total: r.total,
    queued: r.queued,
    sending: r.sending,
    done: r.done,
    retrying: r.retrying,
    failed: r.failed,
    transcoded: r.transcoded,
    nextAttemptAt: r.next_attempt_at,
    lastStatus: r.last_status,
    lastMeaning: r.last_meaning,
    updatedAt: r.updated_at,
  };
}

const WAITING = "('queued', 'retrying')";

export function createForwardQueue(deps: ForwardQueueDeps): ForwardQueue {
  const { db, config, audit } = deps;
  const clock = deps.now ?? Date.now;
  const iso = (ms: number) => new Date(ms).toISOString();
  const policy: RetryPolicy = config.forward;

  const progressSelect = `
    SELECT f.study_uid, f.destination, count(*) AS total,
      sum(f.state = 'queued') AS queued, sum(f.state = 'sending') AS sending, sum(f.state = 'done') AS done,
      sum(f.state = 'retrying') AS retrying, sum(f.state = 'failed') AS failed,
      sum(f.state = 'done' AND f.transcoded_to IS NOT NULL) AS transcoded,
      min(CASE WHEN f.state IN ${WAITING} THEN f.next_attempt_at END) AS next_attempt_at,
      max(f.updated_at) AS updated_at,
      (SELECT g.last_status FROM forward_jobs g WHERE g.study_uid = f.study_uid AND g.destination = f.destination
        AND g.state IN ('retrying', 'failed') ORDER BY g.updated_at DESC, g.id DESC LIMIT 1) AS last_status,
      (SELECT g.last_meaning FROM forward_jobs g WHERE g.study_uid = f.study_uid AND g.destination = f.destination
        AND g.state IN ('retrying', 'failed') ORDER BY g.updated_at DESC, g.id DESC LIMIT 1) AS last_meaning
    FROM forward_jobs f`;
  const studyStatus = db.prepare(`${progressSelect} WHERE f.study_uid = ? GROUP BY f.study_uid, f.destination ORDER BY f.destination`);

  const enqueueSql = (where: string) =>
    db.prepare(`
      INSERT INTO forward_jobs (instance_ref, destination, study_uid, series_uid, sop_uid, state, origin, requested_by, attempts,
        next_attempt_at, created_at, updated_at)
      SELECT i.id, @destination, st.study_uid, se.series_uid, i.sop_uid, 'queued', @origin, @by, 0, @now, @now, @now
      FROM instances i JOIN series se ON se.id = i.series_ref JOIN studies st ON st.id = se.study_ref
      WHERE ${where}
      ORDER BY se.id, i.id
      ON CONFLICT (instance_ref, destination) DO UPDATE SET
        state = 'queued', origin = excluded.origin, requested_by = excluded.requested_by, attempts = 0,
        next_attempt_at = excluded.next_attempt_at, first_failure_at = NULL, last_status = NULL, last_meaning = NULL,
        transcoded_from = NULL, transcoded_to = NULL, updated_at = excluded.updated_at`);
  const enqueueStudySql = enqueueSql('st.study_uid = @uid');
  const enqueueSeriesSql = enqueueSql('se.series_uid = @uid');
  const studyOfSeries = db.prepare('SELECT st.study_uid FROM series se JOIN studies st ON st.id = se.study_ref WHERE se.series_uid = ?');
  const studyExists = db.prepare('SELECT 1 FROM studies WHERE study_uid = ?');
  const countStudyInstances = db.prepare(`SELECT count(*) AS n FROM instances i JOIN series se ON se.id = i.series_ref JOIN studies st ON st.id = se.study_ref WHERE st.study_uid = ?`);
  const countSeriesInstances = db.prepare('SELECT count(*) AS n FROM instances i JOIN series se ON se.id = i.series_ref WHERE se.series_uid = ?');
  const countExistingStudy = db.prepare('SELECT count(*) AS n FROM forward_jobs WHERE study_uid = ? AND destination = ?');
  const countExistingSeries = db.prepare('SELECT count(*) AS n FROM forward_jobs WHERE series_uid = ? AND destination = ?');

  const insertJob = db.prepare(`
    INSERT INTO forward_jobs (instance_ref, destination, study_uid, series_uid, sop_uid, state, origin, attempts, next_attempt_at, created_at, updated_at)
    VALUES (@instanceId, @destination, @studyUid, @seriesUid, @sopUid, 'queued', @origin, 0, @due, @now, @now)
    ON CONFLICT (instance_ref, destination) DO NOTHING`);

  const resume = db.prepare("UPDATE forward_jobs SET state = 'queued', updated_at = ? WHERE state = 'sending'");
  const unfinishedDestinations = db.prepare(`SELECT DISTINCT destination FROM forward_jobs WHERE state IN ${WAITING}`);
  const failDestination = db.prepare(`
    UPDATE forward_jobs SET state = 'failed', last_status = NULL, last_meaning = ?, updated_at = ?
    WHERE destination = ? AND state IN ${WAITING}`);
  const dueGroups = db.prepare(`
    SELECT destination, study_uid AS studyUid, min(next_attempt_at) AS due FROM forward_jobs
    WHERE state IN ${WAITING} AND next_attempt_at <= ?
    GROUP BY destination, study_uid ORDER BY due, min(id) LIMIT ?`);
  const dueOfGroup = db.prepare(`
    SELECT f.id, f.instance_ref AS instanceId, f.sop_uid AS sopInstanceUid, i.sop_class_uid AS sopClassUid,
      i.transfer_syntax AS transferSyntax, i.path, i.size, f.attempts, f.first_failure_at AS firstFailureAt
    FROM forward_jobs f JOIN instances i ON i.id = f.instance_ref
    WHERE f.destination = ? AND f.study_uid = ? AND f.state IN ${WAITING} AND f.next_attempt_at <= ?
    ORDER BY f.id LIMIT ?`);
  const markSending = db.prepare(`UPDATE forward_jobs SET state = 'sending', sent_at = @now, updated_at = @now WHERE id = @id AND state IN ${WAITING}`);
  const setDone = db.prepare(`
    UPDATE forward_jobs SET state = 'done', attempts = attempts + 1, last_status = @status, last_meaning = @meaning,
      transcoded_from = @from, transcoded_to = @to, first_failure_at = NULL, done_at = @now, updated_at = @now
    WHERE id = @id AND state = 'sending'`);
  const setRetrying = db.prepare(`
    UPDATE forward_jobs SET state = 'retrying', attempts = attempts + 1, last_status = @status, last_meaning = @meaning,
      next_attempt_at = @next, first_failure_at = @first, updated_at = @now
    WHERE id = @id AND state = 'sending'`);
  const setFailed = db.prepare(`
    UPDATE forward_jobs SET state = 'failed', attempts = attempts + 1, last_status = @status, last_meaning = @meaning,
      first_failure_at = @first, updated_at = @now
    WHERE id = @id AND state = 'sending'`);
  const setReleased = db.prepare("UPDATE forward_jobs SET state = 'queued', updated_at = @now WHERE id = @id AND state = 'sending'");
  const nextDue = db.prepare(`SELECT min(next_attempt_at) AS t FROM forward_jobs WHERE state IN ${WAITING}`);

  function requireDestination(destination: string): void {
    if (!sendableNode(config, destination)) {
      const known = sendableNodes(config).map((n) => n.name);
      throw new AppError('BAD_REQUEST', `${notSendableReason(config, destination)}; nodes that may be sent to: ${known.length ? known.join(', ') : 'none'}`);
    }
  }

  const enqueue = db.transaction(
    (kind: 'study' | 'series', uid: string, destination: string, by: Actor, origin: string): EnqueueResult => {
      requireDestination(destination);
      let studyUid: string;
      let instances: number;
      let existing: number;
      if (kind === 'study') {
        if (!studyExists.get(uid)) throw new AppError('NOT_FOUND', `There is no study ${uid} in the index.`);
        studyUid = uid;
        instances = (countStudyInstances.get(uid) as { n: number }).n;
        existing = (countExistingStudy.get(uid, destination) as { n: number }).n;
      } else {
        const s = studyOfSeries.get(uid) as { study_uid: string } | undefined;
        if (!s) throw new AppError('NOT_FOUND', `There is no series ${uid} in the index.`);
        studyUid = s.study_uid;
        instances = (countSeriesInstances.get(uid) as { n: number }).n;
        existing = (countExistingSeries.get(uid, destination) as { n: number }).n;
      }
      const at = iso(clock());
      (kind === 'study' ? enqueueStudySql : enqueueSeriesSql).run({ uid, destination, origin, by: by.name, now: at });
      const result: EnqueueResult = { destination, studyUid, ...(kind === 'series' ? { seriesUid: uid } : {}), instances, created: instances - existing, requeued: existing };
      audit?.record({
        actorKind: by.kind,
        actor: by.name,
        action: 'forward',
        studyUid,
        ip: by.ip ?? null,
        detail: { destination, ...(kind === 'series' ? { seriesUid: uid } : {}), instances, requeued: existing, origin },
      });
      return result;
    },
  );

  const resendTx = db.transaction((filter: { destination?: string; studyUid?: string }, by: Actor): number => {
    const where = [`state IN ('failed', 'retrying')`];
    const args: Record<string, unknown> = {};
    if (filter.destination) (where.push('destination = @destination'), (args.destination = filter.destination));
    if (filter.studyUid) (where.push('study_uid = @studyUid'), (args.studyUid = filter.studyUid));
    const groups = db
      .prepare(`SELECT study_uid, destination, count(*) AS n FROM forward_jobs WHERE ${where.join(' AND ')} GROUP BY study_uid, destination`)
      .all(args) as { study_uid: string; destination: string; n: number }[];
    // A destination that is not sendable (any more) would only fail again: refuse it, say why.
    for (const d of new Set(groups.map((g) => g.destination))) if (!sendableNode(config, d)) throw new AppError('BAD_REQUEST', `cannot resend: ${notSendableReason(config, d)}`);
    const at = iso(clock());
    const changed = db
      .prepare(
        `UPDATE forward_jobs SET state = 'queued', attempts = 0, next_attempt_at = @now, first_failure_at = NULL, last_status = NULL,
          last_meaning = NULL, requested_by = @by, updated_at = @now WHERE ${where.join(' AND ')}`,
      )
      .run({ ...args, now: at, by: by.name }).changes;
    for (const g of groups)
      audit?.record({ actorKind: by.kind, actor: by.name, action: 'forward-resend', studyUid: g.study_uid, ip: by.ip ?? null, detail: { destination: g.destination, instances: g.n } });
    return changed;
  });

  const claimTx = db.transaction((destination: string, studyUid: string, caps: BatchCaps): ClaimedJob[] => {
    const now = clock();
    const candidates = dueOfGroup.all(destination, studyUid, iso(now), caps.maxInstances) as ClaimedJob[];
    const batch = takeBatch(candidates, caps);
    const at = iso(now);
    return batch.filter((j) => markSending.run({ id: j.id, now: at }).changes === 1);
  });

  const recordTx = db.transaction((results: JobResult[]): RecordSummary => {
    const now = clock();
    const at = iso(now);
    const s: RecordSummary = { done: 0, retrying: 0, failed: 0, gaveUp: 0, released: 0, nextRetryMs: null };
    for (const r of results) {
      const id = r.job.id;
      if (r.kind === 'release') {
        s.released += setReleased.run({ id, now: at }).changes;
        continue;
      }
      const status = r.status ?? null;
      if (r.kind === 'done') {
        s.done += setDone.run({ id, now: at, status, meaning: r.meaning, from: r.transcoded?.from ?? null, to: r.transcoded?.to ?? null }).changes;
        continue;
      }
      const first = r.job.firstFailureAt ?? at;
      if (r.kind === 'failed') {
        s.failed += setFailed.run({ id, now: at, status, meaning: r.meaning, first: r.job.firstFailureAt }).changes;
        continue;
      }
      if (shouldGiveUp(Date.parse(first), now, policy)) {
        const hours = Math.round(((now - Date.parse(first)) / 3600_000) * 10) / 10;
        const meaning = `gave up after ${hours} h of transient failures (forward.giveUpAfterHours = ${policy.giveUpAfterHours}); the last: ${r.meaning}`;
        const n = setFailed.run({ id, now: at, status, meaning, first }).changes;
        s.failed += n;
        s.gaveUp += n;
        continue;
      }
      const nextMs = now + retryDelayMs(r.job.attempts + 1, policy);
      const n = setRetrying.run({ id, now: at, status, meaning: r.meaning, next: iso(nextMs), first }).changes;
      s.retrying += n;
      if (n && (s.nextRetryMs === null || nextMs < s.nextRetryMs)) s.nextRetryMs = nextMs;
    }
    return s;
  });

  function where(filter: StatusFilter, alias = 'f'): { sql: string; args: Record<string, unknown> } {
    const w: string[] = [];
    const args: Record<string, unknown> = {};
    if (filter.destination) (w.push(`${alias}.destination = @destination`), (args.destination = filter.destination));
    if (filter.studyUid) (w.push(`${alias}.study_uid = @studyUid`), (args.studyUid = filter.studyUid));
    return { sql: w.length ? `WHERE ${w.join(' AND ')}` : '', args };
  }

  return {
    studyStatus: (studyUid) => (studyStatus.all(studyUid) as ProgressRow[]).map(toProgress),
    studies(filter = {}) {
      const { sql, args } = where(filter);
      const having = filter.state ? `HAVING sum(f.state = @state) > 0` : '';
      if (filter.state) {
        if (!JOB_STATES.includes(filter.state)) throw new AppError('BAD_REQUEST', `state must be one of ${JOB_STATES.join(', ')}`);
        args.state = filter.state;
      }
      const rows = db
        .prepare(`${progressSelect} ${sql} GROUP BY f.study_uid, f.destination ${having} ORDER BY max(f.updated_at) DESC LIMIT @limit OFFSET @offset`)
        .all({ ...args, limit: Math.min(filter.limit ?? 100, 10000), offset: filter.offset ?? 0 }) as ProgressRow[];
      return rows.map(toProgress);
    },
    destinations() {
      const counts = db.prepare('SELECT destination, state, count(*) AS n FROM forward_jobs GROUP BY destination, state').all() as { destination: string; state: JobState; n: number }[];
      const pending = db
        .prepare("SELECT destination, count(DISTINCT study_uid) AS n, min(CASE WHEN state IN ('queued', 'retrying') THEN next_attempt_at END) AS next FROM forward_jobs WHERE state != 'done' GROUP BY destination")
        .all() as { destination: string; n: number; next: string | null }[];
      const lastProblem = db.prepare(
        "SELECT last_meaning FROM forward_jobs WHERE destination = ? AND state IN ('retrying', 'failed') ORDER BY updated_at DESC, id DESC LIMIT 1",
      );
      const names = [...new Set([...sendableNodes(config).map((n) => n.name), ...counts.map((c) => c.destination)])];
      return names.map((name) => {
        const node = sendableNode(config, name);
        const c = (s: JobState) => counts.find((x) => x.destination === name && x.state === s)?.n ?? 0;
        const p = pending.find((x) => x.destination === name);
        return {
          destination: name,
          configured: !!node,
          aeTitle: node?.aeTitle ?? null,
          host: node?.host ?? null,
          port: node?.port ?? null,
          queued: c('queued'),
          sending: c('sending'),
          retrying: c('retrying'),
          failed: c('failed'),
          done: c('done'),
          pendingStudies: p?.n ?? 0,
          nextAttemptAt: p?.next ?? null,
          lastMeaning: (lastProblem.get(name) as { last_meaning: string | null } | undefined)?.last_meaning ?? null,
        };
      });
    },
    jobs(filter = {}) {
      const { sql, args } = where(filter);
      let w = sql;
      if (filter.state) {
        if (!JOB_STATES.includes(filter.state)) throw new AppError('BAD_REQUEST', `state must be one of ${JOB_STATES.join(', ')}`);
        w = `${w ? `${w} AND` : 'WHERE'} f.state = @state`;
        args.state = filter.state;
      }
      const rows = db
        .prepare(`SELECT f.* FROM forward_jobs f ${w} ORDER BY f.updated_at DESC, f.id DESC LIMIT @limit OFFSET @offset`)
        .all({ ...args, limit: Math.min(filter.limit ?? 100, 100000), offset: filter.offset ?? 0 }) as JobRow[];
      return rows.map(toJob);
    },
    enqueueStudy: (studyUid, destination, by, origin = 'admin') => enqueue('study', studyUid, destination, by, origin),
    enqueueSeries: (seriesUid, destination, by, origin = 'admin') => enqueue('series', seriesUid, destination, by, origin),
    resend: (filter, by) => resendTx(filter, by),
    insertForInstance(ids, uids, destinations, origin, dueMs) {
      const at = iso(clock());
      let n = 0;
      for (const destination of destinations)
        n += insertJob.run({ instanceId: ids.instanceId, destination, studyUid: uids.studyUid, seriesUid: uids.seriesUid, sopUid: uids.sopInstanceUid, origin, due: iso(dueMs), now: at }).changes;
      return n;
    },
    resumeInterrupted: () => resume.run(iso(clock())).changes,
    failUnconfigured() {
      let n = 0;
      const at = iso(clock());
      for (const { destination } of unfinishedDestinations.all() as { destination: string }[])
        if (!sendableNode(config, destination)) n += failDestination.run(`not sent: ${notSendableReason(config, destination)}`, at, destination).changes;
      return n;
    },
    dueGroups: (limit = 200) => dueGroups.all(iso(clock()), limit) as { destination: string; studyUid: string; due: string }[],
    claim: (destination, studyUid, caps) => claimTx(destination, studyUid, caps),
    record: (results) => recordTx(results),
    nextDue() {
      const t = (nextDue.get() as { t: string | null }).t;
      return t ? Date.parse(t) : null;
    },
  };
}
