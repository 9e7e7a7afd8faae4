/**
 * A tiny DICOM writer for crafting test files (defined / undefined lengths, group lengths, nesting, odd
 * preambles, lies about lengths), written independently of the code under test.
 */
export interface Enc {
  explicit: boolean;
  le: boolean;
}
export const EXPLICIT_LE: Enc = { explicit: true, le: true };
export const IMPLICIT_LE: Enc = { explicit: false, le: true };
export const EXPLICIT_BE: Enc = { explicit: true, le: false };

const LONG = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

export type Node = Buffer;

function u16(v: number, le: boolean) {
  const b = Buffer.alloc(2);
  le ? b.writeUInt16LE(v) : b.writeUInt16BE(v);
  return b;
}
function u32(v: number, le: boolean) {
  const b = Buffer.alloc(4);
  le ? b.writeUInt32LE(v >>> 0) : b.writeUInt32BE(v >>> 0);
  return b;
}
function tagBytes(tag: number, le: boolean) {
  return Buffer.concat([u16(tag >>> 16, le), u16(tag & 0xffff, le)]);
}

/** Text padded to even length (space; NUL for UI). */
export function text(s: string, vr = 'LO'): Buffer {
  const b = Buffer.from(s, 'latin1');
  return b.length % 2 ? Buffer.concat([b, Buffer.from(vr === 'UI' ? '\0' : ' ', 'latin1')]) : b;
}

/** An element with a value; `declared` overrides the length written in its header. */
export function el(enc: Enc, tag: number, vr: string, value: Buffer | string, declared?: number): Buffer {
  const v = typeof value === 'string' ? text(value, vr) : value;
  const len = declared ?? v.length;
  if (!enc.explicit) return Buffer.concat([tagBytes(tag, enc.le), u32(len, enc.le), v]);
  const head = LONG.has(vr)
    ? Buffer.concat([tagBytes(tag, enc.le), Buffer.from(vr, 'latin1'), Buffer.alloc(2), u32(len, enc.le)])
    : Buffer.concat([tagBytes(tag, enc.le), Buffer.from(vr, 'latin1'), u16(len, enc.le)]);
  return Buffer.concat([head, v]);
}

/** A group length element (gggg,0000) for the elements that follow it. */
export function groupLength(enc: Enc, group: number, elements: Buffer[]): Buffer {
  const total = elements.reduce((n, e) => n + e.length, 0);
  return el(enc, (group << 16) >>> 0, 'UL', u32(total, enc.le));
}

export function item(enc: Enc, content: Buffer[], defined = true): Buffer {
  const body = Buffer.concat(content);
  const head = Buffer.concat([tagBytes(0xfffee000, enc.le), u32(defined ? body.length : 0xffffffff, enc.le)]);
  const tail = defined ? Buffer.alloc(0) : Buffer.concat([tagBytes(0xfffee00d, enc.le), u32(0, enc.le)]);
  return Buffer.concat([head, body, tail]);
}

export function seq(enc: Enc, tag: number, items: Buffer[], defined = true): Buffer {
  const body = Buffer.concat(items);
  const len = defined ? body.length : 0xffffffff;
  const head = enc.explicit
    ? Buffer.concat([tagBytes(tag, enc.le), Buffer.from('SQ', 'latin1'), Buffer.alloc(2), u32(len, enc.le)])
    : Buffer.concat([tagBytes(tag, enc.le), u32(len, enc.le)]);
  const tail = defined ? Buffer.alloc(0) : Buffer.concat([tagBytes(0xfffee0dd, enc.le), u32(0, enc.le)]);
  return Buffer.concat([head, body, tail]);
}

const metaEl = (tag: number, vr: string, v: Buffer) => el(EXPLICIT_LE, tag, vr, v);

/** A Part 10 file: preamble (default zeros), DICM, a meta group with group length, the dataset. */
export function part10(ts: string, dataset: Buffer[], opts: { preamble?: Buffer; sopClass?: string; sopInstance?: string } = {}): Buffer {
  const body = Buffer.concat([
    metaEl(0x00020001, 'OB', Buffer.from([0, 1])),
    metaEl(0x00020002, 'UI', text(opts.sopClass ?? '1.2.840.10008.5.1.4.1.1.7', 'UI')),
    metaEl(0x00020003, 'UI', text(opts.sopInstance ?? '1.2.3.4.5.6', 'UI')),
    metaEl(0x00020010, 'UI', text(ts, 'UI')),
    metaEl(0x00020012, 'UI', text('1.2.3.4', 'UI')),
  ]);
  const preamble = Buffer.alloc(128);
  opts.preamble?.copy(preamble);
  return Buffer.concat([preamble, Buffer.from('DICM'), metaEl(0x00020000, 'UL', u32(body.length, true)), body, ...dataset]);
}

/** The identifying top-level elements every test instance needs (in tag order, group 0008 / 0010 / 0020 split out). */
export function ids(enc: Enc, uids: { sopClass?: string; sop: string; study: string; series: string }) {
  return {
    g08: [el(enc, 0x00080016, 'UI', text(uids.sopClass ?? '1.2.840.10008.5.1.4.1.1.7', 'UI')), el(enc, 0x00080018, 'UI', text(uids.sop, 'UI'))],
    g20: [el(enc, 0x0020000d, 'UI', text(uids.study, 'UI')), el(enc, 0x0020000e, 'UI', text(uids.series, 'UI'))],
  };
}
