/** Small byte-level helpers for comparing DICOM files in tests, independent of the code under test. */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const bytesOf = (f: string | Buffer) => (typeof f === 'string' ? readFileSync(f) : f);

/** The dataset bytes of a Part 10 file (path or contents): everything after the file meta group (needs (0002,0000)). */
export function datasetBytes(file: string | Buffer): Buffer {
  const b = bytesOf(file);
  if (b.toString('latin1', 128, 132) !== 'DICM') throw new Error('not a Part 10 file');
  if (b.readUInt16LE(132) !== 2 || b.readUInt16LE(134) !== 0) throw new Error('no meta group length');
  return b.subarray(144 + b.readUInt32LE(140));
}

/** A text value of the file meta group (0002,element), e.g. 0x0003 SOP Instance UID, 0x0010 Transfer Syntax UID. */
export function metaValue(file: string | Buffer, element: number): string {
  const b = bytesOf(file);
  const end = 144 + b.readUInt32LE(140);
  let o = 144;
  while (o < end) {
    const el = b.readUInt16LE(o + 2);
    const vr = b.toString('latin1', o + 4, o + 6);
    const long = ['OB', 'OW', 'UN', 'SQ', 'UT', 'UC', 'UR'].includes(vr);
    const len = long ? b.readUInt32LE(o + 8) : b.readUInt16LE(o + 6);
    const h = long ? 12 : 8;
    if (el === element) return b.toString('latin1', o + h, o + h + len).replace(/[\0 ]+$/, '');
    o += h + len;
  }
  throw new Error(`no (0002,${element.toString(16).padStart(4, '0')})`);
}

/** The Media Storage SOP Instance UID (0002,0003) of a Part 10 file. */
export const metaSopInstanceUid = (file: string | Buffer): string => metaValue(file, 0x0003);

/** Every file under a folder, recursively. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}
