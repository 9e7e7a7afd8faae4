/** What the browser learns from a file's header (never sent anywhere before consent). */
export interface DicomSummary {
  sopInstanceUid: string;
  sopClassUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  transferSyntaxUid: string;
  /** DICOM PN, e.g. "Doe^Archibald". */
  patientName: string;
  patientId: string;
  /** YYYYMMDD or "". */
  patientBirthDate: string;
  patientSex: string;
  /** YYYYMMDD or "". */
  studyDate: string;
  studyTime: string;
  studyDescription: string;
  accessionNumber: string;
  modality: string;
  seriesNumber: string;
  seriesDescription: string;
  numberOfFrames: number;
}

/** A file a DICOMDIR references: its path components (ReferencedFileID) and, if given, the instance UID. */
export interface DirRef {
  fileId: string[];
  sopInstanceUid: string;
}

export type HeaderResult =
  | { kind: 'dicom'; header: DicomSummary }
  | { kind: 'dicomdir'; refs: DirRef[] }
  | { kind: 'zip' }
  | { kind: 'not-dicom' }
  | { kind: 'unreadable'; reason: string };

export const DICOMDIR_SOP_CLASS = '1.2.840.10008.1.3.10';
