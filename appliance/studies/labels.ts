/**
 * Study labels and workflow status, changed by admins in the console. Each change is one transaction with its
 * audit entry (the change and its record commit together, or neither does):
 *   label.add / label.remove       {label}
 *   label.review                   {removed: ['Uploaded'] or [], added: ['Uploaded-Reviewed'] or []}  ("Mark reviewed")
 *   workflow.change                {from, to}
 * Labels are free text (1-64 characters, no control characters or backslash: they may travel as DICOM text).
 * The labels table (migration 620) names the labels the console offers; a label first given to a study is
 * added to it.
 */
import type { Config } from '../../config/schema.ts';
import type { ActorKind, AuditLog } from '../audit/audit-log.ts';
import { AppError } from '../errors.ts';
import type { Db } from '../store/db.ts';

/** The label the upload policy stamps, and the one "Mark reviewed" replaces it with. */
export const UPLOADED = 'Uploaded';
export const UPLOADED_REVIEWED = 'Uploaded-Reviewed';

export interface Actor {
  kind: ActorKind;
  name: string;
  ip?: string | null;
}

export interface StudyLabels {
  /** Labels to offer: built-in ones first, then the others in use or known, alphabetically. */
  known(): string[];
  /** The labels of a study (alphabetical); NOT_FOUND for an unknown study. */
  of(studyUid: string): string[];
  /** Give a study a label (audited; nothing happens if it has it). Returns the study's labels. */
  add(studyUid: string, label: string, by: Actor): string[];
  /** Take a label off a study (audited; nothing happens if it lacks it). Returns the study's labels. */
  remove(studyUid: string, label: string, by: Actor): string[];
  /** 'Uploaded' off, 'Uploaded-Reviewed' on: one transaction, one audit entry. Returns the study's labels. */
  markReviewed(studyUid: string, by: Actor): string[];
  /** Workflow statuses to offer: the configured ones, those policies give, and those in use. */
  statuses(): string[];
  /** Set (or clear, with null) a study's workflow status (audited, unless unchanged). Returns the new status. */
  setWorkflowStatus(studyUid: string, status: string | null, by: Actor): string | null;
}

/** A label or status as typed, trimmed; BAD_REQUEST if it is not 1-64 printable characters without backslash. */
export function checkLabel(label: unknown, what = 'A label'): string {
  const s = typeof label === 'string' ? label.normalize('NFC').trim() : '';
  if (!s || [...s].length > 64 || /[\\\x00-\x1f\x7f]/.test(s)) throw new AppError('BAD_REQUEST', `${what} must be 1-64 characters, without backslash or control characters.`);
  return s;
}

export function createStudyLabels(deps: { db: Db; audit: AuditLog; config: Config; now?: () => Date }): StudyLabels {
  const { db, audit, config } = deps;
  const now = () => (deps.now ? deps.now() : new Date()).toISOString();
  const studyRow = db.prepare('SELECT id, workflow_status FROM studies WHERE study_uid = ?');
  const labelsOf = db.prepare('SELECT label FROM study_labels WHERE study_ref = ? ORDER BY label');
  const insertLabel = db.prepare('INSERT OR IGNORE INTO study_labels (study_ref, label) VALUES (?, ?)');
  const deleteLabel = db.prepare('DELETE FROM study_labels WHERE study_ref = ? AND label = ?');
  const remember = db.prepare('INSERT OR IGNORE INTO labels (name, builtin, created_at, created_by) VALUES (?, 0, ?, ?)');
  const touch = db.prepare('UPDATE studies SET updated_at = ? WHERE id = ?');
  const setStatus = db.prepare('UPDATE studies SET workflow_status = ?, updated_at = ? WHERE id = ?');

  const study = (uid: string): { id: number; workflow_status: string | null } => {
    const r = typeof uid === 'string' ? (studyRow.get(uid) as { id: number; workflow_status: string | null } | undefined) : undefined;
    if (!r) throw new AppError('NOT_FOUND', 'There is no such study.');
    return r;
  };
  const list = (ref: number) => (labelsOf.all(ref) as { label: string }[]).map((r) => r.label);
  const entry = (by: Actor, action: string, studyUid: string, detail: Record<string, unknown>) =>
    audit.record({ actorKind: by.kind, actor: by.name, action, studyUid, ip: by.ip ?? null, detail });

  return {
    known() {
      const rows = db
        .prepare(`SELECT name, MAX(builtin) AS builtin FROM (
            SELECT name, builtin FROM labels UNION ALL SELECT DISTINCT label, 0 FROM study_labels
          ) GROUP BY name ORDER BY MAX(builtin) DESC, name`)
        .all() as { name: string }[];
      const names = rows.map((r) => r.name);
      for (const p of Object.values(config.policies)) if (p.label && !names.includes(p.label)) names.push(p.label);
      return names;
    },

    of(studyUid) {
      return list(study(studyUid).id);
    },

    add(studyUid, label, by) {
      const l = checkLabel(label);
      return db.transaction(() => {
        const s = study(studyUid);
        if (insertLabel.run(s.id, l).changes) {
          const at = now();
          remember.run(l, at, `${by.kind}:${by.name}`);
          touch.run(at, s.id);
          entry(by, 'label.add', studyUid, { label: l });
        }
        return list(s.id);
      })();
    },

    remove(studyUid, label, by) {
      const l = typeof label === 'string' ? label : '';
      return db.transaction(() => {
        const s = study(studyUid);
        if (deleteLabel.run(s.id, l).changes) {
          touch.run(now(), s.id);
          entry(by, 'label.remove', studyUid, { label: l });
        }
        return list(s.id);
      })();
    },

    markReviewed(studyUid, by) {
      return db.transaction(() => {
        const s = study(studyUid);
        const removed = deleteLabel.run(s.id, UPLOADED).changes ? [UPLOADED] : [];
        const added = insertLabel.run(s.id, UPLOADED_REVIEWED).changes ? [UPLOADED_REVIEWED] : [];
        if (removed.length || added.length) {
          touch.run(now(), s.id);
          entry(by, 'label.review', studyUid, { removed, added });
        }
        return list(s.id);
      })();
    },

    statuses() {
      const out: string[] = [];
      const add = (s: string | null | undefined) => {
        if (s && !out.includes(s)) out.push(s);
      };
      for (const s of config.console.workflowStatuses) add(s);
      for (const p of Object.values(config.policies)) add(p.workflowStatus);
      for (const r of db.prepare('SELECT DISTINCT workflow_status AS s FROM studies WHERE workflow_status IS NOT NULL ORDER BY 1').all() as { s: string }[]) add(r.s);
      return out;
    },

    setWorkflowStatus(studyUid, status, by) {
      const to = status === null || status === '' ? null : checkLabel(status, 'A workflow status');
      return db.transaction(() => {
        const s = study(studyUid);
        if (s.workflow_status === to) return to;
        setStatus.run(to, now(), s.id);
        entry(by, 'workflow.change', studyUid, { from: s.workflow_status, to });
        return to;
      })();
    },
  };
}
