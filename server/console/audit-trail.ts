/**
 * The console's view of the audit trail (table `audit`, append-only): filtered, newest first, paged, and read in
 * batches for the CSV export (each batch its own short query, so a long download never holds the database
 * connection: better-sqlite3 cannot run other statements while an iterator is open).
 *
 * Filters, as GET query parameters: action (exact), user (the actor, contains, case-insensitive), study (Study
 * Instance UID, exact), from / to (YYYY-MM-DD, days in the appliance's time zone, inclusive).
 */
import type { AuditRow } from '../../appliance/audit/audit-log.ts';
import type { Db } from '../../appliance/store/db.ts';
import { dateParam } from './study-filters.ts';

export interface AuditFilter {
  action?: string;
  actor?: string;
  studyUid?: string;
  /** ISO times, inclusive / exclusive. */
  fromIso?: string;
  toIso?: string;
}

export interface AuditParams {
  form: { action: string; user: string; study: string; from: string; to: string };
  filter: AuditFilter;
  page: number;
  invalid: string[];
}

export interface AuditPage {
  rows: (AuditRow & { details: [string, string][] })[];
  total: number;
  page: number;
  pages: number;
}

function text(v: string | null, max = 128): string {
  return (v ?? '').replace(/[\x00-\x1f\x7f]/g, ' ').trim().slice(0, max);
}

/** The start of a local calendar day (YYYYMMDD) as an ISO time. */
function dayStart(yyyymmdd: string, plusDays = 0): string {
  const d = new Date(Number(yyyymmdd.slice(0, 4)), Number(yyyymmdd.slice(4, 6)) - 1, Number(yyyymmdd.slice(6, 8)) + plusDays);
  return d.toISOString();
}

export function parseAuditParams(q: URLSearchParams): AuditParams {
  const invalid: string[] = [];
  const form = { action: text(q.get('action'), 64), user: text(q.get('user')), study: text(q.get('study'), 64), from: text(q.get('from'), 10), to: text(q.get('to'), 10) };
  const filter: AuditFilter = {};
  if (form.action) filter.action = form.action;
  if (form.user) filter.actor = form.user;
  if (form.study) {
    if (/^[0-9.]{1,64}$/.test(form.study)) filter.studyUid = form.study;
    else (invalid.push('study'), (form.study = ''));
  }
  if (form.from) {
    const d = dateParam(form.from);
    if (d) filter.fromIso = dayStart(d);
    else (invalid.push('from'), (form.from = ''));
  }
  if (form.to) {
    const d = dateParam(form.to);
    if (d) filter.toIso = dayStart(d, 1);
    else (invalid.push('to'), (form.to = ''));
  }
  const pageRaw = q.get('page');
  const page = pageRaw && /^\d{1,7}$/.test(pageRaw) && Number(pageRaw) >= 1 ? Number(pageRaw) : 1;
  return { form, filter, page, invalid };
}

export function auditQueryString(p: Pick<AuditParams, 'form'>, over: Record<string, string | number | null> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...p.form, ...over })) if (v !== null && v !== '' && !(k === 'page' && Number(v) === 1)) q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** detail JSON -> [key, value text] pairs for display (nested values as JSON). */
export function detailPairs(detail: string | null): [string, string][] {
  if (!detail) return [];
  try {
    const v = JSON.parse(detail) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return Object.entries(v).map(([k, x]) => [k, typeof x === 'string' ? x : JSON.stringify(x)]);
    return [['', JSON.stringify(v)]];
  } catch {
    return [['', detail]];
  }
}

export interface AuditTrail {
  page(filter: AuditFilter, page: number, pageSize: number): AuditPage;
  /** Every matching row, newest first, `batch` rows per query. */
  batches(filter: AuditFilter, batch?: number): Generator<AuditRow[]>;
  actions(): string[];
}

export function createAuditTrail(db: Db): AuditTrail {
  const where = (f: AuditFilter, beforeId?: number) => {
    const w: string[] = [];
    const args: unknown[] = [];
    if (f.action) (w.push('action = ?'), args.push(f.action));
    if (f.actor) (w.push("actor LIKE ? ESCAPE '\\'"), args.push(`%${f.actor.replace(/[\\%_]/g, (c) => `\\${c}`)}%`));
    if (f.studyUid) (w.push('study_uid = ?'), args.push(f.studyUid));
    if (f.fromIso) (w.push('at >= ?'), args.push(f.fromIso));
    if (f.toIso) (w.push('at < ?'), args.push(f.toIso));
    if (beforeId !== undefined) (w.push('id < ?'), args.push(beforeId));
    return { sql: w.length ? `WHERE ${w.join(' AND ')}` : '', args };
  };
  return {
    page(f, page, pageSize) {
      const { sql, args } = where(f);
      const total = (db.prepare(`SELECT COUNT(*) AS n FROM audit ${sql}`).get(...args) as { n: number }).n;
      const pages = Math.max(1, Math.ceil(total / pageSize));
      const p = Math.min(Math.max(1, page), pages);
      const rows = db.prepare(`SELECT * FROM audit ${sql} ORDER BY id DESC LIMIT ? OFFSET ?`).all(...args, pageSize, (p - 1) * pageSize) as AuditRow[];
      return { rows: rows.map((r) => ({ ...r, details: detailPairs(r.detail) })), total, page: p, pages };
    },
    *batches(f, batch = 500) {
      let before: number | undefined;
      for (;;) {
        const { sql, args } = where(f, before);
        const rows = db.prepare(`SELECT * FROM audit ${sql} ORDER BY id DESC LIMIT ?`).all(...args, batch) as AuditRow[];
        if (!rows.length) return;
        yield rows;
        if (rows.length < batch) return;
        before = rows[rows.length - 1].id;
      }
    },
    actions() {
      return (db.prepare('SELECT DISTINCT action FROM audit ORDER BY action').all() as { action: string }[]).map((r) => r.action);
    },
  };
}
