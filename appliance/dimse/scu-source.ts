/**
 * Where the data set bytes of a C-STORE come from, as blocks for ScuAssociation.sendMessage: the data set of
 * a stored file (read block by block as the socket drains: the bit-preserving path), a deflated data set
 * inflated on the fly (Deflated Explicit VR LE -> Explicit VR LE is the same data set, just not compressed),
 * or a buffer (a transcoded data set). Also reads where a Part 10 file's data set starts.
 *
 * `openInstance` opens a stored file once and reads its first block, which holds the file meta group (so
 * the layout costs no extra read) and, for most instances, the whole data set: the send then needs one open,
 * one read and one close per instance, and the next instance can be opened while the peer answers.
 */
import { open } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { createInflateRaw } from 'node:zlib';
import { walkBuffer, walkFile } from '../dicom/read-file.ts';
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

function layoutFromMeta(meta: MetaInfo, size: number): Part10Layout {
  return {
    transferSyntaxUID: meta.transferSyntaxUID,
    datasetOffset: meta.datasetOffset,
    size,
    metaSopClassUID: uidOf(meta.elements.get(0x00020002)),
    metaSopInstanceUID: uidOf(meta.elements.get(0x00020003)),
  };
}

/** A stored file, open, with its layout known and its first block read. */
export interface OpenedInstance {
  readonly path: string;
  readonly layout: Part10Layout;
  /**
   * The data set as blocks (the first one from what was already read), then the file is closed. `padOdd`
   * appends one NUL byte to an odd-length data set (a deflated bit stream: PS3.5 A.5 pads it to an even
   * length, and DCMTK refuses odd PDV lengths). May be iterated once.
   */
  blocks(blockSize: number, padOdd?: boolean): AsyncGenerator<DataBlock>;
  /** Close without sending (idempotent). */
  close(): Promise<void>;
}

/** Open a stored Part 10 file and read its first `headBytes`. Throws (AppError, fs errors) if it cannot. */
export async function openInstance(path: string, headBytes: number): Promise<OpenedInstance> {
  const fh = await open(path, 'r');
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await fh.close();
  };
  try {
    const head = Buffer.allocUnsafe(Math.max(headBytes, 4096));
    let got = 0;
    while (got < head.length) {
      const { bytesRead } = await fh.read(head, got, head.length - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    // A short read means we hold the whole file; otherwise ask for its size.
    const size = got < head.length ? got : (await fh.stat()).size;
    let meta: MetaInfo | undefined;
    try {
      await walkBuffer(head.subarray(0, got), {
        meta(m) {
          meta = m;
          throw new StopWalk();
        },
        element: () => 'stop',
      });
    } catch (e) {
      if (!(e instanceof StopWalk)) {
        if (got === size) throw e;
        // A meta group larger than the first block (never seen): read it the slow way.
        const layout = await readPart10Layout(path);
        meta = { preamble: Buffer.alloc(0), datasetOffset: layout.datasetOffset, transferSyntaxUID: layout.transferSyntaxUID, elements: new Map() };
        meta.elements.set(0x00020002, Buffer.from(layout.metaSopClassUID));
        meta.elements.set(0x00020003, Buffer.from(layout.metaSopInstanceUID));
      }
    }
    if (!meta) throw new Error(`${path}: no file meta information`);
    const layout = layoutFromMeta(meta, size);
    let used = false;
    return {
      path,
      layout,
      close,
      async *blocks(blockSize: number, padOdd = false) {
        if (used) throw new Error('the data set of an opened instance can be read once');
        used = true;
        try {
          const start = layout.datasetOffset;
          const end = size;
          const odd = padOdd && (end - start) % 2 === 1;
          const withPad = (b: Buffer, last: boolean) => (last && odd ? Buffer.concat([b, Buffer.alloc(1)]) : b);
          if (start >= end) {
            yield { data: withPad(Buffer.alloc(0), true), last: true };
            return;
          }
          let pos = Math.min(got, end);
          if (pos > start) yield { data: withPad(head.subarray(start, pos), pos >= end), last: pos >= end };
          else pos = start;
          while (pos < end) {
            const n = Math.min(blockSize, end - pos);
            const buf = Buffer.allocUnsafe(n);
            let have = 0;
            while (have < n) {
              let bytesRead: number;
              try {
                ({ bytesRead } = await fh.read(buf, have, n - have, pos + have));
              } catch (e) {
                throw new SourceError(`cannot read ${path}: ${(e as Error).message}`, { cause: e });
              }
              if (bytesRead === 0) throw new SourceError(`${path} ends at byte ${pos + have}, ${end - pos - have} bytes earlier than when the send started`);
              have += bytesRead;
            }
            pos += n;
            yield { data: withPad(buf, pos >= end), last: pos >= end };
          }
        } finally {
          await close();
        }
      },
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/** Thrown when the local source of a data set fails (file gone, shorter than it was): not the peer's fault. */
export class SourceError extends Error {}

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
