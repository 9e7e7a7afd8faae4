/**
 * A DICOMDIR (PS3.10 File-set directory, Media Storage Directory Storage 1.2.840.10008.1.3.10) for a study's
 * files laid out as a File-set, written byte by byte (no dcmmkdir at run time):
 *   128-byte preamble, "DICM", file meta (Explicit VR Little Endian), then File-set ID, the offsets of the first
 *   and last root records, the consistency flag and the Directory Record Sequence (defined lengths) with one
 *   PATIENT -> STUDY -> SERIES -> IMAGE hierarchy. Every record has the offset of its next sibling and of its
 *   first child, counted in bytes from the first byte of the file (the preamble), as PS3.3 F.3.2.1 says.
 * Keys per record (PS3.3 F.5): PATIENT: Patient's Name, Patient ID; STUDY: Study Date, Study Time, Accession
 * Number, Study Description, Study Instance UID, Study ID; SERIES: Modality, Series Instance UID, Series Number;
 * IMAGE: Referenced File ID, Referenced SOP Class / Instance / Transfer Syntax UID in File, Instance Number.
 * Text that is not plain ASCII goes with Specific Character Set ISO_IR 192 (UTF-8) in its record. Every
 * referenced instance is listed as an IMAGE record, whatever its SOP class (viewers read them; strictly, SR,
 * RT and other non-image objects have record types of their own with keys the index does not keep). A type 1
 * key the index lacks is made up as dcmmkdir --invent does: Instance / Series Number from the position, Modality
 * OT; Study Date, Time and ID are left empty.
 */
import { randomBytes } from 'node:crypto';
import { tag } from '../dicom/dictionary.ts';
import { buildFileMeta } from '../dicom/part10.ts';
import { encodeElement, encodeValue } from '../dicom/rewrite.ts';

export const MEDIA_STORAGE_DIRECTORY = '1.2.840.10008.1.3.10';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

export interface DicomdirImage {
  /** File ID components, e.g. ["DICOM", "ST000001", "SE000001", "IM000001"]: A-Z, 0-9 and _, at most 8 each. */
  fileId: string[];
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  instanceNumber: string;
}

export interface DicomdirSeries {
  seriesUid: string;
  modality: string;
  seriesNumber: string;
  images: DicomdirImage[];
}

export interface DicomdirStudy {
  patient: { patientId: string; name: string };
  studyUid: string;
  studyDate: string;
  studyTime: string;
  studyId: string;
  accession: string;
  description: string;
  series: DicomdirSeries[];
}

const FILE_ID_COMPONENT = /^[A-Z0-9_]{1,8}$/;

/** A File ID component from a prefix and a number, e.g. ("IM", 7) -> "IM000007". */
export function fileIdComponent(prefix: string, n: number): string {
  const digits = 8 - prefix.length;
  if (n >= 10 ** digits) throw new Error(`more than ${10 ** digits - 1} entries for a File ID level`);
  return `${prefix}${String(n).padStart(digits, '0')}`;
}

export function newUid(): string {
  return `2.25.${BigInt(`0x${randomBytes(16).toString('hex')}`).toString()}`;
}

interface Record {
  type: 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE';
  /** Encoded elements after (0004,1430), in tag order. */
  body: Buffer;
  children: Record[];
  /** Filled in when laid out. */
  offset?: number;
  size?: number;
}

const T = {
  FileSetID: tag(0x0004, 0x1130),
  FirstRecord: tag(0x0004, 0x1200),
  LastRecord: tag(0x0004, 0x1202),
  ConsistencyFlag: tag(0x0004, 0x1212),
  RecordSequence: tag(0x0004, 0x1220),
  NextRecord: tag(0x0004, 0x1400),
  InUse: tag(0x0004, 0x1410),
  LowerRecord: tag(0x0004, 0x1420),
  RecordType: tag(0x0004, 0x1430),
  ReferencedFileID: tag(0x0004, 0x1500),
  ReferencedSOPClassUIDInFile: tag(0x0004, 0x1510),
  ReferencedSOPInstanceUIDInFile: tag(0x0004, 0x1511),
  ReferencedTransferSyntaxUIDInFile: tag(0x0004, 0x1512),
  SpecificCharacterSet: tag(0x0008, 0x0005),
  StudyDate: tag(0x0008, 0x0020),
  StudyTime: tag(0x0008, 0x0030),
  AccessionNumber: tag(0x0008, 0x0050),
  Modality: tag(0x0008, 0x0060),
  StudyDescription: tag(0x0008, 0x1030),
  PatientName: tag(0x0010, 0x0010),
  PatientID: tag(0x0010, 0x0020),
  StudyInstanceUID: tag(0x0020, 0x000d),
  SeriesInstanceUID: tag(0x0020, 0x000e),
  StudyID: tag(0x0020, 0x0010),
  SeriesNumber: tag(0x0020, 0x0011),
  InstanceNumber: tag(0x0020, 0x0013),
};

const UTF8 = ['ISO_IR 192'];
const ASCII: string[] = [];

function el(t: number, vr: string, value: string | string[], terms: string[] = ASCII): Buffer {
  return encodeElement(t, vr, encodeValue(value, vr, terms), true, true);
}

function ul(t: number, v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return encodeElement(t, 'UL', b, true, true);
}

function us(t: number, v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return encodeElement(t, 'US', b, true, true);
}

const isAscii = (s: string) => /^[\x20-\x7e]*$/.test(s);
const da = (s: string) => (/^\d{8}$/.test(s) ? s : '');
const tm = (s: string) => (/^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$/.test(s) ? s : '');
const is = (s: string, fallback: number) => (/^[+-]?\d{1,12}$/.test(s.trim()) ? s.trim() : String(fallback));
const one = (s: string, max: number) => [...s.replace(/[\\\x00-\x1f\x7f]/g, ' ')].slice(0, max).join('');

/** Text elements of one record: with (0008,0005) ISO_IR 192 first if any value is not plain ASCII. */
function textRecord(items: [number, string, string][]): Buffer {
  const utf8 = items.some(([, , v]) => !isAscii(v));
  const terms = utf8 ? UTF8 : ASCII;
  return Buffer.concat([...(utf8 ? [el(T.SpecificCharacterSet, 'CS', 'ISO_IR 192')] : []), ...items.map(([t, vr, v]) => el(t, vr, v, terms))]);
}

/** The DICOMDIR file for one study. */
export function buildDicomdir(study: DicomdirStudy, opts: { fileSetId?: string; sopInstanceUid?: string } = {}): Buffer {
  const images = (s: DicomdirSeries): Record[] =>
    s.images.map((im, i) => {
      for (const c of im.fileId) if (!FILE_ID_COMPONENT.test(c)) throw new Error(`not a valid File ID component: ${c}`);
      if (im.fileId.length > 8) throw new Error('a File ID has at most 8 components');
      return {
        type: 'IMAGE',
        children: [],
        body: Buffer.concat([
          el(T.ReferencedFileID, 'CS', im.fileId),
          el(T.ReferencedSOPClassUIDInFile, 'UI', im.sopClassUid),
          el(T.ReferencedSOPInstanceUIDInFile, 'UI', im.sopInstanceUid),
          el(T.ReferencedTransferSyntaxUIDInFile, 'UI', im.transferSyntaxUid),
          el(T.InstanceNumber, 'IS', is(im.instanceNumber, i + 1)),
        ]),
      };
    });
  const series: Record[] = study.series.map((s, i) => ({
    type: 'SERIES',
    children: images(s),
    body: Buffer.concat([el(T.Modality, 'CS', one(s.modality, 16) || 'OT'), el(T.SeriesInstanceUID, 'UI', s.seriesUid), el(T.SeriesNumber, 'IS', is(s.seriesNumber, i + 1))]),
  }));
  const studyRecord: Record = {
    type: 'STUDY',
    children: series,
    body: textRecord([
      [T.StudyDate, 'DA', da(study.studyDate)],
      [T.StudyTime, 'TM', tm(study.studyTime)],
      [T.AccessionNumber, 'SH', one(study.accession, 16)],
      [T.StudyDescription, 'LO', one(study.description, 64)],
      [T.StudyInstanceUID, 'UI', study.studyUid],
      [T.StudyID, 'SH', one(study.studyId, 16)],
    ]),
  };
  const patient: Record = {
    type: 'PATIENT',
    children: [studyRecord],
    body: textRecord([
      [T.PatientName, 'PN', study.patient.name.replace(/[\\\x00-\x1f\x7f]/g, ' ')],
      [T.PatientID, 'LO', one(study.patient.patientId, 64)],
    ]),
  };

  // Depth-first order, as records are usually written; sizes first (they do not depend on the offsets).
  const order: Record[] = [];
  const visit = (r: Record) => {
    order.push(r);
    r.children.forEach(visit);
  };
  visit(patient);
  const fixed = (r: Record) => 12 + 10 + 12 + el(T.RecordType, 'CS', r.type).length;
  for (const r of order) r.size = 8 + fixed(r) + r.body.length; // item tag + length, then the content

  const meta = buildFileMeta({ sopClassUID: MEDIA_STORAGE_DIRECTORY, sopInstanceUID: opts.sopInstanceUid ?? newUid(), transferSyntaxUID: EXPLICIT_LE });
  const fileSetId = el(T.FileSetID, 'CS', one(opts.fileSetId ?? '', 16).toUpperCase().replace(/[^A-Z0-9_ ]/g, '_'));
  const head = 12 + 12 + 10 + 12; // first / last root record offsets, consistency flag, sequence header
  let at = meta.length + fileSetId.length + head;
  for (const r of order) {
    r.offset = at;
    at += r.size!;
  }
  const sequenceLength = at - (meta.length + fileSetId.length + head);

  const item = (r: Record, next: Record | undefined): Buffer => {
    const content = Buffer.concat([
      ul(T.NextRecord, next?.offset ?? 0),
      us(T.InUse, 0xffff),
      ul(T.LowerRecord, r.children[0]?.offset ?? 0),
      el(T.RecordType, 'CS', r.type),
      r.body,
    ]);
    const h = Buffer.alloc(8);
    h.writeUInt16LE(0xfffe, 0);
    h.writeUInt16LE(0xe000, 2);
    h.writeUInt32LE(content.length, 4);
    return Buffer.concat([h, content]);
  };
  const items: Buffer[] = [];
  const emit = (siblings: Record[]) =>
    siblings.forEach((r, i) => {
      items.push(item(r, siblings[i + 1]));
      emit(r.children);
    });
  emit([patient]);

  const seqHead = Buffer.alloc(12);
  seqHead.writeUInt16LE(0x0004, 0);
  seqHead.writeUInt16LE(0x1220, 2);
  seqHead.write('SQ', 4, 'latin1');
  seqHead.writeUInt32LE(sequenceLength, 8);
  const out = Buffer.concat([meta, fileSetId, ul(T.FirstRecord, patient.offset!), ul(T.LastRecord, patient.offset!), us(T.ConsistencyFlag, 0), seqHead, ...items]);
  if (out.length !== at) throw new Error(`DICOMDIR layout: ${out.length} bytes written, ${at} planned`);
  return out;
}
