// Association limits: concurrent associations (dicom.maxAssociations), one dataset's size
// (dicom.maxDatasetBytes) and the idle timeout (dicom.idleTimeoutSeconds), each with its log line.
import t from 'tap';
import path from 'node:path';
import { startAppliance } from '../helpers/appliance.ts';
import { echoscu } from '../helpers/dcmtk.ts';
import { datasetBytes } from '../helpers/dicom-files.ts';
import { RawAssociation, pdata, storeCommand } from '../helpers/raw-scu.ts';
import { PYDICOM_DIR } from '../helpers/samples.ts';

const CT_CLASS = '1.2.840.10008.5.1.4.1.1.2';
const CT = path.join(PYDICOM_DIR, 'CT_small.dcm');
const CT_SOP = '1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

t.test('limits', async (t) => {
  const app = await startAppliance({
    dir: t.testdir(),
    nodes: [{ name: 'RAW', aeTitle: 'RAWSCU', allow: ['echo', 'store'] }],
    dicom: { maxAssociations: 1, maxDatasetBytes: 16384, idleTimeoutSeconds: 2 },
  });
  t.teardown(() => app.stop());

  // One association open: a second call is refused (transient, local limit exceeded).
  const first = await RawAssociation.connect(app.dicomPort);
  t.equal(await first.associate('UPLINK', 'RAWSCU', CT_CLASS, EXPLICIT_LE), 0x02, 'the first association is accepted');
  const second = await echoscu(['-aet', 'RAWSCU', '-aec', 'UPLINK', '127.0.0.1', String(app.dicomPort)]);
  t.match(`${second.stdout}${second.stderr}`, /Rejected Transient.*\n.*Local Limit Exceeded/i, 'a second one is rejected: transient, local limit exceeded');
  await app.waitForLog(/"reject":"limit","reason":"already 1 associations open/);
  t.pass('the log says why');

  // A dataset over dicom.maxDatasetBytes: refused with 0xA700 once its data has ended, nothing stored.
  const ds = datasetBytes(CT);
  first.send(pdata(1, storeCommand(CT_CLASS, CT_SOP, 1), true, true));
  for (let o = 0; o < ds.length; o += 16000) first.send(pdata(1, ds.subarray(o, o + 16000), false, o + 16000 >= ds.length));
  t.equal(await first.storeStatus(), 0xa700, 'a dataset larger than dicom.maxDatasetBytes gets 0xA700');
  t.equal(app.instanceCount(), 0, 'nothing stored');
  await app.waitForLog(/"level":"warn".*larger than the 16384 bytes this appliance accepts/);
  t.pass('the log says the dataset was too large');

  // Silent for longer than dicom.idleTimeoutSeconds: the appliance aborts the association.
  let end: number | undefined;
  for (let i = 0; i < 3 && end === undefined; i++) {
    const p = await first.next(10000).catch(() => undefined);
    if (p === null || p?.type === 0x07) end = p === null ? 0 : 0x07;
  }
  t.ok(end !== undefined, 'an idle association is aborted / closed');
  await app.waitForLog(/Exceeded PDU timeout|association network error/);
  t.pass('the log says it timed out');
  first.close();

  // The limit is free again afterwards.
  const again = await echoscu(['-aet', 'RAWSCU', '-aec', 'UPLINK', '127.0.0.1', String(app.dicomPort)]);
  t.equal(again.code, 0, 'a new association is accepted once the old one is gone');
});
