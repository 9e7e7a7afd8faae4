/**
 * The rewrite engine on crafted files, compared byte for byte with the file it should produce (built
 * independently with test/dicom/lib/build.ts): nested defined- and undefined-length sequences and items,
 * group lengths, insertions in tag order (also inside items), removals, private block allocation and reuse,
 * the three native encodings, deflated data, preambles, and data it must refuse.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, createWriteStream } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { createDeflateRaw, deflateRawSync, inflateRawSync } from 'node:zlib';
import t, { type Test } from 'tap';
import { AppError } from '../../appliance/errors.ts';
import { Tags } from '../../appliance/dicom/dictionary.ts';
import { rewrite, type EditRule, type PrivateBlock } from '../../appliance/dicom/rewrite.ts';
import { readHeader } from '../../appliance/dicom/header.ts';
import { datasetBytes } from '../helpers/dicom-files.ts';
import { PYDICOM_DIR } from '../helpers/samples.ts';
import { EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE, el, groupLength, ids, item, part10, seq, text, type Enc } from './lib/build.ts';
import { dcmdump } from './lib/compare.ts';

const TS: [string, Enc, string][] = [
  ['explicit VR little endian', EXPLICIT_LE, '1.2.840.10008.1.2.1'],
  ['implicit VR little endian', IMPLICIT_LE, '1.2.840.10008.1.2'],
  ['explicit VR big endian', EXPLICIT_BE, '1.2.840.10008.1.2.2'],
];
const UIDS = { sop: '1.2.826.0.1.3680043.2.1125.1.1', study: '1.2.826.0.1.3680043.2.1125.1.2', series: '1.2.826.0.1.3680043.2.1125.1.3' };
const RequestAttributesSequence = 0x00400275;
const ReferencedRequestSequence = 0x0040a370;
const RequestedProcedureID = 0x00401001;

const OK_DUMP = (t: Test, file: string) => {
  const d = dcmdump(file);
  t.equal(d.status, 0, 'dcmdump reads it');
  t.same(d.warnings, [], 'dcmdump has no warnings');
  return d;
};

async function refuses(t: Test, p: Promise<unknown>, codes: string[], re: RegExp, what: string) {
  try {
    await p;
    t.fail(`${what}: accepted`);
  } catch (e) {
    t.ok(e instanceof AppError, `${what}: an AppError`);
    t.ok(codes.includes((e as AppError).code), `${what}: code ${(e as AppError).code}`);
    t.match((e as Error).message, re, `${what}: says why (${(e as Error).message})`);
  }
}

/** The whole test dataset with the given values; `defined` picks defined or undefined lengths for sequences and items. */
function dataset(enc: Enc, v: { pid: string; acc: string; innerAcc: string; innerPid: string; deepAcc: string; others: boolean; issuer?: string; deid?: string; block?: Buffer[] }, defined: boolean): Buffer[] {
  const { g08, g20 } = ids(enc, UIDS);
  const g8 = [...g08, el(enc, Tags.AccessionNumber, 'SH', v.acc), el(enc, Tags.Modality, 'CS', 'OT')];
  const g10 = [
    el(enc, Tags.PatientName, 'PN', 'Doe^Jane'),
    el(enc, Tags.PatientID, 'LO', v.pid),
    ...(v.issuer ? [el(enc, Tags.IssuerOfPatientID, 'LO', v.issuer)] : []),
    el(enc, Tags.PatientBirthDate, 'DA', '19700101'),
    ...(v.others ? [seq(enc, Tags.OtherPatientIDsSequence, [item(enc, [el(enc, Tags.PatientID, 'LO', 'OTHER-1'), el(enc, 0x00100022, 'CS', 'TEXT')], defined)], defined)] : []),
  ];
  const deep = seq(enc, ReferencedRequestSequence, [item(enc, [el(enc, Tags.AccessionNumber, 'SH', v.deepAcc), el(enc, Tags.StudyInstanceUID, 'UI', text(UIDS.study, 'UI'))], defined)], defined);
  const g40 = [
    seq(
      enc,
      RequestAttributesSequence,
      [
        item(enc, [el(enc, Tags.AccessionNumber, 'SH', v.innerAcc), el(enc, Tags.PatientID, 'LO', v.innerPid), el(enc, RequestedProcedureID, 'SH', 'RP1'), deep], defined),
        item(enc, [el(enc, RequestedProcedureID, 'SH', 'RP2')], defined),
      ],
      defined,
    ),
  ];
  return [
    groupLength(enc, 0x0008, g8),
    ...g8,
    groupLength(enc, 0x0010, g10),
    ...g10,
    ...(v.block ?? []),
    ...(v.deid ? [el(enc, Tags.DeidentificationMethod, 'LO', v.deid)] : []),
    ...g20,
    groupLength(enc, 0x0040, g40),
    ...g40,
    el(enc, Tags.PixelData, 'OW', Buffer.from([1, 2, 3, 4, 5, 6, 7, 8])),
  ];
}

const RULES: EditRule[] = [
  { tag: Tags.PatientID, where: 'top', insert: true, value: 'NEW-PATIENT-ID-0001' },
  { tag: Tags.PatientID, where: 'nested', value: (c) => (c.text ? `N-${c.text}` : undefined) },
  { tag: Tags.AccessionNumber, where: 'top', insert: true, value: (c) => `X${c.text}-LONGER`.slice(0, 16) },
  { tag: Tags.AccessionNumber, where: 'nested', value: (c) => `X${c.text}-LONGER`.slice(0, 16) },
  { tag: Tags.IssuerOfPatientID, insert: true, value: 'ISSUER' },
  { tag: Tags.OtherPatientIDsSequence, where: 'any', value: null },
  { tag: Tags.DeidentificationMethod, insert: true, value: 'METHOD' },
];
const BLOCK: PrivateBlock = { group: 0x0011, creator: 'UPLINK', elements: [{ element: 0x01, vr: 'LO', value: ['Uploaded'] }, { element: 0x05, vr: 'LT', value: 'A comment' }] };
const blockBytes = (enc: Enc, b: number, creator = 'UPLINK', label = 'Uploaded', comment = 'A comment') => [
  el(enc, 0x00110000 | b, 'LO', creator),
  el(enc, (0x00110000 | (b << 8) | 0x01) >>> 0, 'LO', label),
  el(enc, (0x00110000 | (b << 8) | 0x05) >>> 0, 'LT', comment),
];

for (const [name, enc, ts] of TS) {
  for (const defined of [true, false]) {
    t.test(`${name}, ${defined ? 'defined' : 'undefined'} lengths: nested edits, lengths and group lengths fixed`, async (t) => {
      const dir = t.testdir();
      const input = path.join(dir, 'in.dcm');
      const output = path.join(dir, 'out.dcm');
      writeFileSync(input, part10(ts, dataset(enc, { pid: 'PID1', acc: 'A1', innerAcc: 'IN-ACC', innerPid: 'PID1', deepAcc: 'DEEP', others: true }, defined), { sopInstance: UIDS.sop }));
      OK_DUMP(t, input);
      const r = await rewrite(input, output, RULES, { privateBlock: BLOCK });
      const want = Buffer.concat(
        dataset(
          enc,
          { pid: 'NEW-PATIENT-ID-0001', acc: 'XA1-LONGER', innerAcc: 'XIN-ACC-LONGER', innerPid: 'N-PID1', deepAcc: 'XDEEP-LONGER', others: false, issuer: 'ISSUER', deid: 'METHOD', block: blockBytes(enc, 0x10) },
          defined,
        ),
      );
      const got = datasetBytes(output);
      t.ok(got.equals(want), 'the dataset is exactly the one built with the new values (lengths, group lengths, order)');
      t.equal(r.replaced, 5, 'replaced: 1 top + 1 nested Patient ID, 3 accessions');
      t.equal(r.removed, 1, 'removed: Other Patient IDs Sequence');
      t.equal(r.inserted, 5, 'inserted: issuer, method, creator and 2 block elements');
      t.equal(r.privateCreatorTag, 0x00110010);
      t.equal(r.transferSyntaxUID, ts);
      t.equal(r.sha256, createHash('sha256').update(readFileSync(output)).digest('hex'), 'SHA-256 of what was written');
      const d = OK_DUMP(t, output);
      t.ok(d.lines.some((l) => l.includes('[XDEEP-LONGER]')), 'DCMTK reads the value two sequences deep');
      const h = await readHeader(output, { full: true });
      t.equal(h.patientID, 'NEW-PATIENT-ID-0001');
      t.equal(h.transferSyntaxUID, ts);
    });
  }
}

t.test('private block: a free block between others is allocated; a second rewrite reuses it', async (t) => {
  const dir = t.testdir();
  const enc = EXPLICIT_LE;
  const { g08, g20 } = ids(enc, UIDS);
  const others = (mine: Buffer[] = [], mineEls: Buffer[] = []) => {
    const g11 = [
      el(enc, 0x00110010, 'LO', 'VENDOR_A'),
      ...mine,
      el(enc, 0x00110012, 'LO', 'VENDOR_B'),
      el(enc, 0x00111001, 'LO', 'a-value'),
      ...mineEls,
      el(enc, 0x00111201, 'OB', Buffer.from([0xde, 0xad, 0xbe, 0xef])),
    ];
    return [groupLength(enc, 0x0011, g11), ...g11];
  };
  const input = path.join(dir, 'in.dcm');
  writeFileSync(input, part10('1.2.840.10008.1.2.1', [...g08, ...others(), ...g20], { sopInstance: UIDS.sop }));
  const once = path.join(dir, 'once.dcm');
  const r1 = await rewrite(input, once, [], { privateBlock: BLOCK });
  t.equal(r1.privateCreatorTag, 0x00110011, 'the lowest free block');
  const [c, l, m] = blockBytes(enc, 0x11);
  t.ok(datasetBytes(once).equals(Buffer.concat([...g08, ...others([c], [l, m]), ...g20])), 'creator and elements in tag order, group length fixed');
  OK_DUMP(t, once);

  const twice = path.join(dir, 'twice.dcm');
  const r2 = await rewrite(once, twice, [], { privateBlock: { ...BLOCK, elements: [{ element: 0x01, vr: 'LO', value: ['Uploaded', 'Reviewed'] }] } });
  t.equal(r2.privateCreatorTag, 0x00110011, 'the same block again');
  t.equal(r2.removed, 2, 'its old elements removed');
  const relabel = el(enc, 0x00111101, 'LO', 'Uploaded\\Reviewed');
  t.ok(datasetBytes(twice).equals(Buffer.concat([...g08, ...others([c], [relabel]), ...g20])), 'one UPLINK block, new content');
  OK_DUMP(t, twice);
});

t.test('insertions at the end of items and of a dataset without pixel data; undefined keeps; removal of a plain element', async (t) => {
  const dir = t.testdir();
  const enc = IMPLICIT_LE;
  const { g08, g20 } = ids(enc, UIDS);
  const build = (itemExtra: Buffer[], tail: Buffer[], others: boolean) => [
    ...g08,
    el(enc, Tags.PatientID, 'LO', 'KEEP'),
    ...(others ? [el(enc, Tags.OtherPatientIDs, 'LO', 'O1\\O2')] : []),
    ...g20,
    seq(enc, RequestAttributesSequence, [item(enc, [el(enc, 0x00321060, 'LO', 'proc'), ...itemExtra], false), item(enc, [el(enc, 0x00321060, 'LO', 'proc2'), ...itemExtra], true)], true),
    ...tail,
  ];
  const input = path.join(dir, 'in.dcm');
  const output = path.join(dir, 'out.dcm');
  writeFileSync(input, part10('1.2.840.10008.1.2', build([], [], true), { sopInstance: UIDS.sop }));
  const r = await rewrite(input, output, [
    { tag: Tags.PatientID, value: () => undefined },
    { tag: Tags.OtherPatientIDs, where: 'any', value: null },
    { tag: RequestedProcedureID, where: (p) => p.length === 1 && p[0].tag === RequestAttributesSequence, insert: true, value: 'ADDED' },
    { tag: 0x0040a124, insert: true, vr: 'UI', value: '1.2.3' },
  ]);
  t.equal(r.replaced, 0);
  t.equal(r.removed, 1);
  t.equal(r.inserted, 3);
  t.ok(datasetBytes(output).equals(Buffer.concat(build([el(enc, RequestedProcedureID, 'SH', 'ADDED')], [el(enc, 0x0040a124, 'UI', text('1.2.3', 'UI'))], false))), 'inserted before item delimiters, in defined items, and at the end');
  OK_DUMP(t, output);
});

t.test('the file meta group is rebuilt; the Source AE is kept; preambles are zeroed and reported', async (t) => {
  const dir = t.testdir();
  for (const [kind, preamble] of [
    ['pe', Buffer.from('MZ\x90\x00\x03\x00\x00\x00', 'latin1')],
    ['elf', Buffer.from('\x7fELF\x02\x01\x01', 'latin1')],
    ['other', Buffer.from('II*\x00', 'latin1')],
    ['zero', Buffer.alloc(0)],
  ] as const) {
    const input = path.join(dir, `${kind}.dcm`);
    const output = path.join(dir, `${kind}-out.dcm`);
    const { g08, g20 } = ids(EXPLICIT_LE, UIDS);
    // a meta group whose SOP Instance UID disagrees with the dataset's, with a Source AE
    const file = part10('1.2.840.10008.1.2.1', [...g08, ...g20], { preamble, sopInstance: '9.9.9' });
    writeFileSync(input, file);
    const r = await rewrite(input, output, []);
    t.equal(r.preamble, kind, `${kind}: reported`);
    const out = readFileSync(output);
    t.ok(out.subarray(0, 128).every((b) => b === 0), `${kind}: zero preamble`);
    const d = OK_DUMP(t, output);
    void d;
    const meta = (await import('node:child_process')).execFileSync('dcmdump', ['-q', output], { encoding: 'latin1' });
    t.match(meta, /\(0002,0003\) UI \[1\.2\.826\.0\.1\.3680043\.2\.1125\.1\.1\]/, `${kind}: meta SOP Instance UID is the dataset's`);
    t.match(meta, /\(0002,0010\) UI =LittleEndianExplicit/, `${kind}: transfer syntax kept`);
    t.ok(datasetBytes(output).equals(datasetBytes(input)), `${kind}: dataset untouched`);
  }
  const ae = path.join(dir, 'ae-out.dcm');
  await rewrite(path.join(PYDICOM_DIR, 'image_dfl.dcm'), ae, []);
  t.match((await import('node:child_process')).execFileSync('dcmdump', ['-q', ae], { encoding: 'latin1' }), /\(0002,0016\) AE \[CLUNIE1\]/, 'Source AE title kept');
});

t.test('deflated: inflated as a stream, edited, deflated again', async (t) => {
  const dir = t.testdir();
  const input = path.join(PYDICOM_DIR, 'image_dfl.dcm');
  const output = path.join(dir, 'out.dcm');
  const r = await rewrite(input, output, [{ tag: Tags.PatientID, value: 'DEFLATED-NEW' }]);
  t.equal(r.deflated, true);
  const inflatedIn = inflateRawSync(datasetBytes(input));
  const inflatedOut = inflateRawSync(datasetBytes(output));
  t.ok(datasetBytes(output).length < inflatedOut.length / 4, 'the output is deflated');
  t.equal(inflatedOut.length - inflatedIn.length, 'DEFLATED-NEW'.length, 'only the Patient ID grew');
  t.ok(inflatedOut.subarray(inflatedOut.length - 262144).equals(inflatedIn.subarray(inflatedIn.length - 262144)), 'pixel data identical');
  const h = await readHeader(output, { full: true });
  t.equal(h.patientID, 'DEFLATED-NEW');

  // a deflate bomb: 300 MB of zeros in an OB element inflate past the cap
  const bomb = path.join(dir, 'bomb.dcm');
  const { g08, g20 } = ids(EXPLICIT_LE, UIDS);
  const head = Buffer.concat([...g08, ...g20, el(EXPLICIT_LE, 0x00091010, 'LO', 'X'), Buffer.from([0x09, 0x00, 0x01, 0x10, 0x4f, 0x42, 0, 0]), Buffer.from([0, 0, 0xc0, 0x12])]);
  const meta = part10('1.2.840.10008.1.2.1.99', []);
  const ws = createWriteStream(bomb);
  ws.write(meta);
  const zeros = Buffer.alloc(1 << 20);
  await pipeline(
    Readable.from((function* () {
      yield head;
      for (let i = 0; i < 300; i++) yield zeros;
    })()),
    createDeflateRaw({ level: 1 }),
    ws,
  );
  await refuses(t, rewrite(bomb, path.join(dir, 'bomb-out.dcm'), []), ['TOO_LARGE'], /inflates to more than/, 'deflate bomb');
  t.notOk(existsSync(path.join(dir, 'bomb-out.dcm')), 'nothing left behind');
  void deflateRawSync;
});

t.test('a big file (hashed on the worker thread): the pixel data streamed through, SHA-256 right', async (t) => {
  const dir = t.testdir();
  const { g08, g20 } = ids(EXPLICIT_LE, UIDS);
  const pixels = Buffer.alloc(40 * 1024 * 1024 + 6);
  for (let i = 0; i < pixels.length; i += 4096) pixels.writeUInt32LE((i * 2654435761) >>> 0, i);
  const input = path.join(dir, 'big.dcm');
  writeFileSync(input, part10('1.2.840.10008.1.2.1', [...g08, el(EXPLICIT_LE, Tags.PatientID, 'LO', 'BIG'), ...g20, el(EXPLICIT_LE, Tags.PixelData, 'OB', pixels)], { sopInstance: UIDS.sop }));
  for (const round of [1, 2]) {
    const output = path.join(dir, `out-${round}.dcm`);
    const r = await rewrite(input, output, [{ tag: Tags.PatientID, value: 'BIGGER-ID' }], { privateBlock: BLOCK });
    const out = readFileSync(output);
    t.equal(r.size, out.length, 'size');
    t.equal(r.sha256, createHash('sha256').update(out).digest('hex'), 'SHA-256 of what was written');
    t.ok(out.subarray(out.length - pixels.length).equals(pixels), 'pixel data byte-identical');
    t.ok(datasetBytes(output).equals(Buffer.concat([...g08, el(EXPLICIT_LE, Tags.PatientID, 'LO', 'BIGGER-ID'), ...blockBytes(EXPLICIT_LE, 0x10), ...g20, el(EXPLICIT_LE, Tags.PixelData, 'OB', pixels)])), 'the whole dataset as built');
  }
  // two at once share the worker
  const [a, b] = await Promise.all([1, 2].map((k) => rewrite(input, path.join(dir, `par-${k}.dcm`), [{ tag: Tags.PatientID, value: `P${k}` }])));
  t.equal(a.sha256, createHash('sha256').update(readFileSync(path.join(dir, 'par-1.dcm'))).digest('hex'));
  t.equal(b.sha256, createHash('sha256').update(readFileSync(path.join(dir, 'par-2.dcm'))).digest('hex'));
  t.not(a.sha256, b.sha256);
});

t.test('refused with a clear reason, nothing left behind: truncated, 4 GB length, too deep, DICOMDIR', async (t) => {
  const dir = t.testdir();
  const out = path.join(dir, 'out.dcm');
  const sample = readFileSync(path.join(PYDICOM_DIR, 'CT_small.dcm'));
  // cut CT_small at 25 places inside its header and once inside its pixel data value
  const flat = (await import('../dicom/lib/compare.ts')).flatten;
  const px = (await flat(path.join(PYDICOM_DIR, 'CT_small.dcm'))).pixelOffset;
  for (let i = 1; i <= 26; i++) {
    const cut = i === 26 ? px + 100 : 132 + Math.floor(((px - 132) * i) / 26);
    const f = path.join(dir, `cut-${i}.dcm`);
    writeFileSync(f, sample.subarray(0, cut));
    await refuses(t, rewrite(f, out, RULES, { privateBlock: BLOCK }), ['TRUNCATED', 'MALFORMED'], /ends|overruns|declares|expected|not/, `cut at byte ${cut}`);
    t.notOk(existsSync(out), `cut at byte ${cut}: no output`);
  }
  for (const s of ['MR_truncated.dcm', 'rtplan_truncated.dcm']) await refuses(t, rewrite(path.join(PYDICOM_DIR, s), out, RULES), ['TRUNCATED', 'MALFORMED'], /ends/, s);

  const { g08, g20 } = ids(EXPLICIT_LE, UIDS);
  const huge = path.join(dir, 'huge.dcm');
  // a private OB element declaring 0xFFFFFFF0 bytes (4 GB) in a 400-byte file
  writeFileSync(huge, part10('1.2.840.10008.1.2.1', [...g08, el(EXPLICIT_LE, 0x00090010, 'LO', 'X'), el(EXPLICIT_LE, 0x00091001, 'OB', Buffer.alloc(16), 0xfffffff0), ...g20]));
  await refuses(t, rewrite(huge, out, RULES), ['TRUNCATED'], /4294967280 bytes declared/, '4 GB declared length');
  const hugeId = path.join(dir, 'huge-id.dcm');
  const ig = ids(IMPLICIT_LE, UIDS);
  writeFileSync(hugeId, part10('1.2.840.10008.1.2', [...ig.g08, el(IMPLICIT_LE, Tags.PatientID, 'LO', Buffer.alloc(8), 0xfffffff0), ...ig.g20]));
  await refuses(t, rewrite(hugeId, out, RULES), ['TRUNCATED'], /4294967280 bytes declared/, '4 GB Patient ID, skipped');
  await refuses(t, rewrite(hugeId, out, [{ tag: Tags.PatientID, value: (c) => `${c.text}X` }]), ['TOO_LARGE'], /4294967280-byte value/, '4 GB Patient ID, read');

  const nest = (depth: number, inner: Buffer[], defined: boolean): Buffer =>
    depth === 0 ? Buffer.concat(inner) : seq(EXPLICIT_LE, RequestAttributesSequence, [item(EXPLICIT_LE, [nest(depth - 1, inner, defined)], defined)], defined);
  const deep = path.join(dir, 'deep.dcm');
  writeFileSync(deep, part10('1.2.840.10008.1.2.1', [...g08, ...g20, nest(40, [el(EXPLICIT_LE, Tags.PatientID, 'LO', 'BOTTOM')], false)]));
  await refuses(t, rewrite(deep, out, RULES), ['TOO_COMPLEX'], /nested more than 32 deep/, '40 levels of sequences');
  t.notOk(existsSync(out), 'no output');

  // 30 levels with defined lengths: every enclosing length fixed
  const ok = path.join(dir, 'deep-ok.dcm');
  writeFileSync(ok, part10('1.2.840.10008.1.2.1', [...g08, ...g20, nest(30, [el(EXPLICIT_LE, Tags.PatientID, 'LO', 'BOTTOM')], true)], { sopInstance: UIDS.sop }));
  await rewrite(ok, out, [{ tag: Tags.PatientID, where: 'any', value: 'A-MUCH-LONGER-BOTTOM-VALUE' }]);
  t.ok(datasetBytes(out).equals(Buffer.concat([...g08, ...g20, nest(30, [el(EXPLICIT_LE, Tags.PatientID, 'LO', 'A-MUCH-LONGER-BOTTOM-VALUE')], true)])), '30 defined lengths fixed');
  OK_DUMP(t, out);

  const dicomdir = path.join(PYDICOM_DIR, 'dicomdirtests', 'DICOMDIR');
  await refuses(t, rewrite(dicomdir, path.join(dir, 'dd.dcm'), []), ['BAD_REQUEST'], /DICOMDIR/, 'DICOMDIR');
});
