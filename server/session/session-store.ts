/**
 * Server-side sessions in SQLite (table `sessions`, migration 600). The browser holds only a random 256-bit
 * id in a cookie; the table holds its SHA-256, so a copy of the database cannot be turned into cookies.
 * A session ends after `session.idleMinutes` without a request or `session.absoluteHours` after it was
 * created or rotated (binding it to a code or a user rotates it), whichever comes first.
 *
 * A session carries its CSRF token, and may be bound to an upload code (portal) or a user (console).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Config } from '../../config/schema.ts';
import type { Db } from '../../appliance/store/db.ts';

export interface Session {
  /** The raw id (what the cookie holds). Only in memory. */
  readonly id: string;
  readonly csrfToken: string;
  readonly createdAt: number;
  lastSeenAt: number;
  readonly expiresAt: number;
  readonly codeId: number | null;
  readonly userId: number | null;
  /** Small JSON state (e.g. the console's filters). Save with `store.save`. */
  data: Record<string, unknown>;
}

export interface SessionStore {
  create(bind?: { codeId?: number | null; userId?: number | null }): Session;
  /** The live session with this raw id, or null (unknown, idle too long, past its absolute expiry). */
  load(id: string): Session | null;
  /** Record activity (written at most once a minute per session, to spare the disk). */
  touch(s: Session): void;
  save(s: Session): void;
  /**
   * A fresh session (new id, new CSRF token, new absolute expiry) replacing `s`, bound as given: call on every
   * change of privilege (a code entered, a login) so an id planted before cannot ride along (fixation).
   */
  rotate(s: Session | null, bind: { codeId?: number | null; userId?: number | null }): Session;
  destroy(s: Session | string): void;
  /** End every session bound to a code (it was revoked) or a user (deleted, password changed). */
  destroyFor(bound: { codeId?: number; userId?: number }): number;
  purgeExpired(): number;
}

interface Row {
  id_hash: string;
  csrf_token: string;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
  code_ref: number | null;
  user_ref: number | null;
  data: string;
}

const TOUCH_EVERY_MS = 60_000;

export function hashSessionId(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}

export function createSessionStore(db: Db, config: Config, now: () => number = Date.now): SessionStore {
  const idleMs = config.session.idleMinutes * 60_000;
  const absoluteMs = config.session.absoluteHours * 3_600_000;
  const insert = db.prepare('INSERT INTO sessions (id_hash, csrf_token, created_at, last_seen_at, expires_at, code_ref, user_ref, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  const select = db.prepare('SELECT * FROM sessions WHERE id_hash = ?');
  const del = db.prepare('DELETE FROM sessions WHERE id_hash = ?');
  const touch = db.prepare('UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?');
  const saveData = db.prepare('UPDATE sessions SET data = ?, last_seen_at = ? WHERE id_hash = ?');
  const purge = db.prepare('DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?');

  const create = (bind: { codeId?: number | null; userId?: number | null } = {}): Session => {
    const t = now();
    const s: Session = {
      id: randomBytes(32).toString('base64url'),
      csrfToken: randomBytes(32).toString('base64url'),
      createdAt: t,
      lastSeenAt: t,
      expiresAt: t + absoluteMs,
      codeId: bind.codeId ?? null,
      userId: bind.userId ?? null,
      data: {},
    };
    insert.run(hashSessionId(s.id), s.csrfToken, s.createdAt, s.lastSeenAt, s.expiresAt, s.codeId, s.userId, '{}');
    return s;
  };

  return {
    create,
    load(id) {
      if (typeof id !== 'string' || id.length < 20 || id.length > 100) return null;
      const key = hashSessionId(id);
      const r = select.get(key) as Row | undefined;
      if (!r) return null;
      const t = now();
      if (t >= r.expires_at || t - r.last_seen_at >= idleMs) {
        del.run(key);
        return null;
      }
      let data: Record<string, unknown> = {};
      try {
        data = JSON.parse(r.data) as Record<string, unknown>;
      } catch {
        /* keep {} */
      }
      return { id, csrfToken: r.csrf_token, createdAt: r.created_at, lastSeenAt: r.last_seen_at, expiresAt: r.expires_at, codeId: r.code_ref, userId: r.user_ref, data };
    },
    touch(s) {
      const t = now();
      if (t - s.lastSeenAt < TOUCH_EVERY_MS) return;
      s.lastSeenAt = t;
      touch.run(t, hashSessionId(s.id));
    },
    save(s) {
      s.lastSeenAt = now();
      saveData.run(JSON.stringify(s.data), s.lastSeenAt, hashSessionId(s.id));
    },
    rotate(s, bind) {
      return db.transaction(() => {
        if (s) del.run(hashSessionId(s.id));
        const fresh = create({
          codeId: 'codeId' in bind ? (bind.codeId ?? null) : (s?.codeId ?? null),
          userId: 'userId' in bind ? (bind.userId ?? null) : (s?.userId ?? null),
        });
        if (s && Object.keys(s.data).length) {
          fresh.data = { ...s.data };
          saveData.run(JSON.stringify(fresh.data), fresh.lastSeenAt, hashSessionId(fresh.id));
        }
        return fresh;
      })();
    },
    destroy(s) {
      del.run(hashSessionId(typeof s === 'string' ? s : s.id));
    },
    destroyFor(bound) {
      let n = 0;
      if (bound.codeId != null) n += db.prepare('DELETE FROM sessions WHERE code_ref = ?').run(bound.codeId).changes;
      if (bound.userId != null) n += db.prepare('DELETE FROM sessions WHERE user_ref = ?').run(bound.userId).changes;
      return n;
    },
    purgeExpired() {
      const t = now();
      return purge.run(t, t - idleMs).changes;
    },
  };
}
