// Malformed C-STOREs crafted at the PDU level (DCMTK refuses to send them): each gets a failure status and a
// log line, and nothing is stored; the appliance keeps serving. Also the association limits.
import t from 'tap';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { startAppliance } from '../helpers/appliance.ts';
import { datasetBytes } from '../helpers/dicom-files.ts';
import { RawAssociation, pdata, storeCommand } from '../helpers/raw-scu.ts';
import { PYDICOM_DIR } from '../helpers/samples.ts';

const CT_CLASS = '1.2.840.10008.5.1.4.1.1.2';
// CT_small.dcm is explicit VR little endian; its SOP Instance UID:
const CT = path.join(PYDICOM_DIR, 'CT_small.dcm');
const EXPLICIT_LE = '1.2.840.10008.1.2.1';


t.test('malformed data on the wire', async (t) => {
  const ok = await startAppliance({ dir: t.testdir(), nodes: [{ name: 'RAW', aeTitle: 'RAWSCU', allow: ['store'] }] });
  t.teardown(() => ok.stop());
  const ds = datasetBytes(CT);
  const sop = '1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322';

  const send = async (dataset: Buffer, commandSop: string, split = 16000) => {
    const a = await RawAssociation.connect(ok.dicomPort);
    t.equal(await a.associate('UPLINK', 'RAWSCU', CT_CLASS, EXPLICIT_LE), 0x02, 'association accepted');
    a.send(pdata(1, storeCommand(CT_CLASS, commandSop, 1), true, true));
    for (let o = 0; o < dataset.length; o += split) a.send(pdata(1, dataset.subarray(o, o + split), false, o + split >= dataset.length));
    const status = await a.storeStatus();
    a.close();
    return status;
  };

  // Cut off inside an element: the last 100 bytes of Pixel Data are missing.
  const cut = await send(ds.subarray(0, ds.length - 100), sop);
  t.equal(cut, 0xc000, 'a dataset cut off inside an element gets 0xC000');
  // Cut off inside an element header (elements start at even offsets).
  const cutHeader = await send(ds.subarray(0, 301), sop);
  t.equal(cutHeader, 0xc000, 'a dataset cut off in the middle of its header gets 0xC000');
  // SOP Instance UID of the dataset differs from the command's.
  const mismatch = await send(ds, '1.2.3.4.5.6.7.8.9');
  t.equal(mismatch, 0xc210, 'a dataset whose SOP Instance UID differs from the command gets 0xC210');
  t.equal(ok.instanceCount(), 0, 'nothing was stored');
  t.same(readdirSync(path.join(ok.dataDir, 'staging', 'incoming')), [], 'nothing left in staging');
  await ok.waitForLog(/"level":"warn".*The data ends inside the value of element \(FFFC,FFFC\)/);
  t.pass('the log says where the data was cut off');
  await ok.waitForLog(/"level":"warn".*SOP Instance UID differs/);
  t.pass('the log says the UIDs differ');

  // The same association is still usable for a good instance afterwards, and the appliance is healthy.
  const good = await send(ds, sop);
  t.equal(good, 0x0000, 'a good instance is stored');
  t.equal(ok.instanceCount(), 1);
  t.equal((await ok.health()).status, 200);

  // A PDU longer than dicom.maxPduBytes aborts the association before it is buffered.
  const a = await RawAssociation.connect(ok.dicomPort);
  await a.associate('UPLINK', 'RAWSCU', CT_CLASS, EXPLICIT_LE);
  const huge = Buffer.alloc(6);
  huge[0] = 4;
  huge.writeUInt32BE(0x7fffffff, 2);
  a.send(huge);
  let closed = false;
  for (let i = 0; i < 5 && !closed; i++) {
    const p = await a.next();
    closed = p === null || p.type === 0x07;
  }
  t.ok(closed, 'an oversized PDU gets an A-ABORT / connection close');
  await ok.waitForLog(/PDU larger than dicom.maxPduBytes/);
  t.pass('the log says the PDU was too large');
});
