/**
 * Header-only rewriting of Part 10 files. `rewrite(input, output, rules, opts)` changes a few elements and
 * copies every other byte verbatim, in bounded memory whatever the file size:
 *
 *  pass 1  walks the dataset with the byte-level parser (values read only where a rule needs the old one),
 *          stopping at the top-level Pixel Data, and plans "splices": byte ranges of the original dataset to
 *          replace (an edited element re-encoded in the file's own transfer syntax, a removed element, an
 *          inserted one in tag order, the length of an enclosing defined-length sequence or item, the value
 *          of a touched group's group length element);
 *  pass 2  streams the output: a 128-byte zero preamble, a rebuilt file meta group (buildFileMeta, the
 *          original transfer syntax and Source AE title), then the dataset with the splices applied and
 *          everything else (private tags, Specific Character Set, pixel data) copied as it is. The SHA-256 of
 *          the output is computed while it is written.
 *
 * Deflated Explicit VR Little Endian: the dataset is inflated as a stream (capped at MAX_INFLATED_BYTES),
 * edited with the same splices and deflated again on the way out; nothing is held whole in memory.
 *
 * Checks: pass 1 refuses what it cannot walk (truncated, malformed, nested too deep, a value larger than the
 * limits where a rule needs it), a defined-length Pixel Data running past the end of the file, and DICOMDIRs
 * (their records hold byte offsets). What follows Pixel Data is copied unexamined: the ingest path has
 * walked the whole file (readHeader full) before it transforms.
 * Never a dcmjs write(): that re-encodes every element and turns text into UTF-8.
 */
import { createHash, type Hash } from 'node:crypto';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { Readable, Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createDeflateRaw, createInflateRaw } from 'node:zlib';
import { AppError } from '../errors.ts';
import { encodeText, parseCharsetTerms, decodeValue } from './charset.ts';
import { dictionaryVR, elementOf, groupOf, LONG_VRS, tag as makeTag, Tags, tagString } from './dictionary.ts';
import { buildFileMeta } from './part10.ts';
import { defaultLimits, parsePart10, UNDEFINED_LENGTH, type Element, type Limits, type MetaInfo, type PathStep, type Visitor } from './parser.ts';
import { createParallelHash, sharedBuffer, type ParallelHash } from './parallel-hash.ts';
import { drive, FileSource, MAX_INFLATED_BYTES, readChunks } from './read-file.ts';
import { syntaxInfo } from './transfer-syntax.ts';

/** A new value: text (encoded in the file's character set where the VR is text), several values, raw bytes (unpadded), or null to remove. */
export type EditValue = string | string[] | Buffer | null;

export interface EditContext {
  tag: number;
  /** The element's VR (as encoded, or the dictionary's for implicit VR). */
  vr: string;
  depth: number;
  path: readonly PathStep[];
  /** The old value's bytes; null when the rule is asked for a value to insert. */
  old: Buffer | null;
  /** The old value decoded with the file's Specific Character Set, padding stripped ('' when inserting). */
  text: string;
}

export type Where = 'top' | 'nested' | 'any' | ((path: readonly PathStep[]) => boolean);

export interface EditRule {
  tag: number;
  /** Which occurrences: the top-level dataset only (default), only inside sequence items, anywhere, or a test on the item path. */
  where?: Where;
  /** The new value, or a function of the old one (undefined keeps the element as it is). null removes the element. */
  value: EditValue | ((ctx: EditContext) => EditValue | undefined);
  /** Insert the element (in tag order) into each dataset `where` selects that lacks it. */
  insert?: boolean;
  /** VR of an inserted element (explicit VR files); default: the dictionary's. */
  vr?: string;
}

/** A private block this rewrite owns: its creator is found (and its old content replaced) or allocated. */
export interface PrivateBlock {
  group: number;
  creator: string;
  /** Elements by their low byte (0x00-0xFF) in the block, in any order; null or '' values are left out. */
  elements: { element: number; vr: string; value: EditValue }[];
}

/** Elements reported while the header is walked (also inside removed sequences), e.g. to keep originals. */
export interface Observer {
  tags: readonly number[];
  seen(ctx: EditContext): void;
}

export interface RewriteOptions {
  privateBlock?: PrivateBlock;
  observe?: Observer;
  /** Keep the original meta's Source Application Entity Title (0002,0016). Default true. */
  keepSourceAe?: boolean;
  limits?: Limits;
}

export type PreambleKind = 'zero' | 'pe' | 'elf' | 'other';

export interface RewriteResult {
  sha256: string;
  size: number;
  /** What the input's preamble was (the output's is always 128 zero bytes). */
  preamble: PreambleKind;
  transferSyntaxUID: string;
  deflated: boolean;
  replaced: number;
  removed: number;
  inserted: number;
  /** Tag of the private creator element used for `privateBlock`, e.g. 0x00110010. */
  privateCreatorTag?: number;
}

/** VRs whose string values are in the Specific Character Set (the others are plain ASCII). */
const CHARSET_VRS = new Set(['SH', 'LO', 'ST', 'LT', 'PN', 'UC', 'UT']);
/** VRs padded with a space (the rest with a NUL byte). */
const SPACE_PADDED = new Set(['AE', 'AS', 'CS', 'DA', 'DS', 'DT', 'IS', 'LO', 'LT', 'PN', 'SH', 'ST', 'TM', 'UC', 'UR', 'UT']);

export function preambleKind(p: Buffer): PreambleKind {
  if (p.every((b) => b === 0)) return 'zero';
  if (p[0] === 0x4d && p[1] === 0x5a) return 'pe';
  if (p[0] === 0x7f && p[1] === 0x45 && p[2] === 0x4c && p[3] === 0x46) return 'elf';
  return 'other';
}

/** Encode a value for `vr` in a file whose character set is `terms`, padded to even length. */
export function encodeValue(value: Exclude<EditValue, null>, vr: string, terms: string[]): Buffer {
  let b: Buffer;
  if (Buffer.isBuffer(value)) b = value;
  else {
    const parts = Array.isArray(value) ? value : [value];
    const enc = (s: string) => (CHARSET_VRS.has(vr) ? encodeText(s, terms) : Buffer.from(s.replace(/[^\x20-\x7e]/g, '?'), 'latin1'));
    b = Buffer.concat(parts.flatMap((p, i) => (i ? [Buffer.from('\\'), enc(p)] : [enc(p)])));
  }
  if (b.length % 2) b = Buffer.concat([b, Buffer.from([SPACE_PADDED.has(vr) ? 0x20 : 0x00])]);
  return b;
}

/** One element (header + value) in the given encoding. */
export function encodeElement(t: number, vr: string, value: Buffer, explicitVR: boolean, littleEndian: boolean): Buffer {
  const long = !explicitVR || LONG_VRS.has(vr);
  const headLen = explicitVR ? (LONG_VRS.has(vr) ? 12 : 8) : 8;
  if (!long && value.length > 0xffff) throw new AppError('MALFORMED', `A ${value.length}-byte value does not fit element ${tagString(t)} (${vr}).`);
  const h = Buffer.alloc(headLen);
  const w16 = (v: number, o: number) => (littleEndian ? h.writeUInt16LE(v, o) : h.writeUInt16BE(v, o));
  const w32 = (v: number, o: number) => (littleEndian ? h.writeUInt32LE(v, o) : h.writeUInt32BE(v, o));
  w16(groupOf(t), 0);
  w16(elementOf(t), 2);
  if (explicitVR) {
    h.write(vr, 4, 'latin1');
    if (LONG_VRS.has(vr)) w32(value.length, 8);
    else w16(value.length, 6);
  } else w32(value.length, 4);
  return Buffer.concat([h, value]);
}

interface Splice {
  start: number;
  end: number;
  bytes: Buffer;
  /** Splices at the same offset are written in tag order (insertions before the element they precede). */
  tag: number;
  seq: number;
}

interface Insert {
  tag: number;
  /** Rule inserts are cancelled when the element turns out to exist; private block elements are not. */
  rule?: EditRule;
  vr: string;
  value?: Exclude<EditValue, null>;
}

interface ItemFrame {
  kind: 'item';
  depth: number;
  path: readonly PathStep[];
  explicitVR: boolean;
  littleEndian: boolean;
  /** Offset of the 4-byte item length (defined-length items only). */
  lengthAt?: number;
  length: number;
  delta: number;
  inserts: Insert[];
  group: number;
  gl?: { at: number; value: number; group: number; delta: number };
}

interface SeqFrame {
  kind: 'seq';
  el: Element;
  lengthAt?: number;
  delta: number;
}

type Frame = ItemFrame | SeqFrame;

const PRIVATE_CREATOR_MAX = 0xff;
const MEDIA_STORAGE_DIRECTORY = '1.2.840.10008.1.3.10';

function matches(where: Where | undefined, path: readonly PathStep[]): boolean {
  switch (where ?? 'top') {
    case 'top':
      return path.length === 0;
    case 'nested':
      return path.length > 0;
    case 'any':
      return true;
    default:
      return (where as (p: readonly PathStep[]) => boolean)(path);
  }
}

/** Pass 1: walks the header and plans the splices. */
class Planner {
  splices: Splice[] = [];
  meta?: MetaInfo;
  terms: string[] = [];
  sopClassUID = '';
  sopInstanceUID = '';
  replaced = 0;
  removed = 0;
  inserted = 0;
  stoppedAt?: Element;
  privateCreatorTag?: number;
  private seq = 0;
  private stack: Frame[] = [];
  private suppress?: Element;
  private readonly byTag = new Map<number, EditRule[]>();
  private readonly observed: Set<number>;
  private pending = new Map<Element, { rule: EditRule }>();
  private pb?: { block: PrivateBlock; decided: boolean; reuse?: number; creators: { element: number; offset: number }[]; blockByte?: number };

  constructor(
    rules: EditRule[],
    private readonly opts: RewriteOptions,
  ) {
    for (const r of rules) {
      const list = this.byTag.get(r.tag) ?? [];
      list.push(r);
      this.byTag.set(r.tag, list);
    }
    this.observed = new Set(opts.observe?.tags ?? []);
    if (opts.privateBlock) {
      const g = opts.privateBlock.group;
      if (!(g & 1) || g <= 0x0008 || g === 0xffff) throw new AppError('INTERNAL', `private block group ${g.toString(16)} is not a private group`);
      this.pb = { block: opts.privateBlock, decided: false, creators: [] };
    }
    this.rules = rules;
  }
  private readonly rules: EditRule[];

  private ruleFor(t: number, path: readonly PathStep[]): EditRule | undefined {
    return this.byTag.get(t)?.find((r) => matches(r.where, path));
  }

  private insertsFor(path: readonly PathStep[]): Insert[] {
    return this.rules
      .filter((r) => r.insert && matches(r.where, path))
      .map((r) => ({ tag: r.tag, rule: r, vr: r.vr ?? dictionaryVR(r.tag) }))
      .sort((a, b) => a.tag - b.tag);
  }

  private ctxFor(e: { tag: number; vr: string; depth: number; path: readonly PathStep[] }, old: Buffer | null): EditContext {
    return { tag: e.tag, vr: e.vr, depth: e.depth, path: e.path, old, text: old ? decodeValue(old, this.terms) : '' };
  }

  private get top(): ItemFrame {
    return this.stack[0] as ItemFrame;
  }
  private get container(): ItemFrame {
    for (let i = this.stack.length - 1; i >= 0; i--) if (this.stack[i].kind === 'item') return this.stack[i] as ItemFrame;
    throw new AppError('INTERNAL', 'no container');
  }

  /** Record a splice made directly in `c` (attributed to group `group` of c), adding its size change to every enclosing frame. */
  private splice(start: number, end: number, bytes: Buffer, c: ItemFrame, t: number): void {
    const group = groupOf(t);
    this.splices.push({ start, end, bytes, tag: t, seq: this.seq++ });
    const delta = bytes.length - (end - start);
    if (delta === 0) return;
    for (const f of this.stack) {
      f.delta += delta;
      if (f.kind === 'item' && f.gl) {
        const g = f === c ? group : f.group;
        if (f.gl.group === g) f.gl.delta += delta;
      }
    }
  }

  private encodingOf(c: ItemFrame) {
    return { explicitVR: c.explicitVR, littleEndian: c.littleEndian };
  }

  private insertNow(c: ItemFrame, ins: Insert, at: number): void {
    let value = ins.value;
    if (ins.rule) {
      const v = typeof ins.rule.value === 'function' ? ins.rule.value(this.ctxFor({ tag: ins.tag, vr: ins.vr, depth: c.depth, path: c.path }, null)) : ins.rule.value;
      if (v === undefined || v === null) return;
      value = v;
    }
    if (value === undefined) return;
    const bytes = encodeElement(ins.tag, ins.vr, encodeValue(value, ins.vr, this.terms), c.explicitVR, c.littleEndian);
    this.splice(at, at, bytes, c, ins.tag);
    this.inserted++;
  }

  /** Insert what is pending in `c` with a tag below `before` (all of it when undefined) at `at`. */
  private flush(c: ItemFrame, at: number, before?: number): void {
    while (c.inserts.length && (before === undefined || c.inserts[0].tag < before)) this.insertNow(c, c.inserts.shift()!, at);
  }

  private finishGroup(c: ItemFrame): void {
    const gl = c.gl;
    if (gl && gl.delta !== 0) {
      const b = Buffer.alloc(4);
      if (c.littleEndian) b.writeUInt32LE(gl.value + gl.delta);
      else b.writeUInt32BE(gl.value + gl.delta);
      this.splice(gl.at, gl.at + 4, b, c, makeTag(gl.group, 0));
    }
    c.gl = undefined;
  }

  private closeItem(c: ItemFrame, end: number): void {
    this.flush(c, end);
    this.finishGroup(c);
    if (c.lengthAt !== undefined && c.delta !== 0) {
      const b = Buffer.alloc(4);
      const v = c.length + c.delta;
      if (c.littleEndian) b.writeUInt32LE(v);
      else b.writeUInt32BE(v);
      // The length field is outside the item's content: the change is not a size change.
      this.splices.push({ start: c.lengthAt, end: c.lengthAt + 4, bytes: b, tag: 0, seq: this.seq++ });
    }
  }

  /** Decide which private block is ours: the one with our creator, or the lowest free one (creator inserted in order). */
  private decidePrivateBlock(at: number): void {
    const pb = this.pb!;
    pb.decided = true;
    const top = this.top;
    const g = pb.block.group;
    let blockByte = pb.reuse;
    if (blockByte === undefined) {
      const used = new Set(pb.creators.map((c) => c.element));
      let free = 0x10;
      while (free <= PRIVATE_CREATOR_MAX && used.has(free)) free++;
      if (free > PRIVATE_CREATOR_MAX) throw new AppError('MALFORMED', `Private group ${g.toString(16).padStart(4, '0')} has no free block for our private creator.`);
      blockByte = free;
      const after = pb.creators.filter((c) => c.element > free).sort((a, b) => a.element - b.element)[0];
      const pos = after ? after.offset : at;
      const value = encodeValue(pb.block.creator, 'LO', this.terms);
      this.splice(pos, pos, encodeElement(makeTag(g, free), 'LO', value, top.explicitVR, top.littleEndian), top, makeTag(g, free));
      this.inserted++;
    }
    pb.blockByte = blockByte;
    this.privateCreatorTag = makeTag(g, blockByte);
    const mine: Insert[] = pb.block.elements
      .filter((el) => el.value !== null && !(typeof el.value === 'string' && el.value === '') && !(Array.isArray(el.value) && el.value.length === 0))
      .map((el) => ({ tag: makeTag(g, (blockByte! << 8) | (el.element & 0xff)), vr: el.vr, value: el.value as Exclude<EditValue, null> }));
    top.inserts = [...top.inserts, ...mine].sort((a, b) => a.tag - b.tag);
  }

  meta_(m: MetaInfo) {
    this.meta = m;
  }

  // Visitor ------------------------------------------------------------------------------------------------

  element(e: Element): 'value' | 'skip' | 'stop' {
    if (this.suppress) return this.observed.has(e.tag) ? 'value' : 'skip';
    if (this.stack.length === 0) {
      this.stack.push({ kind: 'item', depth: 0, path: [], explicitVR: e.explicitVR, littleEndian: e.littleEndian, length: 0, delta: 0, inserts: this.insertsFor([]), group: -1 });
    }
    const c = this.container;
    const top = e.depth === 0;
    if (top && (e.tag === Tags.PixelData || e.tag === Tags.FloatPixelData || e.tag === Tags.DoubleFloatPixelData)) {
      this.stoppedAt = e;
      return 'stop';
    }
    // 1. our private block: decided once every creator of its group is known
    const pb = this.pb;
    if (top && pb && !pb.decided && e.tag > makeTag(pb.block.group, PRIVATE_CREATOR_MAX)) this.decidePrivateBlock(e.offset);
    // 2. pending insertions before this element, 3. group change
    this.flush(c, e.offset, e.tag);
    const g = groupOf(e.tag);
    if (g !== c.group) {
      this.finishGroup(c);
      c.group = g;
    }
    if (c.inserts.length && c.inserts[0].tag === e.tag && c.inserts[0].rule) c.inserts.shift();

    const undefinedLength = e.length === UNDEFINED_LENGTH;
    const encapsulated = undefinedLength && (e.tag === Tags.PixelData || (e.explicitVR && (e.vr === 'OB' || e.vr === 'OW')));
    const container = encapsulated || e.vr === 'SQ' || undefinedLength;

    // 4. what happens to this element
    if (elementOf(e.tag) === 0 && e.length === 4 && !container) return 'value'; // group length
    if (top && (e.tag === Tags.SpecificCharacterSet || e.tag === Tags.SOPClassUID || e.tag === Tags.SOPInstanceUID) && !this.byTag.has(e.tag)) {
      if (e.length > 1024) throw new AppError('MALFORMED', `Element ${tagString(e.tag)} is ${e.length} bytes long; at most 1024 are allowed.`);
      return 'value';
    }
    if (top && pb && groupOf(e.tag) === pb.block.group) {
      const el = elementOf(e.tag);
      if (el >= 0x10 && el <= PRIVATE_CREATOR_MAX) return 'value'; // a private creator of our group
      if (pb.blockByte !== undefined && pb.reuse !== undefined && el >> 8 === pb.blockByte) {
        // our own block from an earlier pass: replaced by the new content
        this.removeElement(e, c, container);
        return 'skip';
      }
    }
    const rule = this.ruleFor(e.tag, e.path);
    const observe: 'value' | 'skip' = this.observed.has(e.tag) && !container ? 'value' : 'skip';
    if (rule) {
      if (container && rule.value !== null)
        throw new AppError('MALFORMED', `Element ${tagString(e.tag)} at byte ${e.offset} is a sequence where a value was expected.`);
      if (typeof rule.value === 'function') return 'value';
      if (rule.value === null) this.removeElement(e, c, container);
      else this.replace(e, c, rule.value);
      return observe;
    }
    if (container) this.stack.push({ kind: 'seq', el: e, lengthAt: undefinedLength || encapsulated ? undefined : e.valueOffset - 4, delta: 0 });
    return observe;
  }

  private replace(e: Element, c: ItemFrame, value: Exclude<EditValue, null>): void {
    // A standard element encoded as UN keeps its VR; its value is made as its dictionary VR says (padding, charset).
    const valueVr = e.vr === 'UN' ? dictionaryVR(e.tag) : e.vr;
    const bytes = encodeElement(e.tag, e.vr, encodeValue(value, valueVr, this.terms), e.explicitVR, e.littleEndian);
    this.splice(e.offset, e.valueOffset + e.length, bytes, c, e.tag);
    this.replaced++;
  }

  private removeElement(e: Element, c: ItemFrame, container: boolean): void {
    if (container) {
      // Its end is known when the parser has walked it (sequenceEnd); nothing inside is edited meanwhile.
      this.suppress = e;
      return;
    }
    this.splice(e.offset, e.valueOffset + e.length, Buffer.alloc(0), c, e.tag);
    this.removed++;
  }

  value(e: Element, bytes: Buffer): void {
    if (this.observed.has(e.tag)) this.opts.observe!.seen(this.ctxFor(e, bytes));
    if (this.suppress) return;
    const c = this.container;
    const top = e.depth === 0;
    if (elementOf(e.tag) === 0 && e.length === 4) {
      c.gl = { at: e.valueOffset, value: e.littleEndian ? bytes.readUInt32LE(0) : bytes.readUInt32BE(0), group: groupOf(e.tag), delta: 0 };
      return;
    }
    if (top && e.tag === Tags.SpecificCharacterSet) this.terms = parseCharsetTerms(bytes.toString('latin1'));
    if (top && e.tag === Tags.SOPClassUID) this.sopClassUID = bytes.toString('latin1').replace(/[\0 ]+$/, '');
    if (top && e.tag === Tags.SOPInstanceUID) this.sopInstanceUID = bytes.toString('latin1').replace(/[\0 ]+$/, '');
    const pb = this.pb;
    if (top && pb && groupOf(e.tag) === pb.block.group && elementOf(e.tag) >= 0x10 && elementOf(e.tag) <= PRIVATE_CREATOR_MAX) {
      const name = bytes.toString('latin1').replace(/[\0 ]+$/, '').trim();
      pb.creators.push({ element: elementOf(e.tag), offset: e.offset });
      if (name === pb.block.creator && pb.reuse === undefined) pb.reuse = elementOf(e.tag);
      return;
    }
    const rule = this.ruleFor(e.tag, e.path);
    if (!rule || typeof rule.value !== 'function') return;
    const v = rule.value(this.ctxFor(e, bytes));
    if (v === undefined) return;
    if (v === null) this.removeElement(e, c, false);
    else this.replace(e, c, v);
  }

  item(seq: Element, index: number, offset: number, length: number): void {
    if (this.suppress) return;
    const path = [...seq.path, { tag: seq.tag, item: index }];
    this.stack.push({
      kind: 'item',
      depth: seq.depth + 1,
      path,
      explicitVR: seq.vr === 'UN' && seq.explicitVR ? false : seq.explicitVR,
      littleEndian: seq.vr === 'UN' && seq.explicitVR ? true : seq.littleEndian,
      lengthAt: length === UNDEFINED_LENGTH ? undefined : offset + 4,
      length,
      delta: 0,
      inserts: this.insertsFor(path),
      group: -1,
    });
  }

  itemEnd(_seq: Element, _index: number, endOffset: number): void {
    if (this.suppress) return;
    const f = this.stack[this.stack.length - 1] as ItemFrame;
    this.closeItem(f, endOffset);
    this.stack.pop();
  }

  sequenceEnd(seq: Element, endOffset: number, delimited: boolean): void {
    if (this.suppress) {
      if (seq !== this.suppress) return;
      this.suppress = undefined;
      const end = delimited ? endOffset + 8 : endOffset;
      this.splice(seq.offset, end, Buffer.alloc(0), this.container, seq.tag);
      this.removed++;
      return;
    }
    const f = this.stack.pop() as SeqFrame;
    if (f.kind !== 'seq' || f.el !== seq) throw new AppError('INTERNAL', 'sequence frames out of step');
    if (f.lengthAt !== undefined && f.delta !== 0) {
      const b = Buffer.alloc(4);
      const v = seq.length + f.delta;
      if (seq.littleEndian) b.writeUInt32LE(v);
      else b.writeUInt32BE(v);
      this.splices.push({ start: f.lengthAt, end: f.lengthAt + 4, bytes: b, tag: 0, seq: this.seq++ });
    }
  }

  /** The walk is over: the top-level dataset ends at `end` (Pixel Data's offset, or the end of the data). */
  finish(end: number, explicitVR: boolean, littleEndian: boolean): void {
    if (this.stack.length === 0) this.stack.push({ kind: 'item', depth: 0, path: [], explicitVR, littleEndian, length: 0, delta: 0, inserts: this.insertsFor([]), group: -1 });
    if (this.stack.length !== 1) throw new AppError('INTERNAL', 'unbalanced walk');
    if (this.pb && !this.pb.decided) this.decidePrivateBlock(end);
    const top = this.top;
    if (this.stoppedAt && top.inserts.some((i) => i.tag > this.stoppedAt!.tag))
      throw new AppError('INTERNAL', `cannot insert elements after ${tagString(this.stoppedAt.tag)}`);
    this.closeItem(top, end);
    this.splices.sort((a, b) => a.start - b.start || a.tag - b.tag || a.seq - b.seq);
    for (let i = 1; i < this.splices.length; i++)
      if (this.splices[i].start < this.splices[i - 1].end) throw new AppError('INTERNAL', 'overlapping edits');
  }
}

/** Largest buffer of the output pipeline; BUFFERS of them at most (bounded memory whatever the file size). */
const WRITE_BUFFER = 4 * 1024 * 1024;
const BUFFERS = 3;
/** Files up to this size are read whole, once. */
const SMALL_FILE = 1024 * 1024;
/** Outputs from this size on are hashed on a worker thread while they are read and written. */
const PARALLEL_HASH_MIN = 16 * 1024 * 1024;
/** Full-size shared buffers kept for the next big rewrite (instead of waiting for the GC to free them). */
const sharedPool: Buffer[] = [];
const SHARED_POOL_MAX = 2 * BUFFERS;

/**
 * Pass 2 output: coalesces small pieces into a buffer, hashes every byte on its way out, and keeps the disk
 * busy: a long copy reads the next buffer while the current one is hashed and the previous one is written
 * (positional writes, so they may finish in any order). Buffers are sized to the file, so a small file does
 * not pay for big ones.
 */
class HashingWriter {
  private readonly bufSize: number;
  private readonly free: Buffer[] = [];
  private allocated = 0;
  private readonly inflight = new Set<Promise<void>>();
  private error: unknown;
  private staging: Buffer | null = null;
  private used = 0;
  private pos = 0;
  /** Big files are hashed on a worker thread (buffers shared with it), small ones here. */
  private readonly hash: Hash | null;
  private readonly parallel: ParallelHash | null;
  size = 0;

  constructor(
    private readonly fh: FileHandle,
    sizeHint: number,
  ) {
    this.bufSize = Math.min(WRITE_BUFFER, Math.max(64 * 1024, 2 ** Math.ceil(Math.log2(sizeHint + 16 * 1024))));
    this.parallel = sizeHint >= PARALLEL_HASH_MIN ? createParallelHash() : null;
    this.hash = this.parallel ? null : createHash('sha256');
  }

  private async acquire(): Promise<Buffer> {
    for (;;) {
      if (this.error) throw this.error;
      const b = this.free.pop();
      if (b) return b;
      if (this.allocated < BUFFERS) {
        this.allocated++;
        if (this.parallel) return (this.bufSize === WRITE_BUFFER && sharedPool.pop()) || sharedBuffer(this.bufSize);
        return Buffer.allocUnsafeSlow(this.bufSize);
      }
      await Promise.race(this.inflight);
    }
  }

  private async writeAll(buf: Buffer, n: number, at: number): Promise<void> {
    let off = 0;
    while (off < n) {
      const { bytesWritten } = await this.fh.write(buf, off, n - off, at + off);
      off += bytesWritten;
    }
  }

  /** Hash `n` bytes of `buf` and start writing them at the current output position; `buf` returns to the pool when written. */
  private emit(buf: Buffer, n: number): void {
    let work: Promise<unknown> = this.writeAll(buf, n, this.pos);
    // the worker reads the buffer while it is being written; it is reused once both are done
    if (this.parallel) work = Promise.all([this.parallel.update(buf, n), work]);
    else this.hash!.update(n === buf.length ? buf : buf.subarray(0, n));
    const p: Promise<void> = work.then(
      () => {
        this.inflight.delete(p);
        this.free.push(buf);
      },
      (e) => {
        this.inflight.delete(p);
        this.error ??= e;
      },
    );
    this.inflight.add(p);
    this.pos += n;
    this.size += n;
  }

  private flushStaging(): void {
    if (this.staging && this.used > 0) this.emit(this.staging, this.used);
    else if (this.staging) this.free.push(this.staging);
    this.staging = null;
    this.used = 0;
  }

  async push(b: Buffer): Promise<void> {
    let off = 0;
    while (off < b.length) {
      this.staging ??= await this.acquire();
      const k = Math.min(b.length - off, this.bufSize - this.used);
      b.copy(this.staging, this.used, off, off + k);
      this.used += k;
      off += k;
      if (this.used === this.bufSize) this.flushStaging();
    }
  }

  private async readFull(src: FileHandle, buf: Buffer, off: number, n: number, at: number): Promise<void> {
    let got = 0;
    while (got < n) {
      const { bytesRead } = await src.read(buf, off + got, n - got, at + got);
      if (bytesRead === 0) throw new AppError('TRUNCATED', `The file ends at byte ${at + got}, before the bytes its header declares.`);
      got += bytesRead;
    }
  }

  /** Copy `len` bytes of `src` from `at`: short ranges into the staging buffer, long ones through the read-ahead pipeline. */
  async copyFrom(src: FileHandle, at: number, len: number, cached?: Buffer): Promise<void> {
    if (len <= 0) return;
    if (cached) return this.push(cached.subarray(at, at + len));
    // fill the staging buffer first
    if (this.staging || len < this.bufSize) {
      this.staging ??= await this.acquire();
      const k = Math.min(len, this.bufSize - this.used);
      await this.readFull(src, this.staging, this.used, k, at);
      this.used += k;
      if (this.used === this.bufSize) this.flushStaging();
      at += k;
      len -= k;
      if (len <= 0) return;
      if (len < this.bufSize) return this.copyFrom(src, at, len);
    }
    // whole buffers: the next read is under way while this one is hashed and written
    const readChunk = async (from: number, n: number) => {
      const buf = await this.acquire();
      await this.readFull(src, buf, 0, n, from);
      return { buf, n };
    };
    let next = readChunk(at, Math.min(this.bufSize, len));
    while (len > 0) {
      const { buf, n } = await next;
      at += n;
      len -= n;
      if (len >= this.bufSize) next = readChunk(at, this.bufSize);
      this.emit(buf, n);
      if (len > 0 && len < this.bufSize) return this.copyFrom(src, at, len);
    }
  }

  async end(): Promise<string> {
    this.flushStaging();
    while (this.inflight.size) await Promise.allSettled([...this.inflight]);
    if (this.error) throw this.error;
    const hex = this.parallel ? await this.parallel.digest() : this.hash!.digest('hex');
    this.recycle();
    return hex;
  }

  /** Hand idle full-size shared buffers to the next big rewrite. */
  private recycle(): void {
    if (!this.parallel || this.bufSize !== WRITE_BUFFER) return;
    while (this.free.length && sharedPool.length < SHARED_POOL_MAX) sharedPool.push(this.free.pop()!);
  }

  /** Wait for writes under way (after a failure, before the output is removed). */
  async settle(): Promise<void> {
    while (this.inflight.size) await Promise.allSettled([...this.inflight]);
    this.parallel?.drop();
    this.recycle();
  }
}

/** Applies sorted splices to a stream of dataset bytes that starts at absolute offset `start`. */
class SpliceStream extends Transform {
  private pos: number;
  private i = 0;
  private total = 0;
  constructor(
    private readonly splices: Splice[],
    start: number,
    private readonly cap: number,
  ) {
    super();
    this.pos = start;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.total += chunk.length;
    if (this.total > this.cap) return cb(new AppError('TOO_LARGE', `The deflated dataset inflates to more than ${this.cap} bytes.`));
    const end = this.pos + chunk.length;
    let at = this.pos; // absolute position of the next byte of `chunk` to emit
    while (this.i < this.splices.length && this.splices[this.i].start < end) {
      const s = this.splices[this.i];
      if (s.start >= at) {
        if (s.start > at) this.push(chunk.subarray(at - this.pos, s.start - this.pos));
        if (s.bytes.length) this.push(s.bytes);
        at = s.start;
      }
      // skip the replaced range (it may run into later chunks)
      if (s.end > end) {
        at = end;
        // keep the splice open: it continues in the next chunk with its start moved
        this.splices[this.i] = { ...s, start: end, bytes: Buffer.alloc(0) };
        break;
      }
      at = Math.max(at, s.end);
      this.i++;
    }
    if (at < end) this.push(chunk.subarray(at - this.pos));
    this.pos = end;
    cb();
  }
  override _flush(cb: TransformCallback): void {
    // Insertions at the very end of the data.
    while (this.i < this.splices.length) {
      const s = this.splices[this.i++];
      if (s.start !== this.pos || s.end !== this.pos)
        return cb(new AppError('TRUNCATED', `The deflated dataset ends at byte ${this.pos}, before its header says.`));
      if (s.bytes.length) this.push(s.bytes);
    }
    cb();
  }
}

/**
 * Rewrite `input` (a Part 10 file) into `output` with `rules` applied. Throws AppError for data it cannot
 * walk (truncated, malformed, too deep, too large); the output is removed then.
 */
export async function rewrite(input: string, output: string, rules: EditRule[], opts: RewriteOptions = {}): Promise<RewriteResult> {
  const planner = new Planner(rules, opts);
  const visitor: Visitor = {
    meta: (m) => planner.meta_(m),
    element: (e) => planner.element(e),
    value: (e, b) => planner.value(e, b),
    item: (s, i, o, l) => planner.item(s, i, o, l),
    itemEnd: (s, i, o) => planner.itemEnd(s, i, o),
    sequenceEnd: (s, o, d) => planner.sequenceEnd(s, o, d),
  };
  // both files opened at once (fewer round trips through the thread pool for small files)
  const [opened, created] = await Promise.allSettled([open(input, 'r'), open(output, 'w')]);
  if (opened.status === 'rejected') {
    if (created.status === 'fulfilled') await created.value.close().catch(() => undefined);
    await rm(output, { force: true });
    throw opened.reason;
  }
  const inFh = opened.value;
  if (created.status === 'rejected') {
    await inFh.close();
    throw created.reason;
  }
  let outFh: FileHandle | undefined = created.value;
  let inOpen = true;
  let w: HashingWriter | undefined;
  try {
    const { size } = await inFh.stat();
    // a small file is read once, whole, and both passes work from memory
    const src = new FileSource(inFh, size, size <= SMALL_FILE ? size : undefined);
    let end: number;
    try {
      const r = await drive(parsePart10(visitor, opts.limits ?? defaultLimits), src);
      end = r === 'stop' ? planner.stoppedAt!.offset : src.position;
    } finally {
      src.close();
    }
    const meta = planner.meta!;
    const ts = meta.transferSyntaxUID;
    const info = syntaxInfo(ts)!;
    const px = planner.stoppedAt;
    if (px && !info.deflated && px.length !== UNDEFINED_LENGTH && px.valueOffset + px.length > size)
      throw new AppError('TRUNCATED', `The file ends inside Pixel Data: ${px.length} bytes declared at byte ${px.valueOffset}, ${size - px.valueOffset} present.`);
    const metaUid = (t: number) => (meta.elements.get(t)?.toString('latin1') ?? '').replace(/[\0 ]+$/, '');
    if (planner.sopClassUID === MEDIA_STORAGE_DIRECTORY || metaUid(Tags.MediaStorageSOPClassUID) === MEDIA_STORAGE_DIRECTORY)
      throw new AppError('BAD_REQUEST', 'A DICOMDIR (Media Storage Directory) holds byte offsets of its records and is never rewritten.');
    planner.finish(end, info.explicitVR, info.littleEndian);

    const sourceAe = opts.keepSourceAe === false ? '' : (meta.elements.get(Tags.SourceApplicationEntityTitle)?.toString('latin1') ?? '').trim();
    const head = buildFileMeta({
      sopClassUID: planner.sopClassUID || metaUid(Tags.MediaStorageSOPClassUID),
      sopInstanceUID: planner.sopInstanceUID || metaUid(Tags.MediaStorageSOPInstanceUID),
      transferSyntaxUID: ts,
      sourceAeTitle: sourceAe || undefined,
    });

    const writer = (w = new HashingWriter(outFh!, size + 64 * 1024));
    await writer.push(head);
    if (!info.deflated) {
      const whole = src.wholeFile();
      let cursor = meta.datasetOffset;
      for (const s of planner.splices) {
        await writer.copyFrom(inFh, cursor, s.start - cursor, whole);
        await writer.push(s.bytes);
        cursor = s.end;
      }
      await writer.copyFrom(inFh, cursor, size - cursor, whole);
    } else {
      const sink = new Writable({
        write(chunk: Buffer, _enc, cb) {
          writer.push(chunk).then(() => cb(), cb);
        },
      });
      await pipeline(
        Readable.from(readChunks(inFh, meta.datasetOffset, 1024 * 1024)),
        createInflateRaw(),
        new SpliceStream(planner.splices, 0, MAX_INFLATED_BYTES),
        createDeflateRaw(),
        sink,
      ).catch((e) => {
        if (e instanceof AppError) throw e;
        throw new AppError('MALFORMED', `The deflated dataset cannot be inflated: ${(e as Error).message}`);
      });
    }
    const sha256 = await writer.end();
    const closing = outFh!.close();
    outFh = undefined;
    inOpen = false;
    await Promise.all([closing, inFh.close()]);
    return {
      sha256,
      size: writer.size,
      preamble: preambleKind(meta.preamble),
      transferSyntaxUID: ts,
      deflated: info.deflated,
      replaced: planner.replaced,
      removed: planner.removed,
      inserted: planner.inserted,
      privateCreatorTag: planner.privateCreatorTag,
    };
  } catch (e) {
    await w?.settle();
    if (outFh) await outFh.close().catch(() => undefined);
    await rm(output, { force: true });
    throw e;
  } finally {
    if (inOpen) await inFh.close();
  }
}
