/**
 * Upload codes: what a hospital hands a patient or referring physician so they can upload images. A code
 * belongs to one institution, expires, has a size allowance and can be revoked; it may carry the patient's
 * expected birth date. The code is stored only as a hash (see code-format.ts) and compared in constant time;
 * everything else (the console, the CLI, the audit trail) names a code by its `ref`, a short unrelated id.
 *
 * Entering a code (`enter`) is rate-limited per client address and globally, and audited; wrong codes get
 * distinct errors: CODE_MISTYPED (the check character or the format says it was mistyped), CODE_UNKNOWN,
 * CODE_EXPIRED, CODE_REVOKED. The code itself never reaches a log or the audit trail.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Config } from '../../config/schema.ts';
import type { ActorKind, AuditLog } from '../audit/audit-log.ts';
import { AppError } from '../errors.ts';
import type { Db } from '../store/db.ts';
import { ALPHABET, generateCode, hashCode, parseCode } from './code-format.ts';
import { addressKey, createFailureLimiter, type FailureLimiter } from './failure-limiter.ts';

export interface UploadCode {
  id: number;
  ref: string;
  institutionId: string;
  createdAt: string;
  createdBy: string;
  expiresAt: string;
  allowanceBytes: number;
  bytesUsed: number;
  /** YYYYMMDD, or null. */
  birthDate: string | null;
  revokedAt: string | null;
  revokedBy: string | null;
  firstUsedAt: string | null;
  lastUsedAt: string | null;
}

export type CodeStatus = 'unused' | 'in-use' | 'expired' | 'revoked';

/** Who acts on a code: a console user, the CLI (system), ... */
export interface Actor {
  kind: ActorKind;
  name: string;
}

export interface CreateCodeInput {
  institutionId: string;
  /** Default: now + upload.defaultCodeDays. */
  expiresAt?: Date;
  /** Default: upload.defaultAllowanceBytes. */
  allowanceBytes?: number;
  /** YYYYMMDD. */
  birthDate?: string | null;
  by: Actor;
  ip?: string | null;
}

export interface UploadCodes {
  /** Create a code. The returned `code` is shown once and never again (only its hash is kept). */
  create(input: CreateCodeInput): { code: string; record: UploadCode };
  /** Someone typed a code at the portal: the code's record, or an AppError (CODE_*, RATE_LIMITED). */
  enter(input: string, client: { ip: string }): UploadCode;
  /** The code with this id if it may still be used (each portal request checks), else CODE_* error. */
  usable(id: number): UploadCode;
  get(id: number): UploadCode | null;
  /** A code as typed, or its ref (either case). Not rate-limited: for the CLI and the console. */
  find(codeOrRef: string): UploadCode | null;
  revoke(id: number, by: Actor, ip?: string | null): UploadCode;
  list(opts?: { institutionId?: string; limit?: number }): UploadCode[];
  status(code: UploadCode, now?: Date): CodeStatus;
  remainingBytes(code: UploadCode): number;
  /** Count bytes received under the code (the upload issue calls this in its commit transaction). */
  addBytesUsed(id: number, bytes: number): void;
}

export interface UploadCodesDeps {
  db: Db;
  audit: AuditLog;
  config: Config;
  /** Default: from config.portal (per address, global, window). */
  limiter?: FailureLimiter;
  now?: () => Date;
}

interface Row {
  id: number;
  ref: string;
  lookup: string;
  code_hash: Buffer;
  institution_id: string;
  created_at: string;
  created_by: string;
  expires_at: string;
  allowance_bytes: number;
  bytes_used: number;
  birth_date: string | null;
  revoked_at: string | null;
  revoked_by: string | null;
  first_used_at: string | null;
  last_used_at: string | null;
}

function toCode(r: Row): UploadCode {
  return {
    id: r.id,
    ref: r.ref,
    institutionId: r.institution_id,
    createdAt: r.created_at,
    createdBy: r.created_by,
    expiresAt: r.expires_at,
    allowanceBytes: r.allowance_bytes,
    bytesUsed: r.bytes_used,
    birthDate: r.birth_date,
    revokedAt: r.revoked_at,
    revokedBy: r.revoked_by,
    firstUsedAt: r.first_used_at,
    lastUsedAt: r.last_used_at,
  };
}

function newRef(): string {
  const b = randomBytes(6);
  let s = 'C';
  for (let i = 0; i < 6; i++) s += ALPHABET[b[i] & 31];
  return s;
}

/** YYYYMMDD that is a real calendar date, else null. */
export function parseBirthDate(s: string): string | null {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(s.trim());
  if (!m) return null;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const dt = new Date(Date.UTC(y, mo - 1, d));
  if (dt.getUTCFullYear() !== y || dt.getUTCMonth() !== mo - 1 || dt.getUTCDate() !== d || y < 1850) return null;
  return m[0];
}

/**
 * An expiry as given on a command line or in a form: a duration from now (`30m`, `12h`, `7d`, `2w`), a date
 * (`2025-12-31`: valid through the end of that day, local time) or a date and time (ISO 8601). Null: invalid.
 */
export function parseExpiry(s: string, now: Date = new Date()): Date | null {
  const t = s.trim();
  const dur = /^(\d{1,5})\s*(m|h|d|w)$/i.exec(t);
  if (dur) {
    const n = Number(dur[1]);
    const unit = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 }[dur[2].toLowerCase() as 'm' | 'h' | 'd' | 'w'];
    return n > 0 ? new Date(now.getTime() + n * unit) : null;
  }
  const day = /^(\d{4})-(\d{2})-(\d{2})$/.exec(t);
  if (day) {
    const d = new Date(Number(day[1]), Number(day[2]) - 1, Number(day[3]), 23, 59, 59, 999);
    return d.getDate() === Number(day[3]) ? d : null;
  }
  if (/^\d{4}-\d{2}-\d{2}T/.test(t)) {
    const d = new Date(t);
    return Number.isNaN(d.getTime()) ? null : d;
  }
  return null;
}

export function createUploadCodes(deps: UploadCodesDeps): UploadCodes {
  const { db, audit, config } = deps;
  const now = deps.now ?? (() => new Date());
  const limiter =
    deps.limiter ??
    createFailureLimiter({
      perKey: config.portal.codeAttemptsPerAddress,
      global: config.portal.codeAttemptsGlobal,
      windowMs: config.portal.codeAttemptWindowMinutes * 60_000,
    });
  /** Rate-limited keys already audited, until when (one audit entry per blocked spell, not per request). */
  const auditedBlocks = new Map<string, number>();

  const byId = db.prepare('SELECT * FROM upload_codes WHERE id = ?');
  const byLookup = db.prepare('SELECT * FROM upload_codes WHERE lookup = ?');
  const byRef = db.prepare('SELECT * FROM upload_codes WHERE ref = ?');
  const insert = db.prepare(
    `INSERT INTO upload_codes (ref, lookup, code_hash, institution_id, created_at, created_by, expires_at, allowance_bytes, birth_date)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const markUsed = db.prepare('UPDATE upload_codes SET first_used_at = COALESCE(first_used_at, ?), last_used_at = ? WHERE id = ?');
  const setRevoked = db.prepare('UPDATE upload_codes SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at IS NULL');
  const addBytes = db.prepare('UPDATE upload_codes SET bytes_used = bytes_used + ? WHERE id = ?');

  const get = (id: number) => {
    const r = byId.get(id) as Row | undefined;
    return r ? toCode(r) : null;
  };

  /** The row whose hash equals the code's, compared in constant time. */
  const lookupCanonical = (canonical: string): Row | null => {
    const hash = hashCode(canonical);
    const row = byLookup.get(hash.subarray(0, 8).toString('hex')) as Row | undefined;
    if (!row) return null;
    return row.code_hash.length === hash.length && timingSafeEqual(row.code_hash, hash) ? row : null;
  };

  const status = (c: UploadCode, at: Date = now()): CodeStatus => {
    if (c.revokedAt) return 'revoked';
    if (at.getTime() >= Date.parse(c.expiresAt)) return 'expired';
    return c.firstUsedAt ? 'in-use' : 'unused';
  };

  const refuseIfUnusable = (c: UploadCode) => {
    const s = status(c);
    if (s === 'revoked') throw new AppError('CODE_REVOKED');
    if (s === 'expired') throw new AppError('CODE_EXPIRED');
  };

  return {
    create(input) {
      const inst = config.institutions.find((i) => i.id === input.institutionId);
      if (!inst) throw new AppError('BAD_REQUEST', `There is no institution "${input.institutionId}". Known: ${config.institutions.map((i) => i.id).join(', ')}.`);
      const created = now();
      const expiresAt = input.expiresAt ?? new Date(created.getTime() + config.upload.defaultCodeDays * 86_400_000);
      if (!(expiresAt.getTime() > created.getTime())) throw new AppError('BAD_REQUEST', 'The expiry must be in the future.');
      const allowance = input.allowanceBytes ?? config.upload.defaultAllowanceBytes;
      if (!Number.isSafeInteger(allowance) || allowance < 1) throw new AppError('BAD_REQUEST', 'The allowance must be a whole number of bytes, at least 1.');
      let birthDate: string | null = null;
      if (input.birthDate != null && input.birthDate !== '') {
        birthDate = parseBirthDate(input.birthDate);
        if (!birthDate) throw new AppError('BAD_REQUEST', 'The birth date must be a date written YYYYMMDD.');
      }
      for (let attempt = 0; ; attempt++) {
        const code = generateCode();
        const canonical = parseCode(code);
        if (!canonical.ok) throw new Error('generated an unparsable code');
        const hash = hashCode(canonical.canonical);
        const ref = newRef();
        try {
          const id = db.transaction(() => {
            const r = insert.run(ref, hash.subarray(0, 8).toString('hex'), hash, inst.id, created.toISOString(), `${input.by.kind}:${input.by.name}`, expiresAt.toISOString(), allowance, birthDate);
            const newId = Number(r.lastInsertRowid);
            audit.record({
              actorKind: input.by.kind,
              actor: input.by.name,
              action: 'code.create',
              ip: input.ip ?? null,
              detail: { ref, institution: inst.id, expiresAt: expiresAt.toISOString(), allowanceBytes: allowance, birthDateGiven: birthDate !== null },
            });
            return newId;
          })();
          return { code, record: get(id)! };
        } catch (e) {
          // A ref (30 random bits) or lookup prefix may collide, rarely: draw again.
          if (attempt < 5 && (e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') continue;
          throw e;
        }
      }
    },

    enter(input, client) {
      const key = addressKey(client.ip);
      const blocked = limiter.check(key);
      if (blocked) {
        const t = now().getTime();
        if ((auditedBlocks.get(key) ?? 0) <= t) {
          if (auditedBlocks.size > 10_000) auditedBlocks.clear();
          auditedBlocks.set(key, t + blocked.retryAfterMs);
          audit.record({ actorKind: 'system', actor: 'portal', action: 'code.rate-limited', ip: client.ip, detail: { scope: blocked.scope, retryAfterSeconds: Math.ceil(blocked.retryAfterMs / 1000) } });
        }
        throw new AppError('RATE_LIMITED');
      }
      const fail = (reason: string, code: UploadCode | null, err: AppError, counts: boolean): never => {
        if (counts) limiter.fail(key);
        audit.record({ actorKind: 'code', actor: code?.ref ?? '-', action: 'code.enter-failed', ip: client.ip, detail: { reason } });
        throw err;
      };
      const parsed = parseCode(input);
      if (!parsed.ok) return fail(parsed.reason === 'check' ? 'mistyped' : `malformed (${parsed.reason})`, null, new AppError('CODE_MISTYPED'), true);
      const row = lookupCanonical(parsed.canonical);
      if (!row) return fail('unknown', null, new AppError('CODE_UNKNOWN'), true);
      const code = toCode(row);
      // A revoked or expired code proves its holder knows a real code: not counted as a guess.
      const s = status(code);
      if (s === 'revoked') return fail('revoked', code, new AppError('CODE_REVOKED'), false);
      if (s === 'expired') return fail('expired', code, new AppError('CODE_EXPIRED'), false);
      const at = now().toISOString();
      markUsed.run(at, at, code.id);
      audit.record({ actorKind: 'code', actor: code.ref, action: 'code.enter', ip: client.ip, detail: { institution: code.institutionId } });
      return get(code.id)!;
    },

    usable(id) {
      const c = get(id);
      if (!c) throw new AppError('CODE_UNKNOWN');
      refuseIfUnusable(c);
      return c;
    },

    get,

    find(codeOrRef) {
      const parsed = parseCode(codeOrRef);
      if (parsed.ok) {
        const row = lookupCanonical(parsed.canonical);
        if (row) return toCode(row);
      }
      const r = byRef.get(codeOrRef.trim().toUpperCase()) as Row | undefined;
      return r ? toCode(r) : null;
    },

    revoke(id, by, ip) {
      const c = get(id);
      if (!c) throw new AppError('NOT_FOUND', 'There is no such upload code.');
      if (c.revokedAt) return c;
      db.transaction(() => {
        setRevoked.run(now().toISOString(), `${by.kind}:${by.name}`, id);
        audit.record({ actorKind: by.kind, actor: by.name, action: 'code.revoke', ip: ip ?? null, detail: { ref: c.ref, institution: c.institutionId } });
      })();
      return get(id)!;
    },

    list(opts = {}) {
      const rows = opts.institutionId
        ? db.prepare('SELECT * FROM upload_codes WHERE institution_id = ? ORDER BY id DESC LIMIT ?').all(opts.institutionId, opts.limit ?? 1000)
        : db.prepare('SELECT * FROM upload_codes ORDER BY id DESC LIMIT ?').all(opts.limit ?? 1000);
      return (rows as Row[]).map(toCode);
    },

    status,

    remainingBytes(c) {
      return Math.max(0, c.allowanceBytes - c.bytesUsed);
    },

    addBytesUsed(id, bytes) {
      addBytes.run(bytes, id);
    },
  };
}
