/**
 * `npm run bench:forward`: the same study sets sent to Debian's Orthanc by DCMTK `storescu` (TCP_NODELAY=1,
 * one association, the baseline) and by Uplink's forwarder (the appliance built from a config, the study
 * stored first, then timed from `enqueueStudy` until every job is done), in one run; each to a fresh Orthanc.
 * The same again with DCMTK `storescp +B` as the receiver (no index, no fsync), which shows the senders'
 * own speed when the receiver is not the bottleneck. Prints instances/s, MB/s and the ratio to storescu, and
 * checks that every file the receivers keep from the forwarder has our stored data set, byte for byte.
 * Not a pass/fail test. `npm run bench:forward -- 3` for three rounds (the best round counts: other load on
 * the machine only ever slows a run down).
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createAppliance } from '../../appliance/appliance.ts';
import { readHeader } from '../../appliance/dicom/header.ts';
import { createLogger } from '../../appliance/log.ts';
import type { Scanner } from '../../appliance/scan/scanner.ts';
import { merge, validate } from '../../config/load.ts';
import { defaults } from '../../config/schema.ts';
import { runDcmtk, startStoreScp } from '../helpers/dcmtk.ts';
import { datasetBytes } from '../helpers/dicom-files.ts';
import { freePort } from '../helpers/net.ts';
import { startOrthanc } from '../helpers/orthanc.ts';
import { benchSet } from './fixtures.ts';

const rounds = Number(process.argv[2] ?? 2);
const sets = [
  { name: '500 small CT (39 KB)', files: benchSet('ct-small', 500) },
  { name: '200 CT 512x512 (525 KB)', files: benchSet('ct-512', 200, 512) },
];
const bytesOf = (files: string[]) => files.reduce((n, f) => n + statSync(f).size, 0);
const work = mkdtempSync(path.join(os.tmpdir(), 'uplink-bench-forward-'));
let seq = 0;

/** A receiver: started fresh for each send; `keptOf` is the Part 10 file it keeps for a SOP Instance UID. */
interface Peer {
  aeTitle: string;
  port: number;
  count(): Promise<number>;
  keptOf(sopInstanceUID: string): Promise<Buffer | undefined>;
  stop(): Promise<void>;
}
const receivers: { name: string; start(): Promise<Peer> }[] = [
  {
    name: 'Orthanc',
    async start() {
      const o = await startOrthanc({ dir: path.join(work, `orthanc-${++seq}`), aeTitle: 'PACS', callerAeTitle: 'UPLINK' });
      return { aeTitle: o.aeTitle, port: o.dicomPort, count: () => o.countInstances(), keptOf: (uid) => o.fileOf(uid), stop: () => o.stop() };
    },
  },
  {
    name: 'storescp',
    async start() {
      const scp = await startStoreScp({ dir: path.join(work, `storescp-${++seq}`), aeTitle: 'STORESCP', bitPreserving: true });
      // storescp +B names files <modality>.<SOP Instance UID>
      const byUid = () => new Map(scp.files().map((f) => [path.basename(f).replace(/^[A-Z]{2}\./, ''), f]));
      return {
        aeTitle: scp.aeTitle,
        port: scp.port,
        count: async () => scp.files().length,
        keptOf: async (uid) => {
          const f = byUid().get(uid);
          return f ? readFileSync(f) : undefined;
        },
        stop: () => scp.stop(),
      };
    },
  },
];

/** No policy here scans: a scanner that is never asked. */
const noScanner: Scanner = {
  scan: async () => {
    throw new Error('not used');
  },
  status: async () => ({ available: false, signatures: 'none', detail: 'benchmark: no scanner' }),
};

async function viaStorescu(receiver: (typeof receivers)[number], files: string[]): Promise<number> {
  const p = await receiver.start();
  try {
    const t0 = process.hrtime.bigint();
    const r = await runDcmtk('storescu', ['-aet', 'UPLINK', '-aec', p.aeTitle, '127.0.0.1', String(p.port), ...files], 600_000);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.code !== 0) throw new Error(`storescu to ${receiver.name} failed: ${r.stderr.slice(-2000)}`);
    if ((await p.count()) !== files.length) throw new Error(`storescu: ${receiver.name} does not hold every instance`);
    return s;
  } finally {
    await p.stop();
  }
}

/** Store the set in a fresh appliance (not timed), then forward the study to a fresh instance of each receiver. */
async function viaForwarder(files: string[]): Promise<Map<string, { seconds: number; identical: number; checked: number; batches: number }>> {
  const dataDir = path.join(work, `uplink-${++seq}`);
  const peers = new Map<string, Peer>();
  const out = new Map<string, { seconds: number; identical: number; checked: number; batches: number }>();
  const config = validate(
    merge(defaults, {
      dataDir,
      log: { level: 'warn' },
      dicom: {
        port: await freePort(),
        nodes: [
          { name: 'BENCH', aeTitle: 'BENCH', host: '127.0.0.1', port: 104, allow: ['store'] },
          // Ports are filled in below, once each receiver runs (the config is read when the worker sends).
          ...receivers.map((r) => ({ name: r.name, aeTitle: 'X', host: '127.0.0.1', port: 1, allow: [], send: true })),
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
    const r = await runDcmtk('storescu', ['-aet', 'BENCH', '-aec', config.dicom.aeTitle, '127.0.0.1', String(dicom.port), ...files], 600_000);
    if (r.code !== 0) throw new Error(`storescu into Uplink failed: ${r.stderr.slice(-2000)}`);
    const study = (await readHeader(files[0])).studyInstanceUID;
    const rows = app.db.prepare('SELECT sop_uid, path FROM instances').all() as { sop_uid: string; path: string }[];
    for (const receiver of receivers) {
      const p = await receiver.start();
      peers.set(receiver.name, p);
      Object.assign(config.dicom.nodes.find((n) => n.name === receiver.name)!, { aeTitle: p.aeTitle, port: p.port });
      const before = lines.length;
      const t0 = process.hrtime.bigint();
      app.forward.enqueueStudy(study, receiver.name, { kind: 'system', name: 'bench' });
      // Done when the worker's batch lines account for every instance (watching the log costs the worker
      // nothing; polling the queue would take CPU from it).
      for (;;) {
        const batches = lines.slice(before).filter((l) => l.includes('"cat":"forward"') && l.includes('"msg":"forwarded')).map((l) => JSON.parse(l));
        if (batches.reduce((n, b) => n + b.instances, 0) >= files.length) break;
        await new Promise((res) => setTimeout(res, 2));
      }
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const s = app.forward.studyStatus(study).find((x) => x.destination === receiver.name)!;
      if (s.done !== s.total) throw new Error(`forwarder to ${receiver.name}: ${s.total - s.done} not done: ${s.lastMeaning}`);
      if ((await p.count()) !== files.length) throw new Error(`forwarder: ${receiver.name} does not hold every instance`);
      let identical = 0;
      for (const row of rows) {
        const kept = await p.keptOf(row.sop_uid);
        if (kept && kept.subarray(144 + kept.readUInt32LE(140)).equals(datasetBytes(app.store.absolute(row.path)))) identical++;
      }
      const batches = lines.slice(before).filter((l) => l.includes('"msg":"forwarded')).length;
      out.set(receiver.name, { seconds, identical, checked: rows.length, batches });
      await p.stop();
      peers.delete(receiver.name);
    }
    return out;
  } finally {
    await app.stop();
    for (const p of peers.values()) await p.stop();
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
      for (const receiver of receivers) keep(`${receiver.name}|storescu|${set.name}`, { seconds: await viaStorescu(receiver, set.files), n, bytes });
      for (const [name, f] of await viaForwarder(set.files)) {
        if (f.identical !== f.checked) throw new Error(`${set.name}: only ${f.identical} of ${f.checked} files at ${name} are identical to ours`);
        keep(`${name}|Uplink|${set.name}`, { seconds: f.seconds, n, bytes, note: `${f.identical}/${f.checked} bit-identical at ${name}, ${f.batches} association(s)` });
      }
    }
  }
  const load = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  console.log(`\nForwarding benchmark: DCMTK storescu vs Uplink's forwarder (best of ${rounds} rounds, ${os.cpus().length} cores, load ${load})\n`);
  for (const receiver of receivers) {
    console.log(`to ${receiver.name}${receiver.name === 'storescp' ? ' +B (no index, no fsync: the senders\' own speed)' : ' (the hospital PACS stand-in)'}`);
    for (const set of sets) {
      console.log(`  ${set.name}`);
      const base = results.get(`${receiver.name}|storescu|${set.name}`)!;
      for (const sender of ['storescu', 'Uplink']) {
        const r = results.get(`${receiver.name}|${sender}|${set.name}`)!;
        const ips = r.n / r.seconds;
        const mbs = r.bytes / 1e6 / r.seconds;
        console.log(`    ${sender.padEnd(9)} ${ips.toFixed(0).padStart(6)} inst/s ${mbs.toFixed(1).padStart(7)} MB/s   x${(ips / (base.n / base.seconds)).toFixed(2)} storescu${r.note ? `   (${r.note})` : ''}`);
      }
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
