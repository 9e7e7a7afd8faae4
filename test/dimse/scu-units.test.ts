/** The SCU's small parts checked against references: DCMTK's dcmconv, dcmjs-dimse's command encoding, PS3.8 framing. */
import t from 'tap';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import dimse from 'dcmjs-dimse';
import { readHeader } from '../../appliance/dicom/header.ts';
import { bigToLittleEndian } from '../../appliance/dimse/scu-transcode.ts';
import { PduSplitter, PduFormatError } from '../../appliance/dimse/scu-pdu.ts';
import { cStoreRQ, cEchoRQ, readResponse } from '../../appliance/dimse/command-set.ts';
import { planAssociations, type Prepared } from '../../appliance/dimse/store-scu.ts';
import { statusMeaning, storeDisposition } from '../../appliance/dimse/scu-status.ts';
import { PYDICOM_DIR } from '../helpers/samples.ts';
import { runDcmtk } from '../helpers/dcmtk.ts';

t.test('big endian to little endian is byte-identical to dcmconv +te', async (t) => {
  const dir = t.testdir();
  for (const name of ['MR_small_bigendian.dcm', 'MR_small_expb.dcm', 'rtdose_expb.dcm', 'liver_expb_1frame.dcm', 'ExplVR_BigEnd.dcm']) {
    const src = path.join(PYDICOM_DIR, name);
    const h = await readHeader(src);
    t.equal(h.transferSyntaxUID, '1.2.840.10008.1.2.2', `${name} is big endian`);
    const ours = await bigToLittleEndian(Buffer.from(readFileSync(src).subarray(h.datasetOffset)));
    const out = path.join(dir, name);
    const r = await runDcmtk('dcmconv', ['+te', src, out]);
    t.equal(r.code, 0, `dcmconv converted ${name}`);
    const ref = readFileSync(out).subarray((await readHeader(out)).datasetOffset);
    t.ok(ours.equals(ref), `${name}: same bytes as DCMTK`);
  }
});

t.test('command sets are the bytes dcmjs-dimse would write', async (t) => {
  const { Dataset } = dimse;
  const ref = new Dataset({
    AffectedSOPClassUID: '1.2.840.10008.5.1.4.1.1.2',
    CommandField: 1,
    MessageID: 7,
    Priority: 0,
    CommandDataSetType: 0,
    AffectedSOPInstanceUID: '1.2.3.4',
  }).getDenaturalizedCommandDataset();
  t.ok(cStoreRQ(7, '1.2.840.10008.5.1.4.1.1.2', '1.2.3.4').equals(ref), 'C-STORE-RQ');
  const echoRef = new Dataset({ AffectedSOPClassUID: '1.2.840.10008.1.1', CommandField: 0x30, MessageID: 3, CommandDataSetType: 0x0101 }).getDenaturalizedCommandDataset();
  t.ok(cEchoRQ(3).equals(echoRef), 'C-ECHO-RQ');
  const rsp = new Dataset({
    AffectedSOPClassUID: '1.2.840.10008.5.1.4.1.1.2',
    CommandField: 0x8001,
    MessageIDBeingRespondedTo: 7,
    CommandDataSetType: 0x0101,
    Status: 0xb000,
    ErrorComment: 'coerced',
    AffectedSOPInstanceUID: '1.2.3.4',
  }).getDenaturalizedCommandDataset();
  t.same(readResponse(rsp), { commandField: 0x8001, messageIdBeingRespondedTo: 7, status: 0xb000, affectedSopInstanceUID: '1.2.3.4', errorComment: 'coerced', hasDataset: false });
});

t.test('PDUs are split the same whatever the chunking', async (t) => {
  const mk = (type: number, n: number) => {
    const b = Buffer.alloc(6 + n, n & 0xff);
    b[0] = type;
    b[1] = 0;
    b.writeUInt32BE(n, 2);
    return b;
  };
  const stream = Buffer.concat([mk(2, 10), mk(4, 70000), mk(6, 4)]);
  const whole = new PduSplitter(1 << 20).push(stream);
  t.same(
    whole.map((p) => [p.type, p.body.length]),
    [
      [2, 10],
      [4, 70000],
      [6, 4],
    ],
  );
  const s = new PduSplitter(1 << 20);
  const bytewise = [];
  for (let i = 0; i < stream.length; i += 7) bytewise.push(...s.push(stream.subarray(i, i + 7)));
  t.same(
    bytewise.map((p) => [p.type, p.body.length, p.body[0]]),
    whole.map((p) => [p.type, p.body.length, p.body[0]]),
    'fed in 7-byte pieces',
  );
  const error = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      return e;
    }
    return undefined;
  };
  const big = error(() => new PduSplitter(1000).push(mk(4, 5000)));
  t.ok(big instanceof PduFormatError, 'an oversized PDU is refused');
  t.match(String(big), /exceeds the 1000-byte limit/);
  const unknown = error(() => new PduSplitter(1000).push(mk(9, 4)));
  t.ok(unknown instanceof PduFormatError, 'an unknown PDU type is refused');
  t.match(String(unknown), /unknown PDU type/);
});

t.test('statuses in words and what they mean for an instance', async (t) => {
  const table: [number, string, RegExp][] = [
    [0x0000, 'done', /^Success/],
    [0x0001, 'done', /^Warning/],
    [0xb000, 'done', /coercion/],
    [0xb006, 'done', /discarded/],
    [0xb007, 'done', /does not match/],
    [0x0111, 'done', /Duplicate/],
    [0xa700, 'retry', /out of resources/],
    [0xa7ff, 'retry', /out of resources/],
    [0x0213, 'retry', /resource limitation/],
    [0xa900, 'failed', /does not match SOP class/],
    [0xc000, 'failed', /cannot understand/],
    [0xc123, 'failed', /cannot understand/],
    [0x0122, 'failed', /SOP class not supported/],
    [0x0124, 'failed', /not authorised/],
    [0x0110, 'failed', /processing failure/],
  ];
  for (const [status, disposition, words] of table) {
    t.equal(storeDisposition(status), disposition, `0x${status.toString(16)}: ${disposition}`);
    t.match(statusMeaning(status), words);
    t.match(statusMeaning(status), new RegExp(`0x${status.toString(16).toUpperCase().padStart(4, '0')}`));
  }
});

t.test('association planning keeps to the context limit and covers every instance once', async (t) => {
  const items: Prepared[] = [];
  for (let i = 0; i < 300; i++) {
    const cls = `1.2.3.${i % 150}`;
    const ts = i % 3 === 0 ? '1.2.840.10008.1.2.4.50' : '1.2.840.10008.1.2.1';
    items.push({
      index: i,
      file: { path: `/x/${i}`, sopClassUID: cls, sopInstanceUID: `9.${i}`, transferSyntaxUID: ts },
    });
  }
  const plans = planAssociations(items, 128);
  t.ok(plans.length > 1, `split over ${plans.length} associations`);
  for (const p of plans) {
    t.ok(p.contexts.length <= 128, `${p.contexts.length} contexts`);
    t.same(p.contexts.map((c) => c.id), p.contexts.map((_c, i) => 2 * i + 1), 'ids 1, 3, 5, ...');
    for (const it of p.items) {
      t.ok(
        p.contexts.some((c) => c.abstractSyntax === it.file.sopClassUID && c.transferSyntaxes.length === 1 && c.transferSyntaxes[0] === it.file.transferSyntaxUID),
        'its stored syntax is proposed alone',
      );
    }
  }
  t.same(
    plans.flatMap((p) => p.items.map((i) => i.index)).sort((a, b) => a - b),
    items.map((i) => i.index),
    'every instance in exactly one association',
  );
});
