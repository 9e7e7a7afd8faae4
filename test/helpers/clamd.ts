/**
 * A private clamd for a test: its own clamd.conf (the appliance's template, via startClamd), a small
 * signature set generated in the test's folder (EICAR .ndb + an .hdb line for clamav-testfiles' clam.exe),
 * a free loopback port. Stopped at the end of the test.
 */
import path from 'node:path';
import type { ClamdLimits } from '../../appliance/scan/clamd-conf.ts';
import { startClamd, type ClamdProcess } from '../../appliance/scan/managed-clamd.ts';
import { writeTestSignatures } from '../../appliance/scan/test-signatures.ts';
import { silentLogger, type Logger } from '../../appliance/log.ts';
import { freePort } from './net.ts';

/** The clamav-testfiles file the test set has a hash signature for (Debian package clamav-testfiles). */
export const CLAM_EXE = '/usr/share/clamav-testfiles/clam.exe';

export const testLimits: ClamdLimits = {
  streamMaxBytes: 64 * 1024 * 1024,
  maxFileBytes: 64 * 1024 * 1024,
  maxScanBytes: 128 * 1024 * 1024,
  maxScanTimeMs: 60_000,
  maxThreads: 10,
};

export interface TestClamd extends ClamdProcess {
  /** Folder of clamd.conf, pid file and temporary files. */
  dir: string;
  dbDir: string;
}

/**
 * Start clamd in `dir` (created; no blanks in the path) on a free 127.0.0.1 port; `limits` override
 * testLimits (e.g. a 1 MB StreamMaxLength). Registers `stop()` with `t.teardown`.
 */
export async function startTestClamd(
  t: { teardown(fn: () => unknown): void },
  dir: string,
  opts: { limits?: Partial<ClamdLimits>; log?: Logger } = {},
): Promise<TestClamd> {
  const dbDir = path.join(dir, 'db');
  writeTestSignatures(dbDir, [CLAM_EXE]);
  const proc = await startClamd(
    {
      dir,
      host: '127.0.0.1',
      port: await freePort(),
      databaseDir: dbDir,
      limits: { ...testLimits, ...opts.limits },
      startTimeoutMs: 30_000,
      stopGraceMs: 5000,
    },
    opts.log ?? silentLogger(),
  );
  t.teardown(() => proc.stop());
  return Object.assign(proc, { dir, dbDir });
}
