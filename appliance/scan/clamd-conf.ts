/**
 * clamd.conf for a clamd we start (the managed one, the tests' one): the one template in
 * config/clamd.conf.template, filled in here. Also the size limits derived from the appliance's own.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../../config/schema.ts';

export const CLAMD_CONF_TEMPLATE = fileURLToPath(new URL('../../config/clamd.conf.template', import.meta.url));

/** clamd's option parser resets SIZE values above this (4 GiB - 1) to 4G. */
export const CLAMD_SIZE_CAP = 4294967295;
/** libclamav cannot scan files larger than 2 GiB - 1 and clamps MaxFileSize to it. */
export const CLAMD_FILE_SIZE_CAP = 2147483647;

export interface ClamdLimits {
  /** StreamMaxLength: most bytes clamd accepts in one INSTREAM. */
  streamMaxBytes: number;
  /** MaxFileSize: largest file (or file inside a container) clamd scans. */
  maxFileBytes: number;
  /** MaxScanSize: most data scanned for one input, container contents included. */
  maxScanBytes: number;
  /** MaxScanTime in ms. */
  maxScanTimeMs: number;
  maxThreads: number;
}

/**
 * Limits for a clamd serving this appliance: at least upload.maxFileBytes each (capped where clamd caps them),
 * MaxScanSize twice that (containers count their contents too), MaxScanTime the per-file deadline.
 * `notes` says which limits fell short of the appliance's because of clamd's caps.
 */
export function clamdLimits(config: Pick<Config, 'scan' | 'upload'>): { limits: ClamdLimits; notes: string[] } {
  const want = config.upload.maxFileBytes;
  const limits: ClamdLimits = {
    streamMaxBytes: Math.min(want, CLAMD_SIZE_CAP),
    maxFileBytes: Math.min(want, CLAMD_FILE_SIZE_CAP),
    maxScanBytes: Math.min(Math.max(2 * want, 100 * 1024 * 1024), CLAMD_SIZE_CAP),
    maxScanTimeMs: config.scan.clamd.timeoutSeconds * 1000,
    maxThreads: Math.max(10, config.scan.clamd.maxConcurrent + 2),
  };
  const notes: string[] = [];
  if (want > CLAMD_FILE_SIZE_CAP)
    notes.push(
      `upload.maxFileBytes (${want}) is above the largest file clamd can scan (${CLAMD_FILE_SIZE_CAP} bytes): larger files are refused as too large, never passed unscanned`,
    );
  return { limits, notes };
}

export interface ClamdConfValues {
  host: string;
  port: number;
  databaseDir: string;
  pidFile: string;
  tempDir: string;
  limits: ClamdLimits;
}

/** Fill in the template. Throws if a value is unusable for clamd (a path with blanks) or a placeholder is left. */
export function renderClamdConf(v: ClamdConfValues, templatePath = CLAMD_CONF_TEMPLATE): string {
  for (const [name, p] of [['database folder', v.databaseDir], ['pid file', v.pidFile], ['temporary folder', v.tempDir]] as const)
    if (/\s/.test(p)) throw new Error(`clamd cannot use a ${name} path containing blanks: ${JSON.stringify(p)} (choose a dataDir without spaces)`);
  const values: Record<string, string> = {
    TCP_ADDR: v.host,
    TCP_PORT: String(v.port),
    DATABASE_DIR: v.databaseDir,
    PID_FILE: v.pidFile,
    TEMP_DIR: v.tempDir,
    STREAM_MAX_LENGTH: String(v.limits.streamMaxBytes),
    MAX_FILE_SIZE: String(v.limits.maxFileBytes),
    MAX_SCAN_SIZE: String(v.limits.maxScanBytes),
    MAX_SCAN_TIME: String(v.limits.maxScanTimeMs),
    MAX_THREADS: String(v.limits.maxThreads),
    MAX_QUEUE: String(Math.max(100, 2 * v.limits.maxThreads)),
  };
  return readFileSync(templatePath, 'utf8')
    .split('\n')
    .map((line) =>
      line.startsWith('#')
        ? line
        : line.replace(/\{\{([A-Z_]+)\}\}/g, (all, name: string) => {
            if (!(name in values)) throw new Error(`${templatePath}: unknown placeholder ${all}`);
            return values[name];
          }),
    )
    .join('\n');
}

/** Write `<dir>/clamd.conf` (and create the pid file's and temporary folders); returns its path. */
export function writeClamdConf(dir: string, v: ClamdConfValues, templatePath?: string): string {
  mkdirSync(dir, { recursive: true });
  mkdirSync(v.tempDir, { recursive: true });
  mkdirSync(path.dirname(v.pidFile), { recursive: true });
  const conf = path.join(dir, 'clamd.conf');
  writeFileSync(conf, renderClamdConf(v, templatePath));
  return conf;
}
