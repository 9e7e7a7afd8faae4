/**
 * SHA-256 computed on a worker thread, so a long copy hashes on one core while it reads and writes on
 * another. The data is passed in SharedArrayBuffer-backed buffers (no copy, no transfer): the caller must
 * not touch a buffer until its `update` promise resolves. One worker serves every hash (lazily started,
 * unref'd: it never keeps the process alive); updates of one hash are applied in the order they are sent.
 */
import { Worker } from 'node:worker_threads';

const WORKER_CODE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
parentPort.on('message', (m) => {
  try {
    if (m.op === 'update') {
      let h = hashes.get(m.id);
      if (!h) hashes.set(m.id, (h = createHash('sha256')));
      h.update(new Uint8Array(m.sab, m.offset, m.n));
      parentPort.postMessage({ op: 'done', id: m.id, seq: m.seq });
    } else if (m.op === 'digest') {
      const h = hashes.get(m.id) ?? createHash('sha256');
      hashes.delete(m.id);
      parentPort.postMessage({ op: 'done', id: m.id, seq: m.seq, hex: h.digest('hex') });
    } else if (m.op === 'drop') {
      hashes.delete(m.id);
    }
  } catch (e) {
    parentPort.postMessage({ op: 'error', id: m.id, seq: m.seq, message: String(e && e.message || e) });
  }
});
`;

interface Pending {
  resolve(v: string | undefined): void;
  reject(e: Error): void;
}

let worker: Worker | null = null;
let nextId = 1;
let active = 0;
const pending = new Map<string, Pending>();

function getWorker(): Worker {
  if (worker) return worker;
  const w = new Worker(WORKER_CODE, { eval: true });
  w.unref();
  w.on('message', (m: { op: string; id: number; seq: number; hex?: string; message?: string }) => {
    const key = `${m.id}:${m.seq}`;
    const p = pending.get(key);
    if (!p) return;
    pending.delete(key);
    if (m.op === 'error') p.reject(new Error(`hash worker: ${m.message}`));
    else p.resolve(m.hex);
  });
  const fail = (e: Error) => {
    worker = null;
    active = 0;
    for (const p of pending.values()) p.reject(e);
    pending.clear();
  };
  w.on('error', fail);
  w.on('exit', (code) => fail(new Error(`hash worker exited (${code})`)));
  worker = w;
  return w;
}

export interface ParallelHash {
  /** Hash `n` bytes of `buf` (which must be backed by a SharedArrayBuffer); resolves once the worker has read them. */
  update(buf: Buffer, n: number): Promise<void>;
  digest(): Promise<string>;
  /** Forget the hash (after a failure). */
  drop(): void;
}

export function isShared(buf: Buffer): boolean {
  return buf.buffer instanceof SharedArrayBuffer;
}

/** A buffer the worker can read without a copy. */
export function sharedBuffer(size: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(size));
}

export function createParallelHash(): ParallelHash {
  const w = getWorker();
  const id = nextId++;
  let seq = 0;
  // Keep the worker referenced while any hash is under way (it is unref'd between hashes).
  if (active++ === 0) w.ref();
  let open = true;
  const release = () => {
    if (open) {
      open = false;
      if (--active === 0) w.unref();
    }
  };
  const send = (msg: Record<string, unknown>) =>
    new Promise<string | undefined>((resolve, reject) => {
      const s = seq++;
      pending.set(`${id}:${s}`, { resolve, reject });
      w.postMessage({ ...msg, id, seq: s });
    });
  return {
    async update(buf, n) {
      if (!isShared(buf)) throw new Error('parallel hash needs a SharedArrayBuffer-backed buffer');
      await send({ op: 'update', sab: buf.buffer, offset: buf.byteOffset, n });
    },
    async digest() {
      try {
        return (await send({ op: 'digest' }))!;
      } finally {
        release();
      }
    },
    drop() {
      if (!open) return;
      w.postMessage({ op: 'drop', id, seq: -1 });
      release();
    },
  };
}
