/**
 * Large instances for tests and benchmarks, generated on the spot: a valid explicit VR little endian
 * multi-frame header (with identifiers the upload policy rewrites) and a big Pixel Data value, written frame by
 * frame so the generator itself stays in flat memory.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';

const EXPLICIT_LE = '1.2.840.10008.1.2.1';
export const MULTIFRAME_SC = '1.2.840.10008.5.1.4.1.1.7.3'; // Multi-frame Grayscale Word Secondary Capture
const ROWS = 512;
const COLS = 512;
export const FRAME_BYTES = ROWS * COLS * 2;

function el(group: number, element: number, vr: string, value: Buffer): Buffer {
  const long = ['OB', 'OW', 'SQ', 'UN', 'UT'].includes(vr);
  const h = Buffer.alloc(long ? 12 : 8);
  h.writeUInt16LE(group, 0);
  h.writeUInt16LE(element, 2);
  h.write(vr, 4, 'latin1');
  if (long) h.writeUInt32LE(value.length, 8);
  else h.writeUInt16LE(value.length, 6);
  return Buffer.concat([h, value]);
}
const str = (s: string, pad = ' ') => Buffer.from(s.length % 2 ? s + pad : s, 'latin1');
const uid = (s: string) => str(s, '\0');
const us = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
};

/** Write `frames` frames of 512 x 512 16-bit pixels (512 KiB each) to `file`; returns its SOP Instance UID. */
export async function writeMultiframe(file: string, frames: number): Promise<string> {
  const sop = `2.25.${BigInt('0x' + createHash('sha1').update(file).digest('hex').slice(0, 30)).toString()}`;
  const meta = Buffer.concat([
    el(0x0002, 0x0001, 'OB', Buffer.from([0, 1])),
    el(0x0002, 0x0002, 'UI', uid(MULTIFRAME_SC)),
    el(0x0002, 0x0003, 'UI', uid(sop)),
    el(0x0002, 0x0010, 'UI', uid(EXPLICIT_LE)),
    el(0x0002, 0x0012, 'UI', uid('2.25.1234')),
  ]);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(meta.length);
  const pixelHeader = Buffer.alloc(12);
  pixelHeader.writeUInt16LE(0x7fe0, 0);
  pixelHeader.writeUInt16LE(0x0010, 2);
  pixelHeader.write('OW', 4, 'latin1');
  pixelHeader.writeUInt32LE(FRAME_BYTES * frames, 8);
  const header = Buffer.concat([
    Buffer.alloc(128),
    Buffer.from('DICM', 'latin1'),
    el(0x0002, 0x0000, 'UL', groupLength),
    meta,
    el(0x0008, 0x0005, 'CS', str('ISO_IR 100')),
    el(0x0008, 0x0016, 'UI', uid(MULTIFRAME_SC)),
    el(0x0008, 0x0018, 'UI', uid(sop)),
    el(0x0008, 0x0050, 'SH', str('ACC-ORIGINAL')),
    el(0x0008, 0x0060, 'CS', str('OT')),
    el(0x0010, 0x0010, 'PN', str('Large^Test')),
    el(0x0010, 0x0020, 'LO', str('PID-ORIGINAL')),
    el(0x0020, 0x000d, 'UI', uid(`${sop}.1`)),
    el(0x0020, 0x000e, 'UI', uid(`${sop}.2`)),
    el(0x0028, 0x0002, 'US', us(1)),
    el(0x0028, 0x0004, 'CS', str('MONOCHROME2')),
    el(0x0028, 0x0008, 'IS', str(String(frames))),
    el(0x0028, 0x0010, 'US', us(ROWS)),
    el(0x0028, 0x0011, 'US', us(COLS)),
    el(0x0028, 0x0100, 'US', us(16)),
    el(0x0028, 0x0101, 'US', us(12)),
    el(0x0028, 0x0102, 'US', us(11)),
    el(0x0028, 0x0103, 'US', us(0)),
    pixelHeader,
  ]);
  const fh = await open(file, 'w');
  try {
    await fh.write(header);
    const frame = Buffer.alloc(FRAME_BYTES);
    for (let i = 0; i < frame.length; i += 2) frame.writeUInt16LE((i / 2) & 0x0fff, i);
    for (let f = 0; f < frames; f++) {
      frame.writeUInt16LE(f & 0x0fff, 0); // frames differ
      await fh.write(frame);
    }
  } finally {
    await fh.close();
  }
  return sop;
}
