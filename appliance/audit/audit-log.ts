/**
 * The audit trail: an append-only table (triggers refuse UPDATE and DELETE) of who did what to which study.
 * Every access by a user to patient data, and every change, is recorded here. Details are JSON; they may
 * hold patient data (the trail is readable by admins only), never upload codes or passwords.
 */
import type { Db } from '../store/db.ts';

export type ActorKind = 'user' | 'code' | 'node' | 'system';

export interface AuditEntry {
  actorKind: ActorKind;
  actor: string;
  action: string;
  studyUid?: string | null;
  ip?: string | null;
  detail?: Record<string, unknown>;
}

export interface AuditRow {
  id: number;
  at: string;
  actor_kind: ActorKind;
  actor: string;
  action: string;
  study_uid: string | null;
  ip: string | null;
  detail: string | null;
}

export interface AuditLog {
  record(e: AuditEntry): void;
  list(filter?: { action?: string; studyUid?: string; actor?: string; from?: string; to?: string; limit?: number; beforeId?: number }): AuditRow[];
}

export function createAuditLog(db: Db): AuditLog {
  const insert = db.prepare('INSERT INTO audit (at, actor_kind, actor, action, study_uid, ip, detail) VALUES (?, ?, ?, ?, ?, ?, ?)');
  return {
    record(e) {
      insert.run(new Date().toISOString(), e.actorKind, e.actor, e.action, e.studyUid ?? null, e.ip ?? null, e.detail ? JSON.stringify(e.detail) : null);
    },
    list(f = {}) {
      const where: string[] = [];
      const args: unknown[] = [];
      if (f.action) (where.push('action = ?'), args.push(f.action));
      if (f.studyUid) (where.push('study_uid = ?'), args.push(f.studyUid));
      if (f.actor) (where.push('actor = ?'), args.push(f.actor));
      if (f.from) (where.push('at >= ?'), args.push(f.from));
      if (f.to) (where.push('at <= ?'), args.push(f.to));
      if (f.beforeId) (where.push('id < ?'), args.push(f.beforeId));
      const sql = `SELECT * FROM audit ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
      return db.prepare(sql).all(...args, Math.min(f.limit ?? 200, 10000)) as AuditRow[];
    },
  };
}
