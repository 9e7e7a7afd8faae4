/**
 * Sliding-window limiter for failed attempts (wrong upload codes now, wrong passwords later): at most
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

export function createFailureLimiter(opts: FailureLimiterOptions): FailureLimiter {
  const now = opts.now ?? Date.now;
  const maxKeys = opts.maxKeys ?? 100_000;
  const byKey = new Map<string, number[]>();
  let globalTimes: number[] = [];

  const prune = (times: number[], t: number) => {
    let i = 0;
    while (i < times.length && times[i] <= t - opts.windowMs) i++;
    if (i) times.splice(0, i);
    return times;
  };

  return {
    check(key) {
      const t = now();
      prune(globalTimes, t);
      if (globalTimes.length >= opts.global) return { scope: 'global', retryAfterMs: globalTimes[0] + opts.windowMs - t };
      const times = byKey.get(key);
      if (!times) return null;
      prune(times, t);
      if (times.length === 0) {
        byKey.delete(key);
        return null;
      }
      if (times.length >= opts.perKey) return { scope: 'key', retryAfterMs: times[0] + opts.windowMs - t };
      return null;
    },
    fail(key) {
      const t = now();
      globalTimes.push(t);
      if (globalTimes.length > opts.global) globalTimes = globalTimes.slice(-opts.global);
      const times = byKey.get(key) ?? [];
      byKey.delete(key); // re-insert: Map order is then least recently failed first
      times.push(t);
      if (times.length > opts.perKey) times.splice(0, times.length - opts.perKey);
      byKey.set(key, times);
      while (byKey.size > maxKeys) byKey.delete(byKey.keys().next().value as string);
    },
    count(key) {
      const times = byKey.get(key);
      return times ? prune(times, now()).length : 0;
    },
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
