/**
 * Drivers for the byte-level parser: a file (read through a small window, skipped values are seeked over,
 * so memory stays bounded whatever the file size) and an in-memory buffer. Deflated datasets are inflated
 * with a hard output cap: a file's as a stream while it is read (bounded memory), a buffer's at once.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { createInflateRaw, inflateRawSync, type Inflate } from 'node:zlib';
import { AppError } from '../errors.ts';
import { parseDataset, parsePart10, defaultLimits, type Limits, type Request, type Source, type Visitor, type WalkEnd } from './parser.ts';

/** Largest inflated dataset accepted from the Deflated Explicit VR Little Endian transfer syntax. */
export const MAX_INFLATED_BYTES = 256 * 1024 * 1024;

export type { Source };

/** Run a parser over a source: hand it the source, await the promises it passes back. */
export async function drive<T>(gen: Generator<Request, T, any>, src: Source): Promise<T> {
  let r = gen.next();
  while (!r.done) {
    const v = r.value;
    r = gen.next(v instanceof Promise ? await v : src);
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

/** The bytes of a file from `start` to its end, in chunks, by positional reads (the handle stays the caller's). */
export async function* readChunks(fh: FileHandle, start: number, chunkSize = WINDOW): AsyncGenerator<Buffer> {
  let pos = start;
  for (;;) {
    const buf = Buffer.allocUnsafe(chunkSize);
    const { bytesRead } = await fh.read(buf, 0, chunkSize, pos);
    if (bytesRead === 0) return;
    pos += bytesRead;
    yield bytesRead === chunkSize ? buf : buf.subarray(0, bytesRead);
  }
}

/**
 * The raw-deflated rest of a file, inflated as the parser reads it (never held whole): a zlib inflate stream
 * over a read stream, consumed chunk by chunk, with a hard cap on the inflated size.
 */
export class InflatingSource implements Source {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private head = 0; // offset into chunks[0]
  private total = 0;
  private ended = false;
  private readonly iter: AsyncIterator<Buffer>;
  private readonly inflater: Inflate;
  private readonly input: Readable;
  constructor(
    fh: FileHandle,
    start: number,
    private readonly cap = MAX_INFLATED_BYTES,
  ) {
    // Positional reads on the caller's handle (a FileHandle read stream would take the handle over).
    this.input = Readable.from(readChunks(fh, start));
    this.inflater = createInflateRaw();
    this.input.on('error', (e) => this.inflater.destroy(e));
    this.input.pipe(this.inflater);
    this.iter = this.inflater[Symbol.asyncIterator]();
  }

  /** Inflated bytes handed out or buffered so far. */
  get inflatedBytes(): number {
    return this.total;
  }

  private async want(n: number): Promise<void> {
    while (this.buffered < n && !this.ended) {
      let r: IteratorResult<Buffer>;
      try {
        r = await this.iter.next();
      } catch (e) {
        throw new AppError('MALFORMED', `The deflated dataset cannot be inflated: ${(e as Error).message}`);
      }
      if (r.done) {
        this.ended = true;
        break;
      }
      this.total += r.value.length;
      if (this.total > this.cap) {
        this.close();
        throw new AppError('TOO_LARGE', `The deflated dataset inflates to more than ${this.cap} bytes.`);
      }
      this.chunks.push(r.value);
      this.buffered += r.value.length;
    }
  }

  private take(n: number, keep: boolean): Buffer {
    n = Math.min(n, this.buffered);
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0];
    let out: Buffer;
    if (first.length - this.head >= n) out = first.subarray(this.head, this.head + n);
    else {
      out = Buffer.allocUnsafe(n);
      let got = 0;
      for (let i = 0, off = this.head; got < n; i++, off = 0) {
        const c = this.chunks[i];
        const k = Math.min(n - got, c.length - off);
        c.copy(out, got, off, off + k);
        got += k;
      }
    }
    if (!keep) this.drop(n);
    return out;
  }

  private drop(n: number): void {
    this.buffered -= n;
    while (n > 0) {
      const c = this.chunks[0];
      const k = Math.min(n, c.length - this.head);
      n -= k;
      this.head += k;
      if (this.head === c.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
  }

  async read(n: number): Promise<Buffer> {
    await this.want(n);
    return this.take(n, false);
  }
  async peek(n: number): Promise<Buffer> {
    await this.want(n);
    return this.take(n, true);
  }
  async skip(n: number): Promise<number> {
    let skipped = 0;
    while (skipped < n) {
      await this.want(Math.min(n - skipped, WINDOW));
      const k = Math.min(n - skipped, this.buffered);
      if (k === 0) break;
      this.drop(k);
      skipped += k;
    }
    return skipped;
  }
  inflate(): void {
    throw new AppError('MALFORMED', 'The dataset is deflated twice.');
  }
  close(): void {
    this.input.unpipe(this.inflater);
    this.input.destroy();
    this.inflater.destroy();
  }
}

/** Reads a file through a window; `skip` past the window only moves the position. */
export class FileSource implements Source {
  private win = Buffer.alloc(0);
  private winStart = 0;
  private pos = 0;
  private inflated: InflatingSource | null = null;
  /** `window`: bytes read at a time (a small file may be read whole at once). */
  constructor(
    private fh: FileHandle,
    readonly size: number,
    private readonly window = WINDOW,
  ) {}

  /** The whole file, if the window holds all of it (small files). */
  wholeFile(): Buffer | undefined {
    return this.winStart === 0 && this.win.length === this.size ? this.win : undefined;
  }

  /** Position in the file (before inflation) or in the inflated data (after). */
  get position(): number {
    return this.inflated ? this.inflated.inflatedBytes : this.pos;
  }

  private async fill(n: number): Promise<void> {
    const have = this.winStart + this.win.length - this.pos;
    if (this.pos >= this.winStart && have >= n) return;
    const want = Math.max(n, this.window);
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

  /** Whether the next `n` bytes are in the window (or the file ends within it). */
  private inWindow(n: number): boolean {
    const end = this.winStart + this.win.length;
    return this.pos >= this.winStart && (end - this.pos >= n || end >= this.size);
  }
  private take(n: number, advance: boolean): Buffer {
    const o = this.pos - this.winStart;
    const b = this.win.subarray(o, o + n);
    if (advance) this.pos += b.length;
    return b;
  }
  read(n: number): Promise<Buffer> | Buffer {
    if (this.inflated) return this.inflated.read(n);
    if (this.inWindow(n)) return this.take(n, true);
    return this.fill(n).then(() => this.take(n, true));
  }
  skip(n: number): number | Promise<number> {
    if (this.inflated) return this.inflated.skip(n);
    const k = Math.min(n, Math.max(0, this.size - this.pos));
    this.pos += k;
    return k;
  }
  peek(n: number): Promise<Buffer> | Buffer {
    if (this.inflated) return this.inflated.peek(n);
    if (this.inWindow(n)) return this.take(n, false);
    return this.fill(n).then(() => this.take(n, false));
  }
  /** The rest of the file is raw-deflated: inflate it as it is read (bounded memory, capped output). */
  async inflate(): Promise<void> {
    this.inflated = new InflatingSource(this.fh, this.pos);
    this.win = Buffer.alloc(0);
  }
  close(): void {
    this.inflated?.close();
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
    try {
      const end = await drive(gen, src);
      return { end, size };
    } finally {
      src.close();
    }
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
