/**
 * Read what the appliance needs to know about an instance (identity, the attributes C-FIND answers with,
 * structure checks) from a Part 10 file or a bare dataset, in bounded memory.
 */
import { AppError } from '../errors.ts';
import { decodeValue, parseCharsetTerms } from './charset.ts';
import { Tags, tagString } from './dictionary.ts';
import { walkFile, walkBuffer } from './read-file.ts';
import type { Element, MetaInfo, Visitor } from './parser.ts';

export interface DicomHeader {
  transferSyntaxUID: string;
  sopClassUID: string;
  sopInstanceUID: string;
  studyInstanceUID: string;
  seriesInstanceUID: string;
  specificCharacterSet: string;
  patientName: string;
  patientID: string;
  issuerOfPatientID: string;
  patientBirthDate: string;
  patientSex: string;
  studyDate: string;
  studyTime: string;
  accessionNumber: string;
  studyID: string;
  studyDescription: string;
  referringPhysicianName: string;
  modality: string;
  seriesNumber: string;
  seriesDescription: string;
  instanceNumber: string;
  numberOfFrames: string;
  /** Part 10 only: the 128-byte preamble's kind ('zero', 'tiff', 'pe' (MZ), 'elf', 'other'); 'none' for bare datasets. */
  preamble: 'zero' | 'pe' | 'elf' | 'other' | 'none';
  /** Part 10 only: SOP Class / Instance UIDs of the file meta group. */
  metaSopClassUID: string;
  metaSopInstanceUID: string;
  datasetOffset: number;
  /** Whether the walk went to the end of the data (false when it stopped at Pixel Data). */
  complete: boolean;
  size: number;
}

type Field = Exclude<keyof DicomHeader, 'transferSyntaxUID' | 'preamble' | 'metaSopClassUID' | 'metaSopInstanceUID' | 'datasetOffset' | 'complete' | 'size'>;

const fields = new Map<number, Field>([
  [Tags.SpecificCharacterSet, 'specificCharacterSet'],
  [Tags.SOPClassUID, 'sopClassUID'],
  [Tags.SOPInstanceUID, 'sopInstanceUID'],
  [Tags.StudyDate, 'studyDate'],
  [Tags.StudyTime, 'studyTime'],
  [Tags.AccessionNumber, 'accessionNumber'],
  [Tags.Modality, 'modality'],
  [Tags.ReferringPhysicianName, 'referringPhysicianName'],
  [Tags.StudyDescription, 'studyDescription'],
  [Tags.SeriesDescription, 'seriesDescription'],
  [Tags.PatientName, 'patientName'],
  [Tags.PatientID, 'patientID'],
  [Tags.IssuerOfPatientID, 'issuerOfPatientID'],
  [Tags.PatientBirthDate, 'patientBirthDate'],
  [Tags.PatientSex, 'patientSex'],
  [Tags.StudyInstanceUID, 'studyInstanceUID'],
  [Tags.SeriesInstanceUID, 'seriesInstanceUID'],
  [Tags.StudyID, 'studyID'],
  [Tags.SeriesNumber, 'seriesNumber'],
  [Tags.InstanceNumber, 'instanceNumber'],
  [Tags.NumberOfFrames, 'numberOfFrames'],
]);

const UID_RE = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/;
const LENIENT_UID_RE = /^[0-9]+(\.[0-9]+)*$/;

/** A UID as PS3.5 9.1 wants it (digits and dots, no leading zeros, at most 64 characters). */
export function isStrictUid(uid: string): boolean {
  return uid.length > 0 && uid.length <= 64 && UID_RE.test(uid);
}

/** What we accept from senders: digits and dots, no empty components, at most 64 characters (leading zeros tolerated). */
export function isValidUid(uid: string): boolean {
  return uid.length > 0 && uid.length <= 64 && LENIENT_UID_RE.test(uid);
}

function preambleKind(p: Buffer): DicomHeader['preamble'] {
  if (p.every((b) => b === 0)) return 'zero';
  if (p[0] === 0x4d && p[1] === 0x5a) return 'pe';
  if (p[0] === 0x7f && p[1] === 0x45 && p[2] === 0x4c && p[3] === 0x46) return 'elf';
  return 'other';
}

export interface ReadHeaderOptions {
  /** Walk to the end of the data (checks it is complete); otherwise stop at Pixel Data. */
  full?: boolean;
  /** Read a bare dataset in this transfer syntax instead of a Part 10 file. */
  transferSyntaxUID?: string;
}

function collector(opts: ReadHeaderOptions) {
  const raw = new Map<Field, Buffer>();
  let meta: MetaInfo | undefined;
  const visitor: Visitor = {
    meta(m) {
      meta = m;
    },
    element(e: Element) {
      if (e.depth !== 0) return 'skip';
      if (!opts.full && (e.tag === Tags.PixelData || e.tag === Tags.FloatPixelData || e.tag === Tags.DoubleFloatPixelData)) return 'stop';
      if (fields.has(e.tag)) {
        if (e.length > 1024) throw new AppError('MALFORMED', `Element ${tagString(e.tag)} is ${e.length} bytes long; at most 1024 are allowed.`);
        return 'value';
      }
      return 'skip';
    },
    value(e, bytes) {
      raw.set(fields.get(e.tag)!, Buffer.from(bytes));
    },
  };
  return { visitor, raw, getMeta: () => meta };
}

function finish(raw: Map<Field, Buffer>, meta: MetaInfo | undefined, ts: string, complete: boolean, size: number): DicomHeader {
  const charset = raw.get('specificCharacterSet')?.toString('latin1') ?? '';
  const terms = parseCharsetTerms(charset);
  const text = (f: Field) => {
    const b = raw.get(f);
    return b ? decodeValue(b, terms) : '';
  };
  const ascii = (f: Field) => (raw.get(f)?.toString('latin1') ?? '').replace(/[\0 ]+$/, '').trim();
  const metaUid = (t: number) => (meta?.elements.get(t)?.toString('latin1') ?? '').replace(/[\0 ]+$/, '').trim();
  const h: DicomHeader = {
    transferSyntaxUID: ts,
    sopClassUID: ascii('sopClassUID'),
    sopInstanceUID: ascii('sopInstanceUID'),
    studyInstanceUID: ascii('studyInstanceUID'),
    seriesInstanceUID: ascii('seriesInstanceUID'),
    specificCharacterSet: charset.replace(/[\0 ]+$/, ''),
    patientName: text('patientName'),
    patientID: text('patientID'),
    issuerOfPatientID: text('issuerOfPatientID'),
    patientBirthDate: ascii('patientBirthDate'),
    patientSex: ascii('patientSex'),
    studyDate: ascii('studyDate'),
    studyTime: ascii('studyTime'),
    accessionNumber: text('accessionNumber'),
    studyID: text('studyID'),
    studyDescription: text('studyDescription'),
    referringPhysicianName: text('referringPhysicianName'),
    modality: ascii('modality'),
    seriesNumber: ascii('seriesNumber'),
    seriesDescription: text('seriesDescription'),
    instanceNumber: ascii('instanceNumber'),
    numberOfFrames: ascii('numberOfFrames'),
    preamble: meta ? preambleKind(meta.preamble) : 'none',
    metaSopClassUID: metaUid(Tags.MediaStorageSOPClassUID),
    metaSopInstanceUID: metaUid(Tags.MediaStorageSOPInstanceUID),
    datasetOffset: meta?.datasetOffset ?? 0,
    complete,
    size,
  };
  return h;
}

/** Read the header of a Part 10 file (or a bare dataset with `transferSyntaxUID`). Throws AppError on bad data. */
export async function readHeader(file: string, opts: ReadHeaderOptions = {}): Promise<DicomHeader> {
  const c = collector(opts);
  const { end, size } = await walkFile(file, c.visitor, { transferSyntaxUID: opts.transferSyntaxUID });
  const ts = opts.transferSyntaxUID ?? c.getMeta()!.transferSyntaxUID;
  return finish(c.raw, c.getMeta(), ts, end === 'eof', size);
}

export async function readHeaderFromBuffer(buf: Buffer, opts: ReadHeaderOptions = {}): Promise<DicomHeader> {
  const c = collector(opts);
  const end = await walkBuffer(buf, c.visitor, { transferSyntaxUID: opts.transferSyntaxUID });
  const ts = opts.transferSyntaxUID ?? c.getMeta()!.transferSyntaxUID;
  return finish(c.raw, c.getMeta(), ts, end === 'eof', buf.length);
}

/** The identity checks every ingest applies: the UIDs an instance must have, valid. */
export function checkIdentity(h: DicomHeader): void {
  const uids: [string, string][] = [
    ['SOP Class UID (0008,0016)', h.sopClassUID],
    ['SOP Instance UID (0008,0018)', h.sopInstanceUID],
    ['Study Instance UID (0020,000D)', h.studyInstanceUID],
    ['Series Instance UID (0020,000E)', h.seriesInstanceUID],
  ];
  for (const [name, uid] of uids) {
    if (!uid) throw new AppError('INVALID_UID', `The dataset has no ${name}.`);
    if (!isValidUid(uid)) throw new AppError('INVALID_UID', `The dataset's ${name} is not a valid UID.`);
  }
}
