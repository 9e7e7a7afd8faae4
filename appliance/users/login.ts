/**
 * The log-in check of the console: throttle (per address and per user name, login-throttle.ts), then the
 * password (users.ts), with an audit entry for every outcome:
 *   login            a user logged in
 *   login.failed     wrong password, unknown name or disabled user (the reason is in the trail, never shown)
 *   login.throttled  attempts refused without a check, once per blocked spell and key (not per request)
 *   logout           a user logged out
 * The person at the login form learns only "wrong name or password" or "too many attempts, wait N minutes".
 * Passwords never reach the audit trail or a log.
 */
import type { AuditLog } from '../audit/audit-log.ts';
import type { LoginThrottle } from './login-throttle.ts';
import type { User, Users } from './users.ts';

export type LoginOutcome = { ok: true; user: User } | { ok: false; error: 'failed' } | { ok: false; error: 'throttled'; retryAfterMs: number };

export interface Login {
  attempt(name: string, password: string, ip: string): Promise<LoginOutcome>;
  logout(user: User, ip: string | null): void;
}

/** A typed user name as the trail shows it: no control characters, at most 64 characters. */
function shownName(name: string): string {
  const s = [...name.replace(/[\x00-\x1f\x7f]/g, ' ').trim()].slice(0, 64).join('');
  return s || '-';
}

export function createLogin(deps: { users: Users; audit: AuditLog; throttle: LoginThrottle; now?: () => number }): Login {
  const { users, audit, throttle } = deps;
  const now = deps.now ?? Date.now;
  /** Blocked spells already audited: key -> until when. */
  const auditedBlocks = new Map<string, number>();

  return {
    async attempt(name, password, ip) {
      const typed = typeof name === 'string' ? name : '';
      const blocked = throttle.check(ip, typed);
      if (blocked) {
        const key = `${blocked.scope}:${blocked.scope === 'user' ? typed.trim().toLowerCase() : ip}`;
        const t = now();
        if ((auditedBlocks.get(key) ?? 0) <= t) {
          if (auditedBlocks.size > 10_000) auditedBlocks.clear();
          auditedBlocks.set(key, t + blocked.retryAfterMs);
          audit.record({
            actorKind: 'user',
            actor: shownName(typed),
            action: 'login.throttled',
            ip,
            detail: { scope: blocked.scope, retryAfterSeconds: Math.ceil(blocked.retryAfterMs / 1000) },
          });
        }
        return { ok: false, error: 'throttled', retryAfterMs: blocked.retryAfterMs };
      }
      const result = await users.verify(typed, typeof password === 'string' ? password : '');
      if (!result.ok) {
        throttle.fail(ip, typed);
        audit.record({ actorKind: 'user', actor: result.user?.name ?? shownName(typed), action: 'login.failed', ip, detail: { reason: result.reason } });
        return { ok: false, error: 'failed' };
      }
      throttle.succeed(typed);
      await users.recordLogin(result.user, password);
      audit.record({ actorKind: 'user', actor: result.user.name, action: 'login', ip, detail: { role: result.user.role } });
      return { ok: true, user: result.user };
    },

    logout(user, ip) {
      audit.record({ actorKind: 'user', actor: user.name, action: 'logout', ip });
    },
  };
}
