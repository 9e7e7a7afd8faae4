/**
 * DCMTK tools for tests: a `storescp` peer started in the background (bit-preserving, into a folder) and the
 * command-line SCUs run to completion. Every tool runs with TCP_NODELAY=1 (DCMTK leaves Nagle on otherwise,
 * ~90 ms per message), passed through /usr/bin/env so the test process's own environment is untouched.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { freePort, waitForPort } from './net.ts';

export interface StoreScpOptions {
  /** Where received files go (storescp -od). */
  dir: string;
  aeTitle?: string;
  /** Keep what arrives bit for bit (+B). Default true. */
  bitPreserving?: boolean;
  /**
   * Transfer syntaxes accepted: 'all' (+xa), 'uncompressed' (storescp's default: explicit/implicit little,
   * big endian) or 'implicit' (+xi: Implicit VR Little Endian only). Default 'all'.
   */
  accept?: 'all' | 'uncompressed' | 'implicit';
  /** Largest PDU it accepts (--max-pdu). */
  maxPdu?: number;
  extraArgs?: string[];
}

export interface StoreScp {
  readonly port: number;
  readonly aeTitle: string;
  readonly dir: string;
  readonly node: { aeTitle: string; host: string; port: number };
  /** Paths of the files received so far. */
  files(): string[];
  /** What it printed so far. */
  output(): string;
  stop(): Promise<void>;
}

export async function startStoreScp(opts: StoreScpOptions): Promise<StoreScp> {
  const aeTitle = opts.aeTitle ?? 'STORESCP';
  const port = await freePort();
  mkdirSync(opts.dir, { recursive: true });
  const accept = { all: ['+xa'], uncompressed: [], implicit: ['+xi'] }[opts.accept ?? 'all'];
  const args = [
    'TCP_NODELAY=1',
    'storescp',
    ...(opts.bitPreserving === false ? [] : ['+B']),
    ...accept,
    '-od',
    opts.dir,
    '-aet',
    aeTitle,
    ...(opts.maxPdu ? ['--max-pdu', String(opts.maxPdu)] : []),
    ...(opts.extraArgs ?? []),
    String(port),
  ];
  const proc: ChildProcess = spawn('/usr/bin/env', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  await Promise.race([
    waitForPort(port, 15000),
    exited.then(() => {
      throw new Error(`storescp exited before listening:\n${out}`);
    }),
  ]);
  return {
    port,
    aeTitle,
    dir: opts.dir,
    node: { aeTitle, host: '127.0.0.1', port },
    files: () => readdirSync(opts.dir).map((f) => path.join(opts.dir, f)),
    output: () => out,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const kill = setTimeout(() => proc.kill('SIGKILL'), 5000);
      proc.kill('SIGTERM');
      await exited;
      clearTimeout(kill);
    },
  };
}

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a DCMTK tool (echoscu, storescu, dcmsend, findscu, dcmdump...) with TCP_NODELAY=1. Never rejects on a non-zero exit. */
export function runDcmtk(tool: string, args: string[], timeoutMs = 60000): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    execFile('/usr/bin/env', ['TCP_NODELAY=1', tool, ...args], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof (err as NodeJS.ErrnoException).code !== 'number') return reject(err);
      resolve({ code: err ? Number((err as NodeJS.ErrnoException).code) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

export const echoscu = (args: string[]) => runDcmtk('echoscu', args);
export const storescu = (args: string[]) => runDcmtk('storescu', args);
export const dcmsend = (args: string[]) => runDcmtk('dcmsend', args);
export const dcmdump = (args: string[]) => runDcmtk('dcmdump', args);
