/**
 * Throttling of console log-ins: failed attempts are counted per client address (an IPv6 /64, see
 * addressKey) and per user name (case-insensitive), each in a sliding window. Once either is at its limit,
 * further attempts for that address or that name are refused without checking the password, until the oldest
 * failure leaves the window. A successful log-in clears its user name's count (not the address's: one
 * address guessing many names stays limited).
 *
 * Kept in memory (a restart resets it), bounded: at most `limit` timestamps per key, at most `maxKeys` keys
 * per kind (the least recently failed are forgotten first).
 */
import { addressKey, createSlidingWindow } from '../codes/failure-limiter.ts';

export interface LoginThrottleOptions {
  perAddress: number;
  perUser: number;
  windowMs: number;
  maxKeys?: number;
  now?: () => number;
}

export type LoginBlock = null | { scope: 'address' | 'user'; retryAfterMs: number };

export interface LoginThrottle {
  /** Is this address or this user name over its limit now? */
  check(ip: string, userName: string): LoginBlock;
  /** Count a failed attempt against both. */
  fail(ip: string, userName: string): void;
  /** A successful log-in: forget the name's failures. */
  succeed(userName: string): void;
  /** Failures in the window (tests, diagnostics). */
  counts(ip: string, userName: string): { address: number; user: number };
}

/** The key a user name is counted under: trimmed, NFKC, lower case, at most 200 characters. */
export function userKey(name: string): string {
  return name.normalize('NFKC').trim().toLowerCase().slice(0, 200);
}

export function createLoginThrottle(opts: LoginThrottleOptions): LoginThrottle {
  const now = opts.now ?? Date.now;
  const maxKeys = opts.maxKeys ?? 100_000;
  const byAddress = createSlidingWindow(opts.perAddress, opts.windowMs, maxKeys, now);
  const byUser = createSlidingWindow(opts.perUser, opts.windowMs, maxKeys, now);
  return {
    check(ip, userName) {
      const a = byAddress.blocked(addressKey(ip));
      const u = byUser.blocked(userKey(userName));
      if (a === null && u === null) return null;
      // When both are blocked, the longer wait is the one that matters.
      if (u === null || (a !== null && a >= u)) return { scope: 'address', retryAfterMs: a! };
      return { scope: 'user', retryAfterMs: u };
    },
    fail(ip, userName) {
      byAddress.fail(addressKey(ip));
      if (userKey(userName)) byUser.fail(userKey(userName));
    },
    succeed(userName) {
      byUser.clear(userKey(userName));
    },
    counts(ip, userName) {
      return { address: byAddress.count(addressKey(ip)), user: byUser.count(userKey(userName)) };
    },
  };
}
