/**
 * Sliding-window limits on failed attempts (wrong upload codes here; console log-ins build on createSlidingWindow): at most
 * `perKey` failures per key (a client address) and `global` failures in total within `windowMs`. Once a key,
 * or everyone, is over the limit, further attempts are refused until old failures leave the window.
 *
 * Kept in memory: a restart of the appliance resets the counts. Memory is bounded: each key keeps at most
 * `perKey` timestamps, the global list at most `global`, and at most `maxKeys` keys are tracked (the least
 * recently failed are forgotten first).
 */
import { isIPv6 } from 'node:net';

export interface FailureLimiterOptions {
  perKey: number;
  global: number;
  windowMs: number;
  maxKeys?: number;
  now?: () => number;
}

export type Blocked = null | { scope: 'key' | 'global'; retryAfterMs: number };

export interface FailureLimiter {
  /** Is this key (or everyone) over the limit now? */
  check(key: string): Blocked;
  /** Count one failure for the key. */
  fail(key: string): void;
  /** Failures of the key in the current window (for tests and the console). */
  count(key: string): number;
}

/**
 * Failures per key in a sliding window: at most `limit` timestamps per key and `maxKeys` keys (the least
 * recently failed are forgotten first). `blocked(key)` says how long until the key may try again, or null.
 */
export function createSlidingWindow(limit: number, windowMs: number, maxKeys: number, now: () => number) {
  const byKey = new Map<string, number[]>();
  const live = (key: string, t: number): number[] => {
    const times = byKey.get(key);
    if (!times) return [];
    let i = 0;
    while (i < times.length && times[i] <= t - windowMs) i++;
    if (i) times.splice(0, i);
    if (!times.length) byKey.delete(key);
    return times;
  };
  return {
    blocked(key: string): number | null {
      const t = now();
      const times = live(key, t);
      return times.length >= limit ? times[0] + windowMs - t : null;
    },
    fail(key: string) {
      const t = now();
      const times = live(key, t);
      byKey.delete(key); // re-insert: Map order is least recently failed first
      times.push(t);
      if (times.length > limit) times.splice(0, times.length - limit);
      byKey.set(key, times);
      while (byKey.size > maxKeys) byKey.delete(byKey.keys().next().value as string);
    },
    clear(key: string) {
      byKey.delete(key);
    },
    count(key: string): number {
      return live(key, now()).length;
    },
  };
}

export function createFailureLimiter(opts: FailureLimiterOptions): FailureLimiter {
  const now = opts.now ?? Date.now;
  const byKey = createSlidingWindow(opts.perKey, opts.windowMs, opts.maxKeys ?? 100_000, now);
  const everyone = createSlidingWindow(opts.global, opts.windowMs, 1, now);
  return {
    check(key) {
      const g = everyone.blocked('');
      if (g !== null) return { scope: 'global', retryAfterMs: g };
      const k = byKey.blocked(key);
      return k === null ? null : { scope: 'key', retryAfterMs: k };
    },
    fail(key) {
      everyone.fail('');
      byKey.fail(key);
    },
    count: (key) => byKey.count(key),
  };
}

/**
 * The key a client address is limited by: IPv4 as is (IPv4-mapped IPv6 unwrapped), IPv6 by its /64 (one
 * household or host usually owns a whole /64, so per-address limits would be easy to sidestep).
 */
export function addressKey(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1];
  if (!isIPv6(ip)) return ip;
  const [head, tail = ''] = ip.split('::');
  const h = head ? head.split(':') : [];
  const tl = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - tl.length).fill('0'), ...tl] : h;
  return `${groups.slice(0, 4).map((g) => parseInt(g || '0', 16).toString(16)).join(':')}::/64`;
}
