/**
 * A deliberately simple DICOM upper-layer client for tests that must send what DCMTK refuses to send:
 * cut-off datasets, datasets whose SOP Instance UID differs from the command's, oversized PDUs.
 * It speaks just enough of PS3.8: A-ASSOCIATE-RQ, P-DATA-TF (command + data), A-RELEASE-RQ, A-ABORT.
 */
import net from 'node:net';

const IMPLICIT_LE = '1.2.840.10008.1.2';

function padUid(uid: string): Buffer {
  const b = Buffer.from(uid, 'latin1');
  return b.length % 2 ? Buffer.concat([b, Buffer.from([0])]) : b;
}

function item(type: number, body: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h[0] = type;
  h.writeUInt16BE(body.length, 2);
  return Buffer.concat([h, body]);
}

function pdu(type: number, body: Buffer): Buffer {
  const h = Buffer.alloc(6);
  h[0] = type;
  h.writeUInt32BE(body.length, 2);
  return Buffer.concat([h, body]);
}

export function associateRq(calledAe: string, callingAe: string, contexts: { id: number; abstract: string; syntaxes: string[] }[], maxPdu = 16384): Buffer {
  const fixed = Buffer.alloc(68);
  fixed.writeUInt16BE(1, 0);
  fixed.write(calledAe.padEnd(16, ' '), 4, 'latin1');
  fixed.write(callingAe.padEnd(16, ' '), 20, 'latin1');
  const app = item(0x10, Buffer.from('1.2.840.10008.3.1.1.1', 'latin1'));
  const pcs = contexts.map((c) =>
    item(0x20, Buffer.concat([Buffer.from([c.id, 0, 0, 0]), item(0x30, Buffer.from(c.abstract, 'latin1')), ...c.syntaxes.map((s) => item(0x40, Buffer.from(s, 'latin1')))])),
  );
  const max = Buffer.alloc(4);
  max.writeUInt32BE(maxPdu);
  const user = item(0x50, Buffer.concat([item(0x51, max), item(0x52, Buffer.from('1.2.3.4.5.6.7', 'latin1'))]));
  return pdu(0x01, Buffer.concat([fixed, app, ...pcs, user]));
}

function element(group: number, el: number, value: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16LE(group, 0);
  h.writeUInt16LE(el, 2);
  h.writeUInt32LE(value.length, 4);
  return Buffer.concat([h, value]);
}
const us = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
};

/** A C-STORE-RQ command set (implicit VR little endian, as PS3.7 requires). */
export function storeCommand(sopClass: string, sopInstance: string, messageId: number): Buffer {
  const body = Buffer.concat([
    element(0, 0x0002, padUid(sopClass)),
    element(0, 0x0100, us(0x0001)),
    element(0, 0x0110, us(messageId)),
    element(0, 0x0700, us(0)),
    element(0, 0x0800, us(0x0000)),
    element(0, 0x1000, padUid(sopInstance)),
  ]);
  const gl = Buffer.alloc(4);
  gl.writeUInt32LE(body.length);
  return Buffer.concat([element(0, 0x0000, gl), body]);
}

export function pdata(pcId: number, value: Buffer, command: boolean, last: boolean): Buffer {
  const h = Buffer.alloc(6);
  h.writeUInt32BE(value.length + 2, 0);
  h[4] = pcId;
  h[5] = (command ? 1 : 0) | (last ? 2 : 0);
  return pdu(0x04, Buffer.concat([h, value]));
}

export const releaseRq = () => pdu(0x05, Buffer.alloc(4));

export interface RawPdu {
  type: number;
  body: Buffer;
}

/** A connection that reads whole PDUs. */
export class RawAssociation {
  private buf = Buffer.alloc(0);
  private waiters: ((p: RawPdu | null) => void)[] = [];
  private queue: (RawPdu | null)[] = [];
  readonly sock: net.Socket;

  private constructor(sock: net.Socket) {
    this.sock = sock;
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 6) {
        const len = this.buf.readUInt32BE(2);
        if (this.buf.length < 6 + len) break;
        this.push({ type: this.buf[0], body: this.buf.subarray(6, 6 + len) });
        this.buf = this.buf.subarray(6 + len);
      }
    });
    sock.on('close', () => this.push(null));
    sock.on('error', () => undefined);
  }

  private push(p: RawPdu | null) {
    const w = this.waiters.shift();
    if (w) w(p);
    else this.queue.push(p);
  }

  static connect(port: number): Promise<RawAssociation> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new RawAssociation(s)));
      s.once('error', reject);
    });
  }

  /** Next PDU, or null when the connection closed. */
  next(timeoutMs = 10000): Promise<RawPdu | null> {
    if (this.queue.length) return Promise.resolve(this.queue.shift()!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no PDU within timeout')), timeoutMs);
      this.waiters.push((p) => {
        clearTimeout(timer);
        resolve(p);
      });
    });
  }

  send(b: Buffer): void {
    this.sock.write(b);
  }

  /** Associate for one storage SOP class in Implicit VR LE; returns the A-ASSOCIATE-AC/RJ PDU type. */
  async associate(calledAe: string, callingAe: string, sopClass: string, syntax = IMPLICIT_LE): Promise<number> {
    this.send(associateRq(calledAe, callingAe, [{ id: 1, abstract: sopClass, syntaxes: [syntax] }]));
    const p = await this.next();
    return p?.type ?? 0;
  }

  /** Wait for a C-STORE-RSP and return its Status (0000,0900). */
  async storeStatus(): Promise<number> {
    const p = await this.next();
    if (!p) throw new Error('connection closed before a response');
    if (p.type !== 0x04) throw new Error(`expected P-DATA-TF, got PDU type ${p.type}`);
    const value = p.body.subarray(6, 4 + p.body.readUInt32BE(0));
    let o = 0;
    while (o + 8 <= value.length) {
      const el = value.readUInt16LE(o + 2);
      const len = value.readUInt32LE(o + 4);
      if (el === 0x0900) return value.readUInt16LE(o + 8);
      o += 8 + len;
    }
    throw new Error('no Status in the response');
  }

  close(): void {
    this.sock.destroy();
  }
}
