/**
 * Transcoding for the C-STORE SCU, used only when the peer accepts none of an instance's stored transfer
 * syntax. The data set is read with dcmjs and converted with dcmjs-dimse's Transcoding (dcmjs-codecs'
 * WebAssembly codecs for RLE, JPEG, JPEG-LS, JPEG 2000, HTJ2K), in memory, up to a size cap.
 *
 * What is kept: every element, private and unknown ones included: dcmjs drops names it cannot find in its
 * dictionary when it writes, so we hand it a name map built from the elements actually read, each with
 * the VR it had. What changes: the encoding (VR form, byte order, pixel data decompressed) and, as dcmjs
 * always does, text is re-encoded as UTF-8 with Specific Character Set set to ISO_IR 192. Data it cannot
 * read exactly (an unsupported or multi-valued character set, malformed elements) is refused, never
 * approximated: dcmjs is run with ignoreErrors off.
 *
 * Deflated Explicit VR Little Endian to Explicit VR Little Endian needs no codec: it is the same data set
 * inflated, which scu-source.ts streams; only other targets from Deflated come here.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { inflateRawSync } from 'node:zlib';
import dcmjs from 'dcmjs';
import dimse from 'dcmjs-dimse';
import { LONG_VRS } from '../dicom/dictionary.ts';
import { UNDEFINED_LENGTH, type Element } from '../dicom/parser.ts';
import { walkBuffer } from '../dicom/read-file.ts';
import { DEFLATED_LE, EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE, syntaxInfo } from '../dicom/transfer-syntax.ts';
import type { Part10Layout } from './scu-source.ts';

const { Dataset, Transcoding } = dimse;
const { DicomMessage, DicomMetaDictionary, ReadBufferStream, WriteBufferStream } = dcmjs.data;

// dcmjs-dimse enables all its log levels on load and prints plain text to stdout, where our JSON log lines go.
dimse.log.setLevel('silent');
// dcmjs reports VRs it guesses for implicit VR data ("xs", "ox") through console-level logging; not useful here.
dcmjs.log.getLogger('validation.dcmjs').setLevel('silent');
try {
  // dcmjs-dimse writes with its own (nested) copy of dcmjs, which has its own logger.
  const fromDimse = createRequire(createRequire(import.meta.url).resolve('dcmjs-dimse'));
  fromDimse('dcmjs').log.getLogger('validation.dcmjs').setLevel('silent');
} catch {
  /* a hoisted layout shares the copy above */
}

/** Largest data set (as stored, or once inflated) transcoded in memory. */
export const DEFAULT_MAX_TRANSCODE_BYTES = 256 * 1024 * 1024;

export class TranscodeError extends Error {}

export const syntaxName = (uid: string): string => syntaxInfo(uid)?.name ?? uid;

/** What dcmjs-dimse 0.3.3's Transcoding converts (its TranscodableTransferSyntaxes, not exported). */
const transcodable = new Set<string>([
  IMPLICIT_LE,
  EXPLICIT_LE,
  EXPLICIT_BE,
  '1.2.840.10008.1.2.5', // RLE Lossless
  '1.2.840.10008.1.2.4.50', // JPEG Baseline
  '1.2.840.10008.1.2.4.70', // JPEG Lossless SV1
  '1.2.840.10008.1.2.4.80', // JPEG-LS Lossless
  '1.2.840.10008.1.2.4.81', // JPEG-LS Near-Lossless
  '1.2.840.10008.1.2.4.90', // JPEG 2000 Lossless
  '1.2.840.10008.1.2.4.91', // JPEG 2000
  '1.2.840.10008.1.2.4.201', // HTJ2K Lossless
  '1.2.840.10008.1.2.4.202', // HTJ2K RPCL Lossless
  '1.2.840.10008.1.2.4.203', // HTJ2K
]);

/** Can `from` be transcoded to `to` at all (before trying: the data may still refuse)? */
export function canTranscode(from: string, to: string): boolean {
  const src = from === DEFLATED_LE ? EXPLICIT_LE : from;
  return transcodable.has(src) && (to === EXPLICIT_LE || to === IMPLICIT_LE);
}

let codecsReady: Promise<void> | undefined;
function initCodecs(): Promise<void> {
  if (Transcoding.isInitialized()) return Promise.resolve();
  codecsReady ??= Transcoding.initializeAsync().catch((e: unknown) => {
    codecsReady = undefined;
    throw new TranscodeError(`the image codecs (dcmjs-codecs WebAssembly) cannot be loaded: ${(e as Error).message}`);
  });
  return codecsReady;
}

type RawElement = { vr: string; Value?: unknown[] };
type RawDict = Record<string, RawElement>;

/** Name-map entries for every element dcmjs's dictionary does not know (private, retired, unknown), at any depth. */
function collectUnknownNames(dict: RawDict, map: Record<string, unknown>): void {
  for (const [key, el] of Object.entries(dict)) {
    const punct = DicomMetaDictionary.punctuateTag(key) as string;
    if (!DicomMetaDictionary.dictionary[punct] && !map[key]) map[key] = { tag: punct, vr: el.vr, name: key, vm: '1-n', version: 'PrivateTag' };
    if (el.vr === 'SQ' && Array.isArray(el.Value)) for (const item of el.Value) if (item && typeof item === 'object') collectUnknownNames(item as RawDict, map);
  }
}

/** Bytes per swapped unit by VR, for big endian to little endian (0: copied as they are). */
const SWAP_WIDTH: Record<string, number> = { US: 2, SS: 2, OW: 2, AT: 2, UL: 4, SL: 4, FL: 4, OF: 4, OL: 4, FD: 8, OD: 8, SV: 8, UV: 8, OV: 8 };

function swapRun(b: Buffer, start: number, length: number, width: number): void {
  const end = start + length - (length % width);
  if (width === 2) b.subarray(start, end).swap16();
  else if (width === 4) b.subarray(start, end).swap32();
  else if (width === 8) b.subarray(start, end).swap64();
}

/**
 * Explicit VR Big Endian to Explicit VR Little Endian, in place: every header keeps its size, so only tag,
 * length and binary values (by VR) are byte-swapped; strings, OB and UN are copied as they are. Exact,
 * unlike a dcmjs round trip (which leaves OW/OF/OD values other than pixel data unswapped).
 */
export async function bigToLittleEndian(data: Buffer): Promise<Buffer> {
  const leSeqs = new WeakSet<Element>();
  const swapTagAndLength = (o: number) => {
    swapRun(data, o, 4, 2);
    swapRun(data, o + 4, 4, 4);
  };
  await walkBuffer(data, {
    element(e) {
      if (e.littleEndian) {
        if (e.vr === 'SQ' || e.length === UNDEFINED_LENGTH) leSeqs.add(e);
        return 'skip';
      }
      swapRun(data, e.offset, 4, 2);
      const long = LONG_VRS.has(e.vr);
      if (long) swapRun(data, e.offset + 8, 4, 4);
      else swapRun(data, e.offset + 6, 2, 2);
      // UN of undefined length holds implicit VR little endian data: its items are not swapped.
      if (e.vr === 'UN' && e.length === UNDEFINED_LENGTH) leSeqs.add(e);
      const w = SWAP_WIDTH[e.vr];
      if (w && e.length !== UNDEFINED_LENGTH) swapRun(data, e.valueOffset, e.length, w);
      return 'skip';
    },
    item(seq, _i, offset) {
      if (!leSeqs.has(seq)) swapTagAndLength(offset);
    },
    itemEnd(seq, _i, endOffset, delimited) {
      if (delimited && !leSeqs.has(seq)) swapTagAndLength(endOffset);
    },
    sequenceEnd(seq, endOffset, delimited) {
      if (delimited && !leSeqs.has(seq)) swapTagAndLength(endOffset);
    },
  }, { transferSyntaxUID: EXPLICIT_BE });
  return data;
}

/**
 * The data set of a stored Part 10 file, transcoded to `to`. Throws TranscodeError with the reason in words
 * when it cannot be done (syntax not supported by the codecs, too large, data dcmjs cannot read exactly).
 */
export async function transcodeFile(path: string, layout: Part10Layout, to: string, maxBytes = DEFAULT_MAX_TRANSCODE_BYTES): Promise<Buffer> {
  const from = layout.transferSyntaxUID;
  const what = `${syntaxName(from)} to ${syntaxName(to)}`;
  if (!canTranscode(from, to)) throw new TranscodeError(`transcoding from ${what} is not supported`);
  const storedBytes = layout.size - layout.datasetOffset;
  if (storedBytes > maxBytes) throw new TranscodeError(`the data set (${storedBytes} bytes) is larger than the ${maxBytes}-byte limit for transcoding in memory`);
  let data: Buffer = (await readFile(path)).subarray(layout.datasetOffset);
  let src = from;
  try {
    if (src === DEFLATED_LE) {
      try {
        data = inflateRawSync(data, { maxOutputLength: maxBytes });
      } catch (e) {
        throw new TranscodeError(`the deflated data set cannot be inflated within ${maxBytes} bytes: ${(e as Error).message}`);
      }
      src = EXPLICIT_LE;
    }
    if (src === EXPLICIT_BE) {
      data = await bigToLittleEndian(Buffer.from(data));
      src = EXPLICIT_LE;
    }
    if (src === to) return data;
    const encapsulated = syntaxInfo(src)?.encapsulated ?? false;
    if (encapsulated) await initCodecs();
    const ab = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
    const raw = DicomMessage._read(new ReadBufferStream(ab), src === IMPLICIT_LE ? IMPLICIT_LE : EXPLICIT_LE, { ignoreErrors: false }) as RawDict;
    if (!encapsulated && to !== EXPLICIT_BE) {
      // Little endian to little endian: the elements as read (VRs included, private ones too), written again.
      const out = new WriteBufferStream();
      DicomMessage.write(raw, out, to, {});
      return Buffer.from(out.getBuffer());
    }
    const nameMap: Record<string, unknown> = {};
    collectUnknownNames(raw, nameMap);
    const natural = DicomMetaDictionary.naturalizeDataset(raw);
    const hadPlanar = 'PlanarConfiguration' in natural;
    const out = Transcoding.transcodeDataset(new Dataset(natural, src), to);
    const el = out.getElements() as Record<string, unknown>;
    // The codecs set Planar Configuration on every image; it may only be present with more than one sample.
    if (!hadPlanar && Number(el.SamplesPerPixel) === 1) delete el.PlanarConfiguration;
    return out.getDenaturalizedDataset({ fragmentMultiframe: false }, nameMap);
  } catch (e) {
    if (e instanceof TranscodeError) throw e;
    throw new TranscodeError(`transcoding from ${what} failed: ${(e as Error).message}`);
  }
}
