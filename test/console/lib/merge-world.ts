/**
 * The test world of the console's second half (merge, transfer, nodes, download, delete): Debian's Orthanc as the
 * hospital PACS (dicom.pacs, send: true) that already holds the right patient (a study of HOSP-4711 sent to it
 * directly with DCMTK), optionally a second Orthanc (PACS2) to transfer to, the real server (server/main.ts as a
 * child process, or in-process), users made with the real CLI, and a study sent by the node PARTNER whose
 * C-STOREs get the "upload" policy (anonymised: a pseudonym Patient ID; forwarded to the PACS).
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import Database from 'better-sqlite3';
import { dcmsend, storescu } from '../../helpers/dcmtk.ts';
import { startOrthanc, type Orthanc } from '../../helpers/orthanc.ts';
import { startServer, type TestServer } from '../../helpers/server.ts';
import { makeStudies, type TestInstance } from '../../intake/lib/studies.ts';
import { ADMIN, USER, addUser } from './world.ts';

interface TapLike {
  testdir(): string;
  teardown(fn: () => unknown): void;
}

/** The patient the hospital PACS knows (the study will be linked to it). Latin-1 letters on purpose. */
export const HOSPITAL = { patientId: 'HOSP-4711', issuer: '', name: 'Jansen^Pieter', birthDate: '19700101', sex: 'M' };

export interface MergeWorld {
  /** The test's folder (t.testdir(): call that only once, it empties the folder). */
  dir: string;
  srv: TestServer;
  /** null with `pacsDown`: dicom.pacs then points at a port nothing listens on. */
  pacs: Orthanc | null;
  pacs2: Orthanc | null;
  /** The uploaded study's instances (original files, before anonymisation). */
  sent: TestInstance[];
  studyUid: string;
  /** The appliance's database, read-only. */
  db: Database.Database;
}

/** Poll `check` until it returns a truthy value; fail with `what` (and the server's output) after `ms`. */
export async function waitFor<T>(check: () => T | Promise<T>, what: string, ms = 30_000, output?: () => string): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${output ? `:\n${output().slice(-3000)}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The bytes from the top-level Pixel Data element's tag to the end of a Part 10 file (test files: little endian, last element). */
export function pixelDataBytes(file: Buffer): Buffer {
  const at = file.lastIndexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00]));
  if (at < 0) throw new Error('no Pixel Data');
  return file.subarray(at);
}

/** Every copy Orthanc keeps of an instance (it keys instances by patient too), with its Patient ID and name. */
export async function orthancCopies(o: Orthanc, sopInstanceUid: string): Promise<{ id: string; patientId: string; name: string; file: Buffer }[]> {
  const hits = (await (await fetch(`${o.url}/tools/lookup`, { method: 'POST', body: sopInstanceUid })).json()) as { Type: string; ID: string }[];
  const out = [];
  for (const h of hits.filter((x) => x.Type === 'Instance')) {
    const tags = (await (await fetch(`${o.url}/instances/${h.ID}/simplified-tags`)).json()) as Record<string, string>;
    const file = Buffer.from(await (await fetch(`${o.url}/instances/${h.ID}/file`)).arrayBuffer());
    out.push({ id: h.ID, patientId: tags.PatientID, name: tags.PatientName, file });
  }
  return out;
}

export async function startMergeWorld(
  t: TapLike,
  opts: { pacs2?: boolean; mode?: 'process' | 'in-process'; nodes?: Record<string, unknown>[]; pacsDown?: boolean } = {},
): Promise<MergeWorld> {
  const dir = t.testdir();
  // The Orthancs start side by side.
  const started = await Promise.all([
    opts.pacsDown ? null : startOrthanc({ dir: path.join(dir, 'pacs'), aeTitle: 'PACS' }),
    opts.pacs2 ? startOrthanc({ dir: path.join(dir, 'pacs2'), aeTitle: 'PACS2' }) : null,
  ]);
  for (const o of started) if (o) t.teardown(() => o.stop());
  const [pacs, pacs2] = started;
  if (pacs) {
    // The hospital PACS already has the right patient (one earlier study).
    const [earlier] = await makeStudies(path.join(dir, 'hospital'), [{ patient: HOSPITAL.patientId, sample: 'CT_small.dcm', studies: [{ accession: 'H-ACC-1', instances: 1 }] }]);
    execFileSync('dcmodify', ['-nb', '-i', `(0010,0010)=${HOSPITAL.name}`, '-i', `(0010,0030)=${HOSPITAL.birthDate}`, '-i', `(0010,0040)=${HOSPITAL.sex}`, '-e', '(0010,0021)', earlier.file], { stdio: 'pipe' });
    const seeded = await storescu(['-aet', 'SEED', '-aec', 'PACS', '127.0.0.1', String(pacs.dicomPort), earlier.file]);
    if (seeded.code !== 0) throw new Error(`storescu to Orthanc failed: ${seeded.stderr}`);
  }

  const nodes: Record<string, unknown>[] = [
    { name: 'PARTNER', aeTitle: 'PARTNER', host: '127.0.0.1', port: 104, allow: ['echo', 'store', 'find'], policy: 'upload' },
    { name: 'PACS', aeTitle: 'PACS', host: '127.0.0.1', port: pacs ? pacs.dicomPort : 9, allow: [], send: true },
    ...(pacs2 ? [{ name: 'PACS2', aeTitle: 'PACS2', host: '127.0.0.1', port: pacs2.dicomPort, allow: [], send: true }] : []),
    // the second Orthanc under a wrong AE title: it rejects the association for good (failed)
    ...(pacs2 ? [{ name: 'MISNAMED', aeTitle: 'NOT-PACS2', host: '127.0.0.1', port: pacs2.dicomPort, allow: [], send: true }] : []),
    ...(opts.nodes ?? []),
  ];
  const srv = await startServer(t, {
    mode: opts.mode,
    dir: path.join(dir, 'uplink'),
    config: {
      dicom: { nodes, pacs: 'PACS' },
      policies: { upload: { scan: false } },
      forward: { retryInitialSeconds: 30 },
    },
  });
  await Promise.all([addUser(srv, ADMIN, 'admin'), addUser(srv, USER, 'user')]);
  const sent = await makeStudies(path.join(dir, 'in'), [{ patient: 'ORIG-PAT-9', sample: 'CT_small.dcm', studies: [{ accession: 'ORIG-ACC-9', instances: 2 }] }]);
  const r = await dcmsend(['-aet', 'PARTNER', '-aec', 'UPLINK', '127.0.0.1', String(srv.dicomPort), ...sent.map((i) => i.file)]);
  if (r.code !== 0) throw new Error(`dcmsend failed (${r.code}):\n${r.stdout}${r.stderr}`);
  const db = new Database(path.join(srv.dataDir, 'uplink.sqlite'), { readonly: true });
  t.teardown(() => db.close());
  return { dir, srv, pacs, pacs2, sent, studyUid: sent[0].study, db };
}
