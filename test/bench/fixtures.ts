/**
 * Benchmark study sets made from real data: copies of pydicom's CT_small.dcm (39 KB) with new UIDs, and
 * "real-sized" CTs (512 x 512, 16 bit, ~525 KB) derived from it with pydicom (Debian's python3-pydicom).
 * Sets are cached under os.tmpdir() by size so repeated runs do not regenerate them.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PYDICOM_DIR } from '../helpers/samples.ts';

const SCRIPT = String.raw`
import sys, os
import pydicom
from pydicom.uid import generate_uid
src, out, count, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ds = pydicom.dcmread(src)
study = generate_uid()
series = [generate_uid() for _ in range(max(1, count // 100))]
if size > 128:
    ds.Rows = size; ds.Columns = size
    ds.PixelData = os.urandom(size * size * 2)
ds.StudyInstanceUID = study
for i in range(count):
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesInstanceUID = series[i % len(series)]
    ds.InstanceNumber = i + 1
    ds.save_as(os.path.join(out, "%05d.dcm" % i), write_like_original=False)
`;

/** A folder of `count` instances (one study): size 0 = CT_small as is (39 KB), else size x size 16-bit pixels. */
export function benchSet(name: string, count: number, size = 0): string[] {
  const dir = path.join(os.tmpdir(), 'uplink-bench', `${name}-${count}-${size}`);
  if (!existsSync(dir) || readdirSync(dir).length !== count) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    execFileSync('/usr/bin/python3', ['-c', SCRIPT, path.join(PYDICOM_DIR, 'CT_small.dcm'), dir, String(count), String(size)], { stdio: 'inherit' });
  }
  return readdirSync(dir)
    .sort()
    .map((f) => path.join(dir, f));
}
