/** Transfer syntaxes: how a dataset is encoded, and which ones the appliance keeps as they are. */

export interface SyntaxInfo {
  uid: string;
  name: string;
  explicitVR: boolean;
  littleEndian: boolean;
  deflated: boolean;
  encapsulated: boolean;
}

export const IMPLICIT_LE = '1.2.840.10008.1.2';
export const EXPLICIT_LE = '1.2.840.10008.1.2.1';
export const DEFLATED_LE = '1.2.840.10008.1.2.1.99';
export const EXPLICIT_BE = '1.2.840.10008.1.2.2';

const native: SyntaxInfo[] = [
  { uid: IMPLICIT_LE, name: 'Implicit VR Little Endian', explicitVR: false, littleEndian: true, deflated: false, encapsulated: false },
  { uid: EXPLICIT_LE, name: 'Explicit VR Little Endian', explicitVR: true, littleEndian: true, deflated: false, encapsulated: false },
  { uid: DEFLATED_LE, name: 'Deflated Explicit VR Little Endian', explicitVR: true, littleEndian: true, deflated: true, encapsulated: false },
  { uid: EXPLICIT_BE, name: 'Explicit VR Big Endian', explicitVR: true, littleEndian: false, deflated: false, encapsulated: false },
];

/** Encapsulated (compressed) syntaxes kept byte for byte: JPEG family, JPEG-LS, JPEG 2000, RLE, HTJ2K, MPEG/HEVC. */
const encapsulated: [string, string][] = [
  ['1.2.840.10008.1.2.4.50', 'JPEG Baseline (Process 1)'],
  ['1.2.840.10008.1.2.4.51', 'JPEG Extended (Process 2 & 4)'],
  ['1.2.840.10008.1.2.4.53', 'JPEG Spectral Selection, Non-Hierarchical (Process 6 & 8)'],
  ['1.2.840.10008.1.2.4.55', 'JPEG Full Progression, Non-Hierarchical (Process 10 & 12)'],
  ['1.2.840.10008.1.2.4.57', 'JPEG Lossless, Non-Hierarchical (Process 14)'],
  ['1.2.840.10008.1.2.4.70', 'JPEG Lossless, First-Order Prediction (Process 14 SV1)'],
  ['1.2.840.10008.1.2.4.80', 'JPEG-LS Lossless'],
  ['1.2.840.10008.1.2.4.81', 'JPEG-LS Near-Lossless'],
  ['1.2.840.10008.1.2.4.90', 'JPEG 2000 Lossless Only'],
  ['1.2.840.10008.1.2.4.91', 'JPEG 2000'],
  ['1.2.840.10008.1.2.4.92', 'JPEG 2000 Part 2 Multi-component Lossless Only'],
  ['1.2.840.10008.1.2.4.93', 'JPEG 2000 Part 2 Multi-component'],
  ['1.2.840.10008.1.2.4.201', 'High-Throughput JPEG 2000 Lossless Only'],
  ['1.2.840.10008.1.2.4.202', 'High-Throughput JPEG 2000 with RPCL Options Lossless Only'],
  ['1.2.840.10008.1.2.4.203', 'High-Throughput JPEG 2000'],
  ['1.2.840.10008.1.2.4.100', 'MPEG2 Main Profile / Main Level'],
  ['1.2.840.10008.1.2.4.101', 'MPEG2 Main Profile / High Level'],
  ['1.2.840.10008.1.2.4.102', 'MPEG-4 AVC/H.264 High Profile / Level 4.1'],
  ['1.2.840.10008.1.2.4.103', 'MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1'],
  ['1.2.840.10008.1.2.4.104', 'MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video'],
  ['1.2.840.10008.1.2.4.105', 'MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video'],
  ['1.2.840.10008.1.2.4.106', 'MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2'],
  ['1.2.840.10008.1.2.4.107', 'HEVC/H.265 Main Profile / Level 5.1'],
  ['1.2.840.10008.1.2.4.108', 'HEVC/H.265 Main 10 Profile / Level 5.1'],
  ['1.2.840.10008.1.2.5', 'RLE Lossless'],
];

const table = new Map<string, SyntaxInfo>([
  ...native.map((s) => [s.uid, s] as const),
  ...encapsulated.map(([uid, name]) => [uid, { uid, name, explicitVR: true, littleEndian: true, deflated: false, encapsulated: true }] as const),
]);

export function syntaxInfo(uid: string): SyntaxInfo | undefined {
  return table.get(uid);
}

/** Every syntax the SCP accepts and keeps as it is, in order of preference for a presentation context. */
export const storableSyntaxes: string[] = [EXPLICIT_LE, IMPLICIT_LE, EXPLICIT_BE, ...encapsulated.map(([uid]) => uid), DEFLATED_LE];
