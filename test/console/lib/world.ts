/**
 * The console's test world: the real server (server/main.ts as a child process, free ports, t.testdir()), a DICOM
 * node "PARTNER" whose C-STOREs get the "upload" policy (anonymise, label 'Uploaded'), users made with the real
 * `uplink user add` (password on stdin), and a study sent by DCMTK dcmsend through the real ingest. Plus an HTTP
 * log-in helper for the tests that do not drive a browser.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { dcmsend, startStoreScp, type StoreScp } from '../../helpers/dcmtk.ts';
import { createClient, ROOT, startServer, UPLINK_BIN, type HttpClient, type TestServer } from '../../helpers/server.ts';
import { makeStudies, type TestInstance } from '../../intake/lib/studies.ts';

interface TapLike {
  testdir(): string;
  teardown(fn: () => unknown): void;
}

export const ADMIN = { name: 'alice', password: 'correct horse battery staple' };
export const USER = { name: 'bob', password: 'another fine passphrase' };

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** bin/uplink.js with `input` on stdin (a pipe, not a terminal: the password is its first line). */
export function cliWithInput(configPath: string, args: string[], input: string): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [UPLINK_BIN, ...args], { cwd: ROOT, env: { ...process.env, UPLINK_CONFIG: configPath }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.once('error', reject);
    p.once('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    p.stdin.end(input);
  });
}

export async function addUser(srv: TestServer, who: { name: string; password: string }, role: 'admin' | 'user'): Promise<void> {
  const r = await cliWithInput(srv.configPath, ['user', 'add', '--role', role, who.name], `${who.password}\n`);
  if (r.code !== 0) throw new Error(`uplink user add ${who.name} failed (${r.code}): ${r.stderr}`);
}

export interface ConsoleWorld {
  srv: TestServer;
  /** With `pacs`: DCMTK storescp as the hospital PACS (dicom.pacs), where the upload policy forwards to. */
  pacs: StoreScp | null;
  /** The instances sent (one study, two images), with their original identifiers. */
  sent: TestInstance[];
  studyUid: string;
}

export async function startConsoleWorld(t: TapLike, opts: { config?: Record<string, unknown>; users?: boolean; pacs?: boolean } = {}): Promise<ConsoleWorld> {
  const dir = t.testdir();
  let pacs: StoreScp | null = null;
  if (opts.pacs) {
    const scp = await startStoreScp({ dir: path.join(dir, 'pacs'), aeTitle: 'PACS' });
    t.teardown(() => scp.stop());
    pacs = scp;
  }
  const nodes: Record<string, unknown>[] = [{ name: 'PARTNER', aeTitle: 'PARTNER', host: '127.0.0.1', port: 104, allow: ['echo', 'store', 'find'], policy: 'upload' }];
  if (pacs) nodes.push({ name: 'PACS', aeTitle: pacs.aeTitle, host: '127.0.0.1', port: pacs.port, allow: [], send: true });
  const srv = await startServer(t, {
    dir: path.join(dir, 'uplink'),
    config: {
      dicom: { nodes, ...(pacs ? { pacs: 'PACS' } : {}) },
      // The malware scanner is another part's concern (and tested there); this node's uploads are not scanned.
      policies: { upload: { scan: false } },
      ...(opts.config ?? {}),
    },
  });
  if (opts.users !== false) {
    await addUser(srv, ADMIN, 'admin');
    await addUser(srv, USER, 'user');
  }
  const sent = await makeStudies(path.join(dir, 'in'), [{ patient: 'ORIG-PAT-7', sample: 'CT_small.dcm', studies: [{ accession: 'ORIG-ACC-7', instances: 2 }] }]);
  const r = await dcmsend(['-aet', 'PARTNER', '-aec', 'UPLINK', '127.0.0.1', String(srv.dicomPort), ...sent.map((i) => i.file)]);
  if (r.code !== 0) throw new Error(`dcmsend failed (${r.code}):\n${r.stdout}${r.stderr}`);
  return { srv, pacs, sent, studyUid: sent[0].study };
}

/** Log in over HTTP (GET /login for the form's token, then POST); the client then holds the session. */
export async function loginHttp(base: string, who: { name: string; password: string }): Promise<HttpClient> {
  const c = createClient(base);
  await c.get('/login');
  const r = await c.postForm('/login', { name: who.name, password: who.password, next: '/admin' });
  if (r.status !== 303) throw new Error(`log-in as ${who.name} failed: ${r.status}\n${r.text_.slice(0, 500)}`);
  await c.get('/admin'); // the page's CSRF token (rotated at log-in)
  return c;
}
