// The managed clamd (scan.clamd.manage): with no freshclam database it runs on a generated test-only set,
// says so loudly, still finds EICAR; its clamd.conf; stop; restart after a crash; clear start errors.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import { loadConfig } from '../../config/load.ts';
import { createLogger, silentLogger } from '../../appliance/log.ts';
import { createClamdScanner } from '../../appliance/scan/clamd-scanner.ts';
import { chooseSignatures, startClamd, startManagedClamd } from '../../appliance/scan/managed-clamd.ts';
import { waitUntilAvailable } from '../../appliance/scan/scanner.ts';
import { EICAR } from '../../appliance/scan/test-signatures.ts';
import { testLimits } from '../helpers/clamd.ts';
import { freePort } from '../helpers/net.ts';
import { PYDICOM_DIR } from '../helpers/samples.ts';

const root = t.testdir({ 'no-freshclam': {}, 'fake-freshclam': { 'daily.cvd': 'x', 'main.cvd': 'x' }, 'empty-db': {} });

/** A logger whose JSON lines are kept for inspection. */
function capturingLogger() {
  const lines: { level: string; msg: string; [k: string]: unknown }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { log: createLogger('debug', sink), lines };
}

function refuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

t.test('signature choice', async (t) => {
  const cfg = (databaseDir: string | null) => loadConfig({}, { dataDir: path.join(root, 'data'), scan: { databaseDir } });
  t.same(chooseSignatures(cfg(null), path.join(root, 'no-freshclam')), { databaseDir: path.join(root, 'data', 'clamd', 'db'), source: 'test-only' });
  t.same(chooseSignatures(cfg(null), path.join(root, 'fake-freshclam')), { databaseDir: path.join(root, 'fake-freshclam'), source: 'freshclam' });
  t.same(chooseSignatures(cfg(path.join(root, 'fake-freshclam')), path.join(root, 'no-freshclam')), {
    databaseDir: path.join(root, 'fake-freshclam'),
    source: 'configured',
  });
  t.throws(() => chooseSignatures(cfg(path.join(root, 'empty-db'))), { code: 'SCANNER_UNAVAILABLE', message: /holds no ClamAV database/ });
});

t.test('no freshclam database: test-only signatures, flagged, EICAR still found', async (t) => {
  const dataDir = path.join(root, 'managed');
  const config = loadConfig({}, { dataDir, scan: { clamd: { port: await freePort(), manage: true, startTimeoutSeconds: 30 } } });
  const { log, lines } = capturingLogger();
  const clamd = await startManagedClamd(config, log, { freshclamDir: path.join(root, 'no-freshclam') });
  t.teardown(() => clamd.stop());

  t.equal(clamd.testSignaturesOnly, true);
  t.equal(clamd.signatureSource, 'test-only');
  t.equal(clamd.databaseDir, path.join(dataDir, 'clamd', 'db'));
  const warn = lines.find((l) => l.level === 'warn' && /TEST SET ONLY/.test(l.msg));
  t.ok(warn, 'a warning at start says the signatures are a test set');
  t.match(warn?.msg, /run freshclam/i);

  const conf = readFileSync(path.join(dataDir, 'clamd', 'clamd.conf'), 'utf8');
  t.match(conf, new RegExp(`^TCPSocket ${config.scan.clamd.port}$`, 'm'));
  t.match(conf, /^TCPAddr 127\.0\.0\.1$/m);
  t.match(conf, /^Foreground yes$/m);
  t.match(conf, /^AlertExceedsMax yes$/m);
  t.notMatch(conf, /^(LocalSocket|User) /m);
  t.match(conf, `\nDatabaseDirectory ${clamd.databaseDir}\n`);
  t.match(conf, `\nPidFile ${path.join(dataDir, 'clamd', 'clamd.pid')}\n`);
  t.match(conf, `\nTemporaryDirectory ${path.join(dataDir, 'clamd', 'tmp')}\n`);
  const size = (k: string) => Number(new RegExp(`^${k} (\\d+)$`, 'm').exec(conf)?.[1]);
  // Default upload.maxFileBytes (2 GB) is under clamd's largest scannable file (2 GiB - 1): every limit covers it.
  t.ok(size('StreamMaxLength') >= config.upload.maxFileBytes, 'StreamMaxLength >= upload.maxFileBytes');
  t.ok(size('MaxScanSize') >= config.upload.maxFileBytes, 'MaxScanSize >= upload.maxFileBytes');
  t.ok(size('MaxFileSize') >= config.upload.maxFileBytes && size('MaxFileSize') <= 2147483647, 'upload.maxFileBytes <= MaxFileSize <= clamd\'s cap (2 GiB - 1)');
  t.notOk(lines.some((l) => /too high|not supported/.test(String(l.clamd))), 'clamd accepted every limit as written');

  const scanner = createClamdScanner(config, silentLogger());
  const st = await scanner.status();
  t.match(st, { available: true, signatures: 'test-only', detail: /test set only; run freshclam/ });
  const f = path.join(root, 'eicar.dcm');
  const dicom = readFileSync(path.join(PYDICOM_DIR, 'MR_small.dcm'));
  writeFileSync(f, Buffer.concat([dicom, EICAR]));
  t.match(await scanner.scan(f), { verdict: 'infected', signature: /^Uplink\.Test\.EICAR/ });
  t.same(await scanner.scan(path.join(PYDICOM_DIR, 'MR_small.dcm')), { verdict: 'clean' });

  t.test('started again after a crash', async (t) => {
    const pid = clamd.pid()!;
    process.kill(pid, 'SIGKILL');
    await t.rejects(scanner.scan(f), { code: 'SCANNER_UNAVAILABLE' }, 'unavailable while it is down');
    t.equal((await waitUntilAvailable(scanner, { timeoutMs: 20_000, intervalMs: 100 })).available, true, 'available again');
    t.ok(clamd.pid() !== undefined && clamd.pid() !== pid, 'a new clamd process');
    t.match(await scanner.scan(f), { verdict: 'infected' });
    t.ok(lines.some((l) => l.level === 'error' && /exited unexpectedly/.test(l.msg)), 'the crash is logged');
  });

  t.test('stop() ends clamd', async (t) => {
    const pid = clamd.pid()!;
    await clamd.stop();
    t.equal(clamd.pid(), undefined);
    t.notOk(alive(pid), 'process gone');
    t.ok(await refuses(config.scan.clamd.port), 'port closed');
    await t.rejects(scanner.scan(f), { code: 'SCANNER_UNAVAILABLE' });
    await clamd.stop(); // idempotent
  });
});

t.test('an orphaned clamd of ours (appliance killed) is stopped before starting', async (t) => {
  const dataDir = path.join(root, 'orphan');
  const config = loadConfig({}, { dataDir, scan: { clamd: { port: await freePort(), manage: true } } });
  const dir = path.join(dataDir, 'clamd');
  mkdirSync(path.join(dir, 'db'), { recursive: true });
  writeFileSync(path.join(dir, 'db', 'x.ndb'), `Orphan.Test:0:*:${EICAR.toString('hex')}\n`);
  // "The earlier run": same folder and clamd.conf, not restarted when it dies (its owner is gone).
  const orphan = await startClamd(
    { dir, host: '127.0.0.1', port: config.scan.clamd.port, databaseDir: path.join(dir, 'db'), limits: testLimits, startTimeoutMs: 30_000, restartOnCrash: false },
    silentLogger(),
  );
  t.teardown(() => orphan.stop());
  const orphanPid = orphan.pid()!;
  const clamd = await startManagedClamd(config, silentLogger(), { freshclamDir: path.join(root, 'no-freshclam') });
  t.teardown(() => clamd.stop());
  t.notOk(alive(orphanPid), 'the orphan was stopped');
  t.not(clamd.pid(), orphanPid);
  const scanner = createClamdScanner(config, silentLogger());
  t.equal((await scanner.status()).available, true);
});

t.test('start errors are clear', async (t) => {
  t.test('port taken by something else', async (t) => {
    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.teardown(() => new Promise((r) => server.close(r)));
    const port = (server.address() as net.AddressInfo).port;
    const config = loadConfig({}, { dataDir: path.join(root, 'taken'), scan: { clamd: { port, manage: true } } });
    await t.rejects(startManagedClamd(config, silentLogger(), { freshclamDir: path.join(root, 'no-freshclam') }), {
      code: 'SCANNER_UNAVAILABLE',
      message: new RegExp(`127\\.0\\.0\\.1:${port} is already in use`),
    });
  });

  t.test('a broken signature database: clamd\'s own last lines are shown', async (t) => {
    const db = path.join(root, 'broken-db');
    mkdirSync(db, { recursive: true });
    writeFileSync(path.join(db, 'broken.ndb'), 'this is not a signature\n');
    const config = loadConfig({}, { dataDir: path.join(root, 'broken'), scan: { databaseDir: db, clamd: { port: await freePort(), manage: true } } });
    const t0 = Date.now();
    await t.rejects(startManagedClamd(config, silentLogger()), {
      code: 'SCANNER_UNAVAILABLE',
      message: /clamd did not start on 127\.0\.0\.1:\d+: it exited \(code \d+\) before answering PING; its last lines:\n.*(Malformed|ERROR)/is,
    });
    t.ok(Date.now() - t0 < 10_000, 'fails fast, not at the start deadline');
    t.ok(await refuses(config.scan.clamd.port));
  });

  t.test('clamd binary missing', async (t) => {
    const config = loadConfig({}, { dataDir: path.join(root, 'nobin'), scan: { clamd: { port: await freePort(), manage: true } } });
    await t.rejects(
      startManagedClamd(config, silentLogger(), { freshclamDir: path.join(root, 'no-freshclam'), clamdPath: path.join(root, 'no-such-clamd') }),
      { code: 'SCANNER_UNAVAILABLE', message: /not found \(install Debian's clamav-daemon/ },
    );
  });
});
