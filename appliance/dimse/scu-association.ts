/**
 * One SCU association over TCP: connect, negotiate, send DIMSE messages whose data set is written as
 * P-DATA-TF PDUs *as the socket drains*, receive responses, release or abort. Used by store-scu, echo-scu
 * and find-scu.
 *
 * Why our own and not dcmjs-dimse's Client/Network (0.3.3):
 * - its `_sendPDataTF` builds every PDU of a data set up front and writes them all at once with no
 *   backpressure (a 300 MB instance costs 300+ MB of RAM, more with re-encoding);
 * - it takes the data set bytes from `Dataset.getDenaturalizedDataset()`, a re-encoding that drops private
 *   tags and rewrites text, where we must send the stored bytes untouched;
 * - a request with no accepted presentation context is skipped with only a log line, and its timers
 *   abort the connection without telling the request: a missing status would look like nothing at all;
 * - the Network class and the PDU classes are not exported.
 * Here every failure becomes a `ScuError` that says, in words, what happened and whether a retry can help;
 * nothing is skipped silently. dcmjs-dimse still encodes/decodes command sets and C-FIND identifiers
 * (command-set.ts) and does the transcoding (scu-transcode.ts).
 */
import net from 'node:net';
import type { Logger } from '../log.ts';
import {
  decodeAbort,
  decodeAssociateAC,
  decodeAssociateRJ,
  decodePData,
  describeAbort,
  describeReject,
  encodeAbort,
  encodeAssociateRQ,
  encodeReleaseRP,
  encodeReleaseRQ,
  pdataHeader,
  PduSplitter,
  PduType,
  type ContextResult,
  type ProposedContext,
  type RawPdu,
} from './scu-pdu.ts';

/** What a failure means for the instances it concerns: try again later, or needs someone to act. */
export type Disposition = 'retry' | 'failed';

export class ScuError extends Error {
  constructor(
    readonly disposition: Disposition,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ScuError';
  }
}

export interface ScuNode {
  aeTitle: string;
  host: string;
  port: number;
}

export interface ScuTimeouts {
  /** TCP connection establishment. */
  connectMs: number;
  /** From connection to A-ASSOCIATE-AC/RJ, and for A-RELEASE-RP. */
  associationMs: number;
  /** Waiting for a DIMSE response once a request is written, and longest stall while the peer does not read. */
  dimseMs: number;
}

export const defaultTimeouts: ScuTimeouts = { connectMs: 10_000, associationMs: 30_000, dimseMs: 60_000 };

export interface OpenOptions {
  callingAeTitle: string;
  contexts: ProposedContext[];
  /** Largest PDU we accept from the peer (A-ASSOCIATE-RQ maximum length). Default 262144. */
  maxPduBytes?: number;
  timeouts?: Partial<ScuTimeouts>;
  signal?: AbortSignal;
  logger?: Logger;
}

export interface NegotiatedContext extends ContextResult {
  abstractSyntax: string;
  proposed: string[];
}

export interface DimseMessage {
  contextId: number;
  command: Buffer;
  dataset?: Buffer;
}

/** A data set to send, as blocks; the last block says so (it may be empty). */
export interface DataBlock {
  data: Buffer;
  last: boolean;
}

/** Hard cap on one incoming PDU, whatever we advertised (protects against a broken peer). */
const MAX_INCOMING_PDU = 16 * 1024 * 1024;
/** Largest PDV we put in one PDU when the peer sets no limit (maximum length 0). */
const UNLIMITED_PDU_DATA = 1024 * 1024;

type State = 'connecting' | 'requested' | 'open' | 'releasing' | 'closed';

/** Reads (0000,0800) Command Data Set Type from an implicit VR little endian command set. */
export function commandHasDataset(command: Buffer): boolean {
  let o = 0;
  while (o + 8 <= command.length) {
    const group = command.readUInt16LE(o);
    const element = command.readUInt16LE(o + 2);
    const len = command.readUInt32LE(o + 4);
    if (group === 0 && element === 0x0800 && len >= 2) return command.readUInt16LE(o + 8) !== 0x0101;
    o += 8 + len;
  }
  return false;
}

function socketErrorText(err: NodeJS.ErrnoException, node: ScuNode): string {
  const where = `${node.host}:${node.port}`;
  switch (err.code) {
    case 'ECONNREFUSED':
      return `connection refused by ${where} (nothing listens there)`;
    case 'ECONNRESET':
      return `connection to ${where} reset by the peer`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${where} is unreachable`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `host name ${node.host} cannot be resolved`;
    case 'EPIPE':
      return `connection to ${where} closed by the peer while sending`;
    default:
      return `network error with ${where}: ${err.message}`;
  }
}

export class ScuAssociation {
  readonly contexts = new Map<number, NegotiatedContext>();
  /** The peer's maximum PDU length as negotiated (0: none). */
  peerMaxPdu = 0;
  peerImplementation = '';
  bytesSent = 0;

  private readonly socket: net.Socket;
  private readonly splitter: PduSplitter;
  private readonly timeouts: ScuTimeouts;
  private readonly log: Logger | undefined;
  private state: State = 'connecting';
  private failure: ScuError | undefined;
  private readonly failListeners = new Set<(e: ScuError) => void>();
  private readonly inbox: DimseMessage[] = [];
  private inboxWaiter: (() => void) | undefined;
  private assembling: { contextId: number; cmd: Buffer[]; ds: Buffer[]; command?: Buffer } | undefined;
  private onAssociate: ((e?: ScuError) => void) | undefined;
  private onReleased: (() => void) | undefined;
  private readonly abortHandler: () => void;

  private constructor(
    readonly node: ScuNode,
    private readonly opts: OpenOptions,
  ) {
    this.timeouts = { ...defaultTimeouts, ...opts.timeouts };
    this.log = opts.logger;
    this.splitter = new PduSplitter(Math.max(MAX_INCOMING_PDU, opts.maxPduBytes ?? 0));
    this.socket = new net.Socket();
    this.socket.setNoDelay(true);
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (err: NodeJS.ErrnoException) => this.fail(new ScuError('retry', socketErrorText(err, node), { cause: err })));
    this.socket.on('close', () => {
      if (this.state === 'closed') return;
      const during = this.state === 'connecting' ? 'before it connected' : this.state === 'requested' ? 'during association negotiation' : 'during the association';
      this.fail(new ScuError('retry', `connection to ${node.host}:${node.port} closed by the peer ${during}`));
    });
    this.abortHandler = () => this.abort(new ScuError('retry', 'sending was cancelled'));
  }

  /** Connect and negotiate. Resolves once A-ASSOCIATE-AC arrived; throws ScuError otherwise. */
  static async open(node: ScuNode, opts: OpenOptions): Promise<ScuAssociation> {
    if (opts.contexts.length === 0 || opts.contexts.length > 128) throw new RangeError(`an association proposes 1..128 presentation contexts, not ${opts.contexts.length}`);
    for (const [role, ae] of [
      ['called', node.aeTitle],
      ['calling', opts.callingAeTitle],
    ] as const) {
      // PS3.5 6.2 (AE): 1..16 characters, no backslash or control characters, not only spaces.
      if (!ae.trim() || ae.length > 16 || /[\\\x00-\x1f\x7f]/.test(ae)) throw new ScuError('failed', `the ${role} AE title "${ae}" is not valid (1 to 16 characters, no backslash)`);
    }
    const a = new ScuAssociation(node, opts);
    await a.connect();
    return a;
  }

  private connect(): Promise<void> {
    const { signal } = this.opts;
    if (signal?.aborted) return Promise.reject(new ScuError('retry', 'sending was cancelled'));
    signal?.addEventListener('abort', this.abortHandler, { once: true });
    return new Promise<void>((resolve, reject) => {
      const connectTimer = setTimeout(
        () => this.fail(new ScuError('retry', `no TCP connection to ${this.node.host}:${this.node.port} within ${this.timeouts.connectMs} ms`)),
        this.timeouts.connectMs,
      );
      let assocTimer: NodeJS.Timeout | undefined;
      const settle = (e?: ScuError) => {
        clearTimeout(connectTimer);
        clearTimeout(assocTimer);
        this.failListeners.delete(settle);
        this.onAssociate = undefined;
        if (e) reject(e);
        else resolve();
      };
      this.failListeners.add(settle);
      this.onAssociate = settle;
      this.socket.connect({ host: this.node.host, port: this.node.port }, () => {
        clearTimeout(connectTimer);
        if (this.failure) return;
        this.state = 'requested';
        assocTimer = setTimeout(
          () => this.abort(new ScuError('retry', `no answer to the association request from ${this.node.aeTitle} within ${this.timeouts.associationMs} ms`)),
          this.timeouts.associationMs,
        );
        const rq = encodeAssociateRQ({
          calledAeTitle: this.node.aeTitle,
          callingAeTitle: this.opts.callingAeTitle,
          contexts: this.opts.contexts,
          maxPduLength: this.opts.maxPduBytes ?? 262144,
        });
        this.socket.write(rq);
      });
    });
  }

  get isOpen(): boolean {
    return this.state === 'open' && !this.failure;
  }

  /** Accepted contexts for an abstract syntax. */
  acceptedFor(abstractSyntax: string): NegotiatedContext[] {
    return [...this.contexts.values()].filter((c) => c.abstractSyntax === abstractSyntax && c.result === 0);
  }

  /** Largest data length of one PDV we may send. */
  get maxPdvData(): number {
    return this.peerMaxPdu === 0 ? UNLIMITED_PDU_DATA : Math.max(1, this.peerMaxPdu - 6);
  }

  private onData(chunk: Buffer): void {
    let pdus: RawPdu[];
    try {
      pdus = this.splitter.push(chunk);
    } catch (e) {
      this.abort(new ScuError('retry', `malformed data from the peer: ${(e as Error).message}`), 2, 6);
      return;
    }
    for (const p of pdus) {
      if (this.failure) return;
      try {
        this.onPdu(p);
      } catch (e) {
        this.abort(new ScuError('retry', `malformed PDU from the peer: ${(e as Error).message}`), 2, 6);
        return;
      }
    }
  }

  private onPdu(p: RawPdu): void {
    switch (p.type) {
      case PduType.AssociateAC: {
        if (this.state !== 'requested') return this.abort(new ScuError('retry', 'unexpected A-ASSOCIATE-AC from the peer'), 2, 2);
        const ac = decodeAssociateAC(p.body);
        for (const pc of this.opts.contexts) {
          const r = ac.contexts.get(pc.id);
          this.contexts.set(pc.id, {
            id: pc.id,
            abstractSyntax: pc.abstractSyntax,
            proposed: pc.transferSyntaxes,
            result: r ? r.result : 2,
            transferSyntax: r && r.result === 0 ? r.transferSyntax : '',
          });
        }
        this.peerMaxPdu = ac.maxPduLength;
        this.peerImplementation = [ac.implementationClassUid, ac.implementationVersion].filter(Boolean).join(' ');
        this.state = 'open';
        this.log?.debug({ peer: this.node.aeTitle, maxPdu: ac.maxPduLength, accepted: this.acceptedCount() }, 'association accepted');
        this.onAssociate?.();
        return;
      }
      case PduType.AssociateRJ: {
        const rj = decodeAssociateRJ(p.body);
        const text = `${this.node.aeTitle}@${this.node.host}:${this.node.port}: ${describeReject(rj)}`;
        this.log?.warn({ peer: this.node.aeTitle, result: rj.result, source: rj.source, reason: rj.reason }, 'association rejected');
        // A permanent rejection needs someone to fix the configuration; a transient one may pass later.
        this.fail(new ScuError(rj.result === 1 ? 'failed' : 'retry', text));
        return;
      }
      case PduType.PDataTF: {
        if (this.state !== 'open' && this.state !== 'releasing') return this.abort(new ScuError('retry', 'P-DATA-TF from the peer before the association was accepted'), 2, 2);
        for (const pdv of decodePData(p.body)) this.onPdv(pdv.contextId, pdv.command, pdv.last, pdv.data);
        return;
      }
      case PduType.ReleaseRP: {
        if (this.state !== 'releasing') return this.abort(new ScuError('retry', 'unexpected A-RELEASE-RP from the peer'), 2, 2);
        this.onReleased?.();
        return;
      }
      case PduType.ReleaseRQ: {
        // The peer asks to end the association while we are its requestor: answer, then treat it as ended.
        this.socket.write(encodeReleaseRP());
        this.fail(new ScuError('retry', 'the peer released the association before all requests were answered'));
        return;
      }
      case PduType.Abort: {
        const info = decodeAbort(p.body);
        this.log?.warn({ peer: this.node.aeTitle, source: info.source, reason: info.reason }, 'association aborted by peer');
        this.fail(new ScuError('retry', describeAbort(info)));
        return;
      }
      default:
        return this.abort(new ScuError('retry', `unexpected PDU type ${p.type} from the peer`), 2, 2);
    }
  }

  private acceptedCount(): number {
    let n = 0;
    for (const c of this.contexts.values()) if (c.result === 0) n++;
    return n;
  }

  private onPdv(contextId: number, isCommand: boolean, last: boolean, data: Buffer): void {
    const ctx = this.contexts.get(contextId);
    if (!ctx || ctx.result !== 0) throw new Error(`PDV on presentation context ${contextId}, which was not accepted`);
    let a = this.assembling;
    if (!a) a = this.assembling = { contextId, cmd: [], ds: [] };
    if (a.contextId !== contextId) throw new Error('PDVs of one message on different presentation contexts');
    if (isCommand) {
      if (a.command) throw new Error('command fragment after the command was complete');
      a.cmd.push(Buffer.from(data));
      if (last) {
        a.command = Buffer.concat(a.cmd);
        if (!commandHasDataset(a.command)) this.deliver({ contextId, command: a.command });
      }
    } else {
      if (!a.command) throw new Error('data set fragment before the command');
      a.ds.push(Buffer.from(data));
      if (last) this.deliver({ contextId, command: a.command, dataset: Buffer.concat(a.ds) });
    }
  }

  private deliver(m: DimseMessage): void {
    this.assembling = undefined;
    this.inbox.push(m);
    const w = this.inboxWaiter;
    this.inboxWaiter = undefined;
    w?.();
  }

  /** The next complete message from the peer, or ScuError(retry) if none within `timeoutMs`. */
  nextMessage(timeoutMs = this.timeouts.dimseMs): Promise<DimseMessage> {
    const m = this.inbox.shift();
    if (m) return Promise.resolve(m);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<DimseMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        const e = new ScuError('retry', `no response from ${this.node.aeTitle} within ${timeoutMs} ms`);
        this.abort(e);
        reject(e);
      }, timeoutMs);
      const onFail = (e: ScuError) => {
        cleanup();
        reject(e);
      };
      const cleanup = () => {
        clearTimeout(timer);
        this.failListeners.delete(onFail);
        this.inboxWaiter = undefined;
      };
      this.failListeners.add(onFail);
      this.inboxWaiter = () => {
        cleanup();
        resolve(this.inbox.shift()!);
      };
    });
  }

  /**
   * Send one DIMSE message: the command, then (if given) the data set blocks, each cut into PDUs no larger
   * than the peer accepts. Waits for the socket to drain whenever it says so, so at most about one block
   * plus the socket's buffer is held in memory. Returns the data set bytes sent.
   */
  async sendMessage(contextId: number, command: Buffer, data?: AsyncIterable<DataBlock> | Iterable<DataBlock>): Promise<number> {
    this.throwIfFailed();
    if (this.state !== 'open') throw new ScuError('retry', 'the association is not open');
    const max = this.maxPdvData;
    let sent = 0;
    let pendingCommand: Buffer | undefined = command;
    if (data) {
      let sawLast = false;
      for await (const block of data) {
        this.throwIfFailed();
        sawLast = block.last;
        // The command goes out in the same write batch as the first block.
        const ok = this.writeBatch(contextId, pendingCommand, block, max);
        pendingCommand = undefined;
        sent += block.data.length;
        if (!ok) await this.drained();
        if (block.last) break;
      }
      if (!sawLast) throw new Error('the data set source ended before its last block');
    }
    if (pendingCommand) this.writeBatch(contextId, pendingCommand, undefined, max);
    if (this.socket.writableNeedDrain) await this.drained();
    this.throwIfFailed();
    return sent;
  }

  /** Write a command and/or a data block as PDVs in one corked batch. Returns false when the socket wants a drain. */
  private writeBatch(contextId: number, command: Buffer | undefined, block: DataBlock | undefined, max: number): boolean {
    this.socket.cork();
    try {
      if (command) this.writePdvs(contextId, true, command, true, max);
      if (block) this.writePdvs(contextId, false, block.data, block.last, max);
    } finally {
      this.socket.uncork();
    }
    return !this.socket.writableNeedDrain;
  }

  /** Write `data` as PDVs of at most `max` bytes, one PDV per P-DATA-TF PDU. */
  private writePdvs(contextId: number, isCommand: boolean, data: Buffer, last: boolean, max: number): void {
    if (data.length === 0) {
      this.socket.write(pdataHeader(contextId, isCommand, last, 0));
      this.bytesSent += 12;
      return;
    }
    for (let o = 0; o < data.length; o += max) {
      const part = data.subarray(o, Math.min(data.length, o + max));
      const isLast = last && o + part.length >= data.length;
      this.socket.write(pdataHeader(contextId, isCommand, isLast, part.length));
      this.socket.write(part);
      this.bytesSent += part.length + 12;
    }
  }

  /** Resolves when the socket's buffer drained; ScuError(retry) if the peer stops reading for dimseMs. */
  private drained(): Promise<void> {
    this.throwIfFailed();
    if (!this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const ms = this.timeouts.dimseMs;
      const timer = setTimeout(() => {
        cleanup();
        const e = new ScuError('retry', `${this.node.aeTitle} stopped reading what we send for ${ms} ms`);
        this.abort(e);
        reject(e);
      }, ms);
      const onDrain = () => {
        cleanup();
        resolve();
      };
      const onFail = (e: ScuError) => {
        cleanup();
        reject(e);
      };
      const cleanup = () => {
        clearTimeout(timer);
        this.socket.off('drain', onDrain);
        this.failListeners.delete(onFail);
      };
      this.socket.on('drain', onDrain);
      this.failListeners.add(onFail);
    });
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }

  /** Release the association (A-RELEASE-RQ, wait for RP); aborts if the peer does not answer in time. */
  async release(): Promise<void> {
    if (this.state !== 'open' || this.failure) return this.close();
    this.state = 'releasing';
    this.socket.write(encodeReleaseRQ());
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          cleanup();
          reject(new ScuError('retry', `no A-RELEASE-RP from ${this.node.aeTitle} within ${this.timeouts.associationMs} ms`));
        }, this.timeouts.associationMs);
        const onFail = (e: ScuError) => {
          cleanup();
          reject(e);
        };
        const cleanup = () => {
          clearTimeout(timer);
          this.failListeners.delete(onFail);
          this.onReleased = undefined;
        };
        this.failListeners.add(onFail);
        this.onReleased = () => {
          cleanup();
          resolve();
        };
      });
      this.log?.debug({ peer: this.node.aeTitle }, 'association released');
      this.close();
    } catch (e) {
      this.abort(e instanceof ScuError ? e : new ScuError('retry', String(e)));
    }
  }

  /** Abort the association (A-ABORT if we can still write) and fail every waiter with `reason`. */
  abort(reason: ScuError = new ScuError('retry', 'association aborted'), source = 0, abortReason = 0): void {
    if (this.state === 'closed') return;
    if (this.state !== 'connecting' && !this.socket.destroyed && this.socket.writable) {
      try {
        this.socket.write(encodeAbort(source, abortReason));
      } catch {
        /* the socket is going anyway */
      }
    }
    this.log?.debug({ peer: this.node.aeTitle, why: reason.message }, 'association aborted');
    this.fail(reason);
  }

  private fail(e: ScuError): void {
    if (!this.failure) this.failure = e;
    const wasClosed = this.state === 'closed';
    this.state = 'closed';
    this.opts.signal?.removeEventListener('abort', this.abortHandler);
    for (const l of [...this.failListeners]) l(this.failure);
    this.failListeners.clear();
    if (!wasClosed) this.endSocket();
  }

  private close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.opts.signal?.removeEventListener('abort', this.abortHandler);
    this.endSocket();
  }

  /** End the connection once what is queued is flushed, and destroy it if that does not happen soon. */
  private endSocket(): void {
    if (this.socket.destroyed) return;
    if (this.socket.connecting || !this.socket.writable) {
      this.socket.destroy();
      return;
    }
    this.socket.end();
    const t = setTimeout(() => this.socket.destroy(), 2000);
    t.unref();
    this.socket.once('close', () => clearTimeout(t));
  }
}
