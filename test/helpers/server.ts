/**
 * Start the real Uplink web server for a test, with its own config and data folder (in t.testdir()) on free
 * loopback ports, torn down with the test:
 *   - mode 'process' (default): server/main.ts as a child process, exactly what `npm start` runs;
 *   - mode 'in-process': the appliance and the Koa app built here (createAppliance + createApp), for tests
 *     that want to reach inside (`app.codes`, `app.web.sessions`).
 * `cli(args)` runs the real bin/uplink.js against the same config; `createCode()` returns a fresh code.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createAppliance, type Appliance } from '../../appliance/appliance.ts';
import { silentLogger } from '../../appliance/log.ts';
import { loadConfig, merge } from '../../config/load.ts';
import type { Config } from '../../config/schema.ts';
import { createApp, type UplinkApp } from '../../server/app.ts';
import { freePort } from './net.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const UPLINK_BIN = path.join(ROOT, 'bin', 'uplink.js');

/** The institution every test config has (id "test"). */
export const TEST_INSTITUTION = {
  id: 'test',
  name: 'St. Test Hospital',
  phone: '+31 20 555 0100',
  email: 'radiology@test-hospital.example',
  manualUrl: '/manual',
  privacyPolicyUrl: '/privacy',
};

interface TapLike {
  teardown(fn: () => unknown): void;
}

export interface ServerOptions {
  mode?: 'process' | 'in-process';
  /** Merged over the test config (objects key by key; arrays and values replace). */
  config?: Record<string, unknown>;
  /**
   * Folder for config and data. Default: a fresh folder under the system temp dir, removed after the test (not
   * t.testdir(): a test calling t.testdir() itself would wipe the server's folder).
   */
  dir?: string;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface TestServer {
  url: string;
  httpPort: number;
  dicomPort: number;
  dir: string;
  dataDir: string;
  configPath: string;
  config: Config;
  /** In-process mode only. */
  app?: UplinkApp;
  appliance?: Appliance;
  /** Child-process mode: what the server wrote so far. */
  output(): string;
  cli(args: string[]): Promise<CliResult>;
  /** `uplink code create --institution test ...`: the code (the last line of the output). */
  createCode(opts?: { institution?: string; expires?: string; maxBytes?: string; birthDate?: string }): Promise<string>;
  stop(): Promise<void>;
}

/** Write a test config (free ports, data in dir) and return its path and the loaded config. */
export async function writeTestConfig(dir: string, overrides: Record<string, unknown> = {}): Promise<{ configPath: string; config: Config }> {
  mkdirSync(dir, { recursive: true });
  const httpPort = await freePort();
  const dicomPort = await freePort();
  const base = {
    dataDir: path.join(dir, 'data'),
    log: { level: 'info' },
    http: { host: '127.0.0.1', port: httpPort, publicUrl: `http://127.0.0.1:${httpPort}` },
    dicom: { host: '127.0.0.1', port: dicomPort },
    scan: { clamd: { manage: false } },
    institutions: [TEST_INSTITUTION],
  };
  const raw = merge(base, overrides) as Record<string, unknown>;
  const configPath = path.join(dir, 'uplink.json');
  writeFileSync(configPath, JSON.stringify(raw, null, 2));
  return { configPath, config: loadConfig({ UPLINK_CONFIG: configPath }) };
}

export function runCli(configPath: string, args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [UPLINK_BIN, ...args], { cwd: ROOT, env: { ...process.env, UPLINK_CONFIG: configPath } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** server/main.ts (what `npm start` runs) as a child process with this config, healthy. */
export interface UplinkProcess {
  readonly proc: ChildProcess;
  /** What it wrote so far (JSON log lines and the start banner). */
  output(): string;
  /** SIGTERM, SIGKILL after 10 s; its exit code. */
  stop(): Promise<number | null>;
  kill(): Promise<void>;
}

export async function launchUplink(configPath: string, url: string): Promise<UplinkProcess> {
  let out = '';
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'server', 'main.ts')], {
    cwd: ROOT,
    env: { ...process.env, UPLINK_CONFIG: configPath },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Never outlive the test process, even when it dies before its teardown runs.
  const reap = () => proc.kill('SIGKILL');
  process.once('exit', reap);
  proc.once('exit', () => process.off('exit', reap));
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = () => proc.exitCode !== null || proc.signalCode !== null;
  const waitExit = () => new Promise<number | null>((resolve) => (exited() ? resolve(proc.exitCode) : proc.once('exit', (code) => resolve(code))));
  const p: UplinkProcess = {
    proc,
    output: () => out,
    async stop() {
      if (exited()) return proc.exitCode;
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      const done = waitExit();
      proc.kill('SIGTERM');
      const code = await done;
      clearTimeout(timer);
      return code;
    },
    async kill() {
      const done = waitExit();
      proc.kill('SIGKILL');
      await done;
    },
  };
  try {
    await waitHealthy(url, proc, () => out);
  } catch (e) {
    await p.stop();
    throw e;
  }
  return p;
}

async function waitHealthy(url: string, proc: ChildProcess | null, out: () => string): Promise<void> {
  const deadline = Date.now() + 90_000;
  let last = 'no answer';
  for (;;) {
    if (proc && proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode} before it was healthy:\n${out().slice(-3000)}`);
    const ok = await fetch(`${url}/healthz`).then(
      async (r) => {
        last = `${r.status} ${await r.text()}`;
        return r.status === 200;
      },
      (e: Error) => ((last = e.message), false),
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`server not healthy after 90 s (last /healthz: ${last}):\n${out().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A port picked free can be taken by another process before the server binds it: then start again. */
const portTaken = (e: unknown) => /EADDRINUSE/.test(String((e as Error)?.message ?? e));

export async function startServer(t: TapLike, opts: ServerOptions = {}): Promise<TestServer> {
  let dir = opts.dir;
  if (!dir) {
    const own = mkdtempSync(path.join(os.tmpdir(), 'uplink-test-'));
    t.teardown(() => rmSync(own, { recursive: true, force: true })); // runs after the server stopped (teardowns run last first)
    dir = own;
  }
  let configPath = '';
  let config!: Config;
  let url = '';
  let output = () => '';
  let stop: () => Promise<void> = async () => {};
  let app: UplinkApp | undefined;
  let appliance: Appliance | undefined;
  t.teardown(() => stop());

  const launchProcess = async () => {
    const p = await launchUplink(configPath, url);
    stop = async () => void (await p.stop());
    output = p.output;
  };

  const launchInProcess = async () => {
    const log = silentLogger();
    const a = createAppliance(config, log);
    appliance = a;
    const server = http.createServer();
    let stopped = false;
    stop = async () => {
      if (stopped) return;
      stopped = true;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await a.stop();
    };
    await a.start();
    app = createApp({ config, appliance: a, log, httpListening: () => true });
    server.on('request', app.callback());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.http.port, config.http.host, () => resolve());
    });
  };

  for (let attempt = 1; ; attempt++) {
    ({ configPath, config } = await writeTestConfig(dir, opts.config));
    url = `http://127.0.0.1:${config.http.port}`;
    try {
      await ((opts.mode ?? 'process') === 'process' ? launchProcess() : launchInProcess());
      break;
    } catch (e) {
      await stop();
      if (attempt < 3 && portTaken(e)) continue;
      throw e;
    }
  }

  const cli = (args: string[]) => runCli(configPath, args);
  return {
    url,
    httpPort: config.http.port,
    dicomPort: config.dicom.port,
    dir,
    dataDir: config.dataDir,
    configPath,
    config,
    app,
    appliance,
    output: () => output(),
    cli,
    async createCode(o = {}) {
      const args = ['code', 'create', '--institution', o.institution ?? TEST_INSTITUTION.id];
      if (o.expires) args.push('--expires', o.expires);
      if (o.maxBytes) args.push('--max-bytes', o.maxBytes);
      if (o.birthDate) args.push('--birth-date', o.birthDate);
      const r = await cli(args);
      if (r.code !== 0) throw new Error(`uplink ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
      return r.stdout.trimEnd().split('\n').pop()!;
    },
    stop: () => stop(),
  };
}

/**
 * A tiny browser stand-in for HTTP-level tests: keeps cookies, remembers the CSRF token of the last page,
 * never follows redirects (tests look at them).
 */
export interface HttpClient {
  cookies: Map<string, string>;
  csrf: string;
  get(path: string, headers?: Record<string, string>): Promise<Response & { text_: string }>;
  postForm(path: string, fields: Record<string, string>, opts?: { headers?: Record<string, string>; csrf?: string | null }): Promise<Response & { text_: string }>;
  postJson(path: string, body: unknown, opts?: { headers?: Record<string, string>; csrf?: string | null }): Promise<Response & { text_: string }>;
}

export function createClient(base: string): HttpClient {
  const cookies = new Map<string, string>();
  const client: HttpClient = {
    cookies,
    csrf: '',
    async get(path, headers = {}) {
      return send(path, { method: 'GET', headers });
    },
    async postForm(path, fields, opts = {}) {
      const csrf = opts.csrf === undefined ? client.csrf : opts.csrf;
      const body = new URLSearchParams({ ...(csrf !== null ? { _csrf: csrf } : {}), ...fields });
      return send(path, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...opts.headers }, body });
    },
    async postJson(path, body, opts = {}) {
      const csrf = opts.csrf === undefined ? client.csrf : opts.csrf;
      return send(path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json', ...(csrf !== null ? { 'x-csrf-token': csrf } : {}), ...opts.headers },
        body: JSON.stringify(body),
      });
    },
  };
  async function send(path: string, init: { method: string; headers: Record<string, string>; body?: string | URLSearchParams }) {
    const cookie = [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(`${base}${path}`, { ...init, redirect: 'manual', headers: { ...(cookie ? { cookie } : {}), ...init.headers } });
    for (const c of res.headers.getSetCookie()) {
      const [pair, ...attrs] = c.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (attrs.some((a) => /^\s*max-age=0\s*$/i.test(a)) || value === '') cookies.delete(name);
      else cookies.set(name, value);
    }
    const text = await res.text();
    const m = /<meta name="csrf-token" content="([^"]*)"/.exec(text);
    if (m && m[1]) client.csrf = m[1];
    return Object.assign(res, { text_: text });
  }
  return client;
}
