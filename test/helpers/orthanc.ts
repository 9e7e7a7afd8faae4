/**
 * Debian's Orthanc as a stand-in hospital PACS for tests: started in the background with its own JSON
 * config (storage and index in the test's folder, DICOM and HTTP on free loopback ports, no remote access,
 * no authentication, no plugins), with REST helpers to count, find and fetch what it stored, and stop /
 * restart keeping its storage.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort } from './net.ts';

export const ORTHANC_BIN = '/usr/sbin/Orthanc';

/** Transfer syntaxes an "uncompressed only" PACS accepts. */
export const UNCOMPRESSED_SYNTAXES = ['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2'];

export interface OrthancOptions {
  /** Folder for its config, storage, index and log (a t.testdir()). */
  dir: string;
  aeTitle?: string;
  /** The AE that calls it (listed in DicomModalities, so C-FIND is allowed). Default UPLINK. */
  callerAeTitle?: string;
  /** Reject associations whose called AE is not ours. Default true. */
  checkCalledAet?: boolean;
  /** Accepted transfer syntax UIDs (wildcards allowed); default: all it knows. Restricting also turns the per-family flags off. */
  acceptedTransferSyntaxes?: string[];
  /** Accept storage SOP classes it does not know ("promiscuous"). Default true. */
  unknownSopClassAccepted?: boolean;
  /** More configuration keys, merged last. */
  config?: Record<string, unknown>;
}

export interface OrthancInstance {
  ID: string;
  FileSize: number;
}

export interface Orthanc {
  readonly aeTitle: string;
  readonly dicomPort: number;
  readonly httpPort: number;
  readonly url: string;
  /** As a node to send to. */
  readonly node: { aeTitle: string; host: string; port: number };
  /** GET /statistics */
  statistics(): Promise<{ CountInstances: number; CountStudies: number; CountPatients: number; CountSeries: number }>;
  countInstances(): Promise<number>;
  /** Orthanc's id of the instance with this SOP Instance UID (POST /tools/lookup), or undefined. */
  lookup(sopInstanceUID: string): Promise<string | undefined>;
  /** The Part 10 file Orthanc keeps for this SOP Instance UID (GET /instances/{id}/file), or undefined. */
  fileOf(sopInstanceUID: string): Promise<Buffer | undefined>;
  /** Its log so far (for diagnostics in failed assertions). */
  log(): string;
  stop(): Promise<void>;
  /** Start again with the same config, ports and storage. */
  restart(): Promise<void>;
}

async function waitForHttp(url: string, proc: ChildProcess, logFile: string, timeoutMs = 30000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited: number | null | undefined;
  const onExit = (code: number | null) => (exited = code);
  proc.once('exit', onExit);
  try {
    for (;;) {
      if (exited !== undefined) throw new Error(`Orthanc exited (code ${exited}) before answering:\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
      try {
        const r = await fetch(`${url}/system`);
        if (r.ok) return;
      } catch {
        /* not yet */
      }
      if (Date.now() > deadline) throw new Error(`Orthanc did not answer on ${url} within ${timeoutMs} ms:\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    proc.off('exit', onExit);
  }
}

export async function startOrthanc(opts: OrthancOptions): Promise<Orthanc> {
  const aeTitle = opts.aeTitle ?? 'ORTHANC';
  const dicomPort = await freePort();
  const httpPort = await freePort();
  const storage = path.join(opts.dir, 'orthanc-storage');
  const index = path.join(opts.dir, 'orthanc-index');
  mkdirSync(storage, { recursive: true });
  mkdirSync(index, { recursive: true });
  const restrict = opts.acceptedTransferSyntaxes
    ? {
        AcceptedTransferSyntaxes: opts.acceptedTransferSyntaxes,
        DeflatedTransferSyntaxAccepted: false,
        JpegTransferSyntaxAccepted: false,
        Jpeg2000TransferSyntaxAccepted: false,
        JpegLosslessTransferSyntaxAccepted: false,
        JpipTransferSyntaxAccepted: false,
        Mpeg2TransferSyntaxAccepted: false,
        RleTransferSyntaxAccepted: false,
        Mpeg4TransferSyntaxAccepted: false,
        H265TransferSyntaxAccepted: false,
      }
    : {};
  const config = {
    Name: 'uplink-test-pacs',
    StorageDirectory: storage,
    IndexDirectory: index,
    StorageCompression: false,
    DicomServerEnabled: true,
    DicomAet: aeTitle,
    DicomPort: dicomPort,
    DicomCheckCalledAet: opts.checkCalledAet ?? true,
    HttpPort: httpPort,
    HttpServerEnabled: true,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    Plugins: [],
    SaveJobs: false,
    WebDavEnabled: false,
    DicomModalities: { uplink: [opts.callerAeTitle ?? 'UPLINK', '127.0.0.1', 104] },
    UnknownSopClassAccepted: opts.unknownSopClassAccepted ?? true,
    OverwriteInstances: false,
    ...restrict,
    ...opts.config,
  };
  const configFile = path.join(opts.dir, 'orthanc.json');
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const logFile = path.join(opts.dir, 'orthanc.log');
  const url = `http://127.0.0.1:${httpPort}`;
  let proc: ChildProcess | undefined;

  const launch = async () => {
    const fd = openSync(logFile, 'a');
    try {
      proc = spawn(ORTHANC_BIN, [configFile], { stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    await waitForHttp(url, proc, logFile);
  };

  const stop = async () => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const kill = setTimeout(() => p.kill('SIGKILL'), 15000);
      p.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      p.kill('SIGTERM');
    });
  };

  const json = async <T>(p: string, init?: RequestInit): Promise<T> => {
    const r = await fetch(`${url}${p}`, init);
    if (!r.ok) throw new Error(`Orthanc ${init?.method ?? 'GET'} ${p}: HTTP ${r.status}`);
    return (await r.json()) as T;
  };

  const lookup = async (sopInstanceUID: string) => {
    const hits = await json<{ Type: string; ID: string }[]>('/tools/lookup', { method: 'POST', body: sopInstanceUID });
    return hits.find((h) => h.Type === 'Instance')?.ID;
  };

  await launch();
  return {
    aeTitle,
    dicomPort,
    httpPort,
    url,
    node: { aeTitle, host: '127.0.0.1', port: dicomPort },
    statistics: () => json('/statistics'),
    countInstances: async () => (await json<{ CountInstances: number }>('/statistics')).CountInstances,
    lookup,
    async fileOf(sopInstanceUID) {
      const id = await lookup(sopInstanceUID);
      if (!id) return undefined;
      const r = await fetch(`${url}/instances/${id}/file`);
      if (!r.ok) throw new Error(`Orthanc GET /instances/${id}/file: HTTP ${r.status}`);
      return Buffer.from(await r.arrayBuffer());
    },
    log: () => readFileSync(logFile, 'utf8'),
    stop,
    async restart() {
      await stop();
      await launch();
    },
  };
}
