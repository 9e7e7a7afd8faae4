/**
 * Specific Character Set (0008,0005) handling: decode text values to JavaScript strings for the index, and
 * encode our own text (labels, comments) into a file's own character set, replacing what it cannot hold.
 */

/** WHATWG encoding label for each DICOM defined term (single-byte and multi-byte without code extensions). */
const labels: Record<string, string> = {
  '': 'windows-1252', // default repertoire (ASCII); latin1 is a safe superset for reading
  ISO_IR_6: 'windows-1252',
  'ISO_IR 6': 'windows-1252',
  'ISO_IR 100': 'windows-1252',
  'ISO_IR 101': 'iso-8859-2',
  'ISO_IR 109': 'iso-8859-3',
  'ISO_IR 110': 'iso-8859-4',
  'ISO_IR 144': 'iso-8859-5',
  'ISO_IR 127': 'iso-8859-6',
  'ISO_IR 126': 'iso-8859-7',
  'ISO_IR 138': 'iso-8859-8',
  'ISO_IR 148': 'windows-1254',
  'ISO_IR 203': 'iso-8859-15',
  'ISO_IR 166': 'windows-874',
  'ISO_IR 13': 'shift_jis',
  'ISO_IR 192': 'utf-8',
  GB18030: 'gb18030',
  GBK: 'gbk',
  'ISO 2022 IR 6': 'windows-1252',
  'ISO 2022 IR 100': 'windows-1252',
  'ISO 2022 IR 101': 'iso-8859-2',
  'ISO 2022 IR 109': 'iso-8859-3',
  'ISO 2022 IR 110': 'iso-8859-4',
  'ISO 2022 IR 144': 'iso-8859-5',
  'ISO 2022 IR 127': 'iso-8859-6',
  'ISO 2022 IR 126': 'iso-8859-7',
  'ISO 2022 IR 138': 'iso-8859-8',
  'ISO 2022 IR 148': 'windows-1254',
  'ISO 2022 IR 203': 'iso-8859-15',
  'ISO 2022 IR 166': 'windows-874',
  'ISO 2022 IR 13': 'shift_jis',
  'ISO 2022 IR 58': 'gb18030',
  'ISO 2022 IR 149': 'euc-kr',
};

const decoders = new Map<string, InstanceType<typeof TextDecoder>>();
function decoder(label: string): InstanceType<typeof TextDecoder> {
  let d = decoders.get(label);
  if (!d) {
    d = new TextDecoder(label);
    decoders.set(label, d);
  }
  return d;
}

/** Split the raw (0008,0005) value into its defined terms (first may be empty). */
export function parseCharsetTerms(raw: string): string[] {
  return raw.replace(/[\0 ]+$/, '').split('\\').map((s) => s.trim());
}

/** Decode a text value. Japanese ISO 2022 escapes go through the ISO-2022-JP decoder; Korean escapes are dropped. */
export function decodeText(bytes: Uint8Array, charsetTerms: string[]): string {
  const terms = charsetTerms.length ? charsetTerms : [''];
  const hasEscape = bytes.includes(0x1b);
  if (hasEscape && terms.some((t) => /IR (87|159)$/.test(t) || t === 'ISO 2022 IR 13')) {
    return decoder('iso-2022-jp').decode(bytes);
  }
  if (hasEscape && terms.some((t) => t === 'ISO 2022 IR 149')) {
    // ESC $ ) C designates KS X 1001 into G1; the bytes after it are EUC-KR.
    const out: number[] = [];
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i] === 0x1b) {
        i += bytes[i + 1] === 0x24 ? 3 : 2;
        continue;
      }
      out.push(bytes[i]);
    }
    return decoder('euc-kr').decode(Uint8Array.from(out));
  }
  const term = terms.find((t) => t !== '') ?? '';
  const label = labels[term] ?? 'windows-1252';
  return decoder(label).decode(bytes);
}

/** Decode a text value and strip DICOM padding (trailing spaces and NULs; leading spaces too unless `keepLeading`). */
export function decodeValue(bytes: Uint8Array, charsetTerms: string[]): string {
  return decodeText(bytes, charsetTerms).replace(/[\0 ]+$/, '').replace(/^ +/, '');
}

const encoderTables = new Map<string, Map<string, number> | null>();
function singleByteTable(label: string): Map<string, number> | null {
  if (encoderTables.has(label)) return encoderTables.get(label)!;
  let table: Map<string, number> | null = null;
  if (label !== 'utf-8' && !['gb18030', 'gbk', 'shift_jis', 'euc-kr', 'iso-2022-jp'].includes(label)) {
    table = new Map();
    const d = decoder(label);
    for (let b = 0; b < 256; b++) {
      const ch = d.decode(Uint8Array.of(b));
      if (ch !== '\ufffd' && !table.has(ch)) table.set(ch, b);
    }
  }
  encoderTables.set(label, table);
  return table;
}

/**
 * Encode text for a file whose Specific Character Set is `charsetTerms`: UTF-8 files get UTF-8, single-byte
 * character sets get their own bytes, anything a character set cannot hold becomes "?". Multi-byte legacy sets
 * (ISO 2022, GB18030, GBK) receive plain ASCII with "?" for the rest: always valid in their default G0.
 */
export function encodeText(text: string, charsetTerms: string[]): Buffer {
  const term = charsetTerms.find((t) => t !== '') ?? '';
  const label = charsetTerms.length > 1 ? 'ascii' : (labels[term] ?? 'ascii');
  if (label === 'utf-8') return Buffer.from(text, 'utf8');
  const table = term === '' || label === 'ascii' ? null : singleByteTable(label);
  const out: number[] = [];
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (code >= 0x20 && code < 0x7f) out.push(code);
    else if (table?.has(ch) && table.get(ch)! >= 0xa0) out.push(table.get(ch)!);
    else out.push(0x3f);
  }
  return Buffer.from(out);
}
