/**
 * The real DICOM samples Debian's python3-pydicom ships, for tests: every common transfer syntax, big endian,
 * implicit VR, multi-frame, RT, SR, ECG, deliberately broken files and a DICOMDIR tree.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';

export const PYDICOM_DIR = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

/** Files that are not valid Part 10 data (DCMTK cannot read them either, or they lack the DICM preamble). */
export const BROKEN = new Set([
  'ExplVR_BigEndNoMeta.dcm', // no preamble / meta
  'ExplVR_LitEndNoMeta.dcm', // no preamble / meta
  'no_meta.dcm', // no preamble / meta
  'rtstruct.dcm', // no preamble / meta
  'MR_truncated.dcm', // cut off inside Pixel Data
  'rtplan_truncated.dcm', // cut off inside an element
  'SC_rgb_jpeg.dcm', // meta says explicit VR, dataset is implicit: dcmdump fails too
  'meta_missing_tsyntax.dcm', // no Transfer Syntax UID in the meta group
]);

/** All `.dcm` samples directly in the pydicom folder (sorted). */
export function allSamples(): string[] {
  return readdirSync(PYDICOM_DIR)
    .filter((f) => f.endsWith('.dcm'))
    .sort()
    .map((f) => path.join(PYDICOM_DIR, f));
}

/** The samples that are valid Part 10 files. */
export function validSamples(): string[] {
  return allSamples().filter((f) => !BROKEN.has(path.basename(f)));
}

/** The pydicom DICOMDIR trees (folders holding a DICOMDIR and the files it references). */
export const DICOMDIR_TREES = path.join(PYDICOM_DIR, 'dicomdirtests');

/**
 * Copy files into `dir` giving each a new SOP Instance UID (dcmodify -gin), so samples that share a UID become
 * distinct instances. `study`/`series` also give every copy a new Study / Series Instance UID.
 */
export function copyWithNewUids(files: string[], dir: string, opts: { study?: boolean; series?: boolean } = {}): string[] {
  mkdirSync(dir, { recursive: true });
  const out = files.map((f, i) => {
    const dest = path.join(dir, `${String(i).padStart(4, '0')}-${path.basename(f)}`);
    copyFileSync(f, dest);
    return dest;
  });
  const flags = ['-nb', '-gin', ...(opts.study ? ['-gst'] : []), ...(opts.series ? ['-gse'] : [])];
  // dcmodify keeps the file's transfer syntax; -nb: no .bak files.
  for (let i = 0; i < out.length; i += 200) execFileSync('dcmodify', [...flags, ...out.slice(i, i + 200)], { stdio: 'pipe' });
  return out;
}
