/** Tag helpers and the few dictionary look-ups the byte-level parser needs (VR for implicit VR datasets). */
import dcmjs from 'dcmjs';

export const tag = (group: number, element: number): number => ((group << 16) | element) >>> 0;
export const groupOf = (t: number): number => t >>> 16;
export const elementOf = (t: number): number => t & 0xffff;
export const isPrivate = (t: number): boolean => (groupOf(t) & 1) === 1;

export function tagString(t: number): string {
  const h = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');
  return `(${h(groupOf(t))},${h(elementOf(t))})`;
}

export const Tags = {
  FileMetaGroupLength: tag(0x0002, 0x0000),
  MediaStorageSOPClassUID: tag(0x0002, 0x0002),
  MediaStorageSOPInstanceUID: tag(0x0002, 0x0003),
  TransferSyntaxUID: tag(0x0002, 0x0010),
  ImplementationClassUID: tag(0x0002, 0x0012),
  ImplementationVersionName: tag(0x0002, 0x0013),
  SourceApplicationEntityTitle: tag(0x0002, 0x0016),
  SpecificCharacterSet: tag(0x0008, 0x0005),
  SOPClassUID: tag(0x0008, 0x0016),
  SOPInstanceUID: tag(0x0008, 0x0018),
  StudyDate: tag(0x0008, 0x0020),
  SeriesDate: tag(0x0008, 0x0021),
  StudyTime: tag(0x0008, 0x0030),
  AccessionNumber: tag(0x0008, 0x0050),
  IssuerOfAccessionNumberSequence: tag(0x0008, 0x0051),
  Modality: tag(0x0008, 0x0060),
  ReferringPhysicianName: tag(0x0008, 0x0090),
  StudyDescription: tag(0x0008, 0x1030),
  SeriesDescription: tag(0x0008, 0x103e),
  PatientName: tag(0x0010, 0x0010),
  PatientID: tag(0x0010, 0x0020),
  IssuerOfPatientID: tag(0x0010, 0x0021),
  IssuerOfPatientIDQualifiersSequence: tag(0x0010, 0x0024),
  PatientBirthDate: tag(0x0010, 0x0030),
  PatientSex: tag(0x0010, 0x0040),
  OtherPatientIDs: tag(0x0010, 0x1000),
  OtherPatientIDsSequence: tag(0x0010, 0x1002),
  PatientIdentityRemoved: tag(0x0012, 0x0062),
  DeidentificationMethod: tag(0x0012, 0x0063),
  StudyInstanceUID: tag(0x0020, 0x000d),
  SeriesInstanceUID: tag(0x0020, 0x000e),
  StudyID: tag(0x0020, 0x0010),
  SeriesNumber: tag(0x0020, 0x0011),
  InstanceNumber: tag(0x0020, 0x0013),
  NumberOfFrames: tag(0x0028, 0x0008),
  RequestAttributesSequence: tag(0x0040, 0x0275),
  PixelData: tag(0x7fe0, 0x0010),
  FloatPixelData: tag(0x7fe0, 0x0008),
  DoubleFloatPixelData: tag(0x7fe0, 0x0009),
  Item: tag(0xfffe, 0xe000),
  ItemDelimitation: tag(0xfffe, 0xe00d),
  SequenceDelimitation: tag(0xfffe, 0xe0dd),
} as const;

/** VRs whose explicit encoding has 2 reserved bytes and a 4-byte length. */
export const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
export const KNOWN_VRS = new Set([
  'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FD', 'FL', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'PN',
  'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV',
]);

const dictionary = (dcmjs as any).data.DicomMetaDictionary.dictionary as Record<string, { vr: string } | undefined>;
const vrCache = new Map<number, string>();

/** The dictionary VR of a standard tag ('UN' for private or unknown tags); used for implicit VR data. */
export function dictionaryVR(t: number): string {
  let vr = vrCache.get(t);
  if (vr !== undefined) return vr;
  const el = elementOf(t);
  if (el === 0) vr = 'UL'; // group length
  else if (isPrivate(t)) vr = el >= 0x10 && el <= 0xff ? 'LO' : 'UN'; // private creator, or unknown private
  else {
    vr = dictionary[tagString(t)]?.vr ?? 'UN';
    if (!KNOWN_VRS.has(vr)) vr = 'OB'; // "ox", "US or SS" and the like: binary for our purposes
  }
  vrCache.set(t, vr);
  return vr;
}
