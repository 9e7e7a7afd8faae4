/**
 * C-STORE SCU when things go wrong, and what each status means: a wrong called AE (Orthanc), nobody
 * listening, a peer that accepts the association and then never answers, rejections, aborts, scripted
 * statuses, the peer's PDU size limit, the presentation-context limit, cancellation.
 *
 * The fake peers here are written from PS3.8 in this file, independent of the code under test.
 */
import t from 'tap';
import net from 'node:net';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { readHeader } from '../../appliance/dicom/header.ts';
import { sendInstances, type StoreFile } from '../../appliance/dimse/store-scu.ts';
import { echo } from '../../appliance/dimse/echo-scu.ts';
import { freePort } from '../helpers/net.ts';
import { PYDICOM_DIR } from '../helpers/samples.ts';
import { startOrthanc } from '../helpers/orthanc.ts';

const ELE = '1.2.840.10008.1.2.1';
const ILE = '1.2.840.10008.1.2';

async function sample(name: string): Promise<StoreFile> {
  const p = path.join(PYDICOM_DIR, name);
  const h = await readHeader(p);
  return { path: p, sopClassUID: h.sopClassUID, sopInstanceUID: h.sopInstanceUID, transferSyntaxUID: h.transferSyntaxUID };
}

function datasetOf(b: Buffer): Buffer {
  let o = 132;
  while (o + 8 <= b.length && b.readUInt16LE(o) === 0x0002) {
    const vr = b.toString('latin1', o + 4, o + 6);
    const long = ['OB', 'OW', 'UN', 'SQ', 'UT'].includes(vr);
    o += long ? 12 + b.readUInt32LE(o + 8) : 8 + b.readUInt16LE(o + 6);
  }
  return b.subarray(o);
}

// ---------- a fake acceptor ----------

interface Proposed {
  id: number;
  abstractSyntax: string;
  transferSyntaxes: string[];
}

interface Received {
  contextId: number;
  command: Buffer;
  dataset: Buffer;
}

interface FakeOptions {
  /** Answer the A-ASSOCIATE-RQ with this A-ASSOCIATE-RJ instead of accepting. */
  reject?: { result: number; source: number; reason: number };
  /** Never answer a C-STORE. */
  silent?: boolean;
  /** Status for the n-th C-STORE (0-based) of the whole run. Default success. */
  status?: (n: number) => number;
  /** Send an A-ABORT instead of answering the n-th C-STORE. */
  abortAt?: number;
  /** Maximum PDU length announced in the A-ASSOCIATE-AC. */
  maxPdu?: number;
  /** Choose a context's result and syntax (default: accept the first proposed syntax). */
  choose?: (pc: Proposed) => { result: number; ts: string };
}

interface Fake {
  port: number;
  node: { aeTitle: string; host: string; port: number };
  associations: Proposed[][];
  messages: Received[];
  /** Lengths of every P-DATA-TF PDU received (variable part). */
  pdataLengths: number[];
  /** PDU types received, in order, per connection. */
  pduTypes: number[][];
  /** 'pdu' (type) for every PDU received, 'message' for every complete C-STORE request. */
  events: EventEmitter;
  close(): Promise<void>;
}

/** Resolves once `pred` holds, checked now and at every `event` of `em`; rejects after 5 s. */
function until(em: EventEmitter, event: string, pred: () => boolean): Promise<void> {
  if (pred()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      em.off(event, check);
      reject(new Error(`timed out waiting for ${event}`));
    }, 5000);
    const check = () => {
      if (!pred()) return;
      clearTimeout(timer);
      em.off(event, check);
      resolve();
    };
    em.on(event, check);
  });
}

const uidItem = (type: number, uid: string) => {
  const v = Buffer.from(uid, 'latin1');
  const h = Buffer.alloc(4);
  h[0] = type;
  h.writeUInt16BE(v.length, 2);
  return Buffer.concat([h, v]);
};
const pdu = (type: number, body: Buffer) => {
  const h = Buffer.alloc(6);
  h[0] = type;
  h.writeUInt32BE(body.length, 2);
  return Buffer.concat([h, body]);
};

function commandElements(cmd: Buffer): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  for (let o = 0; o + 8 <= cmd.length; ) {
    const el = cmd.readUInt16LE(o + 2);
    const len = cmd.readUInt32LE(o + 4);
    m.set(el, cmd.subarray(o + 8, o + 8 + len));
    o += 8 + len;
  }
  return m;
}

function storeResponse(rq: Buffer, status: number): Buffer {
  const e = commandElements(rq);
  const parts: Buffer[] = [];
  const add = (el: number, v: Buffer) => {
    const h = Buffer.alloc(8);
    h.writeUInt16LE(0, 0);
    h.writeUInt16LE(el, 2);
    h.writeUInt32LE(v.length, 4);
    parts.push(h, v);
  };
  const us = (n: number) => {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(n);
    return b;
  };
  add(0x0002, e.get(0x0002)!);
  add(0x0100, us(0x8001));
  add(0x0120, e.get(0x0110)!);
  add(0x0800, us(0x0101));
  add(0x0900, us(status));
  add(0x1000, e.get(0x1000)!);
  const body = Buffer.concat(parts);
  const gl = Buffer.alloc(12);
  gl.writeUInt32LE(4, 4);
  gl.writeUInt32LE(body.length, 8);
  return Buffer.concat([gl, body]);
}

function pdata(contextId: number, command: Buffer): Buffer {
  const h = Buffer.alloc(6);
  h.writeUInt32BE(command.length + 2, 0);
  h[4] = contextId;
  h[5] = 0x03; // command, last
  return pdu(0x04, Buffer.concat([h, command]));
}

async function startFake(opts: FakeOptions = {}): Promise<Fake> {
  const port = await freePort();
  const fake: Fake = {
    port,
    node: { aeTitle: 'FAKE', host: '127.0.0.1', port },
    associations: [],
    messages: [],
    pdataLengths: [],
    pduTypes: [],
    events: new EventEmitter(),
    close: async () => {},
  };
  let storeCount = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    const types: number[] = [];
    fake.pduTypes.push(types);
    let buf = Buffer.alloc(0);
    let cmd: Buffer[] = [];
    let ds: Buffer[] = [];
    let command: Buffer | undefined;
    let contextId = 0;
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 6 && buf.length >= 6 + buf.readUInt32BE(2)) {
        const type = buf[0];
        const body = buf.subarray(6, 6 + buf.readUInt32BE(2));
        buf = buf.subarray(6 + body.length);
        types.push(type);
        fake.events.emit('pdu', type);
        if (type === 0x01) {
          const proposed: Proposed[] = [];
          for (let o = 68; o + 4 <= body.length; ) {
            const it = body[o];
            const len = body.readUInt16BE(o + 2);
            if (it === 0x20) {
              const pc: Proposed = { id: body[o + 4], abstractSyntax: '', transferSyntaxes: [] };
              for (let p = o + 8; p < o + 4 + len; ) {
                const st = body[p];
                const sl = body.readUInt16BE(p + 2);
                const uid = body.toString('latin1', p + 4, p + 4 + sl).replace(/\0+$/, '');
                if (st === 0x30) pc.abstractSyntax = uid;
                else pc.transferSyntaxes.push(uid);
                p += 4 + sl;
              }
              proposed.push(pc);
            }
            o += 4 + len;
          }
          fake.associations.push(proposed);
          if (opts.reject) {
            sock.write(pdu(0x03, Buffer.from([0, opts.reject.result, opts.reject.source, opts.reject.reason])));
            continue;
          }
          const fixed = Buffer.from(body.subarray(0, 68));
          const items = [uidItem(0x10, '1.2.840.10008.3.1.1.1')];
          for (const pc of proposed) {
            const c = opts.choose ? opts.choose(pc) : { result: 0, ts: pc.transferSyntaxes[0] };
            const sub = uidItem(0x40, c.ts);
            const head = Buffer.from([0x21, 0, 0, 0, pc.id, 0, c.result, 0]);
            head.writeUInt16BE(4 + sub.length, 2);
            items.push(head, sub);
          }
          const max = Buffer.alloc(8);
          max[0] = 0x51;
          max.writeUInt16BE(4, 2);
          max.writeUInt32BE(opts.maxPdu ?? 16384, 4);
          const user = Buffer.concat([max, uidItem(0x52, '1.2.3.4')]);
          const uh = Buffer.from([0x50, 0, 0, 0]);
          uh.writeUInt16BE(user.length, 2);
          items.push(uh, user);
          sock.write(pdu(0x02, Buffer.concat([fixed, ...items])));
        } else if (type === 0x04) {
          fake.pdataLengths.push(body.length);
          for (let o = 0; o < body.length; ) {
            const len = body.readUInt32BE(o);
            contextId = body[o + 4];
            const ctrl = body[o + 5];
            const v = Buffer.from(body.subarray(o + 6, o + 4 + len));
            o += 4 + len;
            if (ctrl & 1) {
              cmd.push(v);
              if (ctrl & 2) command = Buffer.concat(cmd);
            } else {
              ds.push(v);
              if (ctrl & 2 && command) {
                fake.messages.push({ contextId, command, dataset: Buffer.concat(ds) });
                fake.events.emit('message');
                const n = storeCount++;
                if (opts.abortAt === n) sock.end(pdu(0x07, Buffer.from([0, 0, 2, 0])));
                else if (!opts.silent) sock.write(pdata(contextId, storeResponse(command, opts.status ? opts.status(n) : 0)));
                cmd = [];
                ds = [];
                command = undefined;
              }
            }
          }
        } else if (type === 0x05) {
          sock.end(pdu(0x06, Buffer.alloc(4)));
        } else if (type === 0x07) {
          sock.end();
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  fake.close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return fake;
}

// ---------- tests ----------

t.test('wrong called AE: failed, with the rejection in words (Orthanc checks the called AE)', async (t) => {
  const orthanc = await startOrthanc({ dir: t.testdir() });
  t.teardown(() => orthanc.stop());
  const files = [await sample('CT_small.dcm'), await sample('MR_small.dcm')];
  const outcomes = await sendInstances({ ...orthanc.node, aeTitle: 'NOT_ORTHANC' }, files, { callingAeTitle: 'UPLINK' });
  for (const o of outcomes) {
    t.equal(o.outcome, 'failed', 'a permanent rejection needs an admin: failed');
    t.match(o.meaning, /rejected \(permanent\).*called AE title not recognised/, `says why: ${o.meaning}`);
    t.equal(o.status, undefined, 'no DIMSE status');
  }
  t.equal(await orthanc.countInstances(), 0, 'nothing stored');
  const e = await echo({ ...orthanc.node, aeTitle: 'NOT_ORTHANC' }, { callingAeTitle: 'UPLINK' });
  t.notOk(e.ok, 'C-ECHO with the wrong AE fails');
  t.match(e.detail, /called AE title not recognised/, e.detail);
});

t.test('nobody listening: retry', async (t) => {
  const port = await freePort();
  const files = [await sample('CT_small.dcm')];
  const outcomes = await sendInstances({ aeTitle: 'NOBODY', host: '127.0.0.1', port }, files, { callingAeTitle: 'UPLINK' });
  t.equal(outcomes[0].outcome, 'retry');
  t.match(outcomes[0].meaning, /connection refused/);
});

t.test('a peer that accepts the association and never answers: retry after the DIMSE timeout, and an abort', async (t) => {
  const fake = await startFake({ silent: true });
  t.teardown(() => fake.close());
  const files = [await sample('CT_small.dcm'), await sample('MR_small.dcm')];
  const t0 = Date.now();
  const outcomes = await sendInstances(fake.node, files, { callingAeTitle: 'UPLINK', timeouts: { dimseMs: 800 } });
  t.ok(Date.now() - t0 >= 800, 'waited for the DIMSE timeout');
  t.equal(outcomes[0].outcome, 'retry', 'unanswered request: retry, never done');
  t.match(outcomes[0].meaning, /no response .* within 800 ms/);
  t.equal(outcomes[0].status, undefined);
  t.equal(outcomes[1].outcome, 'retry', 'the next one was not sent and is retried');
  t.match(outcomes[1].meaning, /not sent/);
  t.equal(fake.messages.length, 1, 'one request was sent: one at a time');
  await until(fake.events, 'pdu', () => fake.pduTypes[0].includes(0x07));
  t.ok(fake.pduTypes[0].includes(0x07), 'the association was aborted (A-ABORT received)');
});

t.test('what each C-STORE status means', async (t) => {
  const statuses = [0x0000, 0xb000, 0x0111, 0xa700, 0xa900, 0xc000, 0x0122, 0x0001, 0xb007, 0x0213, 0xc210];
  const expected = ['done', 'done', 'done', 'retry', 'failed', 'failed', 'failed', 'done', 'done', 'retry', 'failed'];
  const fake = await startFake({ status: (n) => statuses[n] });
  t.teardown(() => fake.close());
  const ct = await sample('CT_small.dcm');
  // Safety first: a file that holds another SOP instance than the one asked for is never sent.
  const wrong = await sendInstances(fake.node, [{ ...ct, sopInstanceUID: `${ct.sopInstanceUID}.9` }], { callingAeTitle: 'UPLINK' });
  t.equal(wrong[0].outcome, 'failed', 'file / request SOP instance mismatch: failed');
  t.match(wrong[0].meaning, /holds SOP instance/);
  t.equal(fake.messages.length, 0, 'nothing was sent for it');

  const real = [ct];
  for (let i = 0; i < statuses.length - 1; i++) real.push(ct);
  const outcomes2 = await sendInstances(fake.node, real, { callingAeTitle: 'UPLINK' });
  t.same(
    outcomes2.map((o) => o.outcome),
    expected,
    'success, warnings and duplicate: done; A7xx and resource limitation: retry; A9xx, Cxxx, refusals: failed',
  );
  t.same(
    outcomes2.map((o) => o.status),
    statuses,
    'statuses recorded',
  );
  t.match(outcomes2[2].meaning, /Duplicate SOP instance.*0x0111/);
  t.match(outcomes2[3].meaning, /out of resources.*0xA700/);
  t.match(outcomes2[4].meaning, /does not match SOP class.*0xA900/);
  t.match(outcomes2[5].meaning, /cannot understand.*0xC000/);
  t.match(outcomes2[6].meaning, /SOP class not supported/);
  t.equal(fake.messages.length, statuses.length, 'every request sent, one at a time');
  t.same(fake.pduTypes.at(-1)!.slice(-1), [0x05], 'the association ended with an A-RELEASE-RQ');
});

t.test('rejections and aborts', async (t) => {
  const files = [await sample('CT_small.dcm'), await sample('MR_small.dcm')];
  const transient = await startFake({ reject: { result: 2, source: 3, reason: 1 } });
  t.teardown(() => transient.close());
  const o1 = await sendInstances(transient.node, files, { callingAeTitle: 'UPLINK' });
  t.same(
    o1.map((o) => o.outcome),
    ['retry', 'retry'],
    'a transient rejection: retry',
  );
  t.match(o1[0].meaning, /transient.*temporary congestion/);

  const calling = await startFake({ reject: { result: 1, source: 1, reason: 3 } });
  t.teardown(() => calling.close());
  const o2 = await sendInstances(calling.node, files, { callingAeTitle: 'UPLINK' });
  t.same(
    o2.map((o) => o.outcome),
    ['failed', 'failed'],
  );
  t.match(o2[0].meaning, /calling AE title not recognised/);

  const aborting = await startFake({ abortAt: 0 });
  t.teardown(() => aborting.close());
  const o3 = await sendInstances(aborting.node, files, { callingAeTitle: 'UPLINK' });
  t.same(
    o3.map((o) => o.outcome),
    ['retry', 'retry'],
    'aborted before answering: retry',
  );
  t.match(o3[0].meaning, /aborted by the peer/);
});

t.test("the peer's maximum PDU length is respected and the data set arrives whole", async (t) => {
  const fake = await startFake({ maxPdu: 4096 });
  t.teardown(() => fake.close());
  const f = await sample('MR_small.dcm');
  const [o] = await sendInstances(fake.node, [f], { callingAeTitle: 'UPLINK' });
  t.equal(o.outcome, 'done');
  t.ok(fake.pdataLengths.length > 3, `data went out in several PDUs (${fake.pdataLengths.length})`);
  t.ok(Math.max(...fake.pdataLengths) <= 4096, `no PDU above 4096 bytes (largest ${Math.max(...fake.pdataLengths)})`);
  t.ok(fake.messages[0].dataset.equals(datasetOf(readFileSync(f.path))), 'the data set received is the file minus its meta group');
  t.equal(o.bytesSent, fake.messages[0].dataset.length);
});

t.test('presentation contexts: one per stored syntax plus a fallback, split over associations at the limit', async (t) => {
  const fake = await startFake();
  t.teardown(() => fake.close());
  const files = [await sample('CT_small.dcm'), await sample('JPEG2000.dcm'), await sample('MR_small_implicit.dcm'), await sample('rtplan.dcm')];
  const outcomes = await sendInstances(fake.node, files, { callingAeTitle: 'UPLINK', maxContexts: 2 });
  t.same(
    outcomes.map((o) => o.outcome),
    ['done', 'done', 'done', 'done'],
  );
  t.equal(fake.associations.length, 4, 'two contexts per association: four associations');
  for (const a of fake.associations) t.ok(a.length <= 2, 'at most two contexts each');
  const ct = fake.associations.find((a) => a[0].abstractSyntax === files[0].sopClassUID)!;
  t.same(
    ct.map((c) => c.transferSyntaxes),
    [[ELE], [ILE]],
    'explicit VR LE file: its syntax alone, then implicit as the fallback',
  );
  const j2k = fake.associations.find((a) => a[0].abstractSyntax === files[1].sopClassUID)!;
  t.same(
    j2k.map((c) => c.transferSyntaxes),
    [[files[1].transferSyntaxUID], [ELE, ILE]],
    'compressed file: its syntax alone, then explicit and implicit VR LE',
  );
  for (const a of fake.associations) t.same(a.map((c) => c.id), a.map((_c, i) => 1 + 2 * i), 'odd context ids');

  const fake2 = await startFake();
  t.teardown(() => fake2.close());
  await sendInstances(fake2.node, files, { callingAeTitle: 'UPLINK' });
  t.equal(fake2.associations.length, 1, 'without a tight limit: one association');
  t.equal(fake2.associations[0].length, 8, 'four classes, two contexts each');
});

t.test('the peer picks the fallback context: transcoded and recorded', async (t) => {
  // Accept only the explicit/implicit fallback; refuse the JPEG 2000 context.
  const fake = await startFake({
    choose: (pc) => (pc.transferSyntaxes.length > 1 ? { result: 0, ts: ILE } : { result: 4, ts: pc.transferSyntaxes[0] }),
  });
  t.teardown(() => fake.close());
  const f = await sample('JPEG2000.dcm');
  const [o] = await sendInstances(fake.node, [f], { callingAeTitle: 'UPLINK' });
  t.equal(o.outcome, 'done');
  t.same(o.transcoded, { from: f.transferSyntaxUID, to: ILE });
  t.equal(fake.messages[0].contextId, 3, 'sent on the fallback context');
});

t.test('cancelling aborts the association; what is not done is retried', async (t) => {
  const fake = await startFake({ silent: true });
  t.teardown(() => fake.close());
  const files = [await sample('CT_small.dcm'), await sample('MR_small.dcm')];
  const ac = new AbortController();
  const sending = sendInstances(fake.node, files, { callingAeTitle: 'UPLINK', signal: ac.signal, timeouts: { dimseMs: 30000 } });
  await until(fake.events, 'message', () => fake.messages.length > 0);
  const t0 = Date.now();
  ac.abort();
  const outcomes = await sending;
  t.ok(Date.now() - t0 < 5000, 'returns promptly');
  t.same(
    outcomes.map((o) => o.outcome),
    ['retry', 'retry'],
  );
  t.match(outcomes[0].meaning, /cancelled/);
});

t.test('an invalid AE title is refused before connecting: failed', async (t) => {
  const fake = await startFake();
  t.teardown(() => fake.close());
  const [o] = await sendInstances({ ...fake.node, aeTitle: 'A_TITLE_LONGER_THAN_16' }, [await sample('CT_small.dcm')], { callingAeTitle: 'UPLINK' });
  t.equal(o.outcome, 'failed');
  t.match(o.meaning, /called AE title "A_TITLE_LONGER_THAN_16" is not valid/);
  t.equal(fake.associations.length, 0, 'nothing was sent');
});

t.test('the file is the truth: missing files fail, a wrong or missing stored syntax is corrected', async (t) => {
  const fake = await startFake();
  t.teardown(() => fake.close());
  const ct = await sample('CT_small.dcm');
  const j2k = await sample('JPEG2000.dcm');
  const outcomes = await sendInstances(
    fake.node,
    [
      { ...ct, path: path.join(t.testdir(), 'gone.dcm') },
      { ...ct, transferSyntaxUID: '' },
      { ...j2k, transferSyntaxUID: ELE },
    ],
    { callingAeTitle: 'UPLINK' },
  );
  t.equal(outcomes[0].outcome, 'failed', 'missing file: failed');
  t.match(outcomes[0].meaning, /cannot be read.*ENOENT/);
  t.equal(outcomes[1].outcome, 'done', 'no stored syntax given: read from the file');
  t.notOk(outcomes[1].transcoded);
  t.equal(outcomes[2].outcome, 'done', 'index says explicit VR LE, file is JPEG 2000');
  t.same(outcomes[2].transcoded, { from: j2k.transferSyntaxUID, to: ELE }, 'sent as what it is: transcoded to the context that was negotiated');
});

t.test('Orthanc down: retry; back with the same storage: the rest arrives, nothing twice', async (t) => {
  const orthanc = await startOrthanc({ dir: t.testdir() });
  t.teardown(() => orthanc.stop());
  const ct = await sample('CT_small.dcm');
  const mr = await sample('MR_small.dcm');
  t.same((await sendInstances(orthanc.node, [ct], { callingAeTitle: 'UPLINK' })).map((o) => o.outcome), ['done']);

  await orthanc.stop();
  const down = await sendInstances(orthanc.node, [ct, mr], { callingAeTitle: 'UPLINK' });
  t.same(
    down.map((o) => o.outcome),
    ['retry', 'retry'],
    'PACS down: retry',
  );
  const e = await echo(orthanc.node, { callingAeTitle: 'UPLINK' });
  t.notOk(e.ok, `C-ECHO says it is down: ${e.detail}`);

  await orthanc.restart();
  t.equal(await orthanc.countInstances(), 1, 'what it had before is still there');
  const back = await sendInstances(orthanc.node, [ct, mr], { callingAeTitle: 'UPLINK' });
  t.same(
    back.map((o) => o.outcome),
    ['done', 'done'],
    'resent: done (the one it had counts as delivered)',
  );
  t.equal(await orthanc.countInstances(), 2, 'each instance once');
});
