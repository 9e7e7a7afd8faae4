/**
 * Drivers for the byte-level parser: a file (read through a small window, skipped values are seeked over,
 * so memory stays bounded whatever the file size) and an in-memory buffer. Deflated datasets are inflated
 * with a hard output cap.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { inflateRawSync } from 'node:zlib';
import { AppError } from '../errors.ts';
import { parseDataset, parsePart10, defaultLimits, type Limits, type Request, type Visitor, type WalkEnd } from './parser.ts';

/** Largest inflated dataset accepted from the Deflated Explicit VR Little Endian transfer syntax. */
export const MAX_INFLATED_BYTES = 256 * 1024 * 1024;

export interface Source {
  read(n: number): Promise<Buffer> | Buffer;
  skip(n: number): Promise<number> | number;
  peek(n: number): Promise<Buffer> | Buffer;
  /** Replace the rest of the source by its raw-inflated content. */
  inflate(): Promise<void> | void;
}

export async function drive<T>(gen: Generator<Request, T, any>, src: Source): Promise<T> {
  let r = gen.next();
  while (!r.done) {
    const req = r.value;
    let answer: unknown;
    switch (req.op) {
      case 'read':
        answer = await src.read(req.n);
        break;
      case 'skip':
        answer = await src.skip(req.n);
        break;
      case 'peek':
        answer = await src.peek(req.n);
        break;
      case 'inflate':
        await src.inflate();
        break;
    }
    r = gen.next(answer);
  }
  return r.value;
}

function inflateCapped(deflated: Buffer): Buffer {
  try {
    return inflateRawSync(deflated, { maxOutputLength: MAX_INFLATED_BYTES });
  } catch (e) {
    if (e instanceof RangeError || (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE')
      throw new AppError('TOO_LARGE', `The deflated dataset inflates to more than ${MAX_INFLATED_BYTES} bytes.`);
    throw new AppError('MALFORMED', `The deflated dataset cannot be inflated: ${(e as Error).message}`);
  }
}

export class BufferSource implements Source {
  private pos = 0;
  constructor(private buf: Buffer) {}
  read(n: number): Buffer {
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += b.length;
    return b;
  }
  skip(n: number): number {
    const k = Math.min(n, this.buf.length - this.pos);
    this.pos += k;
    return k;
  }
  peek(n: number): Buffer {
    return this.buf.subarray(this.pos, this.pos + n);
  }
  inflate(): void {
    this.buf = inflateCapped(this.buf.subarray(this.pos));
    this.pos = 0;
  }
}

const WINDOW = 64 * 1024;

/** Reads a file through a window; `skip` past the window only moves the position. */
export class FileSource implements Source {
  private win = Buffer.alloc(0);
  private winStart = 0;
  private pos = 0;
  private inflated: BufferSource | null = null;
  constructor(
    private fh: FileHandle,
    readonly size: number,
  ) {}

  private async fill(n: number): Promise<void> {
    const have = this.winStart + this.win.length - this.pos;
    if (this.pos >= this.winStart && have >= n) return;
    const want = Math.max(n, WINDOW);
    const buf = Buffer.allocUnsafe(Math.min(want, Math.max(0, this.size - this.pos)));
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await this.fh.read(buf, got, buf.length - got, this.pos + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    this.win = buf.subarray(0, got);
    this.winStart = this.pos;
  }

  async read(n: number): Promise<Buffer> {
    if (this.inflated) return this.inflated.read(n);
    await this.fill(n);
    const o = this.pos - this.winStart;
    const b = this.win.subarray(o, o + n);
    this.pos += b.length;
    return b;
  }
  async skip(n: number): Promise<number> {
    if (this.inflated) return this.inflated.skip(n);
    const k = Math.min(n, Math.max(0, this.size - this.pos));
    this.pos += k;
    return k;
  }
  async peek(n: number): Promise<Buffer> {
    if (this.inflated) return this.inflated.peek(n);
    await this.fill(n);
    const o = this.pos - this.winStart;
    return this.win.subarray(o, o + n);
  }
  async inflate(): Promise<void> {
    const rest = this.size - this.pos;
    if (rest > MAX_INFLATED_BYTES) throw new AppError('TOO_LARGE', `The deflated dataset is larger than ${MAX_INFLATED_BYTES} bytes.`);
    const buf = Buffer.allocUnsafe(rest);
    let got = 0;
    while (got < rest) {
      const { bytesRead } = await this.fh.read(buf, got, rest - got, this.pos + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    this.inflated = new BufferSource(inflateCapped(buf.subarray(0, got)));
  }
}

export interface WalkOptions {
  limits?: Limits;
  /** Walk a bare dataset in this transfer syntax instead of a Part 10 file. */
  transferSyntaxUID?: string;
}

/** Walk a file with a visitor. Values the visitor does not ask for are never read. */
export async function walkFile(file: string, visitor: Visitor, opts: WalkOptions = {}): Promise<{ end: WalkEnd; size: number }> {
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    const src = new FileSource(fh, size);
    const limits = opts.limits ?? defaultLimits;
    const gen = opts.transferSyntaxUID ? parseDataset(visitor, opts.transferSyntaxUID, limits) : parsePart10(visitor, limits);
    const end = await drive(gen, src);
    return { end, size };
  } finally {
    await fh.close();
  }
}

/** Walk an in-memory Part 10 file or dataset. */
export function walkBuffer(buf: Buffer, visitor: Visitor, opts: WalkOptions = {}): Promise<WalkEnd> {
  const limits = opts.limits ?? defaultLimits;
  const gen = opts.transferSyntaxUID ? parseDataset(visitor, opts.transferSyntaxUID, limits) : parsePart10(visitor, limits);
  return drive(gen, new BufferSource(buf));
}
