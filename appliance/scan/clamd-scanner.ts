/**
 * Scanner backed by clamd over TCP (INSTREAM). Fail closed (see scanner.ts): a clean verdict needs clamd's
 * "stream: OK" for the whole file from a clamd that was seen detecting the EICAR test string within the last
 * minute (so a clamd without usable signatures never yields "clean"). clamd's protocol is spoken by
 * clamd-client.ts (why not node-clamav: see there).
 */
import { open } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../../config/schema.ts';
import { AppError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { clamdCommand, instream, parseScanReply, parseVersion, printable, type ClamdAddress } from './clamd-client.ts';
import { clamdLimits } from './clamd-conf.ts';
import type { ScanResult, Scanner, ScannerStatus } from './scanner.ts';
import { EICAR } from './test-signatures.ts';

export interface ClamdScannerOptions {
  /** Re-check that clamd detects EICAR when the last check is older than this (default 60 s). */
  canaryMaxAgeMs?: number;
  /**
   * Refuse larger files with TOO_LARGE without sending them. Default: the managed clamd's MaxFileSize when
   * scan.clamd.manage is set (clamd-conf.ts), else no limit (an external clamd's limits are its own).
   */
  maxFileBytes?: number | null;
  /** Deadline for PING, VERSION and the EICAR check (default 5 s, at most the per-file deadline). */
  commandTimeoutMs?: number;
  /** Bytes read from the file and sent per INSTREAM chunk (default 256 KiB). */
  chunkBytes?: number;
}

/** At most `n` calls of `fn` at a time; the rest wait in order. */
function createLimiter(n: number) {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active < n) active++;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await fn();
    } finally {
      const next = waiting.shift();
      if (next) next(); // the slot passes on
      else active--;
    }
  };
}

export function createClamdScanner(config: Pick<Config, 'scan' | 'upload'>, log: Logger, opts: ClamdScannerOptions = {}): Scanner {
  const { host, port, timeoutSeconds, maxConcurrent, manage } = config.scan.clamd;
  const addr: ClamdAddress = { host, port };
  const at = `${host}:${port}`;
  const timeoutMs = timeoutSeconds * 1000;
  const commandTimeoutMs = opts.commandTimeoutMs ?? Math.min(5000, timeoutMs);
  const canaryMaxAgeMs = opts.canaryMaxAgeMs ?? 60_000;
  const chunkBytes = opts.chunkBytes ?? 256 * 1024;
  const maxFileBytes = opts.maxFileBytes !== undefined ? opts.maxFileBytes : manage ? clamdLimits(config).limits.maxFileBytes : null;
  const limit = createLimiter(maxConcurrent);

  let verifiedAt = -Infinity;
  let verifying: Promise<void> | null = null;

  /** Scan the EICAR string: clamd must find it, or it has no usable signatures. */
  async function canary(): Promise<void> {
    const r = await instream(addr, EICAR, commandTimeoutMs);
    const text = r.reply.trim();
    if (!/^stream: \S.* FOUND$/.test(text))
      throw new AppError(
        'SCANNER_UNAVAILABLE',
        text === 'stream: OK'
          ? `clamd at ${at} has no usable signatures: it does not detect the EICAR test string`
          : `clamd at ${at} answered the EICAR check with: ${printable(text)}`,
      );
    verifiedAt = Date.now();
  }

  function ensureVerified(): Promise<void> {
    if (Date.now() - verifiedAt < canaryMaxAgeMs) return Promise.resolve();
    verifying ??= canary().finally(() => {
      verifying = null;
    });
    return verifying;
  }

  async function scanOne(file: string): Promise<ScanResult> {
    const name = path.basename(file);
    const t0 = performance.now();
    const fh = await open(file, 'r'); // a missing or unreadable file is the caller's error, thrown as is
    let handedOver = false;
    let bytes = 0;
    try {
      const { size } = await fh.stat();
      bytes = size;
      if (maxFileBytes != null && size > maxFileBytes)
        throw new AppError('TOO_LARGE', `The file is larger than the malware scanner can scan (${maxFileBytes} bytes).`);
      await ensureVerified();
      handedOver = true; // the stream closes the file when instream destroys it
      const reply = await instream(addr, fh.createReadStream({ highWaterMark: chunkBytes }), timeoutMs, chunkBytes);
      const result = parseScanReply(reply);
      const ms = Math.round(performance.now() - t0);
      if (result.verdict === 'infected') log.warn({ file: name, verdict: 'infected', signature: result.signature, bytes, ms }, 'scanned: malware found');
      else log.info({ file: name, verdict: 'clean', bytes, ms }, 'scanned');
      return result;
    } catch (e) {
      if (e instanceof AppError) {
        if (e.code === 'SCANNER_UNAVAILABLE') verifiedAt = -Infinity; // check the signatures again once it is back
        log.warn({ file: name, verdict: 'none', code: e.code, reason: e.message, bytes, ms: Math.round(performance.now() - t0) }, 'scan failed');
      }
      throw e;
    } finally {
      if (!handedOver) await fh.close();
    }
  }

  return {
    scan: (file) => limit(() => scanOne(file)),

    async status(): Promise<ScannerStatus> {
      let version: string | undefined;
      try {
        const pong = await clamdCommand(addr, 'PING', commandTimeoutMs);
        if (pong !== 'PONG') return { available: false, signatures: 'none', detail: `clamd at ${at} answered PING with: ${printable(pong)}` };
        version = await clamdCommand(addr, 'VERSION', commandTimeoutMs);
        await canary();
      } catch (e) {
        verifiedAt = -Infinity;
        return { available: false, signatures: 'none', ...(version ? { version } : {}), detail: (e as Error).message };
      }
      if (parseVersion(version)?.database) return { available: true, signatures: 'full', version };
      return { available: true, signatures: 'test-only', version, detail: 'malware signatures: test set only; run freshclam' };
    },
  };
}
