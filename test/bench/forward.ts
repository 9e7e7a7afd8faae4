/**
 * `npm run bench:forward`: the same study sets sent to Debian's Orthanc by DCMTK `storescu` (TCP_NODELAY=1,
 * one association, the baseline) and by Uplink's forwarder (the appliance built from a config, the study
 * stored first, then timed from `enqueueStudy` until every job is done), in one run; each to a fresh Orthanc.
 * Prints instances/s, MB/s and the ratio to storescu, and checks that every file Orthanc keeps from the
 * forwarder has our stored data set, byte for byte. Not a pass/fail test. `npm run bench:forward -- 3` for
 * three rounds (the best round counts: other load on the machine only ever slows a run down).
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createAppliance } from '../../appliance/appliance.ts';
import { readHeader } from '../../appliance/dicom/header.ts';
import { createLogger } from '../../appliance/log.ts';
import type { Scanner } from '../../appliance/scan/scanner.ts';
import { merge, validate } from '../../config/load.ts';
import { defaults } from '../../config/schema.ts';
import { runDcmtk } from '../helpers/dcmtk.ts';
import { datasetBytes } from '../helpers/dicom-files.ts';
import { freePort } from '../helpers/net.ts';
import { startOrthanc, type Orthanc } from '../helpers/orthanc.ts';
import { benchSet } from './fixtures.ts';

const rounds = Number(process.argv[2] ?? 2);
const sets = [
  { name: '500 small CT (39 KB)', files: benchSet('ct-small', 500) },
  { name: '200 CT 512x512 (525 KB)', files: benchSet('ct-512', 200, 512) },
];
const bytesOf = (files: string[]) => files.reduce((n, f) => n + statSync(f).size, 0);
const work = mkdtempSync(path.join(os.tmpdir(), 'uplink-bench-forward-'));
let seq = 0;
const pacs = (caller: string) => startOrthanc({ dir: path.join(work, `orthanc-${++seq}`), aeTitle: 'PACS', callerAeTitle: caller });

/** No policy here scans: a scanner that is never asked. */
const noScanner: Scanner = {
  scan: async () => {
    throw new Error('not used');
  },
  status: async () => ({ available: false, signatures: 'none', detail: 'benchmark: no scanner' }),
};

async function viaStorescu(files: string[]): Promise<number> {
  const o = await pacs('BENCH');
  try {
    const t0 = process.hrtime.bigint();
    const r = await runDcmtk('storescu', ['-aet', 'BENCH', '-aec', o.aeTitle, '127.0.0.1', String(o.dicomPort), ...files], 600_000);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.code !== 0) throw new Error(`storescu failed: ${r.stderr.slice(-2000)}`);
    if ((await o.countInstances()) !== files.length) throw new Error('storescu: Orthanc does not hold every instance');
    return s;
  } finally {
    await o.stop();
  }
}

async function viaForwarder(files: string[]): Promise<{ seconds: number; identical: number; checked: number; associations: number }> {
  const o = await pacs('UPLINK');
  const dataDir = path.join(work, `uplink-${++seq}`);
  const config = validate(
    merge(defaults, {
      dataDir,
      log: { level: 'warn' },
      dicom: {
        port: await freePort(),
        nodes: [
          { name: 'BENCH', aeTitle: 'BENCH', host: '127.0.0.1', port: 104, allow: ['store'] },
          { name: 'PACS', aeTitle: o.aeTitle, host: '127.0.0.1', port: o.dicomPort, allow: [], send: true },
        ],
      },
      scan: { clamd: { manage: false } },
    }),
  );
  const lines: string[] = [];
  const log = createLogger('info', { write: (s: string) => (lines.push(s), true) } as unknown as NodeJS.WritableStream);
  const app = createAppliance(config, log, { scanner: noScanner });
  try {
    const { dicom } = await app.start();
    // Store the study first (not timed): the modality policy forwards nothing by itself.
    const r = await runDcmtk('storescu', ['-aet', 'BENCH', '-aec', config.dicom.aeTitle, '127.0.0.1', String(dicom.port), ...files], 600_000);
    if (r.code !== 0) throw new Error(`storescu into Uplink failed: ${r.stderr.slice(-2000)}`);
    const study = (await readHeader(files[0])).studyInstanceUID;
    const t0 = process.hrtime.bigint();
    app.forward.enqueueStudy(study, 'PACS', { kind: 'system', name: 'bench' });
    for (;;) {
      const [p] = app.forward.studyStatus(study);
      if (p.done + p.failed === p.total) {
        if (p.failed) throw new Error(`forwarder: ${p.failed} failed: ${p.lastMeaning}`);
        break;
      }
      await new Promise((res) => setTimeout(res, 5));
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if ((await o.countInstances()) !== files.length) throw new Error('forwarder: Orthanc does not hold every instance');
    let identical = 0;
    const rows = app.db.prepare('SELECT sop_uid, path FROM instances').all() as { sop_uid: string; path: string }[];
    for (const row of rows) {
      const kept = await o.fileOf(row.sop_uid);
      if (kept && kept.subarray(144 + kept.readUInt32LE(140)).equals(datasetBytes(app.store.absolute(row.path)))) identical++;
    }
    const associations = lines.filter((l) => l.includes('"msg":"forwarded"')).length;
    return { seconds, identical, checked: rows.length, associations };
  } finally {
    await app.stop();
    await o.stop();
  }
}

const results = new Map<string, { seconds: number; n: number; bytes: number; note?: string }>();
const keep = (key: string, r: { seconds: number; n: number; bytes: number; note?: string }) => {
  const prev = results.get(key);
  if (!prev || r.seconds < prev.seconds) results.set(key, r);
};
try {
  for (let round = 0; round < rounds; round++) {
    for (const set of sets) {
      const n = set.files.length;
      const bytes = bytesOf(set.files);
      keep(`storescu|${set.name}`, { seconds: await viaStorescu(set.files), n, bytes });
      const f = await viaForwarder(set.files);
      if (f.identical !== f.checked) throw new Error(`${set.name}: only ${f.identical} of ${f.checked} files at Orthanc are identical to ours`);
      keep(`Uplink|${set.name}`, { seconds: f.seconds, n, bytes, note: `${f.identical}/${f.checked} bit-identical at Orthanc, ${f.associations} batch(es)` });
    }
  }
  const load = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  console.log(`\nForwarding benchmark: storescu -> Orthanc vs Uplink's forwarder -> Orthanc (best of ${rounds} rounds, ${os.cpus().length} cores, load ${load})\n`);
  for (const set of sets) {
    console.log(set.name);
    const base = results.get(`storescu|${set.name}`)!;
    for (const name of ['storescu', 'Uplink']) {
      const r = results.get(`${name}|${set.name}`)!;
      const ips = r.n / r.seconds;
      const mbs = r.bytes / 1e6 / r.seconds;
      console.log(`  ${name.padEnd(9)} ${ips.toFixed(0).padStart(6)} inst/s ${mbs.toFixed(1).padStart(7)} MB/s   x${(ips / (base.n / base.seconds)).toFixed(2)} storescu${r.note ? `   (${r.note})` : ''}`);
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
