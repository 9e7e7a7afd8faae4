/**
 * C-STORE SCU against real peers: every valid pydicom sample sent to Orthanc and to `storescp +B`, and what
 * they keep is compared byte for byte with what we stored (data set = file minus its meta group); peers that
 * accept only uncompressed syntaxes get transcoded data (recorded) or a failure with its reason.
 */
import t from 'tap';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { readHeader } from '../../appliance/dicom/header.ts';
import { walkBuffer } from '../../appliance/dicom/read-file.ts';
import { sendInstances, type InstanceOutcome, type StoreFile } from '../../appliance/dimse/store-scu.ts';
import { copyWithNewUids, validSamples } from '../helpers/samples.ts';
import { startOrthanc, UNCOMPRESSED_SYNTAXES } from '../helpers/orthanc.ts';
import { dcmsend, startStoreScp } from '../helpers/dcmtk.ts';

const ELE = '1.2.840.10008.1.2.1';
const ILE = '1.2.840.10008.1.2';
const DEFLATED = '1.2.840.10008.1.2.1.99';

/** Everything after the file meta group of a Part 10 file (written here, independent of the code under test). */
function datasetOf(b: Buffer): Buffer {
  if (b.toString('latin1', 128, 132) !== 'DICM') throw new Error('not a Part 10 file');
  let o = 132;
  while (o + 8 <= b.length && b.readUInt16LE(o) === 0x0002) {
    const vr = b.toString('latin1', o + 4, o + 6);
    const long = ['OB', 'OW', 'OF', 'SQ', 'UT', 'UN', 'UC', 'UR', 'OD', 'OL', 'OV', 'SV', 'UV'].includes(vr);
    o += (long ? 12 + b.readUInt32LE(o + 8) : 8 + b.readUInt16LE(o + 6));
  }
  return b.subarray(o);
}

function metaTransferSyntax(b: Buffer): string {
  let o = 132;
  while (o + 8 <= b.length && b.readUInt16LE(o) === 0x0002) {
    const el = b.readUInt16LE(o + 2);
    const vr = b.toString('latin1', o + 4, o + 6);
    const long = ['OB', 'OW', 'UN', 'SQ', 'UT'].includes(vr);
    const h = long ? 12 : 8;
    const len = long ? b.readUInt32LE(o + 8) : b.readUInt16LE(o + 6);
    if (el === 0x0010) return b.toString('latin1', o + h, o + h + len).replace(/[\0 ]+$/, '');
    o += h + len;
  }
  throw new Error('no transfer syntax in the meta group');
}

/** Top-level tags of a data set, as hex strings. */
async function topLevelTags(dataset: Buffer, ts: string): Promise<Set<string>> {
  const tags = new Set<string>();
  await walkBuffer(
    dataset,
    {
      element(e) {
        if (e.depth === 0) tags.add(e.tag.toString(16).padStart(8, '0'));
        return 'skip';
      },
    },
    { transferSyntaxUID: ts },
  );
  return tags;
}

async function describe(files: string[]): Promise<StoreFile[]> {
  const out: StoreFile[] = [];
  for (const f of files) {
    const h = await readHeader(f);
    out.push({ path: f, sopClassUID: h.sopClassUID, sopInstanceUID: h.sopInstanceUID, transferSyntaxUID: h.transferSyntaxUID });
  }
  return out;
}

/** What we expect the peer to keep when it receives our stored data set in its own syntax. */
function expectedWire(file: StoreFile): Buffer {
  const ds = datasetOf(readFileSync(file.path));
  // A deflated bit stream of odd length goes out padded with one NUL byte (PS3.5 A.5; DCMTK refuses odd PDVs).
  return file.transferSyntaxUID === DEFLATED && ds.length % 2 ? Buffer.concat([ds, Buffer.alloc(1)]) : ds;
}

const samples = validSamples();
type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

t.test('every valid sample reaches Orthanc bit for bit', async (t) => {
  const dir = t.testdir();
  const files = await describe(copyWithNewUids(samples, path.join(dir, 'samples')));
  const orthanc = await startOrthanc({ dir: path.join(dir, 'pacs') });
  t.teardown(() => orthanc.stop());

  const reported: number[] = [];
  const outcomes = await sendInstances(orthanc.node, files, { callingAeTitle: 'UPLINK', onResult: (_o, i) => reported.push(i) });
  t.equal(outcomes.length, files.length, 'one outcome per file');
  t.same([...reported].sort((a, b) => a - b), files.map((_f, i) => i), 'onResult called once for every file');

  let done = 0;
  let withPrivate = 0;
  const refused: string[] = [];
  for (let i = 0; i < files.length; i++) {
    const f = files[i];
    const o = outcomes[i];
    const name = path.basename(f.path);
    if (!f.sopClassUID) {
      // A handful of pydicom samples are bare data sets with no SOP Class UID: no C-STORE can carry them.
      t.equal(o.outcome, 'failed', `${name}: refused locally`);
      t.match(o.meaning, /no SOP Class UID/, `${name}: says why`);
      t.notOk(await orthanc.lookup(f.sopInstanceUID), `${name}: not at Orthanc`);
      continue;
    }
    t.notOk(o.transcoded, `${name}: sent in its stored syntax`);
    if (o.outcome === 'failed' && o.status !== undefined) {
      // Orthanc refuses a few samples outright. Then it must refuse them from DCMTK too (same syntax, no
      // decompression), and we must have said so with its status.
      refused.push(name);
      const ref = await dcmsend(['-v', '-dn', '-aet', 'UPLINK', '-aec', orthanc.aeTitle, '127.0.0.1', String(orthanc.dicomPort), f.path]);
      t.match(ref.stdout + ref.stderr, /with status ERROR\s*:\s*1/, `${name}: Orthanc refuses it from dcmsend as well (${o.meaning})`);
      t.notOk(await orthanc.lookup(f.sopInstanceUID), `${name}: not at Orthanc`);
      continue;
    }
    t.equal(o.outcome, 'done', `${name}: done (${o.meaning})`);
    t.equal(o.status, 0, `${name}: success status`);
    const kept = await orthanc.fileOf(f.sopInstanceUID);
    if (!kept) {
      t.fail(`${name}: Orthanc has it`);
      continue;
    }
    t.equal(metaTransferSyntax(kept), f.transferSyntaxUID, `${name}: kept in its stored syntax`);
    if (f.transferSyntaxUID === DEFLATED) {
      // Orthanc inflates what it receives and deflates it again when it writes the file: compare the content.
      t.ok(inflateRawSync(datasetOf(kept)).equals(inflateRawSync(datasetOf(readFileSync(f.path)))), `${name}: Orthanc's data set inflates to exactly ours`);
    } else {
      t.ok(datasetOf(kept).equals(expectedWire(f)), `${name}: Orthanc's data set is byte-identical to ours`);
    }
    if ((await topLevelTags(datasetOf(readFileSync(f.path)), f.transferSyntaxUID)).size > 0) {
      const tags = await topLevelTags(datasetOf(kept), f.transferSyntaxUID).catch(() => new Set<string>());
      if ([...tags].some((tag) => parseInt(tag.slice(0, 4), 16) % 2 === 1)) withPrivate++;
    }
    done++;
  }
  t.ok(done >= 50, `most samples stored (${done}; refused by Orthanc: ${refused.join(', ') || 'none'})`);
  t.ok(refused.length <= 3, 'Orthanc refuses only a few odd samples');
  t.ok(withPrivate >= 3, `private tags were among what arrived identical (${withPrivate} files with private elements)`);
  t.equal(await orthanc.countInstances(), done, 'Orthanc holds exactly the instances reported done');
});

t.test('every valid sample reaches storescp +B bit for bit', async (t) => {
  const dir = t.testdir();
  const files = (await describe(copyWithNewUids(samples, path.join(dir, 'samples')))).filter((f) => f.sopClassUID);
  const scp = await startStoreScp({ dir: path.join(dir, 'received'), accept: 'all' });
  t.teardown(() => scp.stop());

  const outcomes = await sendInstances(scp.node, files, { callingAeTitle: 'UPLINK' });
  t.same(
    outcomes.filter((o) => o.outcome !== 'done').map((o) => o.meaning),
    [],
    'every instance done',
  );
  const received = new Map<string, Buffer>();
  for (const p of scp.files()) {
    const h = await readHeader(p);
    received.set(h.metaSopInstanceUID || h.sopInstanceUID, readFileSync(p));
  }
  t.equal(received.size, files.length, 'storescp wrote one file per instance');
  for (const f of files) {
    const kept = received.get(f.sopInstanceUID);
    const name = path.basename(f.path);
    if (!kept) {
      t.fail(`${name}: received`);
      continue;
    }
    t.ok(datasetOf(kept).equals(expectedWire(f)), `${name}: storescp's data set is byte-identical to ours`);
  }
});

/** Check the outcomes of a send to a peer that takes only some syntaxes. Returns the transcoded and failed names. */
async function checkRestricted(
  t: TapTest,
  files: StoreFile[],
  outcomes: InstanceOutcome[],
  accepted: string[],
  keptOf: (uid: string) => Promise<Buffer | undefined>,
): Promise<{ transcoded: string[]; failed: string[] }> {
  const transcoded: string[] = [];
  const failed: string[] = [];
  for (let i = 0; i < files.length; i++) {
    const f = files[i];
    const o = outcomes[i];
    const name = path.basename(f.path);
    t.not(o.outcome, 'retry', `${name}: not left for a retry (${o.meaning})`);
    const kept = await keptOf(f.sopInstanceUID);
    if (o.outcome === 'failed') {
      failed.push(name);
      t.match(o.meaning, /transcod|not supported|does not accept|limit/i, `${name}: failure says why: ${o.meaning}`);
      t.notOk(kept, `${name}: nothing was stored for it`);
      continue;
    }
    if (!kept) {
      t.fail(`${name}: the peer has it`);
      continue;
    }
    if (accepted.includes(f.transferSyntaxUID)) {
      t.notOk(o.transcoded, `${name}: accepted syntax sent as stored`);
      t.ok(datasetOf(kept).equals(datasetOf(readFileSync(f.path))), `${name}: byte-identical`);
      continue;
    }
    transcoded.push(name);
    t.same(o.transcoded?.from, f.transferSyntaxUID, `${name}: transcoding recorded (from)`);
    t.ok(o.transcoded && accepted.includes(o.transcoded.to), `${name}: transcoded to an accepted syntax (${o.transcoded?.to})`);
    t.equal(metaTransferSyntax(kept), o.transcoded?.to, `${name}: the peer keeps it in the syntax we sent`);
    if (f.transferSyntaxUID === DEFLATED && o.transcoded?.to === ELE) {
      t.ok(datasetOf(kept).equals(inflateRawSync(datasetOf(readFileSync(f.path)))), `${name}: inflated, otherwise byte-identical`);
    }
    const ours = await topLevelTags(datasetOf(readFileSync(f.path)).subarray(0), f.transferSyntaxUID);
    const theirs = await topLevelTags(datasetOf(kept), o.transcoded!.to);
    t.same([...theirs].sort(), [...ours].sort(), `${name}: every top-level element (private ones included) survived transcoding`);
  }
  return { transcoded, failed };
}

t.test('Orthanc taking only uncompressed syntaxes: transcoded where possible, failed with a reason otherwise', async (t) => {
  const dir = t.testdir();
  const files = (await describe(copyWithNewUids(samples, path.join(dir, 'samples')))).filter((f) => f.sopClassUID);
  const orthanc = await startOrthanc({ dir: path.join(dir, 'pacs'), acceptedTransferSyntaxes: UNCOMPRESSED_SYNTAXES });
  t.teardown(() => orthanc.stop());

  const outcomes = await sendInstances(orthanc.node, files, { callingAeTitle: 'UPLINK' });
  const { transcoded, failed } = await checkRestricted(t, files, outcomes, UNCOMPRESSED_SYNTAXES, (uid) => orthanc.fileOf(uid));
  t.ok(transcoded.length >= 10, `compressed samples were transcoded (${transcoded.length})`);
  t.ok(transcoded.some((n) => n.includes('_dfl')), 'the deflated sample was inflated');
  t.ok(failed.length >= 1, `some could not be transcoded and say so (${failed.join(', ')})`);
  t.equal(await orthanc.countInstances(), outcomes.filter((o) => o.outcome === 'done').length, 'Orthanc holds exactly what was reported done');
});

t.test('storescp taking only Implicit VR Little Endian: uncompressed samples transcoded exactly', async (t) => {
  const dir = t.testdir();
  const uncompressed = (await describe(copyWithNewUids(samples, path.join(dir, 'samples')))).filter(
    (f) => f.sopClassUID && [ELE, ILE, DEFLATED, '1.2.840.10008.1.2.2'].includes(f.transferSyntaxUID),
  );
  const scp = await startStoreScp({ dir: path.join(dir, 'received'), accept: 'implicit' });
  t.teardown(() => scp.stop());

  const outcomes = await sendInstances(scp.node, uncompressed, { callingAeTitle: 'UPLINK' });
  const byUid = async () => {
    const m = new Map<string, Buffer>();
    for (const p of scp.files()) m.set((await readHeader(p)).sopInstanceUID, readFileSync(p));
    return m;
  };
  const kept = await byUid();
  const { transcoded } = await checkRestricted(t, uncompressed, outcomes, [ILE], async (uid) => kept.get(uid));
  t.ok(transcoded.some((n) => n.includes('bigendian') || n.includes('expb')), 'big endian samples arrived (transcoded)');
  t.ok(transcoded.length >= 10, `explicit VR samples were transcoded (${transcoded.length})`);
});
