/** Helpers for forwarding tests against the real appliance: its queue read from its database, the CLI, waiting. */
import { execFile } from 'node:child_process';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ROOT } from '../../helpers/appliance.ts';

export interface JobRow {
  id: number;
  destination: string;
  study_uid: string;
  sop_uid: string;
  state: string;
  attempts: number;
  last_status: number | null;
  last_meaning: string | null;
  transcoded_from: string | null;
  transcoded_to: string | null;
  next_attempt_at: string;
  path: string;
}

/** The appliance's forward_jobs (with each instance's store path), read through a separate read-only connection. */
export function queueReader(dataDir: string) {
  const db = new Database(path.join(dataDir, 'uplink.sqlite'), { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  const all = db.prepare('SELECT f.*, i.path FROM forward_jobs f JOIN instances i ON i.id = f.instance_ref ORDER BY f.id');
  return {
    jobs: (destination?: string) => (all.all() as JobRow[]).filter((j) => !destination || j.destination === destination),
    count: (where = '1') => (db.prepare(`SELECT count(*) AS n FROM forward_jobs WHERE ${where}`).get() as { n: number }).n,
    instances: () => (db.prepare('SELECT count(*) AS n FROM instances').get() as { n: number }).n,
    storePath: (rel: string) => path.join(dataDir, 'store', rel),
    close: () => db.close(),
  };
}

/** Poll until `check` resolves truthy (every 100 ms), or throw after `ms` with `what` and the last value. */
export async function waitFor<T>(check: () => T | Promise<T>, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the real `uplink` CLI (bin/uplink.js) with UPLINK_CONFIG. */
export function uplink(configPath: string, args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'bin', 'uplink.js'), ...args], { cwd: ROOT, env: { ...process.env, UPLINK_CONFIG: configPath } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}
