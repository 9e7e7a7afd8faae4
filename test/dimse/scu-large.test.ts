/**
 * A ~300 MB multi-frame instance (generated here: a valid explicit VR little endian header and a big Pixel
 * Data value) sent to `storescp +B` with flat memory: the process's RSS and ArrayBuffer memory, sampled
 * during the send, must not grow by more than a small bound, and storescp must keep the same bytes.
 */
import t from 'tap';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, unlink, stat } from 'node:fs/promises';
import { sendInstances } from '../../appliance/dimse/store-scu.ts';
import { readHeader } from '../../appliance/dicom/header.ts';
import { startStoreScp } from '../helpers/dcmtk.ts';

const MB = 1024 * 1024;
const SOP_CLASS = '1.2.840.10008.5.1.4.1.1.7.3'; // Multi-frame Grayscale Word Secondary Capture
const ELE = '1.2.840.10008.1.2.1';

function el(group: number, element: number, vr: string, value: Buffer): Buffer {
  const long = ['OB', 'OW', 'SQ', 'UN', 'UT'].includes(vr);
  const h = Buffer.alloc(long ? 12 : 8);
  h.writeUInt16LE(group, 0);
  h.writeUInt16LE(element, 2);
  h.write(vr, 4, 'latin1');
  if (long) h.writeUInt32LE(value.length, 8);
  else h.writeUInt16LE(value.length, 6);
  return Buffer.concat([h, value]);
}
const str = (s: string, pad = ' ') => Buffer.from(s.length % 2 ? s + pad : s, 'latin1');
const uid = (s: string) => str(s, '\0');
const us = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
};

/** Write a multi-frame 16-bit image of `frames` 512x512 frames; returns its SOP Instance UID. */
async function writeLargeFile(file: string, frames: number): Promise<string> {
  const sopInstance = `2.25.${BigInt('0x' + createHash('sha1').update(file).digest('hex').slice(0, 30)).toString()}`;
  const meta = Buffer.concat([
    el(0x0002, 0x0001, 'OB', Buffer.from([0, 1])),
    el(0x0002, 0x0002, 'UI', uid(SOP_CLASS)),
    el(0x0002, 0x0003, 'UI', uid(sopInstance)),
    el(0x0002, 0x0010, 'UI', uid(ELE)),
    el(0x0002, 0x0012, 'UI', uid('2.25.1234')),
  ]);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(meta.length);
  const rows = 512;
  const cols = 512;
  const pixelBytes = rows * cols * 2 * frames;
  const header = Buffer.concat([
    Buffer.alloc(128),
    Buffer.from('DICM', 'latin1'),
    el(0x0002, 0x0000, 'UL', groupLength),
    meta,
    el(0x0008, 0x0016, 'UI', uid(SOP_CLASS)),
    el(0x0008, 0x0018, 'UI', uid(sopInstance)),
    el(0x0008, 0x0060, 'CS', str('OT')),
    el(0x0010, 0x0010, 'PN', str('Large^Test')),
    el(0x0010, 0x0020, 'LO', str('LARGE1')),
    el(0x0020, 0x000d, 'UI', uid(`${sopInstance}.1`)),
    el(0x0020, 0x000e, 'UI', uid(`${sopInstance}.2`)),
    el(0x0028, 0x0002, 'US', us(1)),
    el(0x0028, 0x0004, 'CS', str('MONOCHROME2')),
    el(0x0028, 0x0008, 'IS', str(String(frames))),
    el(0x0028, 0x0010, 'US', us(rows)),
    el(0x0028, 0x0011, 'US', us(cols)),
    el(0x0028, 0x0100, 'US', us(16)),
    el(0x0028, 0x0101, 'US', us(12)),
    el(0x0028, 0x0102, 'US', us(11)),
    el(0x0028, 0x0103, 'US', us(0)),
  ]);
  const pixelHeader = Buffer.alloc(12);
  pixelHeader.writeUInt16LE(0x7fe0, 0);
  pixelHeader.writeUInt16LE(0x0010, 2);
  pixelHeader.write('OW', 4, 'latin1');
  pixelHeader.writeUInt32LE(pixelBytes, 8);
  const fh = await open(file, 'w');
  try {
    await fh.write(Buffer.concat([header, pixelHeader]));
    const frame = Buffer.alloc(rows * cols * 2);
    for (let i = 0; i < frame.length; i += 2) frame.writeUInt16LE((i / 2) & 0x0fff, i);
    for (let f = 0; f < frames; f++) {
      frame.writeUInt16LE(f & 0x0fff, 0); // frames differ
      await fh.write(frame);
    }
  } finally {
    await fh.close();
  }
  return sopInstance;
}

async function sha256(file: string, start: number): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { start })) h.update(chunk as Buffer);
  return h.digest('hex');
}

t.test('a ~300 MB instance goes out with flat memory and arrives intact', async (t) => {
  const dir = t.testdir();
  const file = path.join(dir, 'large.dcm');
  let t0 = Date.now();
  const sopInstanceUID = await writeLargeFile(file, 600);
  t.comment(`generated in ${Date.now() - t0} ms`);
  t.teardown(() => unlink(file).catch(() => {}));
  const size = (await stat(file)).size;
  t.ok(size > 300 * 1000 * 1000, `generated ${Math.round(size / MB)} MiB`);
  const h = await readHeader(file);
  t.equal(h.sopInstanceUID, sopInstanceUID, 'the generated file parses');

  const scp = await startStoreScp({ dir: path.join(dir, 'received'), accept: 'all' });
  t.teardown(() => scp.stop());

  const base = process.memoryUsage();
  let peakRss = base.rss;
  let peakArrayBuffers = base.arrayBuffers;
  let samples = 0;
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakArrayBuffers = Math.max(peakArrayBuffers, m.arrayBuffers);
    samples++;
  }, 20);
  let outcome;
  t0 = Date.now();
  try {
    [outcome] = await sendInstances(scp.node, [{ path: file, sopClassUID: SOP_CLASS, sopInstanceUID, transferSyntaxUID: ELE }], {
      callingAeTitle: 'UPLINK',
      timeouts: { dimseMs: 60000 },
    });
  } finally {
    clearInterval(sampler);
  }
  t.comment(`sent in ${Date.now() - t0} ms`);
  t.equal(outcome.outcome, 'done', outcome.meaning);
  t.equal(outcome.bytesSent, size - h.datasetOffset, 'the whole data set was sent');
  const rssGrowth = (peakRss - base.rss) / MB;
  const abGrowth = (peakArrayBuffers - base.arrayBuffers) / MB;
  t.comment(`memory during the send (${samples} samples): RSS +${rssGrowth.toFixed(1)} MiB, ArrayBuffers +${abGrowth.toFixed(1)} MiB, file ${Math.round(size / MB)} MiB`);
  t.ok(samples >= 5, 'memory was sampled during the send');
  t.ok(rssGrowth < 64, `RSS grew by less than 64 MiB (${rssGrowth.toFixed(1)} MiB)`);
  t.ok(abGrowth < 64, `ArrayBuffer memory grew by less than 64 MiB (${abGrowth.toFixed(1)} MiB)`);

  const [received] = scp.files();
  t.ok(received, 'storescp wrote the file');
  const rh = await readHeader(received);
  t.equal(rh.sopInstanceUID, sopInstanceUID, 'it is our instance');
  t.equal(await sha256(received, rh.datasetOffset), await sha256(file, h.datasetOffset), 'storescp kept the same data set bytes');
  await unlink(received);
});
