/** Part 10 file meta information: what we write in front of a dataset to make it a file. */
import { Tags } from './dictionary.ts';

/** Uplink's Implementation Class UID (a UUID-derived UID, PS3.5 B.2) and version name. */
export const IMPLEMENTATION_CLASS_UID = '2.25.189483209692236900476661780069654906570';
export const IMPLEMENTATION_VERSION = 'UPLINK_010';

function element(tag: number, vr: string, value: Buffer): Buffer {
  const longVr = vr === 'OB';
  const head = Buffer.alloc(longVr ? 12 : 8);
  head.writeUInt16LE(tag >>> 16, 0);
  head.writeUInt16LE(tag & 0xffff, 2);
  head.write(vr, 4, 'latin1');
  if (longVr) head.writeUInt32LE(value.length, 8);
  else head.writeUInt16LE(value.length, 6);
  return Buffer.concat([head, value]);
}

function text(value: string, pad: '\0' | ' '): Buffer {
  const b = Buffer.from(value, 'latin1');
  return b.length % 2 ? Buffer.concat([b, Buffer.from(pad, 'latin1')]) : b;
}

export interface FileMetaFields {
  sopClassUID: string;
  sopInstanceUID: string;
  transferSyntaxUID: string;
  sourceAeTitle?: string;
}

/** 128 zero bytes, "DICM", and a correct file meta group (explicit VR little endian, with group length). */
export function buildFileMeta(f: FileMetaFields): Buffer {
  const body = Buffer.concat([
    element(0x00020001, 'OB', Buffer.from([0, 1])),
    element(Tags.MediaStorageSOPClassUID, 'UI', text(f.sopClassUID, '\0')),
    element(Tags.MediaStorageSOPInstanceUID, 'UI', text(f.sopInstanceUID, '\0')),
    element(Tags.TransferSyntaxUID, 'UI', text(f.transferSyntaxUID, '\0')),
    element(Tags.ImplementationClassUID, 'UI', text(IMPLEMENTATION_CLASS_UID, '\0')),
    element(Tags.ImplementationVersionName, 'SH', text(IMPLEMENTATION_VERSION, ' ')),
    ...(f.sourceAeTitle ? [element(Tags.SourceApplicationEntityTitle, 'AE', text(f.sourceAeTitle, ' '))] : []),
  ]);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(body.length);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'latin1'), element(Tags.FileMetaGroupLength, 'UL', groupLength), body]);
}
