/**
 * Transfer figures for the progress line: the rate over a sliding window (so a pause or a burst does not
 * distort it for long) and the time left. Pure (no DOM): tested in Node.
 */

export interface RateMeter {
  /** Record the total bytes sent so far at time `ms` (monotonic clock). */
  sample(ms: number, totalBytes: number): void;
  /** Bytes per second over the window, or null while there is too little to say. */
  rate(): number | null;
  /** Forget the history (after a pause: the gap must not count). */
  reset(): void;
}

export function createRateMeter(windowMs = 8000, minSpanMs = 1500): RateMeter {
  let samples: { ms: number; bytes: number }[] = [];
  return {
    sample(ms, totalBytes) {
      samples.push({ ms, bytes: totalBytes });
      while (samples.length > 2 && ms - samples[1].ms >= windowMs) samples.shift();
    },
    rate() {
      if (samples.length < 2) return null;
      const a = samples[0];
      const b = samples[samples.length - 1];
      const span = b.ms - a.ms;
      if (span < minSpanMs) return null;
      return Math.max(0, ((b.bytes - a.bytes) * 1000) / span);
    },
    reset() {
      samples = [];
    },
  };
}

/** Seconds left at this rate, or null when unknown. */
export function secondsLeft(remainingBytes: number, bytesPerSecond: number | null): number | null {
  if (bytesPerSecond === null || bytesPerSecond <= 0) return null;
  return Math.ceil(remainingBytes / bytesPerSecond);
}

/** A duration in the largest sensible unit, rounded up: { unit: 'minutes', count: 3 }. */
export function roundDuration(seconds: number): { unit: 'seconds' | 'minutes' | 'hours'; count: number } {
  if (seconds <= 55) return { unit: 'seconds', count: Math.max(5, Math.ceil(seconds / 5) * 5) };
  if (seconds < 3600) return { unit: 'minutes', count: Math.ceil(seconds / 60) };
  return { unit: 'hours', count: Math.round((seconds / 3600) * 10) / 10 };
}

/** Per mille of `done` in `total` (for <progress max="1000">), 0 for an empty total. */
export function perMille(done: number, total: number): number {
  return total > 0 ? Math.min(1000, Math.floor((done * 1000) / total)) : 1000;
}
