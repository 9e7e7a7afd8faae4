/**
 * The EICAR anti-malware test string and a generated TEST-ONLY signature set for clamd: an .ndb line that
 * finds the EICAR string anywhere in a file (so EICAR inside a DICOM file is found too) and .hdb lines (MD5
 * and size) for given files, e.g. from Debian's clamav-testfiles. Used by the managed clamd when no real
 * signatures exist, and by the tests. Such a set detects nothing real: it is reported loudly wherever used.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** The 68-byte EICAR test file. Kept base64-encoded so this source file itself is not flagged by scanners. */
export const EICAR: Buffer = Buffer.from(
  'WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLVNUQU5EQVJELUFOVElWSVJVUy1URVNULUZJTEUhJEgrSCo=',
  'base64',
);

/** Signature names clamd reports for the generated set (clamd appends ".UNOFFICIAL" to unsigned databases). */
export const TEST_SIGNATURE_PREFIX = 'Uplink.Test.';
export const EICAR_SIGNATURE = `${TEST_SIGNATURE_PREFIX}EICAR`;

/** The .hdb signature name for a file: Uplink.Test.File.<basename with only [A-Za-z0-9_.-]>. */
export function fileSignatureName(file: string): string {
  return `${TEST_SIGNATURE_PREFIX}File.${path.basename(file).replace(/[^A-Za-z0-9_.-]/g, '_')}`;
}

/**
 * (Re)write the test set into `dir` (created; other database files there are removed so clamd loads only
 * this set): uplink-test.ndb with the EICAR line, uplink-test.hdb with one line per file in `hashFiles`.
 */
export function writeTestSignatures(dir: string, hashFiles: string[] = []): { ndb: string; hdb?: string } {
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(dir)) if (/\.(cvd|cld|cud|ndb|hdb|hsb|db|ldb|mdb|msb)$/i.test(f)) rmSync(path.join(dir, f));
  const ndb = path.join(dir, 'uplink-test.ndb');
  // name:target type (0 = any file):offset (* = anywhere):hex bytes
  writeFileSync(ndb, `${EICAR_SIGNATURE}:0:*:${EICAR.toString('hex')}\n`);
  if (!hashFiles.length) return { ndb };
  const hdb = path.join(dir, 'uplink-test.hdb');
  const lines = hashFiles.map((f) => {
    const bytes = readFileSync(f);
    return `${createHash('md5').update(bytes).digest('hex')}:${bytes.length}:${fileSignatureName(f)}\n`;
  });
  writeFileSync(hdb, lines.join(''));
  return { ndb, hdb };
}
