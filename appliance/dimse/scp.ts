/**
 * The DICOM node: C-ECHO, C-STORE and C-FIND SCP on dcmjs-dimse, served from our own net.Server bound to
 * dicom.host (dcmjs-dimse's Server binds every interface). Every incoming association passes the association
 * policy; C-STORE data streams to a staging file (staging-writer.ts) and goes through the one ingest path;
 * the C-STORE response is sent only after the ingest outcome is final. No handler throws: one wrapper turns
 * exceptions into a failure status and a log line.
 *
 * dcmjs-dimse details relied on (0.3.3): `createStoreWritableStream` receives each P-DATA fragment of a
 * C-STORE dataset; `createDatasetFromStoreWritableStream` must call back with a Dataset, which becomes the
 * request's dataset: we call back at once with an empty placeholder that carries our staging writer, so the
 * library never parses or re-encodes the data and is ready for the next PDU.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import dimse from 'dcmjs-dimse';
import type { Config } from '../../config/schema.ts';
import { buildFileMeta } from '../dicom/part10.ts';
import { AppError, publicMessage, toAppError } from '../errors.ts';
import type { Ingest, Outcome } from '../intake/ingest.ts';
import type { Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import type { FileStore } from '../store/file-store.ts';
import { findInIndex, numericFindKeys, type Level } from '../store/find-query.ts';
import { decideAssociation, normaliseAe, normaliseIp, PATIENT_ROOT_FIND, STUDY_ROOT_FIND, type RejectKind } from './association-policy.ts';
import { cStoreRSP } from './command-set.ts';
import { StagingWriter } from './staging-writer.ts';
import type { NodeConfig } from '../../config/schema.ts';

const { Scp, Dataset, constants, responses, Implementation } = dimse;
const { Status, RejectResult, RejectSource, RejectReason, PresentationContextResult } = constants;

// dcmjs-dimse logs every PDU through loglevel to the console; we log what matters ourselves.
dimse.log.setLevel('silent');

export interface DicomServerDeps {
  config: Config;
  log: Logger;
  db: Db;
  store: FileStore;
  ingest: Ingest;
}

export interface DicomServer {
  listen(): Promise<{ host: string; port: number }>;
  /** Stop accepting; let open associations finish their current work for up to `graceMs`, then abort them. */
  close(graceMs?: number): Promise<void>;
  readonly listening: boolean;
  activeAssociations(): number;
}

const PDU_TYPES = new Set([1, 2, 3, 4, 5, 6, 7]);

/** Map an ingest outcome to a C-STORE status and, for failures, a short comment (LO: at most 64 characters). */
export function storeStatus(outcome: Outcome): { status: number; comment?: string } {
  switch (outcome.kind) {
    case 'stored':
    case 'duplicate':
      return { status: Status.Success };
    case 'quarantined':
      return { status: new AppError('MALWARE').kind.dimse, comment: 'Refused: malware found' };
    case 'rejected':
    case 'retry':
      return { status: outcome.error.kind.dimse, comment: publicMessage(outcome.error) };
  }
}

function rejectCodes(kind: RejectKind): [number, number, number] {
  switch (kind) {
    case 'called-ae':
      return [RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CalledAeNotRecognized];
    case 'calling-ae':
      return [RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CallingAeNotRecognized];
    case 'limit':
      return [RejectResult.Transient, RejectSource.ServiceProviderPresentation, RejectReason.LocalLimitExceeded];
    case 'no-context':
      return [RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.NoReasonGiven];
  }
}

/**
 * A response whose command set we encoded ourselves (command-set.ts), in the shape dcmjs-dimse's sender
 * reads: encoding a C-STORE-RSP through dcmjs costs ~0.7 ms, a large share of a small instance's round trip.
 */
function preEncoded(commandSet: Buffer) {
  return {
    getDataset: () => undefined,
    getCommandDataset: () => ({ getDenaturalizedCommandDataset: () => commandSet }),
    toString: () => 'C-STORE-RSP',
  };
}

/** A dcmjs naturalised value as the plain string C-FIND matching uses. */
function queryValue(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (Array.isArray(v)) return v.map(queryValue).join('\\');
  if (typeof v === 'object') {
    const pn = v as { Alphabetic?: string };
    return pn.Alphabetic ?? '';
  }
  return String(v);
}

export function createDicomServer(deps: DicomServerDeps): DicomServer {
  const { config, log, db, store, ingest } = deps;
  const cfg = config.dicom;
  Implementation.setMaxPduLength(cfg.maxPduBytes);
  Implementation.setImplementationVersion('UPLINK_010');
  const associations = new Set<UplinkScp>();
  let accepted = 0;
  let server: net.Server | undefined;

  class UplinkScp extends Scp {
    readonly id = randomBytes(4).toString('hex');
    readonly ip: string;
    node: NodeConfig | undefined;
    callingAe = '';
    counted = false;
    current: StagingWriter | undefined;
    readonly work = new Set<Promise<unknown>>();
    readonly cancelled = new Set<number>();
    readonly started = Date.now();
    stored = 0;
    failed = 0;

    constructor(readonly sock: net.Socket) {
      super(sock, {
        connectTimeout: cfg.idleTimeoutSeconds * 1000,
        associationTimeout: cfg.associationTimeoutSeconds * 1000,
        pduTimeout: cfg.idleTimeoutSeconds * 1000,
      });
      // dcmjs-dimse defaults this to {} and then copies its whole dictionary name map for every dataset it
      // encodes (~10 ms per C-FIND response); without a map it uses the dictionary directly.
      (this as any).datasetNameMap = undefined;
      this.ip = normaliseIp(sock.remoteAddress);
      this.on('networkError', (err: Error) => {
        log.warn({ assoc: this.id, ip: this.ip, ae: this.callingAe, reason: err.message }, 'association network error; closing');
        this.sock.destroy();
      });
      this.on('close', () => this.closed());
    }

    private closed(): void {
      if (this.current) {
        const w = this.current;
        this.current = undefined;
        w.abort();
        void w.done.catch(() => undefined).finally(() => store.remove(w.path));
      }
      if (this.counted) accepted--;
      this.counted = false;
      associations.delete(this);
      log.info({ assoc: this.id, ae: this.callingAe, stored: this.stored, failed: this.failed, ms: Date.now() - this.started }, 'association closed');
    }

    override associationRequested(association: any): void {
      this.callingAe = normaliseAe(association.getCallingAeTitle() ?? '');
      const contexts = association.getPresentationContexts().map((pc: any) => ({
        id: pc.id as number,
        abstractSyntax: pc.context.getAbstractSyntaxUid() as string,
        transferSyntaxes: pc.context.getTransferSyntaxUids() as string[],
      }));
      let decision = decideAssociation(config, { calledAe: association.getCalledAeTitle() ?? '', callingAe: this.callingAe, ip: this.ip, contexts });
      if (decision.ok && accepted >= cfg.maxAssociations)
        decision = { ok: false, kind: 'limit', reason: `already ${accepted} associations open (dicom.maxAssociations)` };
      if (!decision.ok) {
        log.warn({ assoc: this.id, ae: this.callingAe, ip: this.ip, reject: decision.kind, reason: decision.reason }, 'association rejected');
        this.sendAssociationReject(...rejectCodes(decision.kind));
        this.sock.end();
        return;
      }
      this.node = decision.node;
      for (const c of decision.contexts) {
        const pc = association.getPresentationContext(c.id);
        if (c.accept) pc.setResult(PresentationContextResult.Accept, c.accept);
        else
          pc.setResult(
            c.reject === 'transfer-syntax'
              ? PresentationContextResult.RejectTransferSyntaxesNotSupported
              : c.reject === 'user'
                ? PresentationContextResult.RejectUser
                : PresentationContextResult.RejectAbstractSyntaxNotSupported,
          );
      }
      accepted++;
      this.counted = true;
      const n = decision.contexts.filter((c) => c.accept).length;
      log.info({ assoc: this.id, ae: this.callingAe, ip: this.ip, node: this.node.name, contexts: n, rejected: contexts.length - n }, 'association accepted');
      // dcmjs-dimse announces min(peer's maximum, ours) as our receive limit; announce ours, then keep the
      // peer's maximum for what we send.
      const theirs = association.getMaxPduLength();
      association.setMaxPduLength(cfg.maxPduBytes);
      this.sendAssociationAccept();
      association.setMaxPduLength(theirs);
    }

    override associationReleaseRequested(): void {
      this.sendAssociationReleaseResponse();
    }

    override abort(source: number, reason: number): void {
      log.warn({ assoc: this.id, ae: this.callingAe, source, reason }, 'association aborted by peer');
      this.sock.destroy();
    }

    override cEchoRequest(request: any, callback: (r: any) => void): void {
      const response = responses.CEchoResponse.fromRequest(request);
      response.setStatus(Status.Success);
      log.info({ assoc: this.id, ae: this.callingAe }, 'C-ECHO');
      callback(response);
    }

    override createStoreWritableStream(context: any, request: any): any {
      const ts = context.getAcceptedTransferSyntaxUid() ?? '';
      const header = buildFileMeta({
        sopClassUID: request.getAffectedSopClassUid() ?? '',
        sopInstanceUID: request.getAffectedSopInstanceUid() ?? '',
        transferSyntaxUID: ts,
        sourceAeTitle: this.callingAe || undefined,
      });
      const writer = new StagingWriter(store.stagingPath(), header, cfg.maxDatasetBytes, this.sock);
      this.current = writer;
      return writer;
    }

    override createDatasetFromStoreWritableStream(writable: any, _context: any, callback: (d: any) => void): void {
      const placeholder = new Dataset({});
      (placeholder as any).uplinkStage = writable as StagingWriter;
      if (this.current === writable) this.current = undefined;
      callback(placeholder);
    }

    override cStoreRequest(request: any, callback: (r: any) => void): void {
      const writer = (request.getDataset() as any)?.uplinkStage as StagingWriter | undefined;
      const sop = request.getAffectedSopInstanceUid() as string;
      const cls = request.getAffectedSopClassUid() as string;
      const job = this.handleStore(request, writer)
        .catch((e) => {
          const err = toAppError(e);
          log.error({ assoc: this.id, sop, err: e }, 'C-STORE handler failed');
          return { status: err.kind.dimse, comment: publicMessage(err) };
        })
        .then(({ status, comment }) => {
          if (status === Status.Success) this.stored++;
          else this.failed++;
          if (!this.sock.destroyed) callback(preEncoded(cStoreRSP(request.getMessageId(), cls, sop, status, comment)));
        })
        .catch((e) => log.error({ assoc: this.id, sop, err: e }, 'C-STORE response could not be sent'));
      this.work.add(job);
      void job.finally(() => this.work.delete(job));
    }

    private async handleStore(request: any, writer: StagingWriter | undefined): Promise<{ status: number; comment?: string }> {
      const sop = request.getAffectedSopInstanceUid() as string;
      const cls = request.getAffectedSopClassUid() as string;
      if (!writer) throw new AppError('MALFORMED', 'C-STORE without a dataset');
      let staged;
      try {
        staged = await writer.done;
      } catch (e) {
        await store.remove(writer.path);
        const err = toAppError(e);
        log.warn({ assoc: this.id, sop, code: err.code, reason: err.message }, 'C-STORE refused');
        return { status: err.kind.dimse, comment: publicMessage(err) };
      }
      const node = this.node!;
      const outcome = await ingest.ingest(
        { path: staged.path, sha256: staged.sha256, content: staged.content, synced: true },
        {
          kind: 'dicom',
          policy: node.policy,
          batch: `assoc:${this.id}`,
          actor: { kind: 'node', name: node.name },
          callingAE: this.callingAe,
          remoteIP: this.ip,
          expected: { sopInstanceUID: sop, sopClassUID: cls },
        },
      );
      return storeStatus(outcome);
    }

    /**
     * C-FIND. dcmjs-dimse processes no further PDU of the association until the callback is called (its event
     * emitter waits for it), and the callback may be called once. So we call it at once with no response,
     * which frees the association to receive a C-CANCEL, and send every response ourselves with sendResponse,
     * yielding to the event loop between batches so a cancel is seen.
     */
    override cFindRequest(request: any, callback: (r: any[]) => void): void {
      callback([]);
      const model = request.getAffectedSopClassUid() as string;
      const final = (status: number, comment?: string) => {
        const r = responses.CFindResponse.fromRequest(request);
        r.setAffectedSopClassUid(model);
        r.setStatus(status);
        if (comment) r.setErrorComment(comment.slice(0, 64));
        return r;
      };
      const job = this.handleFind(request, model)
        .then((status) => final(status))
        .catch((e) => {
          const err = toAppError(e);
          if (err.code === 'INTERNAL') log.error({ assoc: this.id, err: e }, 'C-FIND failed');
          else log.warn({ assoc: this.id, reason: err.message }, 'C-FIND refused');
          return final(err.code === 'BAD_REQUEST' ? 0xa900 : err.kind.dimse, publicMessage(err));
        })
        .then((r) => {
          if (!this.sock.destroyed) this.sendResponse(request, r);
        })
        .catch((e) => log.error({ assoc: this.id, err: e }, 'C-FIND response could not be sent'));
      this.work.add(job);
      void job.finally(() => this.work.delete(job));
    }

    private async handleFind(request: any, model: string): Promise<number> {
      const identifier = (request.getDataset()?.getElements() ?? {}) as Record<string, unknown>;
      const level = String(queryValue(identifier.QueryRetrieveLevel)).trim().toUpperCase() as Level;
      const levels: Level[] = model === PATIENT_ROOT_FIND ? ['PATIENT', 'STUDY', 'SERIES', 'IMAGE'] : model === STUDY_ROOT_FIND ? ['STUDY', 'SERIES', 'IMAGE'] : [];
      if (!levels.includes(level)) throw new AppError('BAD_REQUEST', `Query/Retrieve Level "${level}" is not valid for this information model.`);
      const query: Record<string, string> = {};
      for (const [k, v] of Object.entries(identifier)) {
        if (k === 'QueryRetrieveLevel' || k === 'SpecificCharacterSet' || k === '_vrMap') continue;
        if (Array.isArray(v) && v.length && typeof v[0] === 'object' && !('Alphabetic' in (v[0] as object))) continue; // sequences
        query[k] = queryValue(v);
      }
      const started = Date.now();
      const { rows, truncated } = findInIndex(db, level, query, cfg.findLimit);
      const ts = (this as any).association?.getAcceptedPresentationContextFromRequest(request)?.getAcceptedTransferSyntaxUid();
      const messageId = request.getMessageId() as number;
      let sent = 0;
      for (const row of rows) {
        if (this.cancelled.has(messageId) || this.sock.destroyed) break;
        const r = responses.CFindResponse.fromRequest(request);
        r.setAffectedSopClassUid(model);
        r.setStatus(Status.Pending);
        const elements: Record<string, unknown> = { QueryRetrieveLevel: level, SpecificCharacterSet: 'ISO_IR 192' };
        for (const [k, v] of Object.entries(row)) elements[k] = numericFindKeys.has(k) ? Number(v) : v;
        r.setDataset(new Dataset(elements, ts));
        this.sendResponse(request, r);
        if (++sent % 20 === 0) await new Promise((res) => setImmediate(res));
      }
      const wasCancelled = this.cancelled.delete(messageId);
      log.info({ assoc: this.id, ae: this.callingAe, level, keys: Object.keys(query).length, matches: sent, truncated, cancelled: wasCancelled, ms: Date.now() - started }, 'C-FIND');
      if (truncated && !wasCancelled) log.warn({ assoc: this.id, limit: cfg.findLimit }, 'C-FIND result cut off at dicom.findLimit');
      return wasCancelled ? Status.Cancel : Status.Success;
    }

    override cCancelRequest(request: any): void {
      this.cancelled.add(request.getMessageIdBeingRespondedTo());
    }
  }

  /** Abort associations that announce a PDU larger than we accept, before the library buffers it. */
  function guardPduSize(sock: net.Socket, onTooBig: (len: number) => void): void {
    let need = 0; // bytes of the current PDU body still to come
    let head = Buffer.alloc(0);
    const limit = cfg.maxPduBytes + 6;
    sock.on('data', (chunk: Buffer) => {
      let off = 0;
      while (off < chunk.length) {
        if (need > 0) {
          const k = Math.min(need, chunk.length - off);
          need -= k;
          off += k;
          continue;
        }
        const take = Math.min(6 - head.length, chunk.length - off);
        head = Buffer.concat([head, chunk.subarray(off, off + take)]);
        off += take;
        if (head.length < 6) return;
        const type = head[0];
        const len = head.readUInt32BE(2);
        head = Buffer.alloc(0);
        // Association requests may exceed a small data PDU limit; allow them 64 KiB.
        const max = type === 1 || type === 2 ? Math.max(limit, 65536) : limit;
        if (!PDU_TYPES.has(type) || len > max) return onTooBig(len);
        need = len;
      }
    });
  }

  return {
    get listening() {
      return server?.listening ?? false;
    },
    activeAssociations: () => associations.size,
    listen() {
      return new Promise((resolve, reject) => {
        server = net.createServer((sock) => {
          sock.setNoDelay(true);
          const ip = normaliseIp(sock.remoteAddress);
          let scp: UplinkScp | undefined;
          guardPduSize(sock, (len) => {
            log.warn({ ip, assoc: scp?.id, len, limit: cfg.maxPduBytes }, 'PDU larger than dicom.maxPduBytes (or not a PDU); aborting');
            try {
              scp?.sendAbort();
            } catch {
              /* socket may be gone */
            }
            sock.destroy();
          });
          scp = new UplinkScp(sock);
          associations.add(scp);
          sock.on('error', () => undefined);
        });
        server.maxConnections = cfg.maxAssociations * 2 + 8;
        server.once('error', reject);
        server.listen(cfg.port, cfg.host, () => {
          server!.off('error', reject);
          server!.on('error', (e) => log.error({ err: e }, 'DICOM listener error'));
          const a = server!.address() as net.AddressInfo;
          resolve({ host: a.address, port: a.port });
        });
      });
    },
    async close(graceMs = 10000) {
      if (server) await new Promise<void>((res) => server!.close(() => res()));
      const deadline = Date.now() + graceMs;
      for (const a of [...associations]) {
        const pending = [...a.work];
        if (pending.length) await Promise.race([Promise.allSettled(pending), new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())))]);
      }
      for (const a of [...associations]) {
        try {
          a.sendAbort();
        } catch {
          /* already closed */
        }
        a.sock.destroy();
      }
    },
  };
}
