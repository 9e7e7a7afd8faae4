/**
 * Comparing a DICOM file before and after a header rewrite, two independent ways:
 *  - DCMTK's dcmdump (its own parser): the dataset part of the dump, with the elements meant to change (and
 *    what is nested in them), group length values and sequence / item length comments taken out;
 *  - byte level: every element's raw value bytes, keyed by its position in the tree, and the bytes from the
 *    top-level Pixel Data element to the end of the file.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { walkFile } from '../../../appliance/dicom/read-file.ts';
import { Tags } from '../../../appliance/dicom/dictionary.ts';

export interface Dump {
  /** Lines after "# Dicom-Data-Set". */
  lines: string[];
  /** Warning and error lines DCMTK printed (W: / E:). */
  warnings: string[];
  status: number;
}

export function dcmdump(file: string): Dump {
  const r = spawnSync('dcmdump', ['+L', '-M', file], { encoding: 'latin1', maxBuffer: 256 * 1024 * 1024 });
  const all = r.stdout.split('\n');
  const at = all.indexOf('# Dicom-Data-Set');
  return {
    lines: at < 0 ? [] : all.slice(at + 1).filter((l) => l.trim() !== ''),
    warnings: r.stderr
      .split('\n')
      .filter((l) => /^[WE]: /.test(l))
      // DCMTK names the file in some messages
      .map((l) => l.split(file).join('<file>')),
    status: r.status ?? -1,
  };
}

const LINE = /^(\s*)\(([0-9a-f]{4}),([0-9a-f]{4})\) (\S\S) (.*?)\s*#\s*(\d+|\?+),\s*(\d+)\s+(.*)$/;

export interface DumpFilter {
  /** Tags ("gggg,eeee", lower case) whose lines (and nested lines) are dropped, at any depth. */
  drop: Set<string>;
  /** A private block to drop: group and block byte (e.g. 0x0011, 0x10 drops (0011,0010) and (0011,10xx)). */
  privateBlock?: { group: number; block: number };
}

/** The dump with the lines meant to change dropped and lengths of sequences, items and group lengths blanked. */
export function normaliseDump(lines: string[], f: DumpFilter): string[] {
  const out: string[] = [];
  let skipIndent = -1;
  const pbGroup = f.privateBlock ? f.privateBlock.group.toString(16).padStart(4, '0') : '';
  for (const line of lines) {
    const m = LINE.exec(line);
    if (!m) {
      if (skipIndent < 0) out.push(line);
      continue;
    }
    const [, indent, g, e, vr, value, , vm, name] = m;
    const depth = indent.length;
    if (skipIndent >= 0) {
      if (depth > skipIndent) continue;
      // the delimiter closing a dropped sequence is at the sequence's own depth
      if (depth === skipIndent && g === 'fffe' && e === 'e0dd') {
        skipIndent = -1;
        continue;
      }
      skipIndent = -1;
    }
    const key = `${g},${e}`;
    const inBlock =
      f.privateBlock && g === pbGroup && (parseInt(e, 16) === f.privateBlock.block || parseInt(e, 16) >> 8 === f.privateBlock.block);
    if (f.drop.has(key) || inBlock) {
      if (vr === 'SQ' || (vr === 'na' && e === 'e000') || /undefined length/.test(value)) skipIndent = depth;
      continue;
    }
    if (e === '0000') out.push(`${indent}(${key}) ${vr} <group length>`);
    else if (vr === 'SQ' || vr === 'na') out.push(`${indent}(${key}) ${vr} ${name}`);
    else out.push(`${indent}(${key}) ${vr} ${value} # ${vm} ${name}`);
  }
  return out;
}

export interface FlatElement {
  key: string;
  tag: number;
  vr: string;
  bytes: Buffer | null;
}

export interface Flat {
  elements: FlatElement[];
  /** Offset of the top-level Pixel Data element (in the inflated dataset for deflated files), or -1. */
  pixelOffset: number;
  datasetOffset: number;
  deflated: boolean;
}

/** Every element of a file (value bytes of non-sequence elements), keyed by its path; stops at top-level Pixel Data. */
export async function flatten(file: string): Promise<Flat> {
  const elements: FlatElement[] = [];
  let pixelOffset = -1;
  let datasetOffset = 0;
  let deflated = false;
  const key = (path: readonly { tag: number; item: number }[], tag: number) =>
    [...path.map((p) => `${p.tag.toString(16)}[${p.item}]`), tag.toString(16).padStart(8, '0')].join('/');
  await walkFile(
    file,
    {
      meta(m) {
        datasetOffset = m.datasetOffset;
        deflated = m.transferSyntaxUID === '1.2.840.10008.1.2.1.99';
      },
      element(e) {
        if (e.depth === 0 && (e.tag === Tags.PixelData || e.tag === Tags.FloatPixelData || e.tag === Tags.DoubleFloatPixelData)) {
          pixelOffset = e.offset;
          return 'stop';
        }
        const container = e.vr === 'SQ' || e.length === 0xffffffff;
        elements.push({ key: key(e.path, e.tag), tag: e.tag, vr: e.vr, bytes: null });
        return container ? 'skip' : 'value';
      },
      value(e, bytes) {
        elements[elements.length - 1].bytes = Buffer.from(bytes);
      },
    },
    { limits: { maxDepth: 64, maxElements: 1_000_000, maxValueBytes: 512 * 1024 * 1024 } },
  );
  return { elements, pixelOffset, datasetOffset, deflated };
}

/** The bytes from the top-level Pixel Data element to the end of the file (empty if none). */
export function pixelTail(file: string, flat: Flat): Buffer {
  if (flat.pixelOffset < 0) return Buffer.alloc(0);
  const b = readFileSync(file);
  return flat.deflated ? inflateRawSync(b.subarray(flat.datasetOffset)).subarray(flat.pixelOffset) : b.subarray(flat.pixelOffset);
}

/** dcmdump's value of a top-level element ("[...]" content, or the raw rest of the line), or undefined if absent. */
export function dumpValue(dump: Dump, tag: string): string | undefined {
  const line = dump.lines.find((l) => l.startsWith(`(${tag.toLowerCase()})`));
  if (!line) return undefined;
  const m = /^\([0-9a-f,]+\) \S\S \[(.*)\]\s+#/.exec(line);
  if (m) return m[1];
  // UN: hex bytes
  const h = /^\([0-9a-f,]+\) UN ((?:[0-9a-f]{2}\\?)+)\s+#/.exec(line);
  if (h) return Buffer.from(h[1].split('\\').map((x) => parseInt(x, 16))).toString('latin1').replace(/[\0 ]+$/, '');
  return line;
}
