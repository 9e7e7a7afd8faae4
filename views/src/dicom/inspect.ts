/**
 * Recognise a file by its content and read its DICOM header with dcmjs, up to Pixel Data only (first through
 * prefilter.ts, which hands dcmjs only the elements shown; the full header when that is not possible).
 *
 * A Part 10 file has "DICM" at byte 128 (CD files are often extensionless 8.3 names: the name says nothing).
 * Only the first 64 KB are read at first; the read grows (x4) while the header is not complete: dcmjs stops at
 * Pixel Data, and a header is also complete once an element past group 0028 was read (everything shown in
 * Panel 2 lives in groups 0008-0028, and an element is only known to be whole once the next one was read).
 * A DICOMDIR is read whole. A file starting with a ZIP signature (and no DICM) is reported as a ZIP.
 *
 * Pure (Blob in, result out): runs in the header worker and in Node tests alike.
 */
import dcmjs from 'dcmjs';
import { prefilter } from './prefilter.ts';
import { DICOMDIR_SOP_CLASS, type DicomSummary, type DirRef, type HeaderResult } from './types.ts';

const { DicomMessage } = dcmjs.data;
try {
  dcmjs.log.setLevel('silent');
  dcmjs.log.getLogger('validation.dcmjs').setLevel('silent');
} catch {
  /* older dcmjs: logging stays on */
}

export const FIRST_READ = 64 * 1024;
/** Beyond this, a header that is still not complete is reported unreadable (a DICOMDIR may be larger). */
export const MAX_HEADER_READ = 64 * 1024 * 1024;

type Dict = Record<string, { vr?: string; Value?: unknown[] } | undefined>;

function first(dict: Dict, tag: string): unknown {
  const v = dict[tag]?.Value;
  return Array.isArray(v) && v.length ? v[0] : undefined;
}

function text(dict: Dict, tag: string): string {
  const v = first(dict, tag);
  if (v === undefined || v === null) return '';
  if (typeof v === 'object') {
    const pn = v as { Alphabetic?: string };
    return (pn.Alphabetic ?? '').trim();
  }
  return String(v).trim();
}

function all(dict: Dict, tag: string): string[] {
  const v = dict[tag]?.Value;
  return Array.isArray(v) ? v.map((x) => String(x).trim()) : [];
}

function summarise(meta: Dict, dict: Dict): DicomSummary {
  const frames = Number(text(dict, '00280008'));
  return {
    sopInstanceUid: text(dict, '00080018') || text(meta, '00020003'),
    sopClassUid: text(dict, '00080016') || text(meta, '00020002'),
    studyInstanceUid: text(dict, '0020000D'),
    seriesInstanceUid: text(dict, '0020000E'),
    transferSyntaxUid: text(meta, '00020010'),
    patientName: text(dict, '00100010'),
    patientId: text(dict, '00100020'),
    patientBirthDate: text(dict, '00100030'),
    patientSex: text(dict, '00100040'),
    studyDate: text(dict, '00080020'),
    studyTime: text(dict, '00080030'),
    studyDescription: text(dict, '00081030'),
    accessionNumber: text(dict, '00080050'),
    modality: text(dict, '00080060'),
    seriesNumber: text(dict, '00200011'),
    seriesDescription: text(dict, '0008103E'),
    numberOfFrames: Number.isFinite(frames) && frames > 0 ? frames : 1,
  };
}

function dirRefs(dict: Dict): DirRef[] {
  const records = (dict['00041220']?.Value ?? []) as Dict[];
  const refs: DirRef[] = [];
  for (const r of records) {
    const fileId = all(r, '00041500').filter(Boolean);
    if (fileId.length) refs.push({ fileId, sopInstanceUid: text(r, '00041511') });
  }
  return refs;
}

function isComplete(dict: Dict): boolean {
  if (dict['7FE00010']) return true;
  return Object.keys(dict).some((k) => k > '0028FFFF');
}

export const STATS = { read: 0, parse: 0, n: 0 };
async function bytes(blob: Blob, n: number): Promise<ArrayBuffer> {
  const a = performance.now();
  const r = await blob.slice(0, n).arrayBuffer();
  STATS.read += performance.now() - a;
  return r;
}

export async function inspectFile(blob: Blob, opts: { firstRead?: number; maxRead?: number; noPrefilter?: boolean } = {}): Promise<HeaderResult> {
  const size = blob.size;
  if (size < 4) return { kind: 'not-dicom' };
  let len = Math.min(size, opts.firstRead ?? FIRST_READ);
  const maxRead = opts.maxRead ?? MAX_HEADER_READ;
  let buf = await bytes(blob, len);
  const head = new Uint8Array(buf, 0, Math.min(buf.byteLength, 132));
  const dicm = size >= 132 && head[128] === 0x44 && head[129] === 0x49 && head[130] === 0x43 && head[131] === 0x4d;
  if (!dicm) {
    // PK\3\4 (a local file header) or PK\5\6 (an empty archive).
    if (head[0] === 0x50 && head[1] === 0x4b && ((head[2] === 3 && head[3] === 4) || (head[2] === 5 && head[3] === 6))) return { kind: 'zip' };
    return { kind: 'not-dicom' };
  }
  let lastError = '';
  for (;;) {
    const whole = len >= size;
    // Fast path: dcmjs reads only the elements Panel 2 needs (see prefilter.ts); anything odd takes the full path.
    const pre = opts.noPrefilter ? { kind: 'fallback' as const } : prefilter(buf, whole);
    if (pre.kind === 'need-more' && len < maxRead) {
      len = Math.min(size, len * 4, maxRead);
      buf = await bytes(blob, len);
      continue;
    }
    if (pre.kind === 'ok') {
      try {
        // ignoreErrors: tolerate e.g. a meta group without its group length (the elements are whole).
        const p = DicomMessage.readFile(pre.buffer, { ignoreErrors: true });
        const header = summarise(p.meta, p.dict);
        if (header.sopInstanceUid && header.studyInstanceUid && header.seriesInstanceUid) return { kind: 'dicom', header };
      } catch {
        /* the full path decides */
      }
    }
    let parsed: { meta: Dict; dict: Dict } | null = null;
    try {
      const a = performance.now();
      parsed = DicomMessage.readFile(buf, { untilTag: '7FE00010', includeUntilTagValue: false, ignoreErrors: false });
      STATS.parse += performance.now() - a; STATS.n++;
    } catch (e) {
      lastError = e instanceof Error ? e.message : String(e);
      if (!whole) {
        // Cut off inside the read part: what was read before the cut may be enough.
        try {
          const partial = DicomMessage.readFile(buf, { untilTag: '7FE00010', includeUntilTagValue: false, ignoreErrors: true });
          if (partial && isComplete(partial.dict)) parsed = partial;
        } catch {
          /* grow */
        }
      }
    }
    if (parsed && (whole || isComplete(parsed.dict))) {
      const meta = parsed.meta;
      const dict = parsed.dict;
      const sopClass = text(dict, '00080016') || text(meta, '00020002');
      if (sopClass === DICOMDIR_SOP_CLASS || dict['00041220']) {
        if (!whole) {
          // A DICOMDIR: read it whole.
          len = size;
          if (len > maxRead) return { kind: 'unreadable', reason: 'DICOMDIR too large' };
          buf = await bytes(blob, len);
          continue;
        }
        return { kind: 'dicomdir', refs: dirRefs(dict) };
      }
      const header = summarise(meta, dict);
      if (!header.sopInstanceUid || !header.studyInstanceUid || !header.seriesInstanceUid) return { kind: 'unreadable', reason: 'missing identifiers' };
      return { kind: 'dicom', header };
    }
    if (whole) return { kind: 'unreadable', reason: lastError || 'incomplete header' };
    if (len >= maxRead) return { kind: 'unreadable', reason: 'header too large' };
    len = Math.min(size, len * 4, maxRead);
    buf = await bytes(blob, len);
  }
}
