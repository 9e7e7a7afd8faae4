/**
 * Open a ZIP file in the browser (in the ZIP worker) with fflate's streaming reader, within limits: at most
 * `maxEntries` files, `maxBytes` unpacked in total, and no entry (or the archive as a whole) unpacking more
 * than `maxRatio` times its packed size (a "ZIP bomb"). Any limit exceeded, or a damaged / encrypted /
 * unsupported archive, refuses the whole ZIP: nothing of it is added. Nested ZIPs are returned as plain files
 * (the file set reports them: they are not opened).
 *
 * Pure (Blob in, Files out): runs in the worker and in Node tests.
 */
import { Unzip, UnzipInflate, type UnzipFile } from 'fflate';
import type { ZipRefusal } from './file-set.ts';

export interface ZipLimits {
  maxEntries: number;
  maxBytes: number;
  maxRatio: number;
}

export type ZipResult = { ok: true; entries: { path: string; file: File }[] } | { ok: false; reason: ZipRefusal };

/** Below this many unpacked bytes no ratio is suspicious (tiny files compress absurdly well). */
const RATIO_FLOOR = 1024 * 1024;

/** "a/../b\\c" -> "b/c": entry names are labels here, but keep them tidy and relative. */
export function cleanEntryName(name: string): string {
  const out: string[] = [];
  for (const seg of name.replace(/\\/g, '/').split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return out.join('/');
}

export async function readZip(blob: Blob, limits: ZipLimits): Promise<ZipResult> {
  const entries: { path: string; file: File }[] = [];
  let failure: ZipRefusal | null = null;
  let started = 0;
  let total = 0;
  let consumed = 0;
  const lastModified = blob instanceof File ? blob.lastModified : Date.now();

  const onFile = (f: UnzipFile) => {
    if (failure) return;
    if (f.name.endsWith('/') || f.name.endsWith('\\')) return; // a folder
    const path = cleanEntryName(f.name);
    if (!path) return;
    if (++started > limits.maxEntries) {
      failure = 'entries';
      return;
    }
    if (f.originalSize !== undefined && f.size !== undefined && f.originalSize > RATIO_FLOOR && f.originalSize > f.size * limits.maxRatio) {
      failure = 'ratio';
      return;
    }
    const chunks: Uint8Array[] = [];
    let n = 0;
    f.ondata = (err, data, final) => {
      if (failure) return;
      if (err) {
        failure = 'broken';
        return;
      }
      n += data.length;
      total += data.length;
      if (total > limits.maxBytes) {
        failure = 'size';
        return;
      }
      if (f.size !== undefined && n > RATIO_FLOOR && n > f.size * limits.maxRatio) {
        failure = 'ratio';
        return;
      }
      chunks.push(data);
      if (final) entries.push({ path, file: new File(chunks as unknown as ConstructorParameters<typeof File>[0], path.split('/').pop() ?? path, { lastModified }) });
    };
    try {
      f.start();
    } catch {
      failure = 'broken'; // e.g. a compression method other than stored / deflate
    }
  };

  const unzip = new Unzip(onFile);
  unzip.register(UnzipInflate);
  const reader = blob.stream().getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      consumed += value.length;
      unzip.push(value, false);
      if (!failure && total > RATIO_FLOOR && total > consumed * limits.maxRatio) failure = 'ratio';
      if (failure) break;
    }
    if (!failure) unzip.push(new Uint8Array(0), true);
  } catch {
    if (!failure) failure = 'broken';
  } finally {
    reader.cancel().catch(() => {});
  }
  if (!failure && started > entries.length) failure = 'broken'; // an entry never finished: the archive is cut off
  if (failure) return { ok: false, reason: failure };
  return { ok: true, entries };
}
