/**
 * Every real sample Debian's python3-pydicom ships (all transfer syntaxes, big endian, implicit VR, deflated,
 * multi-frame, RT, SR, ECG, SEG-like, the DICOMDIR-referenced files) through the "upload" policy transform:
 *  - dcmdump of input and output differ only in the elements meant to change (Patient ID, Issuer, Accession,
 *    Other Patient IDs, De-identification Method, group lengths, sequence/item lengths, our private block);
 *  - every other element's value bytes (every private element included) and the bytes from Pixel Data to
 *    the end of the file are identical;
 *  - DCMTK and Orthanc read the output without warnings the input did not give, and Orthanc sees the same
 *    tags except the changed ones.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { readHeader } from '../../appliance/dicom/header.ts';
import { parseCharsetTerms } from '../../appliance/dicom/charset.ts';
import type { Origin } from '../../appliance/intake/ingest.ts';
import { DEIDENTIFICATION_METHOD, UPLINK_PRIVATE_CREATOR } from '../../appliance/intake/transform.ts';
import { filesUnder } from '../helpers/dicom-files.ts';
import { startOrthanc } from '../helpers/orthanc.ts';
import { DICOMDIR_TREES, validSamples } from '../helpers/samples.ts';
import { dcmdump, dumpValue, flatten, normaliseDump, pixelTail, type FlatElement } from '../dicom/lib/compare.ts';
import { transformWorld } from './lib/world.ts';

const CHANGED = [0x00080050, 0x00080051, 0x00100020, 0x00100021, 0x00100024, 0x00101000, 0x00101002, 0x00120063];
const DROP = new Set(CHANGED.map((x) => `${(x >>> 16).toString(16).padStart(4, '0')},${(x & 0xffff).toString(16).padStart(4, '0')}`));
const COMMENT = 'Knie links – bitte vergleichen (é) \\ ok';

/** What our comment must look like in a file with this Specific Character Set (independent of charset.ts). */
function expectedComment(charset: string): Buffer {
  const terms = parseCharsetTerms(charset);
  let b: Buffer;
  if (terms.length === 1 && terms[0] === 'ISO_IR 192') b = Buffer.from(COMMENT, 'utf8');
  else if (terms.length === 1 && terms[0] === 'ISO_IR 100')
    b = Buffer.from([...COMMENT].map((c) => (c.charCodeAt(0) < 0x7f || (c.charCodeAt(0) >= 0xa0 && c.charCodeAt(0) <= 0xff) ? c : '?')).join(''), 'latin1');
  else b = Buffer.from(COMMENT.replace(/[^\x20-\x7e]/g, '?'), 'latin1');
  return b.length % 2 ? Buffer.concat([b, Buffer.from(' ')]) : b;
}

const samples = [
  ...validSamples(),
  // the files the DICOMDIRs reference (Part 10 files only: the trees also hold a few bare datasets)
  ...filesUnder(DICOMDIR_TREES).filter((f) => !path.basename(f).startsWith('DICOMDIR') && readFileSync(f).toString('latin1', 128, 132) === 'DICM'),
];

t.test('every pydicom sample through the upload policy: only the meant elements change', async (t) => {
  const dir = t.testdir();
  const w = transformWorld(path.join(dir, 'data'), { anonymise: { issuer: 'UPLINK-TEST' } });
  t.teardown(() => w.close());
  const outDir = path.join(dir, 'out');
  mkdirSync(outDir);
  const policy = w.config.policies.upload;
  const pairs: { input: string; output: string; patientID: string; accession: string; block: number }[] = [];
  t.ok(samples.length > 120, `${samples.length} samples`);

  for (const [i, file] of samples.entries()) {
    const name = path.relative(path.dirname(DICOMDIR_TREES), file);
    const header = await readHeader(file, { full: true });
    const origin: Origin = {
      kind: 'upload',
      policy: 'upload',
      batch: 'upload:sweep',
      actor: { kind: 'code', name: 'code-holder' },
      info: { upload: { id: 'U-42', by: 'code', name: 'Referrer', comment: { [header.studyInstanceUID]: COMMENT }, contact: 'ref@example.org', at: '2024-05-06T07:08:09Z' } },
    };
    const res = await w.transformer.apply(file, header, policy, origin);
    if (!res) {
      t.fail(`${name}: not transformed`);
      continue;
    }
    const output = path.join(outDir, `${String(i).padStart(3, '0')}.dcm`);
    copyFileSync(res.path, output);
    await w.store.remove(res.path);
    const bytes = readFileSync(output);
    t.equal(res.size, bytes.length, `${name}: size reported`);
    t.equal(res.sha256, createHash('sha256').update(bytes).digest('hex'), `${name}: SHA-256 reported`);
    t.ok(bytes.subarray(0, 128).every((b) => b === 0), `${name}: zero preamble`);

    // dcmdump: the same, except what is meant to change
    const a = dcmdump(file);
    const b = dcmdump(output);
    t.equal(b.status, 0, `${name}: dcmdump reads the output`);
    const newWarnings = b.warnings.filter((x) => !a.warnings.includes(x));
    t.same(newWarnings, [], `${name}: no new DCMTK warnings`);
    const fb = await flatten(output);
    const creator = fb.elements.find((e) => e.tag >>> 16 === 0x0011 && (e.tag & 0xffff) >= 0x10 && (e.tag & 0xffff) <= 0xff && e.bytes?.toString('latin1').trim() === UPLINK_PRIVATE_CREATOR && e.key.indexOf('/') < 0);
    if (!creator) {
      t.fail(`${name}: no UPLINK private creator`);
      continue;
    }
    const block = creator.tag & 0xff;
    t.same(
      normaliseDump(b.lines, { drop: DROP, privateBlock: { group: 0x0011, block } }),
      normaliseDump(a.lines, { drop: DROP }),
      `${name}: dcmdump differs only in the elements meant to change`,
    );

    // what changed, changed as meant
    const pid = w.anon.patientPseudonym('upload:sweep', header.studyInstanceUID, { id: header.patientID, issuer: header.issuerOfPatientID, name: header.patientName, birthDate: header.patientBirthDate });
    const acc = w.anon.accessionPseudonym(header.studyInstanceUID, header.accessionNumber);
    t.match(pid, /^UP[0-9A-HJKMNP-TV-Z]{14}$/, `${name}: patient pseudonym format`);
    t.match(acc, /^UA[0-9A-HJKMNP-TV-Z]{14}$/, `${name}: accession pseudonym format`);
    t.equal(dumpValue(b, '0010,0020'), pid, `${name}: Patient ID replaced`);
    t.equal(dumpValue(b, '0008,0050'), acc, `${name}: Accession Number replaced`);
    t.equal(dumpValue(b, '0010,0021'), 'UPLINK-TEST', `${name}: Issuer of Patient ID`);
    t.equal(dumpValue(b, '0010,1000'), undefined, `${name}: no Other Patient IDs`);
    t.equal(dumpValue(b, '0010,1002'), undefined, `${name}: no Other Patient IDs Sequence`);
    t.ok(dumpValue(b, '0012,0063')?.endsWith(DEIDENTIFICATION_METHOD.join('\\')), `${name}: De-identification Method`);
    t.equal(dumpValue(b, '0012,0062'), dumpValue(a, '0012,0062'), `${name}: Patient Identity Removed untouched`);
    t.equal(dumpValue(b, '0008,0005'), dumpValue(a, '0008,0005'), `${name}: Specific Character Set untouched`);
    const newHeader = await readHeader(output, { full: true });
    t.ok(newHeader.complete, `${name}: output complete`);
    t.equal(newHeader.studyInstanceUID, header.studyInstanceUID, `${name}: UIDs kept`);
    t.equal(res.header.patientID, pid, `${name}: header returned is the output's`);

    // the private block
    const blockEl = (n: number) => fb.elements.find((e) => e.key === (((0x0011 << 16) | (block << 8) | n) >>> 0).toString(16).padStart(8, '0'))?.bytes;
    t.equal(blockEl(0x01)?.toString('latin1'), 'Uploaded', `${name}: label in the private block`);
    t.equal(blockEl(0x02)?.toString('latin1'), 'U-42', `${name}: upload id in the private block`);
    t.equal(blockEl(0x03)?.toString('latin1'), 'CODE', `${name}: how it came`);
    t.same(blockEl(0x05), expectedComment(header.specificCharacterSet), `${name}: comment in the file's character set`);
    t.equal(blockEl(0x06)?.toString('latin1'), 'ref@example.org ', `${name}: contact`);
    t.equal(blockEl(0x07)?.toString('latin1'), '20240506070809+0000 ', `${name}: time`);

    // byte level: everything else identical, private elements and pixel data included
    const fa = await flatten(file);
    const keep = (e: FlatElement, ours: boolean) => {
      const parts = e.key.split('/').map((p) => parseInt(p.split('[')[0], 16));
      if (parts.some((p) => CHANGED.includes(p))) return false;
      if ((e.tag & 0xffff) === 0) return false; // group lengths
      if (ours && e.key.indexOf('/') < 0 && e.tag >>> 16 === 0x0011 && ((e.tag & 0xffff) === block || (e.tag & 0xffff) >> 8 === block)) return false;
      return true;
    };
    const ka = fa.elements.filter((e) => keep(e, false));
    const kb = fb.elements.filter((e) => keep(e, true));
    t.same(kb.map((e) => e.key), ka.map((e) => e.key), `${name}: same elements in the same order`);
    const differing = ka.filter((e, j) => !kb[j] || !(e.bytes === null ? kb[j].bytes === null : kb[j].bytes !== null && e.bytes.equals(kb[j].bytes!)));
    t.same(differing.map((e) => e.key), [], `${name}: every other value byte-identical`);
    const privA = ka.filter((e) => (e.tag >>> 16) & 1);
    const privB = kb.filter((e) => (e.tag >>> 16) & 1);
    t.equal(privB.length, privA.length, `${name}: all ${privA.length} private elements kept`);
    t.ok(privA.every((e, j) => (e.bytes === null ? privB[j].bytes === null : e.bytes.equals(privB[j].bytes!))), `${name}: private elements byte-identical`);
    const tailA = pixelTail(file, fa);
    const tailB = pixelTail(output, fb);
    t.equal(tailB.length, tailA.length, `${name}: pixel data length`);
    t.ok(tailA.equals(tailB), `${name}: pixel data (to the end of the file) byte-identical`);
    pairs.push({ input: file, output, patientID: pid, accession: acc, block });
  }

  t.test('Orthanc reads the outputs as it reads the inputs', async (t) => {
    const orthanc = await startOrthanc({ dir: path.join(dir, 'orthanc') });
    t.teardown(() => orthanc.stop());
    const post = async (file: string) => {
      const before = orthanc.log().length;
      const r = await fetch(`${orthanc.url}/instances`, { method: 'POST', body: readFileSync(file) });
      const body = (await r.json()) as { ID?: string };
      // what Orthanc logged for this file: warnings and errors, without time stamps and thread ids
      const logged = orthanc
        .log()
        .slice(before)
        .split('\n')
        .filter((l) => /^[WE]\d{4}/.test(l))
        .map((l) => l.replace(/^([WE])\S+ \S+ (\S+?):\d+\]/, '$1 $2'));
      let tags: Record<string, unknown> = {};
      if (body.ID) {
        tags = (await (await fetch(`${orthanc.url}/instances/${body.ID}/tags?short`)).json()) as Record<string, unknown>;
        await fetch(`${orthanc.url}/instances/${body.ID}`, { method: 'DELETE' });
      }
      return { status: r.status, logged, tags };
    };
    let accepted = 0;
    for (const p of pairs) {
      const name = path.basename(p.input);
      const a = await post(p.input);
      if (a.status !== 200) continue; // Orthanc refuses some samples (no Study UID, ...): nothing to compare
      accepted++;
      const b = await post(p.output);
      t.equal(b.status, 200, `${name}: Orthanc stores the output`);
      t.same(b.logged.filter((l) => !a.logged.includes(l)), [], `${name}: no new Orthanc warnings`);
      t.equal(b.tags['0010,0020'], p.patientID, `${name}: Orthanc sees the new Patient ID`);
      t.equal(b.tags['0008,0050'], p.accession, `${name}: Orthanc sees the new Accession Number`);
      const hex = (n: number) => n.toString(16).padStart(2, '0');
      const ours = new RegExp(`^0011,(00${hex(p.block)}|${hex(p.block)}[0-9a-f]{2})$`, 'i');
      const strip = (tags: Record<string, unknown>) => {
        const o = { ...tags };
        for (const k of Object.keys(o)) if (DROP.has(k.toLowerCase()) || ours.test(k) || /,0000$/.test(k)) delete o[k];
        return o;
      };
      t.same(strip(b.tags), strip(a.tags), `${name}: Orthanc sees every other tag unchanged`);
    }
    t.ok(accepted > 100, `Orthanc compared ${accepted} samples`);
  });
});
