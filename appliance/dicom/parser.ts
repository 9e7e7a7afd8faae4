/**
 * Byte-level DICOM parser. It walks a Part 10 file or a bare dataset element by element, reporting every
 * element, sequence, item and pixel-data fragment with its byte offsets, in bounded memory: values are read
 * only when the visitor asks for them (and only up to a limit); everything else is skipped by length.
 *
 * It is written as a generator that asks its driver for bytes (`read`, `skip`, `peek`), so the same code
 * walks files (read-file.ts seeks over skipped values) and in-memory buffers. It handles explicit VR little
 * endian, implicit VR little endian, explicit VR big endian, defined and undefined lengths, nested sequences
 * and items, UN of undefined length (implicit VR inside), and encapsulated pixel data. Deflated datasets are
 * inflated by the driver (the parser asks with `inflate`).
 */
import { AppError } from '../errors.ts';
import { dictionaryVR, KNOWN_VRS, LONG_VRS, Tags, tagString } from './dictionary.ts';
import { syntaxInfo } from './transfer-syntax.ts';

export const UNDEFINED_LENGTH = 0xffffffff;

/**
 * What the parser asks its driver (see read-file.ts `drive`): once, at the start, the source to read from;
 * afterwards only promises the source returned (answers it could not give at once), to be awaited.
 */
export type Request = { op: 'source' } | Promise<unknown>;

/**
 * Where the parser's bytes come from. Answers may be immediate (the bytes are at hand) or promises (I/O);
 * the parser asks its driver to await only the latter, so walking bytes already in memory costs no
 * round trips through the event loop.
 */
export interface Source {
  read(n: number): Promise<Buffer> | Buffer;
  skip(n: number): Promise<number> | number;
  peek(n: number): Promise<Buffer> | Buffer;
  /** Replace the rest of the source by its raw-inflated content. */
  inflate(): Promise<void> | void;
}

/** One step of the path from the top-level dataset down to an element: the sequence and the item index. */
export interface PathStep {
  tag: number;
  item: number;
}

export interface Element {
  tag: number;
  vr: string;
  /** Value length, or UNDEFINED_LENGTH. */
  length: number;
  /** Offset of the element's first byte (its tag) in the walked source. */
  offset: number;
  /** Offset of the value's first byte (offset + header length). */
  valueOffset: number;
  depth: number;
  path: readonly PathStep[];
  explicitVR: boolean;
  littleEndian: boolean;
}

export type Action = 'value' | 'skip' | 'stop' | void;

export interface Visitor {
  /** The file meta group was read (Part 10 walks only). */
  meta?(meta: MetaInfo): void;
  /** Every data element header (items and delimiters excluded). */
  element(e: Element): Action;
  /** The value of an element for which `element` answered 'value'. */
  value?(e: Element, bytes: Buffer): void;
  /** An item of a sequence starts; `offset` is the item tag's offset, `length` its declared length. */
  item?(seq: Element, index: number, offset: number, length: number): void;
  /** An item ends; `endOffset` is where its content ends (before an item delimiter, if any). */
  itemEnd?(seq: Element, index: number, endOffset: number, delimited: boolean): void;
  /** A sequence ends; `endOffset` is where its content ends (before a sequence delimiter, if any). */
  sequenceEnd?(seq: Element, endOffset: number, delimited: boolean): void;
  /** A fragment (item) of encapsulated pixel data. */
  fragment?(pixel: Element, index: number, offset: number, length: number): void;
}

export interface MetaInfo {
  preamble: Buffer;
  /** Offset of the first dataset byte (after the meta group). */
  datasetOffset: number;
  transferSyntaxUID: string;
  /** Raw values of the meta elements, by tag. */
  elements: Map<number, Buffer>;
}

export interface Limits {
  maxDepth: number;
  maxElements: number;
  /** Largest value handed to the visitor; larger values asked for are an error. */
  maxValueBytes: number;
}

export const defaultLimits: Limits = { maxDepth: 32, maxElements: 1_000_000, maxValueBytes: 4 * 1024 * 1024 };

export type WalkEnd = 'eof' | 'stop';

type Gen<T> = Generator<Request, T, any>;

interface Encoding {
  explicitVR: boolean;
  littleEndian: boolean;
}

type What = string | (() => string);
const describe = (w: What) => (typeof w === 'string' ? w : w());

class Ctx {
  pos = 0;
  elements = 0;
  stopped = false;
  src!: Source;
  constructor(
    readonly visitor: Visitor,
    readonly limits: Limits,
  ) {}

  /** Check a read answer and advance. `what` names the bytes for the error message (built only when needed). */
  got(b: Buffer, n: number, what: What, eofOk = false): Buffer {
    if (b.length < n && !(eofOk && b.length === 0)) throw new AppError('TRUNCATED', `The data ends inside ${describe(what)} at byte ${this.pos + b.length}.`);
    this.pos += b.length;
    return b;
  }

  skipped(k: number, n: number, what: What): void {
    this.pos += k;
    if (k < n) throw new AppError('TRUNCATED', `The data ends inside ${describe(what)}: ${n} bytes declared at byte ${this.pos - k}, ${k} present.`);
  }
}

const u16 = (b: Buffer, o: number, le: boolean) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
const u32 = (b: Buffer, o: number, le: boolean) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));

function readTag(b: Buffer, le: boolean): number {
  return ((u16(b, 0, le) << 16) | u16(b, 2, le)) >>> 0;
}

/**
 * Walk a dataset (or the content of one item). `end` is the absolute offset where a defined-length container
 * ends; undefined means the dataset runs to the end of the data (top level) or to an item delimiter.
 * Returns how it ended.
 */
function* walkDataset(ctx: Ctx, enc: Encoding, end: number | undefined, depth: number, path: PathStep[]): Gen<'eof' | 'end' | 'delimiter' | 'stop'> {
  const topLevel = depth === 0;
  for (;;) {
    if (end !== undefined) {
      if (ctx.pos === end) return 'end';
      if (ctx.pos > end) throw new AppError('MALFORMED', `An element overruns its sequence item (item ends at byte ${end}, element at ${ctx.pos}).`);
    }
    const offset = ctx.pos;
    let head_ = ctx.src.read(4);
    if (head_ instanceof Promise) head_ = yield head_;
    const head = ctx.got(head_ as Buffer, 4, 'an element tag', topLevel && end === undefined);
    if (head.length === 0) return 'eof';
    const le = enc.littleEndian;
    const t = readTag(head, le);
    if (t === Tags.ItemDelimitation) {
      let d_ = ctx.src.read(4);
      if (d_ instanceof Promise) d_ = yield d_;
      ctx.got(d_ as Buffer, 4, 'an item delimiter');
      if (topLevel) throw new AppError('MALFORMED', `An item delimiter appears outside any sequence at byte ${offset}.`);
      return 'delimiter';
    }
    if (t === Tags.Item || t === Tags.SequenceDelimitation)
      throw new AppError('MALFORMED', `An item or sequence delimiter ${tagString(t)} appears where a data element was expected, at byte ${offset}.`);
    if (++ctx.elements > ctx.limits.maxElements)
      throw new AppError('TOO_COMPLEX', `The data has more than ${ctx.limits.maxElements} elements.`);

    let vr: string;
    let length: number;
    if (enc.explicitVR) {
      let vb_ = ctx.src.read(4);
      if (vb_ instanceof Promise) vb_ = yield vb_;
      const vb = ctx.got(vb_ as Buffer, 4, () => `the header of element ${tagString(t)}`);
      vr = vb.toString('latin1', 0, 2);
      if (!KNOWN_VRS.has(vr)) {
        throw new AppError('MALFORMED', `Element ${tagString(t)} at byte ${offset} has an unknown VR "${vr.replace(/[^\x20-\x7e]/g, '?')}".`);
      }
      if (LONG_VRS.has(vr)) {
        let lb_ = ctx.src.read(4);
        if (lb_ instanceof Promise) lb_ = yield lb_;
        length = u32(ctx.got(lb_ as Buffer, 4, () => `the header of element ${tagString(t)}`), 0, le);
      } else {
        length = u16(vb, 2, le);
      }
    } else {
      let lb_ = ctx.src.read(4);
      if (lb_ instanceof Promise) lb_ = yield lb_;
      length = u32(ctx.got(lb_ as Buffer, 4, () => `the header of element ${tagString(t)}`), 0, le);
      vr = dictionaryVR(t);
    }

    const e: Element = { tag: t, vr, length, offset, valueOffset: ctx.pos, depth, path, explicitVR: enc.explicitVR, littleEndian: le };
    const undefinedLength = length === UNDEFINED_LENGTH;
    // Undefined-length Pixel Data (and OB/OW in explicit VR) is encapsulated: a sequence of fragments.
    const encapsulated = undefinedLength && (t === Tags.PixelData || (enc.explicitVR && (vr === 'OB' || vr === 'OW')));
    const isSequence = !encapsulated && (vr === 'SQ' || undefinedLength);
    if (undefinedLength && enc.explicitVR && !encapsulated && vr !== 'SQ' && vr !== 'UN')
      throw new AppError('MALFORMED', `Element ${tagString(t)} (${vr}) at byte ${offset} has an undefined length, which only sequences and pixel data may have.`);
    if (!undefinedLength && end !== undefined && ctx.pos + length > end)
      throw new AppError('MALFORMED', `Element ${tagString(t)} at byte ${offset} declares ${length} bytes, more than its sequence item holds.`);

    const action = ctx.visitor.element(e);
    if (action === 'stop') {
      ctx.stopped = true;
      return 'stop';
    }

    if (encapsulated) {
      yield* walkFragments(ctx, e, le);
    } else if (isSequence) {
      if (depth + 1 > ctx.limits.maxDepth) throw new AppError('TOO_COMPLEX', `Sequences are nested more than ${ctx.limits.maxDepth} deep (at byte ${offset}).`);
      // UN of undefined length holds implicit VR little endian data (PS3.5 6.2.2); so may an implicit SQ.
      const inner: Encoding = vr === 'UN' && enc.explicitVR ? { explicitVR: false, littleEndian: true } : enc;
      const r = yield* walkSequence(ctx, e, inner, depth, path);
      if (r === 'stop') return 'stop';
    } else if (action === 'value') {
      if (length > ctx.limits.maxValueBytes)
        throw new AppError('TOO_LARGE', `Element ${tagString(t)} has a ${length}-byte value; at most ${ctx.limits.maxValueBytes} are read.`);
      let v_ = ctx.src.read(length);
      if (v_ instanceof Promise) v_ = yield v_;
      ctx.visitor.value?.(e, ctx.got(v_ as Buffer, length, () => `the value of element ${tagString(t)}`));
    } else {
      let k_ = ctx.src.skip(length);
      if (k_ instanceof Promise) k_ = yield k_;
      ctx.skipped(k_ as number, length, () => `the value of element ${tagString(t)}`);
    }
  }
}

function* walkSequence(ctx: Ctx, seq: Element, enc: Encoding, depth: number, path: PathStep[]): Gen<'stop' | 'done'> {
  const le = enc.littleEndian;
  const end = seq.length === UNDEFINED_LENGTH ? undefined : ctx.pos + seq.length;
  for (let index = 0; ; index++) {
    if (end !== undefined && ctx.pos >= end) {
      if (ctx.pos > end) throw new AppError('MALFORMED', `An item overruns sequence ${tagString(seq.tag)} (ends at byte ${end}).`);
      ctx.visitor.sequenceEnd?.(seq, ctx.pos, false);
      return 'done';
    }
    const offset = ctx.pos;
    let h_ = ctx.src.read(8);
    if (h_ instanceof Promise) h_ = yield h_;
    const h = ctx.got(h_ as Buffer, 8, () => `an item of sequence ${tagString(seq.tag)}`);
    const t = readTag(h, le);
    const len = u32(h, 4, le);
    if (t === Tags.SequenceDelimitation) {
      if (end !== undefined) throw new AppError('MALFORMED', `A sequence delimiter ends defined-length sequence ${tagString(seq.tag)} at byte ${offset}.`);
      ctx.visitor.sequenceEnd?.(seq, offset, true);
      return 'done';
    }
    if (t !== Tags.Item) throw new AppError('MALFORMED', `Sequence ${tagString(seq.tag)} holds ${tagString(t)} at byte ${offset} where an item was expected.`);
    if (len !== UNDEFINED_LENGTH && end !== undefined && ctx.pos + len > end)
      throw new AppError('MALFORMED', `An item of sequence ${tagString(seq.tag)} at byte ${offset} declares more bytes than the sequence holds.`);
    ctx.visitor.item?.(seq, index, offset, len);
    const itemPath = [...path, { tag: seq.tag, item: index }];
    const r = yield* walkDataset(ctx, enc, len === UNDEFINED_LENGTH ? undefined : ctx.pos + len, depth + 1, itemPath);
    if (r === 'stop') return 'stop';
    if (r === 'eof') throw new AppError('TRUNCATED', `The data ends inside an item of sequence ${tagString(seq.tag)}.`);
    if (len === UNDEFINED_LENGTH && r !== 'delimiter') throw new AppError('MALFORMED', `An undefined-length item of ${tagString(seq.tag)} has no delimiter.`);
    if (len !== UNDEFINED_LENGTH && r === 'delimiter') throw new AppError('MALFORMED', `A defined-length item of ${tagString(seq.tag)} has an item delimiter.`);
    ctx.visitor.itemEnd?.(seq, index, r === 'delimiter' ? ctx.pos - 8 : ctx.pos, r === 'delimiter');
  }
}

function* walkFragments(ctx: Ctx, pixel: Element, le: boolean): Gen<void> {
  for (let index = 0; ; index++) {
    const offset = ctx.pos;
    let h_ = ctx.src.read(8);
    if (h_ instanceof Promise) h_ = yield h_;
    const h = ctx.got(h_ as Buffer, 8, 'an encapsulated pixel data item');
    const t = readTag(h, le);
    const len = u32(h, 4, le);
    if (t === Tags.SequenceDelimitation) {
      ctx.visitor.sequenceEnd?.(pixel, offset, true);
      return;
    }
    if (t !== Tags.Item || len === UNDEFINED_LENGTH)
      throw new AppError('MALFORMED', `Encapsulated pixel data holds ${tagString(t)} at byte ${offset} where a fragment was expected.`);
    if (++ctx.elements > ctx.limits.maxElements) throw new AppError('TOO_COMPLEX', `The data has more than ${ctx.limits.maxElements} elements.`);
    ctx.visitor.fragment?.(pixel, index, offset, len);
    let k_ = ctx.src.skip(len);
    if (k_ instanceof Promise) k_ = yield k_;
    ctx.skipped(k_ as number, len, 'a pixel data fragment');
  }
}

function* walkTop(ctx: Ctx, transferSyntaxUID: string): Gen<WalkEnd> {
  const info = syntaxInfo(transferSyntaxUID);
  if (!info) throw new AppError('UNSUPPORTED_SYNTAX', `Transfer syntax ${transferSyntaxUID} is not supported.`);
  if (info.deflated) {
    const p = ctx.src.inflate();
    if (p instanceof Promise) yield p;
    ctx.pos = 0;
  }
  const r = yield* walkDataset(ctx, info, undefined, 0, []);
  return r === 'stop' ? 'stop' : 'eof';
}

/** Walk a bare dataset in the given transfer syntax (C-STORE data, or a file's dataset after its meta). */
export function* parseDataset(visitor: Visitor, transferSyntaxUID: string, limits: Limits = defaultLimits, startOffset = 0): Gen<WalkEnd> {
  const ctx = new Ctx(visitor, limits);
  ctx.src = yield { op: 'source' };
  ctx.pos = startOffset;
  return yield* walkTop(ctx, transferSyntaxUID);
}

const trimUid = (b: Buffer) => b.toString('latin1').replace(/[\0 ]+$/, '');

/** Walk a Part 10 file: preamble, "DICM", file meta group (explicit VR little endian), then the dataset. */
export function* parsePart10(visitor: Visitor, limits: Limits = defaultLimits): Gen<WalkEnd> {
  const ctx = new Ctx(visitor, limits);
  ctx.src = yield { op: 'source' };
  let head_ = ctx.src.read(132);
  if (head_ instanceof Promise) head_ = yield head_;
  const head = head_ as Buffer;
  ctx.pos += head.length;
  if (head.length < 132 || head.toString('latin1', 128, 132) !== 'DICM')
    throw new AppError('NOT_DICOM', 'This is not a DICOM Part 10 file: the "DICM" marker after the 128-byte preamble is missing.');
  const elements = new Map<number, Buffer>();
  for (;;) {
    let peek_ = ctx.src.peek(2);
    if (peek_ instanceof Promise) peek_ = yield peek_;
    const peek = peek_ as Buffer;
    if (peek.length < 2 || peek.readUInt16LE(0) !== 0x0002) break;
    const offset = ctx.pos;
    let h_ = ctx.src.read(8);
    if (h_ instanceof Promise) h_ = yield h_;
    const h = ctx.got(h_ as Buffer, 8, 'the file meta information');
    const t = readTag(h, true);
    const vr = h.toString('latin1', 4, 6);
    let length: number;
    if (!KNOWN_VRS.has(vr)) throw new AppError('MALFORMED', `The file meta information has an element ${tagString(t)} with an unknown VR at byte ${offset}.`);
    if (LONG_VRS.has(vr)) {
      let l_ = ctx.src.read(4);
      if (l_ instanceof Promise) l_ = yield l_;
      length = ctx.got(l_ as Buffer, 4, 'the file meta information').readUInt32LE(0);
    } else length = h.readUInt16LE(6);
    if (length > 65536) throw new AppError('MALFORMED', `File meta element ${tagString(t)} declares ${length} bytes.`);
    let v_ = ctx.src.read(length);
    if (v_ instanceof Promise) v_ = yield v_;
    elements.set(t, Buffer.from(ctx.got(v_ as Buffer, length, 'the file meta information')));
  }
  const tsBytes = elements.get(Tags.TransferSyntaxUID);
  if (!tsBytes) throw new AppError('MALFORMED', 'The file meta information has no Transfer Syntax UID (0002,0010).');
  const ts = trimUid(tsBytes);
  if (!syntaxInfo(ts)) throw new AppError('UNSUPPORTED_SYNTAX', `Transfer syntax ${ts} is not supported.`);
  visitor.meta?.({ preamble: Buffer.from(head.subarray(0, 128)), datasetOffset: ctx.pos, transferSyntaxUID: ts, elements });
  return yield* walkTop(ctx, ts);
}
