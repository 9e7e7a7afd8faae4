/**
 * The real appliance (server/main.ts, exactly what `npm start` runs) as a child process for DICOM-level
 * tests: its own config and data folder, free loopback ports, DICOM nodes given as specs; stop it with
 * SIGTERM (exit code), kill it with SIGKILL, start it again on the same data. Built on test/helpers/server.ts
 * (writeTestConfig, launchUplink), which web tests use directly.
 */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import Database from 'better-sqlite3';
import { launchUplink, writeTestConfig, ROOT, type UplinkProcess } from './server.ts';

export { ROOT };

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
  /** Folder for config and data (use t.testdir()). */
  dir: string;
  /** Calling nodes; host 127.0.0.1, port 104 and all services unless given. */
  nodes?: NodeSpec[];
  /** Extra keys of the dicom section (e.g. findLimit, maxAssociations, pacs). */
  dicom?: Record<string, unknown>;
  /** Merged over the generated config (objects key by key; arrays and values replace). */
  config?: Record<string, unknown>;
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
  readonly proc: ChildProcess;
  /** Resolve when the output matches (logging is asynchronous); reject after `timeoutMs`. */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<void>;
  stop(): Promise<number | null>;
  kill(): Promise<void>;
  /** Start again with the same config and data (after stop or kill). */
  restart(): Promise<void>;
  health(): Promise<{ status: number; body: any }>;
  /** Rows in the index's instances table (read-only connection; WAL lets it read while the appliance runs). */
  instanceCount(): number;
}

export async function startAppliance(opts: StartOptions): Promise<RunningAppliance> {
  const nodes = (opts.nodes ?? []).map((n) => ({ host: '127.0.0.1', port: 104, allow: ['echo', 'store', 'find'], ...n }));
  const overrides = { ...opts.config, dicom: { aeTitle: 'UPLINK', nodes, ...opts.dicom, ...((opts.config?.dicom as object) ?? {}) } };
  let written = await writeTestConfig(opts.dir, overrides);
  let p: UplinkProcess;
  for (let attempt = 1; ; attempt++) {
    try {
      p = await launchUplink(written.configPath, `http://127.0.0.1:${written.config.http.port}`);
      break;
    } catch (e) {
      // A port picked free can be taken by another process before the appliance binds it: new ports.
      if (attempt < 3 && /EADDRINUSE/.test(String((e as Error).message))) written = await writeTestConfig(opts.dir, overrides);
      else throw e;
    }
  }
  const { configPath, config } = written;
  const url = `http://127.0.0.1:${config.http.port}`;
  // Output of earlier runs is kept, so a test can look at what happened before a restart.
  let earlier = '';
  const output = () => earlier + p.output();
  return {
    httpPort: config.http.port,
    dicomPort: config.dicom.port,
    aeTitle: config.dicom.aeTitle,
    dataDir: config.dataDir,
    configPath,
    output,
    logLines: () =>
      output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    get proc() {
      return p.proc;
    },
    async waitForLog(re, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (!re.test(output())) {
        if (Date.now() > deadline) throw new Error(`log never matched ${re}:\n${output().slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    stop: () => p.stop(),
    kill: () => p.kill(),
    async restart() {
      earlier = output();
      p = await launchUplink(configPath, url);
    },
    async health() {
      const r = await fetch(`${url}/healthz`);
      return { status: r.status, body: await r.json() };
    },
    instanceCount() {
      const db = new Database(path.join(config.dataDir, 'uplink.sqlite'), { readonly: true });
      try {
        return (db.prepare('SELECT count(*) AS n FROM instances').get() as { n: number }).n;
      } finally {
        db.close();
      }
    },
  };
}
