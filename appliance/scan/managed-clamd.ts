/**
 * A clamd run as our child process: the appliance's own (scan.clamd.manage, the embedded default of
 * `npm start`) and the tests' private ones. One way to write its clamd.conf (clamd-conf.ts), one way to start,
 * watch and stop it.
 *
 * Signatures of the managed clamd: scan.databaseDir if set; else freshclam's /var/lib/clamav if it holds
 * databases (*.cvd, *.cld, *.cud); else a generated TEST-ONLY set under <dataDir>/clamd/db (EICAR and, when
 * Debian's clamav-testfiles is installed, one of its files), reported loudly (`testSignaturesOnly`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../../config/schema.ts';
import { AppError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { clamdCommand } from './clamd-client.ts';
import { clamdLimits, writeClamdConf, type ClamdLimits } from './clamd-conf.ts';
import { writeTestSignatures } from './test-signatures.ts';

export const CLAMD_BINARY = '/usr/sbin/clamd';
export const FRESHCLAM_DIR = '/var/lib/clamav';
/** A file of Debian's clamav-testfiles given a hash signature in the generated test set (when installed). */
export const CLAMAV_TESTFILE = '/usr/share/clamav-testfiles/clam.exe';

export interface ClamdProcessOptions {
  /** Folder for clamd.conf, the pid file and clamd's temporary files. */
  dir: string;
  host: string;
  port: number;
  databaseDir: string;
  limits: ClamdLimits;
  /** Deadline for clamd to load its signatures and answer PING. */
  startTimeoutMs: number;
  clamdPath?: string;
  /** Start clamd again (backing off 1 s, 2 s, ... 60 s) when it exits unexpectedly. Default true. */
  restartOnCrash?: boolean;
  /** Time clamd gets after SIGTERM before SIGKILL. Default 10 s. */
  stopGraceMs?: number;
}

export interface ClamdProcess {
  readonly host: string;
  readonly port: number;
  readonly confPath: string;
  /** pid of the running clamd, undefined while it is not running. */
  pid(): number | undefined;
  /** SIGTERM, SIGKILL after the grace period; resolves once it has exited. Idempotent. */
  stop(): Promise<void>;
  /** Stop, then start again with the same config; resolves once it answers PING. */
  restart(): Promise<void>;
}

export interface ManagedClamd extends ClamdProcess {
  /** The signatures are the generated test set: detects EICAR and nothing real. Show it (healthz, console). */
  readonly testSignaturesOnly: boolean;
  readonly signatureSource: 'configured' | 'freshclam' | 'test-only';
  readonly databaseDir: string;
  readonly limits: ClamdLimits;
}

const DB_FILE = /\.(cvd|cld|cud|ndb|ndu|hdb|hsb|hdu|hsu|mdb|msb|mdu|msu|ldb|ldu|cdb|idb|fp|sfp|ign|ign2|ftm|pdb|gdb|wdb|cbc|cat|crb|yar|yara|db)$/i;
const OFFICIAL_DB = /\.(cvd|cld|cud)$/i;

function listDb(dir: string, re: RegExp): string[] {
  try {
    return readdirSync(dir).filter((f) => re.test(f));
  } catch {
    return [];
  }
}

/** Which signatures the managed clamd uses (see the header). Throws if scan.databaseDir holds no database. */
export function chooseSignatures(
  config: Pick<Config, 'scan' | 'dataDir'>,
  freshclamDir = FRESHCLAM_DIR,
): { databaseDir: string; source: ManagedClamd['signatureSource'] } {
  if (config.scan.databaseDir) {
    const dir = path.resolve(config.scan.databaseDir);
    if (!listDb(dir, DB_FILE).length)
      throw new AppError('SCANNER_UNAVAILABLE', `scan.databaseDir ${dir} holds no ClamAV database files (*.cvd, *.cld, *.ndb, ...)`);
    return { databaseDir: dir, source: 'configured' };
  }
  if (listDb(freshclamDir, OFFICIAL_DB).length) return { databaseDir: freshclamDir, source: 'freshclam' };
  return { databaseDir: path.join(config.dataDir, 'clamd', 'db'), source: 'test-only' };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A clamd left running by an earlier run of ours that was killed (SIGKILL leaves the child orphaned) would hold
 * the port. Recognised by our pid file and its command line naming our clamd.conf; terminated.
 */
async function endOrphan(pidFile: string, confPath: string, graceMs: number, log: Logger): Promise<void> {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 1 || !alive(pid)) return;
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return;
  }
  if (!cmdline.includes('clamd') || !cmdline.includes(confPath)) return;
  log.warn({ pid }, 'a clamd from an earlier run is still running with our config: stopping it');
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (alive(pid) && Date.now() < deadline) await sleep(50);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
  while (alive(pid)) await sleep(20);
}

function portInUse(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Start clamd with a clamd.conf rendered from the template; resolves once it answers PING. */
export async function startClamd(opts: ClamdProcessOptions, log: Logger): Promise<ClamdProcess> {
  const clamdPath = opts.clamdPath ?? CLAMD_BINARY;
  const graceMs = opts.stopGraceMs ?? 10_000;
  const pidFile = path.join(opts.dir, 'clamd.pid');
  const confPath = writeClamdConf(opts.dir, {
    host: opts.host,
    port: opts.port,
    databaseDir: opts.databaseDir,
    pidFile,
    tempDir: path.join(opts.dir, 'tmp'),
    limits: opts.limits,
  });
  const at = `${opts.host}:${opts.port}`;
  const lastLines: string[] = [];
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let stopping = false;
  let restartTimer: NodeJS.Timeout | undefined;
  let backoffMs = 1000;

  const remember = (line: string) => {
    lastLines.push(line);
    if (lastLines.length > 30) lastLines.shift();
  };

  async function launch(): Promise<void> {
    await endOrphan(pidFile, confPath, graceMs, log);
    if (await portInUse(opts.host, opts.port))
      throw new AppError(
        'SCANNER_UNAVAILABLE',
        `cannot start clamd: ${at} is already in use (another clamd? set scan.clamd.port, or scan.clamd.manage false to use that one)`,
      );
    lastLines.length = 0;
    const proc = spawn(clamdPath, ['--config-file', confPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    let spawnError: Error | undefined;
    let exitInfo = '';
    exited = new Promise<void>((resolve) => {
      proc.once('error', (err) => {
        spawnError = err;
        resolve();
      });
      // 'close', not 'exit': by then its last output lines have been read too.
      proc.once('close', (code, signal) => {
        exitInfo = signal ? `signal ${signal}` : `code ${code}`;
        resolve();
      });
    });
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      remember(line);
      log.debug({ clamd: line }, 'clamd');
    });
    createInterface({ input: proc.stderr! }).on('line', (line) => {
      remember(line);
      log.warn({ clamd: line }, 'clamd');
    });

    const failed = (why: string) =>
      new AppError('SCANNER_UNAVAILABLE', `clamd did not start on ${at}: ${why}${lastLines.length ? `; its last lines:\n  ${lastLines.slice(-12).join('\n  ')}` : ''}`);
    const t0 = Date.now();
    const deadline = t0 + opts.startTimeoutMs;
    const exitedEarly = exited.then(() => 'exited' as const);
    for (;;) {
      const r = await Promise.race([
        exitedEarly,
        clamdCommand(opts, 'PING', 2000).then(
          (reply) => (reply === 'PONG' ? ('up' as const) : ('no' as const)),
          () => 'no' as const,
        ),
      ]);
      if (r === 'up') break;
      if (r === 'exited') {
        child = undefined;
        if (spawnError)
          throw failed(
            (spawnError as NodeJS.ErrnoException).code === 'ENOENT'
              ? `${clamdPath} not found (install Debian's clamav-daemon; \`npm start\` does)`
              : spawnError.message,
          );
        throw failed(`it exited (${exitInfo}) before answering PING`);
      }
      if (Date.now() > deadline) {
        await kill(proc);
        child = undefined;
        throw failed(`no answer to PING within ${Math.round(opts.startTimeoutMs / 1000)} s (scan.clamd.startTimeoutSeconds)`);
      }
      await Promise.race([sleep(100), exitedEarly]);
    }
    log.info({ pid: proc.pid, at, ms: Date.now() - t0 }, 'clamd started');
    backoffMs = 1000;
    void exited.then(() => {
      if (child !== proc) return; // stopped or replaced on purpose
      child = undefined;
      if (stopping) return;
      const restart = opts.restartOnCrash ?? true;
      log.error({ exit: exitInfo, last: lastLines.slice(-12) }, restart ? `clamd exited unexpectedly; starting it again in ${backoffMs / 1000} s` : 'clamd exited unexpectedly');
      if (restart) scheduleRestart();
    });
  }

  function scheduleRestart() {
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      if (stopping) return;
      launch().then(
        () => log.info('clamd is back'),
        (err: Error) => {
          if (stopping) return;
          backoffMs = Math.min(backoffMs * 2, 60_000);
          log.error({ err: err.message }, `clamd failed to start again; next try in ${backoffMs / 1000} s`);
          scheduleRestart();
        },
      );
    }, backoffMs);
  }

  async function kill(proc: ChildProcess): Promise<void> {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    await gone;
    clearTimeout(timer);
  }

  async function stop(): Promise<void> {
    stopping = true;
    if (restartTimer) clearTimeout(restartTimer);
    restartTimer = undefined;
    const proc = child;
    child = undefined;
    if (proc) await kill(proc);
    await exited;
  }

  await launch();
  return {
    host: opts.host,
    port: opts.port,
    confPath,
    pid: () => child?.pid,
    stop,
    async restart() {
      await stop();
      stopping = false;
      await launch();
    },
  };
}

/**
 * Start the appliance's own clamd (scan.clamd.manage): config and temporary files under <dataDir>/clamd,
 * signatures chosen as described in the header, limits from the appliance's (clamd-conf.ts). Logs a warning
 * when only the test set is available. `freshclamDir` is for tests (pretend freshclam has run or not).
 */
export async function startManagedClamd(
  config: Config,
  log: Logger,
  opts: { freshclamDir?: string; clamdPath?: string } = {},
): Promise<ManagedClamd> {
  const dir = path.join(config.dataDir, 'clamd');
  mkdirSync(dir, { recursive: true });
  const { databaseDir, source } = chooseSignatures(config, opts.freshclamDir);
  if (source === 'test-only') {
    writeTestSignatures(databaseDir, existsSync(CLAMAV_TESTFILE) ? [CLAMAV_TESTFILE] : []);
    log.warn(
      { databaseDir },
      'malware signatures: TEST SET ONLY (EICAR): no freshclam database in /var/lib/clamav and no scan.databaseDir. Files are NOT checked against real malware. Run freshclam, then restart.',
    );
  } else log.info({ databaseDir, source }, 'malware signatures');
  const { limits, notes } = clamdLimits(config);
  for (const note of notes) log.info(note);
  const proc = await startClamd(
    {
      dir,
      host: config.scan.clamd.host,
      port: config.scan.clamd.port,
      databaseDir,
      limits,
      startTimeoutMs: config.scan.clamd.startTimeoutSeconds * 1000,
      clamdPath: opts.clamdPath,
    },
    log,
  );
  return Object.assign(proc, { testSignaturesOnly: source === 'test-only', signatureSource: source, databaseDir, limits });
}
