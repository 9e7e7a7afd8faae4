/**
 * Where the data set bytes of a C-STORE come from, as blocks for ScuAssociation.sendMessage: a byte range of
 * a stored file (read block by block as the socket drains: the bit-preserving path), a deflated data set
 * inflated on the fly (Deflated Explicit VR LE -> Explicit VR LE is the same data set, just not compressed),
 * or a buffer (a transcoded data set). Also reads where a Part 10 file's data set starts.
 */
import { open } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { createInflateRaw } from 'node:zlib';
import { walkFile } from '../dicom/read-file.ts';
import type { MetaInfo } from '../dicom/parser.ts';
import type { DataBlock } from './scu-association.ts';

export interface Part10Layout {
  /** Transfer syntax from the file meta group. */
  transferSyntaxUID: string;
  /** Byte offset of the data set (first byte after the file meta group). */
  datasetOffset: number;
  /** File size in bytes. */
  size: number;
  /** SOP Class / Instance UIDs of the file meta group. */
  metaSopClassUID: string;
  metaSopInstanceUID: string;
}

class StopWalk extends Error {}

const uidOf = (b: Buffer | undefined) => (b ? b.toString('latin1').replace(/[\0 ]+$/, '').trim() : '');

/** Read only the preamble and file meta group of a Part 10 file. Throws AppError if it is not one. */
export async function readPart10Layout(path: string): Promise<Part10Layout> {
  let meta: MetaInfo | undefined;
  let size = 0;
  try {
    ({ size } = await walkFile(path, {
      meta(m) {
        meta = m;
        throw new StopWalk();
      },
      element: () => 'stop',
    }));
  } catch (e) {
    if (!(e instanceof StopWalk)) throw e;
  }
  if (!meta) throw new Error(`${path}: no file meta information`);
  if (!size) {
    const fh = await open(path, 'r');
    try {
      size = (await fh.stat()).size;
    } finally {
      await fh.close();
    }
  }
  return {
    transferSyntaxUID: meta.transferSyntaxUID,
    datasetOffset: meta.datasetOffset,
    size,
    metaSopClassUID: uidOf(meta.elements.get(0x00020002)),
    metaSopInstanceUID: uidOf(meta.elements.get(0x00020003)),
  };
}

/** Thrown when the local source of a data set fails (file gone, shorter than it was): not the peer's fault. */
export class SourceError extends Error {}

/**
 * The bytes [start, end) of a file in blocks of `blockSize`; each block is a fresh buffer (the socket keeps
 * it until sent). `padOdd` appends one NUL byte when the range has an odd length (a deflated bit stream:
 * PS3.5 A.5 pads it to an even length, and DCMTK refuses odd PDV lengths).
 */
export async function* fileBlocks(path: string, start: number, end: number, blockSize: number, padOdd = false): AsyncGenerator<DataBlock> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new SourceError(`cannot open ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    let pos = start;
    if (pos >= end) {
      yield { data: Buffer.alloc(0), last: true };
      return;
    }
    while (pos < end) {
      const n = Math.min(blockSize, end - pos);
      const pad = padOdd && pos + n >= end && (end - start) % 2 === 1 ? 1 : 0;
      const buf = Buffer.allocUnsafe(n + pad);
      if (pad) buf[n] = 0;
      let got = 0;
      while (got < n) {
        const { bytesRead } = await fh.read(buf, got, n - got, pos + got);
        if (bytesRead === 0) throw new SourceError(`${path} ends at byte ${pos + got}, ${end - pos - got} bytes earlier than when the send started`);
        got += bytesRead;
      }
      pos += n;
      yield { data: buf, last: pos >= end };
    }
  } finally {
    await fh.close();
  }
}

/** A deflated data set starting at `start`, inflated as it is read, in blocks of `blockSize` (one block of lookahead). */
export async function* inflatedBlocks(path: string, start: number, blockSize: number): AsyncGenerator<DataBlock> {
  const input = createReadStream(path, { start, highWaterMark: 256 * 1024 });
  const inflate = createInflateRaw({ chunkSize: 256 * 1024 });
  input.on('error', (e) => inflate.destroy(new SourceError(`cannot read ${path}: ${e.message}`, { cause: e })));
  input.pipe(inflate);
  let pending: Buffer[] = [];
  let pendingLen = 0;
  let ready: Buffer | undefined;
  try {
    for await (const chunk of inflate as AsyncIterable<Buffer>) {
      let c = chunk;
      while (c.length) {
        const take = Math.min(blockSize - pendingLen, c.length);
        pending.push(c.subarray(0, take));
        pendingLen += take;
        c = c.subarray(take);
        if (pendingLen === blockSize) {
          if (ready) yield { data: ready, last: false };
          ready = Buffer.concat(pending, pendingLen);
          pending = [];
          pendingLen = 0;
        }
      }
    }
  } catch (e) {
    if (e instanceof SourceError) throw e;
    throw new SourceError(`the deflated data set of ${path} cannot be inflated: ${(e as Error).message}`, { cause: e });
  } finally {
    input.destroy();
    inflate.destroy();
  }
  if (pendingLen) {
    if (ready) yield { data: ready, last: false };
    yield { data: Buffer.concat(pending, pendingLen), last: true };
  } else {
    yield { data: ready ?? Buffer.alloc(0), last: true };
  }
}

/** A buffer in blocks. */
export function* bufferBlocks(buf: Buffer, blockSize: number): Generator<DataBlock> {
  if (buf.length === 0) {
    yield { data: buf, last: true };
    return;
  }
  for (let o = 0; o < buf.length; o += blockSize) yield { data: buf.subarray(o, o + blockSize), last: o + blockSize >= buf.length };
}
