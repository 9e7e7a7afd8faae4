/**
 * Receives a C-STORE dataset as it arrives (P-DATA fragments) and streams it to a staging file behind a
 * Part 10 header built from the request: the bytes the sender sent are the bytes we keep, never re-encoded.
 * Memory is bounded: writes are coalesced up to COALESCE bytes, and the socket is paused while more than
 * HIGH_WATER bytes wait for the disk. Over the dataset cap, or on a write error, further data is discarded
 * and the outcome carries the error (the SCP answers with a failure status once the data has ended).
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { open, type FileHandle } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { AppError, toAppError } from '../errors.ts';

const COALESCE = 1024 * 1024;
const HIGH_WATER = 8 * 1024 * 1024;
const LOW_WATER = 2 * 1024 * 1024;

export interface StagedDataset {
  path: string;
  sha256: string;
  /** Dataset bytes received (without the Part 10 header). */
  bytes: number;
  /** The whole file (header and dataset) when it is small (KEEP_MAX), so it need not be read back. */
  content?: Buffer;
}

const KEEP_MAX = 1024 * 1024;

/** Enough of a Writable for dcmjs-dimse: write() always returns true (backpressure is applied to the socket). */
export class StagingWriter extends EventEmitter {
  readonly done: Promise<StagedDataset>;
  private fh: Promise<FileHandle>;
  private chain: Promise<unknown>;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private inFlight = 0;
  private hash = createHash('sha256');
  private bytes = 0;
  private error: AppError | undefined;
  private ended = false;
  private paused = false;
  private kept: Buffer[] | undefined = [];
  private keptBytes = 0;

  constructor(
    readonly path: string,
    header: Buffer,
    private readonly maxBytes: number,
    private readonly socket: Socket | undefined,
  ) {
    super();
    this.fh = open(path, 'wx');
    this.chain = this.fh.then((fh) => fh.write(header));
    this.chain.catch((e) => this.fail(e));
    this.hash.update(header);
    this.keep(header);
    let resolve!: (v: StagedDataset) => void;
    let reject!: (e: unknown) => void;
    this.done = new Promise((res, rej) => ((resolve = res), (reject = rej)));
    this.done.catch(() => undefined); // handled by whoever awaits it; never an unhandled rejection
    this.once('finished', (err?: AppError) =>
      err ? reject(err) : resolve({ path, sha256: this.hash.digest('hex'), bytes: this.bytes, content: this.kept && Buffer.concat(this.kept, this.keptBytes) }),
    );
  }

  private keep(chunk: Buffer): void {
    if (!this.kept) return;
    this.keptBytes += chunk.length;
    if (this.keptBytes > KEEP_MAX) this.kept = undefined;
    else this.kept.push(chunk);
  }

  private fail(e: unknown): void {
    if (!this.error) this.error = e instanceof AppError ? e : toAppError(e);
    this.pending = [];
    this.pendingBytes = 0;
    this.kept = undefined;
  }

  write(chunk: Buffer): boolean {
    if (this.ended) return true;
    this.bytes += chunk.length;
    if (this.error) return true;
    if (this.bytes > this.maxBytes) {
      this.fail(new AppError('TOO_LARGE', `The dataset is larger than the ${this.maxBytes} bytes this appliance accepts.`));
      return true;
    }
    this.hash.update(chunk);
    this.keep(chunk);
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= COALESCE) this.flush();
    return true;
  }

  private flush(): void {
    if (!this.pending.length) return;
    const buf = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    this.inFlight += buf.length;
    if (this.socket && !this.paused && this.inFlight > HIGH_WATER) {
      this.paused = true;
      this.socket.pause();
    }
    this.chain = this.chain.then(async () => {
      if (this.error) return;
      try {
        const fh = await this.fh;
        let off = 0;
        while (off < buf.length) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
      } catch (e) {
        this.fail(e);
      } finally {
        this.inFlight -= buf.length;
        if (this.paused && this.inFlight < LOW_WATER) {
          this.paused = false;
          this.socket?.resume();
        }
      }
    });
  }

  /** The dataset has ended: flush, fsync, close; `done` resolves (or rejects with the reason). */
  end(): this {
    if (this.ended) return this;
    this.ended = true;
    this.flush();
    this.chain
      .then(async () => {
        const fh = await this.fh;
        if (!this.error) await fh.sync();
        await fh.close();
      })
      .catch((e) => this.fail(e))
      .finally(() => this.emit('finished', this.error));
    return this;
  }

  /** Give up on this dataset (association aborted or closed mid-transfer). */
  abort(): void {
    this.fail(new AppError('TRUNCATED', 'The association ended before the dataset was complete.'));
    this.end();
  }
}
