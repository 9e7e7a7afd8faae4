/**
 * Upper-layer PDUs (PS3.8 9.3) for the SCU side: encoders for what an association requestor sends
 * (A-ASSOCIATE-RQ, P-DATA-TF headers, A-RELEASE-RQ/RP, A-ABORT), decoders for what it receives
 * (A-ASSOCIATE-AC/RJ, P-DATA-TF, A-ABORT), an incremental PDU splitter, and the rejection / abort
 * reasons in words.
 *
 * Why not dcmjs-dimse's PDU classes: version 0.3.3 does not export them (only its Association and
 * PresentationContext models), and its receiving side re-concatenates the whole pending buffer on every
 * chunk. These few fixed layouts are simpler to own than to reach into a minified bundle.
 */

export const PduType = {
  AssociateRQ: 0x01,
  AssociateAC: 0x02,
  AssociateRJ: 0x03,
  PDataTF: 0x04,
  ReleaseRQ: 0x05,
  ReleaseRP: 0x06,
  Abort: 0x07,
} as const;

export const APPLICATION_CONTEXT = '1.2.840.10008.3.1.1.1';
/** Uplink's implementation class UID (a UUID-derived UID, PS3.5 B.2) and version name. */
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION } from '../dicom/part10.ts';

export { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION };

/** Bytes of a P-DATA-TF PDU around one PDV's data: PDU header (6) + PDV length (4) + context id + control header. */
export const PDATA_OVERHEAD = 12;

export interface ProposedContext {
  /** Odd, 1..255. */
  id: number;
  abstractSyntax: string;
  transferSyntaxes: string[];
}

export interface AssociateRQ {
  calledAeTitle: string;
  callingAeTitle: string;
  contexts: ProposedContext[];
  /** Largest P-DATA-TF PDU we accept (0: no limit). */
  maxPduLength: number;
}

export interface ContextResult {
  id: number;
  /** 0 acceptance, 1 user rejection, 2 no reason, 3 abstract syntax not supported, 4 transfer syntaxes not supported. */
  result: number;
  transferSyntax: string;
}

export interface AssociateAC {
  contexts: Map<number, ContextResult>;
  /** The acceptor's maximum PDU length (0: no limit). */
  maxPduLength: number;
  implementationClassUid: string;
  implementationVersion: string;
}

export interface AssociateRJ {
  result: number;
  source: number;
  reason: number;
}

export interface AbortInfo {
  source: number;
  reason: number;
}

export interface Pdv {
  contextId: number;
  command: boolean;
  last: boolean;
  data: Buffer;
}

function aeField(ae: string): Buffer {
  const b = Buffer.alloc(16, 0x20);
  b.write(ae.slice(0, 16), 'latin1');
  return b;
}

function item(type: number, body: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h[0] = type;
  h.writeUInt16BE(body.length, 2);
  return Buffer.concat([h, body]);
}

function uidItem(type: number, uid: string): Buffer {
  return item(type, Buffer.from(uid, 'latin1'));
}

function pdu(type: number, body: Buffer): Buffer {
  const h = Buffer.alloc(6);
  h[0] = type;
  h.writeUInt32BE(body.length, 2);
  return Buffer.concat([h, body]);
}

export function encodeAssociateRQ(rq: AssociateRQ): Buffer {
  const fixed = Buffer.alloc(68);
  fixed.writeUInt16BE(1, 0); // protocol version
  aeField(rq.calledAeTitle).copy(fixed, 4);
  aeField(rq.callingAeTitle).copy(fixed, 20);
  const parts: Buffer[] = [fixed, uidItem(0x10, APPLICATION_CONTEXT)];
  for (const pc of rq.contexts) {
    const head = Buffer.from([pc.id, 0, 0, 0]);
    const subs = [uidItem(0x30, pc.abstractSyntax), ...pc.transferSyntaxes.map((ts) => uidItem(0x40, ts))];
    parts.push(item(0x20, Buffer.concat([head, ...subs])));
  }
  const maxLen = Buffer.alloc(4);
  maxLen.writeUInt32BE(rq.maxPduLength >>> 0, 0);
  const user = Buffer.concat([item(0x51, maxLen), uidItem(0x52, IMPLEMENTATION_CLASS_UID), uidItem(0x55, IMPLEMENTATION_VERSION)]);
  parts.push(item(0x50, user));
  return pdu(PduType.AssociateRQ, Buffer.concat(parts));
}

const trimUid = (b: Buffer) => b.toString('latin1').replace(/[\0 ]+$/, '').trim();

export class PduFormatError extends Error {}

/** Decode the body (after the 6-byte PDU header) of an A-ASSOCIATE-AC. */
export function decodeAssociateAC(body: Buffer): AssociateAC {
  if (body.length < 68) throw new PduFormatError('A-ASSOCIATE-AC is shorter than its fixed fields');
  const ac: AssociateAC = { contexts: new Map(), maxPduLength: 0, implementationClassUid: '', implementationVersion: '' };
  let o = 68;
  while (o + 4 <= body.length) {
    const type = body[o];
    const len = body.readUInt16BE(o + 2);
    const start = o + 4;
    const end = start + len;
    if (end > body.length) throw new PduFormatError(`A-ASSOCIATE-AC item 0x${type.toString(16)} overruns the PDU`);
    if (type === 0x21) {
      if (len < 4) throw new PduFormatError('A-ASSOCIATE-AC presentation context item too short');
      const id = body[start];
      const result = body[start + 2];
      let ts = '';
      let p = start + 4;
      while (p + 4 <= end) {
        const st = body[p];
        const sl = body.readUInt16BE(p + 2);
        if (st === 0x40) ts = trimUid(body.subarray(p + 4, p + 4 + sl));
        p += 4 + sl;
      }
      ac.contexts.set(id, { id, result, transferSyntax: ts });
    } else if (type === 0x50) {
      let p = start;
      while (p + 4 <= end) {
        const st = body[p];
        const sl = body.readUInt16BE(p + 2);
        const v = body.subarray(p + 4, p + 4 + sl);
        if (st === 0x51 && sl >= 4) ac.maxPduLength = v.readUInt32BE(0);
        else if (st === 0x52) ac.implementationClassUid = trimUid(v);
        else if (st === 0x55) ac.implementationVersion = trimUid(v);
        p += 4 + sl;
      }
    }
    o = end;
  }
  return ac;
}

export function decodeAssociateRJ(body: Buffer): AssociateRJ {
  if (body.length < 4) throw new PduFormatError('A-ASSOCIATE-RJ is too short');
  return { result: body[1], source: body[2], reason: body[3] };
}

export function decodeAbort(body: Buffer): AbortInfo {
  if (body.length < 4) return { source: 0, reason: 0 };
  return { source: body[2], reason: body[3] };
}

export function decodePData(body: Buffer): Pdv[] {
  const out: Pdv[] = [];
  let o = 0;
  while (o < body.length) {
    if (o + 6 > body.length) throw new PduFormatError('P-DATA-TF ends inside a PDV header');
    const len = body.readUInt32BE(o);
    if (len < 2 || o + 4 + len > body.length) throw new PduFormatError(`P-DATA-TF PDV length ${len} is invalid`);
    const ctrl = body[o + 5];
    out.push({ contextId: body[o + 4], command: (ctrl & 1) === 1, last: (ctrl & 2) === 2, data: body.subarray(o + 6, o + 4 + len) });
    o += 4 + len;
  }
  return out;
}

/** The 12-byte header of a P-DATA-TF PDU carrying exactly one PDV of `dataLength` bytes. */
export function pdataHeader(contextId: number, command: boolean, last: boolean, dataLength: number): Buffer {
  const h = Buffer.allocUnsafe(PDATA_OVERHEAD);
  h[0] = PduType.PDataTF;
  h[1] = 0;
  h.writeUInt32BE(dataLength + 6, 2);
  h.writeUInt32BE(dataLength + 2, 6);
  h[10] = contextId;
  h[11] = (command ? 1 : 0) | (last ? 2 : 0);
  return h;
}

export function encodeReleaseRQ(): Buffer {
  return pdu(PduType.ReleaseRQ, Buffer.alloc(4));
}

export function encodeReleaseRP(): Buffer {
  return pdu(PduType.ReleaseRP, Buffer.alloc(4));
}

/** A-ABORT; source 0 = service user (us). */
export function encodeAbort(source = 0, reason = 0): Buffer {
  return pdu(PduType.Abort, Buffer.from([0, 0, source, reason]));
}

export interface RawPdu {
  type: number;
  body: Buffer;
}

/** Splits a byte stream into PDUs without re-copying what it has already buffered on every chunk. */
export class PduSplitter {
  private chunks: Buffer[] = [];
  private buffered = 0;
  constructor(private readonly maxLength: number) {}

  /** Feed bytes; returns the complete PDUs they finish. Throws PduFormatError on an oversized PDU. */
  push(chunk: Buffer): RawPdu[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: RawPdu[] = [];
    for (;;) {
      if (this.buffered < 6) break;
      const head = this.chunks[0].length >= 6 ? this.chunks[0] : this.flatten();
      const type = head[0];
      const len = head.readUInt32BE(2);
      if (type < 1 || type > 7) throw new PduFormatError(`unknown PDU type 0x${type.toString(16)}`);
      if (len > this.maxLength) throw new PduFormatError(`PDU of ${len} bytes exceeds the ${this.maxLength}-byte limit`);
      if (this.buffered < len + 6) break;
      const all = this.chunks.length === 1 ? this.chunks[0] : this.flatten();
      out.push({ type, body: all.subarray(6, 6 + len) });
      const rest = all.subarray(6 + len);
      this.chunks = rest.length ? [rest] : [];
      this.buffered = rest.length;
    }
    return out;
  }

  private flatten(): Buffer {
    const b = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [b];
    return b;
  }
}

// ---- reasons in words (PS3.8 9.3.4 and 9.3.8) ----

export function describeReject(rj: AssociateRJ): string {
  const result = rj.result === 1 ? 'permanent' : rj.result === 2 ? 'transient' : `result ${rj.result}`;
  let source: string;
  let reason: string;
  switch (rj.source) {
    case 1:
      source = 'the called application (service user)';
      reason =
        { 1: 'no reason given', 2: 'application context name not supported', 3: 'calling AE title not recognised', 7: 'called AE title not recognised' }[rj.reason] ??
        `reason ${rj.reason}`;
      break;
    case 2:
      source = 'the peer\'s association control (service provider, ACSE)';
      reason = { 1: 'no reason given', 2: 'protocol version not supported' }[rj.reason] ?? `reason ${rj.reason}`;
      break;
    case 3:
      source = 'the peer\'s presentation layer (service provider)';
      reason = { 1: 'temporary congestion', 2: 'local limit exceeded' }[rj.reason] ?? `reason ${rj.reason}`;
      break;
    default:
      source = `source ${rj.source}`;
      reason = `reason ${rj.reason}`;
  }
  return `association rejected (${result}) by ${source}: ${reason}`;
}

export function describeAbort(a: AbortInfo): string {
  if (a.source === 0) return 'association aborted by the peer (service user)';
  if (a.source === 2) {
    const reason =
      { 0: 'reason not specified', 1: 'unrecognised PDU', 2: 'unexpected PDU', 4: 'unrecognised PDU parameter', 5: 'unexpected PDU parameter', 6: 'invalid PDU parameter value' }[
        a.reason
      ] ?? `reason ${a.reason}`;
    return `association aborted by the peer's service provider: ${reason}`;
  }
  return `association aborted by the peer (source ${a.source}, reason ${a.reason})`;
}

export function describeContextResult(result: number): string {
  return (
    {
      0: 'accepted',
      1: 'rejected by the user',
      2: 'rejected (no reason given)',
      3: 'abstract syntax (SOP class) not supported',
      4: 'transfer syntaxes not supported',
    }[result] ?? `result ${result}`
  );
}
