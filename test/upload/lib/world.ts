/**
 * The upload tests' world: a private clamd (test signature set: EICAR anywhere, clamav-testfiles' clam.exe by
 * hash), the real appliance (server/main.ts as `npm start` runs it, or in-process) with a DICOM node allowed
 * to C-FIND it, and helpers: a minimal tus client (HTTP tests), the index read-only, findscu, test files with
 * malware in them, and an appliance that can be killed (SIGKILL) and started again on the same ports.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import type { Page } from 'playwright-core';
import { EICAR } from '../../../appliance/scan/test-signatures.ts';
import { startTestClamd, type TestClamd } from '../../helpers/clamd.ts';
import { createClient, ROOT, startServer, writeTestConfig, type HttpClient, type TestServer } from '../../helpers/server.ts';
import { until } from '../../views/lib/portal-page.ts';

export { until };

interface TapLike {
  teardown(fn: () => unknown): void;
}

export const FINDER = { name: 'FINDER', aeTitle: 'FINDER', host: '127.0.0.1', port: 104, allow: ['echo', 'find'] };

/** A temp folder (no blanks: clamd's config), removed at the end. */
export function tempDir(t: TapLike, prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export async function startClamd(t: TapLike): Promise<TestClamd> {
  return startTestClamd(t, tempDir(t, 'uplink-upload-clamd-'));
}

/** Config for an appliance using this clamd, with the FINDER node; `extra` is merged over it. */
export function worldConfig(clamd: TestClamd, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const base: Record<string, unknown> = {
    scan: { clamd: { host: '127.0.0.1', port: clamd.port, manage: false } },
    dicom: { nodes: [FINDER] },
    log: { level: 'warn' },
  };
  for (const [k, v] of Object.entries(extra)) base[k] = typeof v === 'object' && v && !Array.isArray(v) && typeof base[k] === 'object' ? { ...(base[k] as object), ...(v as object) } : v;
  return base;
}

export async function startWorld(t: TapLike, opts: { mode?: 'process' | 'in-process'; config?: Record<string, unknown> } = {}): Promise<{ clamd: TestClamd; srv: TestServer }> {
  const clamd = await startClamd(t);
  const srv = await startServer(t, { mode: opts.mode, config: worldConfig(clamd, opts.config) });
  return { clamd, srv };
}

/** The appliance's index and records, read-only (a fresh connection per call sees the latest commits). */
export function query<T = Record<string, unknown>>(dataDir: string, sql: string, ...args: unknown[]): T[] {
  const db = new Database(path.join(dataDir, 'uplink.sqlite'), { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    return db.prepare(sql).all(...args) as T[];
  } finally {
    db.close();
  }
}

export function files(dir: string): string[] {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => path.join(e.parentPath, e.name));
  } catch {
    return [];
  }
}

/** A client with a session bound to a fresh code (the code typed on the start page). */
export async function codeClient(srv: TestServer, opts: { maxBytes?: string } = {}): Promise<{ client: HttpClient; code: string }> {
  const code = await srv.createCode(opts);
  const client = createClient(srv.url);
  await client.get('/');
  const r = await client.postForm('/', { code });
  if (r.status !== 303) throw new Error(`code refused: ${r.status}`);
  await client.get('/upload');
  return { client, code };
}

export interface ManifestFile {
  sop: string;
  sopClass: string;
  size: number;
  name: string;
}

export function manifest(studies: { studyUid: string; comment?: string; files: ManifestFile[] }[], contact: { email?: string; phone?: string } = {}) {
  return { studies: studies.map((s) => ({ comment: '', date: '', description: '', ...s })), email: contact.email ?? '', phone: contact.phone ?? '' };
}

/** A minimal tus 1.0 client over the test HTTP client's cookies and CSRF token. */
export function tusClient(base: string, client: HttpClient) {
  const headers = (extra: Record<string, string> = {}) => ({
    cookie: [...client.cookies].map(([k, v]) => `${k}=${v}`).join('; '),
    'Tus-Resumable': '1.0.0',
    'X-CSRF-Token': client.csrf,
    ...extra,
  });
  const meta = (m: Record<string, string>) =>
    Object.entries(m)
      .map(([k, v]) => `${k} ${Buffer.from(v).toString('base64')}`)
      .join(',');
  return {
    async create(length: number, metadata: Record<string, string>, extra: Record<string, string> = {}) {
      const r = await fetch(`${base}/upload/files`, { method: 'POST', headers: headers({ 'Upload-Length': String(length), 'Upload-Metadata': meta(metadata), ...extra }) });
      return { status: r.status, location: r.headers.get('location'), body: await r.text() };
    },
    async patch(location: string, offset: number, bytes: Buffer) {
      const r = await fetch(`${base}${location}`, {
        method: 'PATCH',
        headers: headers({ 'Upload-Offset': String(offset), 'Content-Type': 'application/offset+octet-stream' }),
        body: bytes,
      });
      return { status: r.status, offset: Number(r.headers.get('upload-offset') ?? -1), body: await r.text() };
    },
    async head(location: string) {
      const r = await fetch(`${base}${location}`, { method: 'HEAD', headers: headers() });
      return { status: r.status, offset: Number(r.headers.get('upload-offset') ?? -1), length: Number(r.headers.get('upload-length') ?? -1) };
    },
    /** Create and send a whole file in chunks; returns the last PATCH's answer. */
    async send(metadata: Record<string, string>, bytes: Buffer, chunk = 64 * 1024) {
      const c = await this.create(bytes.length, metadata);
      if (c.status !== 201 || !c.location) return { status: c.status, offset: -1, body: c.body, location: c.location };
      let offset = 0;
      let last = { status: 204, offset: 0, body: '' };
      while (offset < bytes.length) {
        last = await this.patch(c.location, offset, bytes.subarray(offset, offset + chunk));
        if (last.status !== 204) break;
        offset = last.offset;
      }
      return { ...last, location: c.location };
    },
  };
}

const run = promisify(execFile);

/** C-FIND at study level through DCMTK findscu (as the FINDER node). */
export async function findStudies(dicomPort: number): Promise<Record<string, string>[]> {
  const keys = ['QueryRetrieveLevel=STUDY', 'StudyInstanceUID', 'PatientID', 'IssuerOfPatientID', 'AccessionNumber', 'PatientName', 'NumberOfStudyRelatedInstances'];
  const r = await run('findscu', ['-S', '-v', '-aet', FINDER.aeTitle, '-aec', 'UPLINK', '127.0.0.1', String(dicomPort), ...keys.flatMap((k) => ['-k', k])], {
    env: { ...process.env, TCP_NODELAY: '1' },
    maxBuffer: 16 << 20,
  });
  return `${r.stdout}${r.stderr}`
    .split(/Find Response: \d+ \(Pending\)/)
    .slice(1)
    .map((block) => {
      const row: Record<string, string> = {};
      for (const m of block.matchAll(/\(([0-9a-f]{4},[0-9a-f]{4})\) \w\w (?:\[([^\]]*)\]|\(no value available\))/gi)) row[m[1].toLowerCase()] = (m[2] ?? '').replace(/[\0 ]+$/, '');
      return row;
    });
}

/** A Part 10 file (explicit VR little endian) with a private OB element (7FE1,1010) appended after Pixel Data. */
export function withPrivateBlob(source: string, dest: string, blob: Buffer): string {
  const el = (g: number, e: number, vr: string, v: Buffer) => {
    const h = Buffer.alloc(vr === 'OB' ? 12 : 8);
    h.writeUInt16LE(g, 0);
    h.writeUInt16LE(e, 2);
    h.write(vr, 4, 'latin1');
    if (vr === 'OB') h.writeUInt32LE(v.length, 8);
    else h.writeUInt16LE(v.length, 6);
    return Buffer.concat([h, v]);
  };
  const padded = blob.length % 2 ? Buffer.concat([blob, Buffer.from([0])]) : blob;
  writeFileSync(dest, Buffer.concat([readFileSync(source), el(0x7fe1, 0x0010, 'LO', Buffer.from('UPLINKTEST')), el(0x7fe1, 0x1010, 'OB', padded)]));
  return dest;
}

/** A valid DICOM file whose 128-byte preamble holds the EICAR test string. */
export function withEicarPreamble(source: string, dest: string): string {
  const b = Buffer.from(readFileSync(source));
  b.fill(0, 0, 128);
  EICAR.copy(b, 0);
  writeFileSync(dest, b);
  return dest;
}

// ---- the browser side

/** Tick consent and press START UPLOAD. */
export async function startUpload(page: Page): Promise<void> {
  await page.check('#consent');
  await page.click('#start-upload');
}

/** Wait for the server's record, as the page shows it, to reach `state`. */
export async function waitServerState(page: Page, state: string, timeout = 90_000): Promise<void> {
  await until(page, `document.getElementById('upload-server')?.dataset.state === ${JSON.stringify(state)}`, timeout);
}

export async function transferState(page: Page): Promise<string> {
  return page.evaluate(`document.getElementById('panel-upload')?.dataset.transfer ?? ''`);
}

// ---- an appliance that can be killed and started again on the same ports

export interface KillableServer {
  url: string;
  dataDir: string;
  dicomPort: number;
  configPath: string;
  createCode(): Promise<string>;
  kill(signal: NodeJS.Signals): Promise<void>;
  start(): Promise<void>;
  output(): string;
}

export async function startKillable(t: TapLike, config: Record<string, unknown>): Promise<KillableServer> {
  const dir = tempDir(t, 'uplink-upload-srv-');
  const { configPath, config: c } = await writeTestConfig(dir, config);
  const url = `http://127.0.0.1:${c.http.port}`;
  let proc: ChildProcess | null = null;
  let out = '';
  const kill = (signal: NodeJS.Signals) =>
    new Promise<void>((resolve) => {
      const p = proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return resolve();
      p.once('exit', () => resolve());
      p.kill(signal);
    });
  t.teardown(async () => {
    const p = proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
    await kill('SIGTERM');
    clearTimeout(timer);
  });
  const server: KillableServer = {
    url,
    dataDir: c.dataDir,
    dicomPort: c.dicom.port,
    configPath,
    output: () => out,
    async createCode() {
      const r = await run(process.execPath, [path.join(ROOT, 'bin', 'uplink.js'), 'code', 'create', '--institution', 'test'], { cwd: ROOT, env: { ...process.env, UPLINK_CONFIG: configPath } });
      return r.stdout.trimEnd().split('\n').pop()!;
    },
    kill,
    async start() {
      const p = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'server', 'main.ts')], { cwd: ROOT, env: { ...process.env, UPLINK_CONFIG: configPath }, stdio: ['ignore', 'pipe', 'pipe'] });
      proc = p;
      p.stdout!.on('data', (d) => (out += d));
      p.stderr!.on('data', (d) => (out += d));
      const deadline = Date.now() + 90_000;
      for (;;) {
        if (p.exitCode !== null) throw new Error(`the appliance exited (${p.exitCode}):\n${out.slice(-3000)}`);
        const ok = await fetch(`${url}/healthz`).then(
          (r) => r.status === 200,
          () => false,
        );
        if (ok) return;
        if (Date.now() > deadline) throw new Error(`the appliance did not get healthy:\n${out.slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
  await server.start();
  return server;
}
