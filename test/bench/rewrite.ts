/**
 * Benchmark (not a test): `npm run bench:rewrite`.
 *
 * Rewrites (anonymise rules + the UPLINK private block, as the upload policy does) a generated 300 MB
 * multi-frame file and a folder of 2,000 small real files (copies of pydicom's CT_small), and compares with
 * `cp` of the same bytes in the same run (page cache warm for both; `sync` before each timed step, neither
 * fsyncs its output), and with `cp` followed by `openssl dgst -sha256` of the copy (the rewrite hashes what
 * it writes, as ingest needs).
 * Prints MB/s (median and best round), the ratios
 * and the peak memory of this process above what it used before the first rewrite.
 *
 * Options: --big-mb N (default 300), --small N (default 2000), --rounds N (default 3), --concurrency N
 * (small files rewritten N at a time, as parallel uploads would; default 4), --keep (keep the temp folder).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Tags } from '../../appliance/dicom/dictionary.ts';
import { rewrite, type EditRule, type PrivateBlock } from '../../appliance/dicom/rewrite.ts';
import { DEIDENTIFICATION_METHOD } from '../../appliance/intake/transform.ts';
import { FRAME_BYTES, writeMultiframe } from '../helpers/large-dicom.ts';
import { PYDICOM_DIR } from '../helpers/samples.ts';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const BIG_MB = arg('big-mb', 300);
const SMALL = arg('small', 2000);
const ROUNDS = arg('rounds', 3);
const CONCURRENCY = arg('concurrency', 4);
const MB = 1024 * 1024;
/** The fastest SHA-256 tool at hand for the "cp + hash" baseline: OpenSSL (SHA extensions), else coreutils. */
const HASHER = spawnSync('openssl', ['version']).status === 0 ? ['openssl', 'dgst', '-sha256'] : ['sha256sum'];

const RULES: EditRule[] = [
  { tag: Tags.PatientID, where: 'top', insert: true, value: 'UP0123456789ABCD' },
  { tag: Tags.PatientID, where: 'nested', value: (c) => (c.text ? 'UP0123456789ABCD' : undefined) },
  { tag: Tags.IssuerOfPatientID, where: 'top', insert: true, value: 'UPLINK' },
  { tag: Tags.OtherPatientIDs, where: 'any', value: null },
  { tag: Tags.OtherPatientIDsSequence, where: 'any', value: null },
  { tag: Tags.AccessionNumber, where: 'top', insert: true, value: 'UA0123456789ABCD' },
  { tag: Tags.IssuerOfAccessionNumberSequence, where: 'any', value: null },
  { tag: Tags.DeidentificationMethod, where: 'top', insert: true, value: DEIDENTIFICATION_METHOD },
];
const BLOCK: PrivateBlock = {
  group: 0x0011,
  creator: 'UPLINK',
  elements: [
    { element: 0x01, vr: 'LO', value: ['Uploaded'] },
    { element: 0x02, vr: 'LO', value: 'U-1234' },
    { element: 0x03, vr: 'CS', value: 'CODE' },
    { element: 0x05, vr: 'LT', value: 'Please compare with the previous study.' },
    { element: 0x07, vr: 'DT', value: '20240506070809+0000' },
  ],
};

function warm(paths: string[]): void {
  // read everything once so both cp and rewrite start from a warm page cache
  for (const p of paths) spawnSync('cat', [p], { stdio: ['ignore', 'ignore', 'ignore'] });
}

const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

let sampledPeak = 0;
const sampler = setInterval(() => (sampledPeak = Math.max(sampledPeak, process.memoryUsage.rss())), 5);

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'uplink-bench-rewrite-'));
  try {
    console.log(`Uplink rewrite benchmark (${os.cpus().length} CPUs, Node ${process.version}); data in ${dir}`);
    const big = path.join(dir, 'big.dcm');
    await writeMultiframe(big, Math.max(1, Math.round((BIG_MB * MB) / FRAME_BYTES)));
    const bigSize = statSync(big).size;
    const smallDir = path.join(dir, 'small');
    mkdirSync(smallDir);
    const sample = path.join(PYDICOM_DIR, 'CT_small.dcm');
    for (let i = 0; i < SMALL; i++) copyFileSync(sample, path.join(smallDir, `${String(i).padStart(5, '0')}.dcm`));
    const smallFiles = readdirSync(smallDir).map((f) => path.join(smallDir, f));
    const smallBytes = smallFiles.reduce((n, f) => n + statSync(f).size, 0);
    warm([big, ...smallFiles]);

    global.gc?.();
    const baseRss = process.memoryUsage.rss();
    sampledPeak = baseRss;
    const out = path.join(dir, 'out');
    // before each timed step: no output left, and no dirty pages of earlier steps still being written back
    const reset = () => {
      rmSync(out, { recursive: true, force: true });
      mkdirSync(out);
      spawnSync('sync');
    };

    const results: { name: string; bytes: number; cp: number[]; cpsum: number[]; rw: number[] }[] = [
      { name: `1 file of ${(bigSize / MB).toFixed(0)} MB`, bytes: bigSize, cp: [], cpsum: [], rw: [] },
      { name: `${SMALL} files of ${(smallBytes / SMALL / 1024).toFixed(0)} KB (${CONCURRENCY} at a time)`, bytes: smallBytes, cp: [], cpsum: [], rw: [] },
    ];
    for (let round = 0; round < ROUNDS; round++) {
      reset();
      let t0 = process.hrtime.bigint();
      execFileSync('cp', [big, path.join(out, 'big.dcm')]);
      results[0].cp.push(seconds(t0));
      reset();
      t0 = process.hrtime.bigint();
      execFileSync('cp', [big, path.join(out, 'big.dcm')]);
      execFileSync(HASHER[0], [...HASHER.slice(1), path.join(out, 'big.dcm')]);
      results[0].cpsum.push(seconds(t0));
      reset();
      t0 = process.hrtime.bigint();
      await rewrite(big, path.join(out, 'big.dcm'), RULES, { privateBlock: BLOCK });
      results[0].rw.push(seconds(t0));

      reset();
      t0 = process.hrtime.bigint();
      execFileSync('cp', ['-r', smallDir, path.join(out, 'small')]);
      results[1].cp.push(seconds(t0));
      reset();
      t0 = process.hrtime.bigint();
      execFileSync('cp', ['-r', smallDir, path.join(out, 'small')]);
      execFileSync('sh', ['-c', `find "$1" -type f -print0 | xargs -0 ${HASHER.join(' ')} > /dev/null`, 'sh', path.join(out, 'small')]);
      results[1].cpsum.push(seconds(t0));
      reset();
      const dest = path.join(out, 'small');
      mkdirSync(dest);
      t0 = process.hrtime.bigint();
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < smallFiles.length) {
            const f = smallFiles[next++];
            await rewrite(f, path.join(dest, path.basename(f)), RULES, { privateBlock: BLOCK });
          }
        }),
      );
      results[1].rw.push(seconds(t0));
    }
    reset();
    const peak = Math.max(sampledPeak, process.resourceUsage().maxRSS * 1024);

    console.log('');
    const h = HASHER[0] === 'openssl' ? 'openssl sha256' : 'sha256sum';
    console.log(`| Workload | cp | cp + ${h} | rewrite | rewrite / cp | rewrite / (cp + ${h}) |`);
    console.log('|---|---|---|---|---|---|');
    const rate = (bytes: number, s: number) => bytes / MB / s;
    for (const [label, pick] of [['median', median], ['best', (xs: number[]) => Math.min(...xs)]] as const) {
      for (const r of results) {
        const cp = rate(r.bytes, pick(r.cp));
        const cpsum = rate(r.bytes, pick(r.cpsum));
        const rw = rate(r.bytes, pick(r.rw));
        console.log(`| ${r.name}, ${label} | ${cp.toFixed(0)} MB/s | ${cpsum.toFixed(0)} MB/s | ${rw.toFixed(0)} MB/s | ${(rw / cp).toFixed(2)}x | ${(rw / cpsum).toFixed(2)}x |`);
      }
    }
    console.log('');
    console.log(`Memory: ${(baseRss / MB).toFixed(0)} MB resident before the first rewrite, peak ${(peak / MB).toFixed(0)} MB: ${((peak - baseRss) / MB).toFixed(0)} MB extra.`);
    console.log(`(median and best of ${ROUNDS} rounds; the rewrite computes the SHA-256 of every output while writing it, as ingest needs; load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')})`);
  } finally {
    clearInterval(sampler);
    if (!process.argv.includes('--keep')) rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
