// The clamd scanner against a real clamd (private, test signature set): clean real DICOM files, EICAR inside
// DICOM files, a clamav-testfiles file (also inside an archive), status(), clamd stopped and back.
import { execFileSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { loadConfig } from '../../config/load.ts';
import { silentLogger } from '../../appliance/log.ts';
import { createClamdScanner } from '../../appliance/scan/clamd-scanner.ts';
import { waitUntilAvailable, type Scanner } from '../../appliance/scan/scanner.ts';
import { EICAR } from '../../appliance/scan/test-signatures.ts';
import { CLAM_EXE, startTestClamd } from '../helpers/clamd.ts';
import { PYDICOM_DIR, validSamples } from '../helpers/samples.ts';

const dir = t.testdir();
const clamd = await startTestClamd(t, path.join(dir, 'clamd'));
const config = loadConfig({}, { dataDir: dir, scan: { clamd: { host: clamd.host, port: clamd.port, manage: false, timeoutSeconds: 30 } } });
const scanner: Scanner = createClamdScanner(config, silentLogger());

t.test('real DICOM samples are clean', async (t) => {
  const files = validSamples();
  t.ok(files.length > 40, `${files.length} samples`);
  for (const f of files) t.same(await scanner.scan(f), { verdict: 'clean' }, path.basename(f));
});

t.test('EICAR inside DICOM files is found', async (t) => {
  const ct = path.join(PYDICOM_DIR, 'CT_small.dcm');

  // 1. In the 128-byte preamble (the file stays valid DICOM).
  const pre = path.join(dir, 'eicar-preamble.dcm');
  const a = readFileSync(ct);
  EICAR.copy(a, 0);
  writeFileSync(pre, a);

  // 2. In the middle of the pixel data (OW, explicit VR little endian: tag, VR, 2 reserved, 4-byte length).
  const mid = path.join(dir, 'eicar-pixels.dcm');
  const b = readFileSync(ct);
  const px = b.indexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x57, 0, 0]));
  t.ok(px > 132, 'pixel data element found');
  EICAR.copy(b, px + 12 + 1000);
  writeFileSync(mid, b);

  // 3. In a private OB element appended after the pixel data (group 7FE1: private, sorts after 7FE0).
  const tail = path.join(dir, 'eicar-private.dcm');
  copyFileSync(path.join(PYDICOM_DIR, 'JPEG2000.dcm'), tail);
  const creator = Buffer.from('UPLINK TEST ', 'latin1'); // even length
  const lo = Buffer.alloc(8);
  lo.writeUInt16LE(0x7fe1, 0);
  lo.writeUInt16LE(0x0010, 2);
  lo.write('LO', 4, 'latin1');
  lo.writeUInt16LE(creator.length, 6);
  const ob = Buffer.alloc(12);
  ob.writeUInt16LE(0x7fe1, 0);
  ob.writeUInt16LE(0x1000, 2);
  ob.write('OB', 4, 'latin1');
  ob.writeUInt32LE(EICAR.length, 8);
  writeFileSync(tail, Buffer.concat([readFileSync(tail), lo, creator, ob, EICAR]));

  for (const f of [pre, mid, tail]) {
    // Still DICOM: DCMTK reads each file to its end.
    const dump = execFileSync('dcmdump', ['-q', '+L', f], { encoding: 'latin1' });
    if (f === tail) t.match(dump, /\(7fe1,1000\) OB 58\\35\\4f/, 'the private element is there');
    const r = await scanner.scan(f);
    t.equal(r.verdict, 'infected', path.basename(f));
    if (r.verdict === 'infected') t.match(r.signature, /^Uplink\.Test\.EICAR(\.UNOFFICIAL)?$/);
  }
});

t.test('a clamav-testfiles file is found, alone and inside a zip', async (t) => {
  const r = await scanner.scan(CLAM_EXE);
  t.same(r, { verdict: 'infected', signature: 'Uplink.Test.File.clam.exe.UNOFFICIAL' });
  const z = await scanner.scan('/usr/share/clamav-testfiles/clam.zip');
  t.same(z, { verdict: 'infected', signature: 'Uplink.Test.File.clam.exe.UNOFFICIAL' });
});

t.test('status: available, test signatures only', async (t) => {
  const st = await scanner.status();
  t.equal(st.available, true);
  t.equal(st.signatures, 'test-only');
  t.match(st.version, /^ClamAV \d+\.\d+/);
  t.match(st.detail, /test set only; run freshclam/);
});

t.test('clamd stopped: SCANNER_UNAVAILABLE, never clean; back after restart', async (t) => {
  const file = path.join(PYDICOM_DIR, 'CT_small.dcm');
  t.same(await scanner.scan(file), { verdict: 'clean' }, 'clean while clamd runs');
  await clamd.stop();
  await t.rejects(scanner.scan(file), { name: 'AppError', code: 'SCANNER_UNAVAILABLE', message: /refused the connection/ });
  await t.rejects(scanner.scan(path.join(dir, 'eicar-preamble.dcm')), { name: 'AppError', code: 'SCANNER_UNAVAILABLE' });
  const down = await scanner.status();
  t.same({ available: down.available, signatures: down.signatures }, { available: false, signatures: 'none' });
  t.match(down.detail, /refused/);
  await t.rejects(waitUntilAvailable(scanner, { timeoutMs: 300, intervalMs: 50 }), { code: 'SCANNER_UNAVAILABLE', message: /refused/ });

  // The ingest pipeline waits for the scanner, then scans the held files again.
  const back = waitUntilAvailable(scanner, { timeoutMs: 20_000, intervalMs: 50 });
  await clamd.restart();
  t.equal((await back).available, true, 'available again');
  t.same(await scanner.scan(file), { verdict: 'clean' }, 'held file scanned again: clean');
  t.equal((await scanner.scan(path.join(dir, 'eicar-preamble.dcm'))).verdict, 'infected');
});

t.test('a missing file is the caller\'s error, not the scanner\'s', async (t) => {
  await t.rejects(scanner.scan(path.join(dir, 'nope.dcm')), { code: 'ENOENT' });
});

t.test('concurrent scans (more than scan.clamd.maxConcurrent) all get their verdicts', async (t) => {
  const files = validSamples().slice(0, 20);
  const eicar = path.join(dir, 'eicar-preamble.dcm');
  const results = await Promise.all([...files, eicar, ...files].map((f) => scanner.scan(f)));
  t.equal(results.filter((r) => r.verdict === 'clean').length, 40);
  t.equal(results[20].verdict, 'infected');
});
