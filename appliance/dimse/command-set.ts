/**
 * DIMSE command sets (group 0000, always implicit VR little endian, PS3.7 E): encode the requests the SCU sends
 * (C-STORE, C-ECHO, C-FIND, C-CANCEL) and read their responses; encode the C-STORE response the SCP sends.
 *
 * Written out here rather than through dcmjs-dimse's `Dataset.getDenaturalizedCommandDataset()`: a command
 * set is a handful of fixed elements, and the dcmjs round trip measured ~0.7 ms per request, a large share
 * of the time a small instance takes to send.
 */

export const CommandField = {
  CStoreRQ: 0x0001,
  CStoreRSP: 0x8001,
  CFindRQ: 0x0020,
  CFindRSP: 0x8020,
  CEchoRQ: 0x0030,
  CEchoRSP: 0x8030,
  CCancelRQ: 0x0fff,
} as const;

/** (0000,0800) value meaning "no data set follows". */
export const NO_DATASET = 0x0101;

type Value = { el: number; vr: 'UI' | 'US' | 'UL' | 'AE' | 'LO'; value: string | number };

function encodeValue(v: Value): Buffer {
  switch (v.vr) {
    case 'US': {
      const b = Buffer.alloc(2);
      b.writeUInt16LE(Number(v.value), 0);
      return b;
    }
    case 'UL': {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(Number(v.value), 0);
      return b;
    }
    case 'UI': {
      const s = String(v.value);
      return Buffer.from(s.length % 2 ? `${s}\0` : s, 'latin1');
    }
    default: {
      const s = String(v.value);
      return Buffer.from(s.length % 2 ? `${s} ` : s, 'latin1');
    }
  }
}

function encodeCommand(values: Value[]): Buffer {
  const parts: Buffer[] = [];
  let total = 0;
  for (const v of [...values].sort((a, b) => a.el - b.el)) {
    const val = encodeValue(v);
    const h = Buffer.alloc(8);
    h.writeUInt16LE(0x0000, 0);
    h.writeUInt16LE(v.el, 2);
    h.writeUInt32LE(val.length, 4);
    parts.push(h, val);
    total += 8 + val.length;
  }
  const gl = Buffer.alloc(12);
  gl.writeUInt32LE(0x00000000, 0);
  gl.writeUInt32LE(4, 4);
  gl.writeUInt32LE(total, 8);
  return Buffer.concat([gl, ...parts], 12 + total);
}

export function cStoreRQ(messageId: number, sopClassUID: string, sopInstanceUID: string, priority = 0): Buffer {
  return encodeCommand([
    { el: 0x0002, vr: 'UI', value: sopClassUID },
    { el: 0x0100, vr: 'US', value: CommandField.CStoreRQ },
    { el: 0x0110, vr: 'US', value: messageId },
    { el: 0x0700, vr: 'US', value: priority },
    { el: 0x0800, vr: 'US', value: 0x0000 },
    { el: 0x1000, vr: 'UI', value: sopInstanceUID },
  ]);
}

/** A C-STORE-RSP; `errorComment` (LO, at most 64 characters) only with a failure status. */
export function cStoreRSP(messageIdBeingRespondedTo: number, sopClassUID: string, sopInstanceUID: string, status: number, errorComment?: string): Buffer {
  return encodeCommand([
    { el: 0x0002, vr: 'UI', value: sopClassUID },
    { el: 0x0100, vr: 'US', value: CommandField.CStoreRSP },
    { el: 0x0120, vr: 'US', value: messageIdBeingRespondedTo },
    { el: 0x0800, vr: 'US', value: NO_DATASET },
    { el: 0x0900, vr: 'US', value: status },
    { el: 0x1000, vr: 'UI', value: sopInstanceUID },
    ...(errorComment && status !== 0 ? [{ el: 0x0902, vr: 'LO' as const, value: errorComment.slice(0, 64) }] : []),
  ]);
}

export function cEchoRQ(messageId: number): Buffer {
  return encodeCommand([
    { el: 0x0002, vr: 'UI', value: '1.2.840.10008.1.1' },
    { el: 0x0100, vr: 'US', value: CommandField.CEchoRQ },
    { el: 0x0110, vr: 'US', value: messageId },
    { el: 0x0800, vr: 'US', value: NO_DATASET },
  ]);
}

export function cFindRQ(messageId: number, sopClassUID: string, priority = 0): Buffer {
  return encodeCommand([
    { el: 0x0002, vr: 'UI', value: sopClassUID },
    { el: 0x0100, vr: 'US', value: CommandField.CFindRQ },
    { el: 0x0110, vr: 'US', value: messageId },
    { el: 0x0700, vr: 'US', value: priority },
    { el: 0x0800, vr: 'US', value: 0x0000 },
  ]);
}

export function cCancelRQ(messageIdBeingRespondedTo: number): Buffer {
  return encodeCommand([
    { el: 0x0100, vr: 'US', value: CommandField.CCancelRQ },
    { el: 0x0120, vr: 'US', value: messageIdBeingRespondedTo },
    { el: 0x0800, vr: 'US', value: NO_DATASET },
  ]);
}

export interface Response {
  commandField: number;
  messageIdBeingRespondedTo: number | undefined;
  status: number | undefined;
  affectedSopInstanceUID: string;
  errorComment: string;
  hasDataset: boolean;
}

/** Read a response command set. Throws on a command set that is cut off. */
export function readResponse(command: Buffer): Response {
  const r: Response = { commandField: -1, messageIdBeingRespondedTo: undefined, status: undefined, affectedSopInstanceUID: '', errorComment: '', hasDataset: false };
  let o = 0;
  while (o + 8 <= command.length) {
    const group = command.readUInt16LE(o);
    const el = command.readUInt16LE(o + 2);
    const len = command.readUInt32LE(o + 4);
    const v = command.subarray(o + 8, o + 8 + len);
    if (v.length < len) throw new Error('the response command set is cut off');
    if (group === 0) {
      const us = len >= 2 ? v.readUInt16LE(0) : undefined;
      const text = () => v.toString('latin1').replace(/[\0 ]+$/, '').trim();
      switch (el) {
        case 0x0100:
          r.commandField = us ?? -1;
          break;
        case 0x0120:
          r.messageIdBeingRespondedTo = us;
          break;
        case 0x0800:
          r.hasDataset = us !== undefined && us !== NO_DATASET;
          break;
        case 0x0900:
          r.status = us;
          break;
        case 0x0902:
          r.errorComment = text();
          break;
        case 0x1000:
          r.affectedSopInstanceUID = text();
          break;
      }
    }
    o += 8 + len;
  }
  return r;
}
