// C-STORE SCP against DCMTK: every real pydicom sample sent with dcmsend (each file in its own syntax) is kept
// byte for byte as DCMTK's bit-preserving storescp (+B) keeps the same send; storescu works too; sending the
// same instances again is acknowledged without storing them twice.
import t from 'tap';
import path from 'node:path';
import { startAppliance } from '../helpers/appliance.ts';
import { dcmsend, startStoreScp, storescu } from '../helpers/dcmtk.ts';
import { datasetBytes, filesUnder, metaSopInstanceUid } from '../helpers/dicom-files.ts';
import { copyWithNewUids, validSamples } from '../helpers/samples.ts';


t.test('dcmsend of every pydicom sample: Uplink keeps what storescp +B keeps, byte for byte', async (t) => {
  const dir = t.testdir();
  const files = copyWithNewUids(validSamples(), path.join(dir, 'in'));
  const app = await startAppliance({ dir: path.join(dir, 'uplink'), nodes: [{ name: 'MOD', aeTitle: 'DCMSEND', allow: ['echo', 'store'] }] });
  t.teardown(() => app.stop());

  const scp = await startStoreScp({ dir: path.join(dir, 'storescp'), aeTitle: 'UPLINK', bitPreserving: true, accept: 'all' });
  t.teardown(() => scp.stop());

  const send = (port: number) => dcmsend(['-nh', '-aet', 'DCMSEND', '-aec', 'UPLINK', '127.0.0.1', String(port), ...files]);
  await send(scp.port);
  await send(app.dicomPort);

  const reference = scp.files();
  t.ok(reference.length >= 50, `storescp kept ${reference.length} instances`);
  const ours = new Map(filesUnder(path.join(app.dataDir, 'store')).map((f) => [path.basename(f, '.dcm'), f]));
  let identical = 0;
  for (const ref of reference) {
    const uid = metaSopInstanceUid(ref);
    const mine = ours.get(uid);
    if (!mine) {
      t.fail(`instance ${uid} (${path.basename(ref)}) kept by storescp is missing in Uplink`);
      continue;
    }
    if (datasetBytes(mine).equals(datasetBytes(ref))) identical++;
    else t.fail(`dataset of ${uid} differs from storescp +B`);
  }
  t.equal(identical, reference.length, 'every dataset storescp kept is byte-identical in Uplink');
  t.equal(app.instanceCount(), ours.size, 'index and store hold the same number of instances');

  // The same send again: acknowledged (dcmsend reports success), nothing stored twice.
  const before = app.instanceCount();
  const again = await dcmsend(['-nh', '-v', '-aet', 'DCMSEND', '-aec', 'UPLINK', '127.0.0.1', String(app.dicomPort), ...reference]);
  const out = `${again.stdout}${again.stderr}`;
  t.match(out, /with status SUCCESS/i, 'duplicates are acknowledged with success');
  t.notMatch(out, /status (FAILURE|REFUSED)/i, 'no duplicate was refused');
  t.equal(app.instanceCount(), before, 'no instance stored twice');
});

t.test('storescu (uncompressed, implicit and explicit VR, big endian) stores into the index', async (t) => {
  const dir = t.testdir();
  const wanted = validSamples().filter((f) => /MR_small(_implicit|_bigendian|_expb)?\.dcm$|CT_small|rtplan\.dcm|test-SR|waveform_ecg/.test(f));
  const files = copyWithNewUids(wanted, path.join(dir, 'in'));
  const app = await startAppliance({ dir: path.join(dir, 'uplink'), nodes: [{ name: 'MOD', aeTitle: 'STORESCU', allow: ['store'] }] });
  t.teardown(() => app.stop());
  const r = await storescu(['-aet', 'STORESCU', '-aec', 'UPLINK', '127.0.0.1', String(app.dicomPort), ...files]);
  t.equal(r.code, 0, `storescu succeeded: ${r.stderr}`);
  t.equal(app.instanceCount(), files.length, 'every instance indexed');
  const logs = app.logLines().filter((l) => l.msg === 'instance stored');
  t.equal(logs.length, files.length, 'one log line per stored instance');
  t.notMatch(app.output(), /CompressedSamples|Lestrade|4MR1|1CT1/, 'no patient names or IDs in the log');
});
