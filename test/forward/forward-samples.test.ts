/**
 * Forwarding with real peers: DCMTK dcmsend C-STOREs every valid pydicom sample into the real appliance
 * (server/main.ts as `npm start` runs it); its policy forwards them to two Debian Orthancs, one accepting
 * every syntax (the hospital PACS), one only uncompressed syntaxes. Every file the PACS keeps has the data set
 * bytes we stored (private tags included); what the PACS refuses it refuses from DCMTK too; the restricted
 * PACS gets transcoded data (recorded in the job) or a failure with the reason. Instances of a node with the
 * "upload" policy go to dicom.pacs, anonymised as stored. Each Orthanc holds exactly what the queue says is done.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { readHeader } from '../../appliance/dicom/header.ts';
import { walkBuffer } from '../../appliance/dicom/read-file.ts';
import { startAppliance } from '../helpers/appliance.ts';
import { dcmsend } from '../helpers/dcmtk.ts';
import { datasetBytes, metaValue } from '../helpers/dicom-files.ts';
import { startOrthanc, UNCOMPRESSED_SYNTAXES } from '../helpers/orthanc.ts';
import { copyWithNewUids, PYDICOM_DIR, validSamples } from '../helpers/samples.ts';
import { queueReader, waitFor, type JobRow } from './lib/peers.ts';

const DEFLATED = '1.2.840.10008.1.2.1.99';

/** The data set of a Part 10 file held in memory (after the meta group; (0002,0000) gives its length). */

async function hasPrivateTags(dataset: Buffer, ts: string): Promise<boolean> {
  let found = false;
  await walkBuffer(
    dataset,
    {
      element(e) {
        if (e.depth === 0 && (e.tag >>> 16) % 2 === 1) found = true;
        return 'skip';
      },
    },
    { transferSyntaxUID: ts },
  ).catch(() => undefined);
  return found;
}

const terminal = (jobs: JobRow[]) => jobs.length > 0 && jobs.every((j) => j.state === 'done' || j.state === 'failed');

t.test('every sample forwarded: bit for bit to the PACS, transcoded or refused with a reason by an uncompressed-only PACS; uploads to dicom.pacs', async (t) => {
  const dir = t.testdir();
  const [pacs, plain] = await Promise.all([
    startOrthanc({ dir: path.join(dir, 'pacs'), aeTitle: 'PACS' }),
    startOrthanc({ dir: path.join(dir, 'plain'), aeTitle: 'PLAIN', acceptedTransferSyntaxes: UNCOMPRESSED_SYNTAXES }),
  ]);
  t.teardown(() => Promise.all([pacs.stop(), plain.stop()]));
  const app = await startAppliance({
    dir: path.join(dir, 'uplink'),
    nodes: [
      { name: 'MOD', aeTitle: 'DCMSEND', allow: ['echo', 'store'], policy: 'relay' },
      { name: 'PARTNER', aeTitle: 'PARTNER', allow: ['store'], policy: 'upload' },
      { name: 'PACS', aeTitle: 'PACS', port: pacs.dicomPort, allow: [], send: true },
      { name: 'PLAIN', aeTitle: 'PLAIN', port: plain.dicomPort, allow: [], send: true },
    ],
    dicom: { pacs: 'PACS' },
    config: {
      policies: { relay: { anonymise: false, label: null, workflowStatus: null, scan: false, forwardTo: ['PACS', 'PLAIN'] }, upload: { scan: false } },
      forward: { retryInitialSeconds: 1, retryMaxSeconds: 4 },
    },
  });
  t.teardown(() => app.stop());

  const files = copyWithNewUids(validSamples(), path.join(dir, 'samples'));
  const sent = await dcmsend(['-nh', '-aet', 'DCMSEND', '-aec', 'UPLINK', '127.0.0.1', String(app.dicomPort), ...files]);
  const uploads = copyWithNewUids(['CT_small.dcm', 'MR_small.dcm', 'JPEG2000.dcm'].map((f) => path.join(PYDICOM_DIR, f)), path.join(dir, 'uploads'));
  const up = await dcmsend(['-aet', 'PARTNER', '-aec', 'UPLINK', '127.0.0.1', String(app.dicomPort), ...uploads]);
  t.equal(up.code, 0, `the partner's C-STOREs succeeded ${up.stderr}`);

  const q = queueReader(app.dataDir);
  t.teardown(() => q.close());
  const stored = q.instances();
  t.ok(stored >= 50 + 3, `the appliance stored the samples (${stored}; dcmsend exit ${sent.code})`);
  await waitFor(() => terminal(q.jobs()) && q.count() === (stored - 3) * 2 + 3, 120_000, 'every job done or failed');
  const jobs = q.jobs();
  t.equal(q.count("state IN ('queued', 'sending', 'retrying')"), 0, 'nothing left for a retry');

  // ---- the hospital PACS (every syntax): identical data sets, refusals only where DCMTK is refused too.
  let identical = 0;
  let withPrivate = 0;
  const refused: string[] = [];
  const toPacs = jobs.filter((j) => j.destination === 'PACS');
  for (const j of toPacs) {
    const ours = q.storePath(j.path);
    const ts = (await readHeader(ours)).transferSyntaxUID;
    if (j.state === 'failed') {
      refused.push(`${j.sop_uid}: ${j.last_meaning}`);
      t.ok(j.last_status !== null, `a refusal carries the PACS's status (${j.last_meaning})`);
      const ref = await dcmsend(['-v', '-dn', '-aet', 'UPLINK', '-aec', 'PACS', '127.0.0.1', String(pacs.dicomPort), ours]);
      t.match(ref.stdout + ref.stderr, /with status ERROR\s*:\s*1/, `the PACS refuses ${j.sop_uid} from dcmsend as well`);
      t.notOk(await pacs.lookup(j.sop_uid), 'not at the PACS');
      continue;
    }
    t.notOk(j.transcoded_from, 'sent in its stored syntax');
    const kept = await pacs.fileOf(j.sop_uid);
    if (!kept) {
      t.fail(`${j.sop_uid}: at the PACS`);
      continue;
    }
    t.equal(metaValue(kept, 0x0010), ts, 'kept in its stored syntax');
    const same =
      ts === DEFLATED
        ? // Orthanc inflates and deflates again when it writes the file: compare the content.
          inflateRawSync(datasetBytes(kept)).equals(inflateRawSync(datasetBytes(ours)))
        : datasetBytes(kept).equals(datasetBytes(ours));
    if (same) identical++;
    else t.fail(`${j.sop_uid}: the PACS's data set differs from ours`);
    if (same && (await hasPrivateTags(datasetBytes(ours), ts))) withPrivate++;
  }
  const done = toPacs.filter((j) => j.state === 'done').length;
  t.equal(identical, done, `every delivered data set identical (${identical})`);
  t.ok(done >= 50, `most samples delivered (${done}; refused: ${refused.join('; ') || 'none'})`);
  t.ok(refused.length <= 3, 'the PACS refuses only a few odd samples');
  t.ok(withPrivate >= 3, `private tags arrived byte for byte (${withPrivate} files with private elements)`);
  t.equal(await pacs.countInstances(), done, 'the PACS holds exactly the instances the queue says are done: no duplicates');

  // ---- the uncompressed-only PACS: transcoded (recorded) where possible, failed with the reason otherwise.
  const toPlain = jobs.filter((j) => j.destination === 'PLAIN');
  const transcoded: string[] = [];
  const failed: string[] = [];
  for (const j of toPlain) {
    const ours = q.storePath(j.path);
    const ts = (await readHeader(ours)).transferSyntaxUID;
    const kept = await plain.fileOf(j.sop_uid);
    if (j.state === 'failed') {
      failed.push(j.sop_uid);
      t.match(j.last_meaning, /transcod|not supported|does not accept|refused|Error/i, `says why: ${j.last_meaning}`);
      t.notOk(kept, 'nothing stored for it');
      continue;
    }
    if (!kept) {
      t.fail(`${j.sop_uid}: at the uncompressed-only PACS`);
      continue;
    }
    if (UNCOMPRESSED_SYNTAXES.includes(ts)) {
      t.notOk(j.transcoded_from, 'an accepted syntax is sent as stored');
      t.ok(datasetBytes(kept).equals(datasetBytes(ours)), 'and arrives byte for byte');
      continue;
    }
    transcoded.push(j.sop_uid);
    t.equal(j.transcoded_from, ts, 'the job records the syntax it had');
    t.ok(j.transcoded_to && UNCOMPRESSED_SYNTAXES.includes(j.transcoded_to), `and the uncompressed one it was sent in (${j.transcoded_to})`);
    t.equal(metaValue(kept, 0x0010), j.transcoded_to, 'the PACS keeps it in that syntax');
    if (ts === DEFLATED) t.ok(datasetBytes(kept).equals(inflateRawSync(datasetBytes(ours))), 'deflated: inflated, otherwise byte for byte');
  }
  t.ok(transcoded.length >= 10, `compressed samples were transcoded (${transcoded.length})`);
  t.ok(failed.length >= 1, `some could not be transcoded and say so (${failed.length})`);
  t.equal(await plain.countInstances(), toPlain.filter((j) => j.state === 'done').length, 'the restricted PACS holds exactly what is done');

  // ---- the upload policy: to dicom.pacs only, as stored (anonymised).
  const uploadJobs = jobs.filter((j) => q.storePath(j.path) && uploads.length && j.destination && j.sop_uid && (j as unknown as { origin: string }).origin === 'policy:upload');
  t.equal(uploadJobs.length, 3, 'one job per uploaded instance');
  t.same([...new Set(uploadJobs.map((j) => j.destination))], ['PACS'], 'to dicom.pacs only');
  for (const j of uploadJobs) {
    t.equal(j.state, 'done');
    const kept = (await pacs.fileOf(j.sop_uid))!;
    t.ok(kept && datasetBytes(kept).equals(datasetBytes(q.storePath(j.path))), 'the PACS has our stored (anonymised) data set');
    const h = await readHeader(q.storePath(j.path));
    t.match(h.patientID, /^UP[0-9A-Z]{14}$/, 'with the pseudonym');
  }

  // ---- the log: one line per batch with counts, no patient data.
  const lines = app.logLines().filter((l) => l.cat === 'forward' && /^forwarded/.test(String(l.msg)));
  t.ok(lines.length >= 2, `one line per batch (${lines.length})`);
  t.ok(lines.every((l) => typeof l.instances === 'number' && typeof l.done === 'number' && l.study), 'with counts and the study UID');
  t.notMatch(app.output(), /CompressedSamples|Lestrade|4MR1|1CT1|CT1\^/, 'no patient names or IDs in the log');
});
