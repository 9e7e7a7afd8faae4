/**
 * Start the real appliance (server/main.ts, exactly what `npm start` runs) as a child process with its own
 * config and data folder on free loopback ports; wait for /healthz; stop it with SIGTERM or kill it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './net.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface NodeSpec {
  name: string;
  aeTitle: string;
  host?: string;
  port?: number;
  allow?: string[];
  send?: boolean;
  policy?: string;
}

export interface StartOptions {
  /** Folder for config, data and logs (use t.testdir()). */
  dir: string;
  nodes?: NodeSpec[];
  /** Extra keys of the dicom section (e.g. findLimit, maxAssociations). */
  dicom?: Record<string, unknown>;
  /** Top-level sections replacing the generated ones (not merged: give whole sections). */
  config?: Record<string, unknown>;
  env?: Record<string, string>;
}

export interface RunningAppliance {
  httpPort: number;
  dicomPort: number;
  aeTitle: string;
  dataDir: string;
  configPath: string;
  /** Lines written so far to stdout (JSON log lines and the start banner). */
  output(): string;
  logLines(): Record<string, unknown>[];
  proc: ChildProcess;
  /** Resolve when the output matches (logging is asynchronous); reject after `timeoutMs`. */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<void>;
  stop(): Promise<number | null>;
  kill(): Promise<void>;
  /** Start again with the same config and data (after stop or kill). */
  restart(): Promise<void>;
  health(): Promise<{ status: number; body: any }>;
}

export async function startAppliance(opts: StartOptions): Promise<RunningAppliance> {
  mkdirSync(opts.dir, { recursive: true });
  const httpPort = await freePort();
  const dicomPort = await freePort();
  const dataDir = path.join(opts.dir, 'data');
  const configPath = path.join(opts.dir, 'uplink.json');
  const nodes = (opts.nodes ?? []).map((n) => ({ host: '127.0.0.1', port: 104, allow: ['echo', 'store', 'find'], ...n }));
  const config = {
    dataDir,
    log: { level: 'info' },
    http: { host: '127.0.0.1', port: httpPort, publicUrl: `http://127.0.0.1:${httpPort}`, secureCookies: false },
    dicom: { host: '127.0.0.1', port: dicomPort, aeTitle: 'UPLINK', nodes, ...(opts.dicom ?? {}) },
    scan: { clamd: { host: '127.0.0.1', port: 3310, manage: false, timeoutSeconds: 60 }, databaseDir: null },
    ...(opts.config ?? {}),
  };
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  let out = '';
  let proc!: ChildProcess;

  const launch = async () => {
    proc = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'server', 'main.ts')], {
      cwd: ROOT,
      env: { ...process.env, ...opts.env, UPLINK_CONFIG: configPath },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // Never outlive the test process, even when it dies before its teardown runs.
    const reap = () => proc.kill('SIGKILL');
    process.once('exit', reap);
    proc.once('exit', () => process.off('exit', reap));
    proc.stdout!.on('data', (d) => (out += d));
    proc.stderr!.on('data', (d) => (out += d));
    const exited = new Promise<void>((_, reject) => proc.once('exit', (code) => reject(new Error(`appliance exited with ${code} before it was healthy:\n${out.slice(-3000)}`))));
    const deadline = Date.now() + 60000;
    for (;;) {
      const ok = await Promise.race([
        fetch(`http://127.0.0.1:${httpPort}/healthz`).then((r) => r.status === 200, () => false),
        exited,
      ]);
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`appliance not healthy after 60 s:\n${out.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  await launch();

  const waitExit = () =>
    new Promise<number | null>((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve(proc.exitCode);
      proc.once('exit', (code) => resolve(code));
    });

  return {
    httpPort,
    dicomPort,
    aeTitle: 'UPLINK',
    dataDir,
    configPath,
    output: () => out,
    logLines: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    get proc() {
      return proc;
    },
    async waitForLog(re, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (!re.test(out)) {
        if (Date.now() > deadline) throw new Error(`log never matched ${re}:\n${out.slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async stop() {
      const done = waitExit();
      proc.kill('SIGTERM');
      return done;
    },
    async kill() {
      const done = waitExit();
      proc.kill('SIGKILL');
      await done;
    },
    restart: launch,
    async health() {
      const r = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
      return { status: r.status, body: await r.json() };
    },
  };
}
