/**
 * Retry timing of forwarding jobs: capped exponential backoff (forward.retryInitialSeconds, doubling on each
 * transient failure, up to forward.retryMaxSeconds), and the give-up rule (transient failures for
 * forward.giveUpAfterHours since the first one turn the job into 'failed', resendable).
 */

export interface RetryPolicy {
  retryInitialSeconds: number;
  retryMaxSeconds: number;
  giveUpAfterHours: number;
}

/** Delay before the next attempt after the `failures`-th transient failure in a row (1-based), in ms. */
export function retryDelayMs(failures: number, p: RetryPolicy): number {
  const n = Math.max(1, Math.floor(failures));
  // 2^(n-1) overflows to Infinity for huge n: Math.min caps it.
  return Math.min(p.retryInitialSeconds * 2 ** (n - 1), p.retryMaxSeconds) * 1000;
}

/** Whether a job failing transiently since `firstFailureMs` should be given up at `nowMs`. */
export function shouldGiveUp(firstFailureMs: number, nowMs: number, p: RetryPolicy): boolean {
  return nowMs - firstFailureMs >= p.giveUpAfterHours * 3600_000;
}
