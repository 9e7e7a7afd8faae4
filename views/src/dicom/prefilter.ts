/**
 * A fast first pass over a Part 10 header, before dcmjs: walk the top-level elements (skipping values by their
 * length, sequences item by item) up to the end of group 0028, and keep only the elements Panel 2 shows.
 * dcmjs then parses a small buffer (preamble + meta + those elements) instead of every element of the header:
 * dcmjs 0.51 costs ~1-6 ms per header (it builds a stream object per element), the filtered header ~0.1 ms.
 *
 * Anything unusual (deflated data, a DICOMDIR, an element that does not add up) answers "fallback": the caller
 * then lets dcmjs read the whole header as it is. "need-more": the buffer ends before group 0028 does.
 */

export type Prefiltered = { kind: 'ok'; buffer: ArrayBuffer } | { kind: 'need-more' } | { kind: 'fallback' };

/** Tags kept (as 0xggggeeee). */
export const WANTED = new Set([
  0x00080005, 0x00080016, 0x00080018, 0x00080020, 0x00080030, 0x00080050, 0x00080060, 0x00081030, 0x0008103e,
  0x00100010, 0x00100020, 0x00100030, 0x00100040, 0x0020000d, 0x0020000e, 0x00200011, 0x00280008,
]);

const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const UNDEFINED = 0xffffffff;
const LAST_WANTED_GROUP = 0x0028;

class NeedMore extends Error {}
class Odd extends Error {}

interface Syntax {
  little: boolean;
  explicit: boolean;
}

function reader(view: DataView, syntax: Syntax) {
  const need = (pos: number, n: number) => {
    if (pos + n > view.byteLength) throw new NeedMore();
  };
  const u16 = (pos: number) => (need(pos, 2), view.getUint16(pos, syntax.little));
  const u32 = (pos: number) => (need(pos, 4), view.getUint32(pos, syntax.little));
  const vr = (pos: number) => (need(pos, 2), String.fromCharCode(view.getUint8(pos), view.getUint8(pos + 1)));

  /** One element at pos: its tag and where it ends. */
  const element = (pos: number, explicit: boolean): { tag: number; end: number } => {
    const tag = ((u16(pos) << 16) | u16(pos + 2)) >>> 0;
    if (tag >>> 16 === 0xfffe) throw new Odd(); // an item tag where an element should be
    let len: number;
    let valueAt: number;
    let isSeq = false;
    if (explicit) {
      const v = vr(pos + 4);
      if (!/^[A-Z]{2}$/.test(v)) throw new Odd();
      if (LONG_VRS.has(v)) {
        len = u32(pos + 8);
        valueAt = pos + 12;
      } else {
        len = u16(pos + 6);
        valueAt = pos + 8;
      }
      isSeq = v === 'SQ';
      if (len === UNDEFINED && v === 'UN') return { tag, end: skipSequence(valueAt, false) }; // UN of undefined length: implicit VR inside
    } else {
      len = u32(pos + 4);
      valueAt = pos + 8;
      isSeq = len === UNDEFINED;
    }
    if (len === UNDEFINED) {
      if (!isSeq) throw new Odd(); // encapsulated data before Pixel Data: leave it to dcmjs
      return { tag, end: skipSequence(valueAt, explicit) };
    }
    return { tag, end: valueAt + len };
  };

  /** Skip the items of an undefined-length sequence starting at pos; returns the position after its delimiter. */
  const skipSequence = (pos: number, explicit: boolean): number => {
    for (let depth = 0; depth < 100_000; depth++) {
      const tag = ((u16(pos) << 16) | u16(pos + 2)) >>> 0;
      const len = u32(pos + 4);
      if (tag === 0xfffee0dd) return pos + 8; // sequence delimitation
      if (tag !== 0xfffee000) throw new Odd();
      pos += 8;
      if (len !== UNDEFINED) {
        pos += len;
        continue;
      }
      // An item of undefined length: elements until the item delimiter.
      for (;;) {
        const t = ((u16(pos) << 16) | u16(pos + 2)) >>> 0;
        if (t === 0xfffee00d) {
          pos += 8;
          break;
        }
        pos = element(pos, explicit).end;
      }
    }
    throw new Odd();
  };

  return { element, u16, u32 };
}

export function prefilter(buf: ArrayBuffer, whole: boolean, wanted: Set<number> = WANTED): Prefiltered {
  const view = new DataView(buf);
  try {
    // The meta group: explicit VR little endian, from byte 132.
    const meta = reader(view, { little: true, explicit: true });
    let pos = 132;
    let ts = '';
    let sopClass = '';
    for (;;) {
      if (pos + 4 > view.byteLength) throw new NeedMore();
      if (view.getUint16(pos, true) !== 0x0002) break;
      const { tag, end } = meta.element(pos, true);
      if (end > view.byteLength) throw new NeedMore();
      if (tag === 0x00020010 || tag === 0x00020002) {
        const valueAt = pos + 8;
        const s = new TextDecoder('latin1').decode(new Uint8Array(buf, valueAt, end - valueAt)).replace(/[\0 ]+$/, '');
        if (tag === 0x00020010) ts = s;
        else sopClass = s;
      }
      pos = end;
    }
    const metaEnd = pos;
    if (!ts || ts === '1.2.840.10008.1.2.1.99' || ts === '1.2.840.10008.1.2.5.99' || sopClass === '1.2.840.10008.1.3.10') return { kind: 'fallback' };
    const syntax: Syntax = { little: ts !== '1.2.840.10008.1.2.2', explicit: ts !== '1.2.840.10008.1.2' };
    const ds = reader(view, syntax);
    const keep: [number, number][] = [];
    for (;;) {
      if (pos >= view.byteLength) {
        if (whole) break;
        throw new NeedMore();
      }
      if (pos + 4 > view.byteLength) throw whole ? new Odd() : new NeedMore();
      const group = ds.u16(pos);
      if (group > LAST_WANTED_GROUP) break;
      const { tag, end } = ds.element(pos, syntax.explicit);
      if (end > view.byteLength) {
        if (whole) throw new Odd();
        throw new NeedMore();
      }
      if (wanted.has(tag)) keep.push([pos, end]);
      pos = end;
    }
    const size = metaEnd + keep.reduce((n, [a, b]) => n + b - a, 0);
    const out = new Uint8Array(size);
    out.set(new Uint8Array(buf, 0, metaEnd), 0);
    let at = metaEnd;
    for (const [a, b] of keep) {
      out.set(new Uint8Array(buf, a, b - a), at);
      at += b - a;
    }
    return { kind: 'ok', buffer: out.buffer };
  } catch (e) {
    if (e instanceof NeedMore) return whole ? { kind: 'fallback' } : { kind: 'need-more' };
    return { kind: 'fallback' };
  }
}
