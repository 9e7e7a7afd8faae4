/**
 * clamd's own INSTREAM rate (MB/s) on a set of files: the baseline the upload benchmark prints its ratio
 * against. Not a test. Files go to clamd over TCP through the thinnest client we have (clamd-client.ts's
 * `instream`, the same one the scanner uses) with no scanner bookkeeping, `concurrency` at a time.
 *
 * Compare like with like: measure against the same clamd (same signatures: a full freshclam set is far slower
 * per MB than the test set) and the same bytes. clamd caches the MD5 of content it found clean and skips
 * scanning it again, so a second pass over the same bytes is faster: with `warmup: true` one unmeasured pass
 * runs first; the caller should give both sides the same cache state.
 *
 * As a script: npx tsx test/bench/clamd-instream.ts [folder] [--mb 256] [--concurrency 4] [--host H --port P]
 * prints a first (cold-cache) and a second (warm-cache) pass over the same files.
 * Without a folder it writes --mb of random 512 KB files (never cached, nothing to detect) to a temp folder;
 * without --port it starts a private clamd with the test signature set.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { instream, parseScanReply } from '../../appliance/scan/clamd-client.ts';

export interface InstreamBenchOptions {
  host: string;
  port: number;
  /** Files, or a folder (all regular files below it). */
  files: string[] | string;
  /** Files in flight at once (default 4, the default scan.clamd.maxConcurrent). */
  concurrency?: number;
  /** Run one unmeasured pass first, so the measured pass finds clamd's clean-content cache warm. Default false. */
  warmup?: boolean;
  /** Per-file deadline (default 300 s). */
  timeoutMs?: number;
}

export interface InstreamBenchResult {
  files: number;
  bytes: number;
  seconds: number;
  /** Decimal megabytes (10^6 bytes) per second. */
  mbPerSec: number;
  concurrency: number;
  infected: number;
  warmup: boolean;
}

function listFiles(files: string[] | string): string[] {
  if (Array.isArray(files)) return files;
  return readdirSync(files, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name))
    .sort();
}

async function pass(opts: InstreamBenchOptions, files: string[], concurrency: number): Promise<{ bytes: number; infected: number }> {
  let next = 0;
  let bytes = 0;
  let infected = 0;
  const worker = async () => {
    while (next < files.length) {
      const f = files[next++];
      const r = await instream(opts, createReadStream(f, { highWaterMark: 256 * 1024 }), opts.timeoutMs ?? 300_000);
      bytes += r.bytes;
      if (parseScanReply(r).verdict === 'infected') infected++; // throws on anything but a verdict
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, worker));
  return { bytes, infected };
}

/** Measure clamd's INSTREAM rate on the files. Throws if clamd gives anything but verdicts. */
export async function measureClamdInstream(opts: InstreamBenchOptions): Promise<InstreamBenchResult> {
  const files = listFiles(opts.files);
  if (!files.length) throw new Error('no files to scan');
  const concurrency = opts.concurrency ?? 4;
  if (opts.warmup) await pass(opts, files, concurrency);
  const t0 = performance.now();
  const { bytes, infected } = await pass(opts, files, concurrency);
  const seconds = (performance.now() - t0) / 1000;
  return { files: files.length, bytes, seconds, mbPerSec: bytes / 1e6 / seconds, concurrency, infected, warmup: !!opts.warmup };
}

export function formatInstreamResult(r: InstreamBenchResult, label = 'clamd INSTREAM'): string {
  return `${label}: ${r.files} files, ${(r.bytes / 1e6).toFixed(1)} MB in ${r.seconds.toFixed(2)} s = ${r.mbPerSec.toFixed(1)} MB/s (concurrency ${r.concurrency}${r.warmup ? ', after a warm-up pass' : ''}${r.infected ? `, ${r.infected} infected` : ''})`;
}

async function main(argv: string[]): Promise<void> {
  const flag = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    if (i < 0) return undefined;
    const v = argv[i + 1];
    argv.splice(i, 2);
    return v;
  };
  const mb = Number(flag('mb') ?? 256);
  const concurrency = Number(flag('concurrency') ?? 4);
  const host = flag('host') ?? '127.0.0.1';
  const portArg = flag('port');
  let folder = argv[0];
  const cleanup: (() => unknown)[] = [];
  try {
    if (!folder) {
      folder = mkdtempSync(path.join(tmpdir(), 'uplink-bench-'));
      cleanup.push(() => rmSync(folder!, { recursive: true, force: true }));
      const size = 512 * 1024;
      for (let i = 0; i * size < mb * 1e6; i++) writeFileSync(path.join(folder, `f${String(i).padStart(5, '0')}.bin`), randomBytes(size));
      console.log(`wrote ${mb} MB of random 512 KB files to ${folder}`);
    }
    let port = Number(portArg);
    if (!portArg) {
      const { startTestClamd } = await import('../helpers/clamd.ts');
      const dir = mkdtempSync(path.join(tmpdir(), 'uplink-bench-clamd-'));
      const clamd = await startTestClamd({ teardown: (fn) => cleanup.unshift(fn) }, dir, { limits: { streamMaxBytes: 2 ** 31 - 1, maxFileBytes: 2 ** 31 - 1, maxScanBytes: 2 ** 32 - 1 } });
      cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
      port = clamd.port;
      console.log(`private clamd (test signature set) on ${host}:${port}`);
    }
    const total = listFiles(folder).reduce((n, f) => n + statSync(f).size, 0);
    console.log(`${listFiles(folder).length} files, ${(total / 1e6).toFixed(1)} MB`);
    const opts = { host, port, files: folder, concurrency };
    console.log(formatInstreamResult(await measureClamdInstream(opts), 'clamd INSTREAM, first pass (cold cache)'));
    console.log(formatInstreamResult(await measureClamdInstream(opts), 'clamd INSTREAM, same bytes again (warm cache)'));
  } finally {
    for (const fn of cleanup) await fn();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
