// What a scanner does when clamd misbehaves, with fake clamd servers on free loopback ports: silent (accepts,
// never answers), stalling on real scans, answering OK to everything (no signatures), odd replies. Every case
// must end in SCANNER_UNAVAILABLE within the deadline, never in "clean".
import { createReadStream } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { loadConfig } from '../../config/load.ts';
import { silentLogger } from '../../appliance/log.ts';
import { instream, parseScanReply, parseVersion } from '../../appliance/scan/clamd-client.ts';
import { createClamdScanner } from '../../appliance/scan/clamd-scanner.ts';
import { EICAR } from '../../appliance/scan/test-signatures.ts';
import { PYDICOM_DIR } from '../helpers/samples.ts';

const FILE = path.join(PYDICOM_DIR, 'CT_small.dcm');

type Behaviour = {
  /** Reply to an INSTREAM whose content is `data`; null: never answer. */
  instream(data: Buffer): string | null;
  version?: string;
  silent?: boolean;
};

/** A fake clamd speaking just enough of the protocol; closed at the end of the test. */
async function fakeClamd(tt: { teardown(fn: () => unknown): void }, b: Behaviour): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    if (b.silent) return;
    let buf = Buffer.alloc(0);
    let mode: 'command' | 'stream' | 'done' = 'command';
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (mode === 'command') {
        const nul = buf.indexOf(0);
        if (nul < 0) return;
        const cmd = buf.subarray(0, nul).toString();
        buf = buf.subarray(nul + 1);
        if (cmd === 'zPING') return void s.end('PONG\0');
        if (cmd === 'zVERSION') return void s.end(`${b.version ?? 'ClamAV 1.4.6/27000/Tue Nov 25 09:00:00 2026'}\0`);
        if (cmd !== 'zINSTREAM') return void s.end('UNKNOWN COMMAND\0');
        mode = 'stream';
      }
      while (mode === 'stream' && buf.length >= 4) {
        const n = buf.readUInt32BE(0);
        if (n === 0) {
          mode = 'done';
          const reply = b.instream(Buffer.concat(chunks));
          if (reply !== null) s.end(`${reply}\0`);
          return;
        }
        if (buf.length < 4 + n) return;
        chunks.push(buf.subarray(4, 4 + n));
        buf = buf.subarray(4 + n);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  tt.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return (server.address() as net.AddressInfo).port;
}

function scannerFor(port: number, timeoutSeconds = 1) {
  const config = loadConfig({}, { scan: { clamd: { host: '127.0.0.1', port, manage: false, timeoutSeconds } } });
  return createClamdScanner(config, silentLogger());
}

const detectsEicarOnly = (data: Buffer) => (data.equals(EICAR) ? 'stream: Eicar-Test-Signature FOUND' : 'stream: OK');

t.test('the fake answers like clamd (so the cases below fail for their own reason)', async (t) => {
  const port = await fakeClamd(t, { instream: detectsEicarOnly });
  const s = scannerFor(port);
  t.same(await s.scan(FILE), { verdict: 'clean' });
  t.same(await s.status(), { available: true, signatures: 'full', version: 'ClamAV 1.4.6/27000/Tue Nov 25 09:00:00 2026' });
});

t.test('accepts and never answers: SCANNER_UNAVAILABLE within the deadline', async (t) => {
  const port = await fakeClamd(t, { instream: () => null, silent: true });
  const s = scannerFor(port, 1);
  const t0 = Date.now();
  await t.rejects(s.scan(FILE), { name: 'AppError', code: 'SCANNER_UNAVAILABLE', message: /no answer from clamd .* within 1\.0 s/ });
  const ms = Date.now() - t0;
  t.ok(ms >= 950 && ms < 3000, `gave up after ${ms} ms`);
  const t1 = Date.now();
  const st = await s.status();
  t.match(st, { available: false, signatures: 'none', detail: /no answer/ });
  t.ok(Date.now() - t1 < 3000, 'status() does not hang either');
});

t.test('answers PING and the EICAR check but stalls on the file: SCANNER_UNAVAILABLE after the per-file deadline', async (t) => {
  const port = await fakeClamd(t, { instream: (d) => (d.equals(EICAR) ? 'stream: Eicar FOUND' : null) });
  const s = scannerFor(port, 1);
  const t0 = Date.now();
  await t.rejects(s.scan(FILE), { code: 'SCANNER_UNAVAILABLE', message: /no answer from clamd .* within 1\.0 s/ });
  const ms = Date.now() - t0;
  t.ok(ms >= 950 && ms < 3000, `gave up after ${ms} ms`);
});

t.test('answers OK to everything (no signatures loaded): never clean', async (t) => {
  const port = await fakeClamd(t, { instream: () => 'stream: OK', version: 'ClamAV 1.4.6' });
  const s = scannerFor(port);
  await t.rejects(s.scan(FILE), { code: 'SCANNER_UNAVAILABLE', message: /no usable signatures/ });
  t.match(await s.status(), { available: false, signatures: 'none', version: 'ClamAV 1.4.6', detail: /EICAR/ });
});

t.test('odd replies: SCANNER_UNAVAILABLE', async (t) => {
  for (const reply of ['stream: OKAY', 'stream: Can\'t allocate memory ERROR', 'INSTREAM size limit exceeded. ERROR', 'UNKNOWN COMMAND', '', 'OK']) {
    const port = await fakeClamd(t, { instream: (d) => (d.equals(EICAR) ? 'stream: Eicar FOUND' : reply) });
    await t.rejects(scannerFor(port).scan(FILE), { code: 'SCANNER_UNAVAILABLE' }, JSON.stringify(reply));
  }
});

t.test('reply parsing is strict', async (t) => {
  t.same(parseScanReply({ reply: 'stream: OK', complete: true, bytes: 1 }), { verdict: 'clean' });
  t.throws(() => parseScanReply({ reply: 'stream: OK', complete: false, bytes: 1 }), { code: 'SCANNER_UNAVAILABLE' }, 'OK before the end of the file');
  t.same(parseScanReply({ reply: 'stream: Win.Test.EICAR_HDB-1 FOUND', complete: true, bytes: 1 }), { verdict: 'infected', signature: 'Win.Test.EICAR_HDB-1' });
  t.same(
    parseScanReply({ reply: 'stream: Win.Test.EICAR_HDB-1(44d88612fea8a8f36de82e1278abb02f:68) FOUND', complete: true, bytes: 1 }),
    { verdict: 'infected', signature: 'Win.Test.EICAR_HDB-1' },
    'ExtendedDetectionInfo suffix dropped',
  );
  t.throws(() => parseScanReply({ reply: 'stream: OK FOUND ERROR', complete: true, bytes: 1 }), { code: 'SCANNER_UNAVAILABLE' });
  t.same(parseVersion('ClamAV 1.4.6/27431/Tue Nov 25 09:34:02 2026'), { engine: '1.4.6', database: 27431 });
  t.same(parseVersion('ClamAV 1.4.6'), { engine: '1.4.6' });
  t.equal(parseVersion('PONG'), null);
});

t.test('an error of the file itself is rethrown as it is (not a scanner problem)', async (t) => {
  const port = await fakeClamd(t, { instream: detectsEicarOnly });
  await t.rejects(instream({ host: '127.0.0.1', port }, createReadStream(path.join(PYDICOM_DIR, 'no-such-file.dcm')), 5000), { code: 'ENOENT' });
});
