/**
 * Console users (table `users`, migration 610): a source user sees the study list and uploads without a
 * code; a source admin does everything (see server/console/access.ts for what each role may do). Passwords
 * are kept only as scrypt hashes (password.ts). Every change is audited; disabling a user or changing their
 * password ends their sessions (database triggers, so the CLI in another process does it too).
 */
import type { ActorKind, AuditLog } from '../audit/audit-log.ts';
import { AppError } from '../errors.ts';
import type { Db } from '../store/db.ts';
import { hashPassword, needsRehash, passwordProblem, SCRYPT_COST, verifyNothing, verifyPassword, type ScryptParams } from './password.ts';

export type Role = 'admin' | 'user';
export const ROLES: readonly Role[] = ['admin', 'user'];

export function isRole(v: unknown): v is Role {
  return v === 'admin' || v === 'user';
}

export interface User {
  id: number;
  name: string;
  role: Role;
  institutionId: string | null;
  createdAt: string;
  createdBy: string;
  passwordChangedAt: string;
  disabledAt: string | null;
  lastLoginAt: string | null;
}

export interface Actor {
  kind: ActorKind;
  name: string;
  ip?: string | null;
}

export type VerifyResult = { ok: true; user: User } | { ok: false; reason: 'unknown-user' | 'disabled' | 'wrong-password'; user: User | null };

export interface Users {
  add(input: { name: string; role: Role; password: string; institutionId?: string | null; by: Actor }): Promise<User>;
  get(id: number): User | null;
  byName(name: string): User | null;
  list(): User[];
  count(): number;
  setDisabled(name: string, disabled: boolean, by: Actor): User;
  setPassword(name: string, password: string, by: Actor): Promise<User>;
  /**
   * Check a name and password. Every outcome takes the time of one scrypt check (unknown names included), so
   * timing does not reveal which names exist. Not audited or throttled here: login.ts does both.
   */
  verify(name: string, password: string): Promise<VerifyResult>;
  /** A successful log-in: remember when (and upgrade the hash if it was made at a lower cost). */
  recordLogin(user: User, password: string): Promise<void>;
  /** The rule a new password breaks, or null. */
  passwordProblem(password: string, userName?: string): string | null;
}

interface Row {
  id: number;
  name: string;
  role: Role;
  password_hash: string;
  institution_id: string | null;
  created_at: string;
  created_by: string;
  password_changed_at: string;
  disabled_at: string | null;
  disabled_by: string | null;
  last_login_at: string | null;
}

function toUser(r: Row): User {
  return {
    id: r.id,
    name: r.name,
    role: r.role,
    institutionId: r.institution_id,
    createdAt: r.created_at,
    createdBy: r.created_by,
    passwordChangedAt: r.password_changed_at,
    disabledAt: r.disabled_at,
    lastLoginAt: r.last_login_at,
  };
}

/** 1-64 characters: letters, digits and . _ @ - (an e-mail address works), starting with a letter or digit. */
export const USER_NAME_RE = /^[\p{L}\p{N}][\p{L}\p{N}._@-]{0,63}$/u;

export function userNameProblem(name: string): string | null {
  return USER_NAME_RE.test(name) ? null : 'A user name is 1-64 letters, digits, ".", "_", "@" or "-", starting with a letter or digit.';
}

export function createUsers(deps: {
  db: Db;
  audit: AuditLog;
  passwordMinLength?: number;
  /** scrypt cost of new hashes (default SCRYPT_COST; only tests lower it, to run fast). */
  hashCost?: ScryptParams;
  now?: () => Date;
}): Users {
  const { db, audit } = deps;
  const cost = deps.hashCost ?? SCRYPT_COST;
  const minLength = deps.passwordMinLength ?? 12;
  const now = () => (deps.now ? deps.now() : new Date()).toISOString();
  const byId = db.prepare('SELECT * FROM users WHERE id = ?');
  const byName = db.prepare('SELECT * FROM users WHERE name = ?');
  const insert = db.prepare(
    'INSERT INTO users (name, role, password_hash, institution_id, created_at, created_by, password_changed_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  const setDisabled = db.prepare('UPDATE users SET disabled_at = ?, disabled_by = ? WHERE id = ?');
  const setPassword = db.prepare('UPDATE users SET password_hash = ?, password_changed_at = ? WHERE id = ?');
  const setHash = db.prepare('UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?');
  const setLogin = db.prepare('UPDATE users SET last_login_at = ? WHERE id = ?');

  const row = (name: string) => byName.get(name.normalize('NFKC').trim()) as Row | undefined;
  const need = (name: string): Row => {
    const r = row(name);
    if (!r) throw new AppError('NOT_FOUND', `There is no user "${name}".`);
    return r;
  };
  const problem = (password: string, userName?: string) => passwordProblem(password, { minLength, userName });

  return {
    async add(input) {
      const name = input.name.normalize('NFKC').trim();
      const nameErr = userNameProblem(name);
      if (nameErr) throw new AppError('BAD_REQUEST', nameErr);
      if (!isRole(input.role)) throw new AppError('BAD_REQUEST', 'The role must be "admin" or "user".');
      const pwErr = problem(input.password, name);
      if (pwErr) throw new AppError('BAD_REQUEST', pwErr);
      if (row(name)) throw new AppError('CONFLICT', `There is already a user "${name}".`);
      const hash = await hashPassword(input.password, cost);
      const at = now();
      const id = db.transaction(() => {
        let r;
        try {
          r = insert.run(name, input.role, hash, input.institutionId ?? null, at, `${input.by.kind}:${input.by.name}`, at);
        } catch (e) {
          if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') throw new AppError('CONFLICT', `There is already a user "${name}".`);
          throw e;
        }
        audit.record({ actorKind: input.by.kind, actor: input.by.name, action: 'user.add', ip: input.by.ip ?? null, detail: { user: name, role: input.role } });
        return Number(r.lastInsertRowid);
      })();
      return toUser(byId.get(id) as Row);
    },

    get(id) {
      const r = byId.get(id) as Row | undefined;
      return r ? toUser(r) : null;
    },

    byName(name) {
      const r = row(name);
      return r ? toUser(r) : null;
    },

    list() {
      return (db.prepare('SELECT * FROM users ORDER BY name').all() as Row[]).map(toUser);
    },

    count() {
      return (db.prepare('SELECT COUNT(*) AS n FROM users').get() as { n: number }).n;
    },

    setDisabled(name, disabled, by) {
      const r = need(name);
      if (!!r.disabled_at === disabled) return toUser(r);
      db.transaction(() => {
        setDisabled.run(disabled ? now() : null, disabled ? `${by.kind}:${by.name}` : null, r.id);
        audit.record({ actorKind: by.kind, actor: by.name, action: disabled ? 'user.disable' : 'user.enable', ip: by.ip ?? null, detail: { user: r.name } });
      })();
      return toUser(byId.get(r.id) as Row);
    },

    async setPassword(name, password, by) {
      const r = need(name);
      const pwErr = problem(password, r.name);
      if (pwErr) throw new AppError('BAD_REQUEST', pwErr);
      const hash = await hashPassword(password, cost);
      db.transaction(() => {
        setPassword.run(hash, now(), r.id);
        audit.record({ actorKind: by.kind, actor: by.name, action: 'user.password', ip: by.ip ?? null, detail: { user: r.name } });
      })();
      return toUser(byId.get(r.id) as Row);
    },

    async verify(name, password) {
      const r = typeof name === 'string' && name.length <= 200 ? row(name) : undefined;
      if (!r) {
        await verifyNothing(password, cost);
        return { ok: false, reason: 'unknown-user', user: null };
      }
      if (r.disabled_at) {
        await verifyNothing(password, cost);
        return { ok: false, reason: 'disabled', user: toUser(r) };
      }
      const ok = await verifyPassword(password, r.password_hash);
      return ok ? { ok: true, user: toUser(r) } : { ok: false, reason: 'wrong-password', user: toUser(r) };
    },

    async recordLogin(user, password) {
      setLogin.run(now(), user.id);
      const r = byId.get(user.id) as Row | undefined;
      if (r && needsRehash(r.password_hash, cost)) setHash.run(await hashPassword(password, cost), r.id, r.password_hash);
    },

    passwordProblem: problem,
  };
}
