/**
 * The malware scanner as the ingest pipeline sees it. One implementation talks to clamd (clamd-scanner.ts);
 * tests of other layers may supply their own.
 *
 * Contract (fail closed): `scan` resolves only with a definite verdict from a scanner that has signatures
 * loaded. Anything else (scanner down, refusing, too slow, an unexpected or error reply, no signatures) THROWS
 * `AppError('SCANNER_UNAVAILABLE', reason)`: the caller holds the file and tries again later
 * (`waitUntilAvailable` tells it when). A file the scanner can never take (larger than its configured
 * limits) throws `AppError('TOO_LARGE')`: refused, not held. Errors reading the file itself are rethrown as
 * they are.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { AppError } from '../errors.ts';

export type ScanResult = { verdict: 'clean' } | { verdict: 'infected'; signature: string };

export interface ScannerStatus {
  /** Answers PING and detects the EICAR test string: scans give definite verdicts now. */
  available: boolean;
  /**
   * 'full': an official signature set is loaded (clamd reports a database version, i.e. freshclam's daily);
   * 'test-only': clamd detects EICAR but has no official database (a generated test set): run freshclam;
   * 'none': unavailable, or answers but detects nothing.
   */
  signatures: 'full' | 'test-only' | 'none';
  /** clamd's VERSION reply, e.g. "ClamAV 1.4.6/27431/Tue Nov 25 09:34:02 2026". */
  version?: string;
  /** Why it is unavailable, or a note worth showing (e.g. "test signatures only; run freshclam"). */
  detail?: string;
}

export interface Scanner {
  /** Scan one file (streamed, never read into memory whole). See the contract above. */
  scan(file: string): Promise<ScanResult>;
  /** A cheap health check (a few tiny round trips); never throws. */
  status(): Promise<ScannerStatus>;
}

export interface WaitOptions {
  /** Give up after this long (default: wait forever, until `signal` aborts). */
  timeoutMs?: number;
  /** Time between checks (default 1000 ms). */
  intervalMs?: number;
  signal?: AbortSignal;
}

/**
 * Resolve with the status once the scanner is available (checks every `intervalMs`). Rejects with
 * AppError('SCANNER_UNAVAILABLE', last reason) after `timeoutMs`, or with the abort reason when `signal` aborts.
 * The ingest pipeline uses it to know when to re-scan held files.
 */
export async function waitUntilAvailable(scanner: Scanner, opts: WaitOptions = {}): Promise<ScannerStatus> {
  const interval = opts.intervalMs ?? 1000;
  const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
  for (;;) {
    opts.signal?.throwIfAborted();
    const st = await scanner.status();
    if (st.available) return st;
    const left = deadline - Date.now();
    if (left <= 0)
      throw new AppError('SCANNER_UNAVAILABLE', `The malware scanner did not become available within ${opts.timeoutMs} ms: ${st.detail ?? 'no answer'}`);
    await sleep(Math.min(interval, left), undefined, { signal: opts.signal });
  }
}
