// Files over clamd's limits are never reported clean: over MaxFileSize -> infected (AlertExceedsMax),
// over StreamMaxLength -> SCANNER_UNAVAILABLE (clamd's size ERROR), over the managed clamd's limits -> refused
// (TOO_LARGE) before sending. Small limits keep this cheap.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { loadConfig } from '../../config/load.ts';
import { silentLogger } from '../../appliance/log.ts';
import { createClamdScanner } from '../../appliance/scan/clamd-scanner.ts';
import { CLAMD_FILE_SIZE_CAP, CLAMD_SIZE_CAP, clamdLimits, renderClamdConf } from '../../appliance/scan/clamd-conf.ts';
import { startTestClamd } from '../helpers/clamd.ts';
import { freePort } from '../helpers/net.ts';

const MiB = 1024 * 1024;
const dir = t.testdir();
const clamd = await startTestClamd(t, path.join(dir, 'clamd'), { limits: { streamMaxBytes: 3 * MiB, maxFileBytes: 1 * MiB } });
const config = loadConfig({}, { dataDir: dir, scan: { clamd: { host: clamd.host, port: clamd.port, manage: false, timeoutSeconds: 30 } } });
const scanner = createClamdScanner(config, silentLogger());

function file(name: string, bytes: number): string {
  const f = path.join(dir, name);
  writeFileSync(f, randomBytes(bytes));
  return f;
}

t.test('under the limits: clean', async (t) => {
  t.same(await scanner.scan(file('small.bin', 512 * 1024)), { verdict: 'clean' });
});

t.test('over MaxFileSize (1 MB), within StreamMaxLength: infected by AlertExceedsMax', async (t) => {
  const r = await scanner.scan(file('2mb.bin', 2 * MiB));
  t.same(r, { verdict: 'infected', signature: 'Heuristics.Limits.Exceeded.MaxFileSize' });
});

t.test('over StreamMaxLength (3 MB): SCANNER_UNAVAILABLE with clamd\'s size error, not clean', async (t) => {
  // clamd replies "INSTREAM size limit exceeded. ERROR" and closes; whether that reply or the reset of our
  // next write reaches us first is a race, and both name the cause.
  await t.rejects(scanner.scan(file('4mb.bin', 4 * MiB)), {
    name: 'AppError',
    code: 'SCANNER_UNAVAILABLE',
    message: /INSTREAM size limit exceeded|reset the connection during the scan .*StreamMaxLength/,
  });
  t.same(await scanner.scan(path.join(dir, 'small.bin')), { verdict: 'clean' }, 'clamd still serves the next file');
});

t.test('managed clamd limits: a file over them is refused before it is sent', async (t) => {
  // Nothing listens on this port: had the scanner tried to send, it would be SCANNER_UNAVAILABLE.
  const cfg = loadConfig({}, { dataDir: dir, upload: { maxFileBytes: MiB }, scan: { clamd: { port: await freePort(), manage: true } } });
  const managed = createClamdScanner(cfg, silentLogger());
  await t.rejects(managed.scan(path.join(dir, '2mb.bin')), { name: 'AppError', code: 'TOO_LARGE' });
  await t.rejects(managed.scan(path.join(dir, 'small.bin')), { code: 'SCANNER_UNAVAILABLE' }, 'a file within them goes to clamd');
});

t.test('limits follow upload.maxFileBytes, capped where clamd caps them', async (t) => {
  const small = clamdLimits(loadConfig({}, { upload: { maxFileBytes: 500 * MiB } })).limits;
  t.match(small, { streamMaxBytes: 500 * MiB, maxFileBytes: 500 * MiB, maxScanBytes: 1000 * MiB });
  const big = clamdLimits(loadConfig({}, { upload: { maxFileBytes: 8 * 1024 * MiB } }));
  t.match(big.limits, { streamMaxBytes: CLAMD_SIZE_CAP, maxFileBytes: CLAMD_FILE_SIZE_CAP, maxScanBytes: CLAMD_SIZE_CAP });
  t.match(big.notes[0], /above the largest file clamd can scan/);
  const conf = renderClamdConf({ host: '127.0.0.1', port: 3310, databaseDir: '/db', pidFile: '/p/pid', tempDir: '/p/tmp', limits: big.limits });
  t.match(conf, /^StreamMaxLength 4294967295$/m);
  t.match(conf, /^MaxFileSize 2147483647$/m);
  t.match(conf, /^AlertExceedsMax yes$/m);
  t.notMatch(conf.split('\n').filter((l) => !l.startsWith('#')).join('\n'), /\{\{/, 'every placeholder filled');
  t.notMatch(conf, /^User /m, 'no User line: clamd runs as whoever starts it (root or not)');
  t.throws(() => renderClamdConf({ host: '127.0.0.1', port: 3310, databaseDir: '/my db', pidFile: '/p', tempDir: '/t', limits: big.limits }), /blanks/);
});
