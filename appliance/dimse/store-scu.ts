/**
 * C-STORE SCU: send stored Part 10 files to a remote node, bit for bit, in bounded memory, with an outcome for
 * every instance (done / retry / failed, the status and its meaning in words).
 *
 * Design, and why not dcmjs-dimse's Client:
 * - The data set sent is the file's bytes after its file meta group, read from disk block by block and
 *   written as P-DATA-TF PDUs no larger than the peer accepts, each block only once the socket has drained
 *   (scu-association.ts, scu-source.ts). Nothing goes through dcmjs datasets on this path: dcmjs-dimse's
 *   (de)serialisation drops private tags and re-encodes text, and its Client writes every PDU of a data set
 *   at once. Memory stays at about one read block (~1 MiB) plus the socket buffer whatever the file size.
 * - Presentation contexts: per SOP class, one context per stored transfer syntax proposing only that syntax
 *   (so the acceptor cannot pick another one when it supports ours), plus one context proposing Explicit and
 *   Implicit VR Little Endian (those not already proposed alone) as the fallback. At most `maxContexts`
 *   (128, the protocol's limit) per association: a larger mix is split over several associations.
 * - Only when the peer accepts none of an instance's stored syntax is it transcoded (scu-transcode.ts) to an
 *   accepted uncompressed syntax, and the outcome records `transcoded: {from, to}`. If that cannot be done,
 *   the instance fails with the reason and nothing is sent for it.
 * - One request at a time: each C-STORE-RSP is awaited (within the DIMSE timeout) before the next request;
 *   every request ends with a status or a 'retry' outcome, never silently. The association is released at the
 *   end, aborted on errors and timeouts.
 * dcmjs-dimse (and dcmjs) are used where they help and cost nothing in fidelity: transcoding and the C-FIND
 * identifiers (find-scu.ts).
 */
import type { Logger } from '../log.ts';
import { readHeader } from '../dicom/header.ts';
import { DEFLATED_LE, EXPLICIT_LE, IMPLICIT_LE } from '../dicom/transfer-syntax.ts';
import { ScuAssociation, ScuError, type NegotiatedContext, type ScuNode, type ScuTimeouts, type DataBlock } from './scu-association.ts';
import { cStoreRQ, CommandField, readResponse } from './command-set.ts';
import { describeContextResult, type ProposedContext } from './scu-pdu.ts';
import { bufferBlocks, inflatedBlocks, openInstance, readPart10Layout, SourceError, type OpenedInstance } from './scu-source.ts';
import { statusMeaning, storeDisposition } from './scu-status.ts';
import { canTranscode, DEFAULT_MAX_TRANSCODE_BYTES, syntaxName, transcodeFile, TranscodeError } from './scu-transcode.ts';

export type { ScuNode, ScuTimeouts } from './scu-association.ts';

/** One stored instance to send. */
export interface StoreFile {
  /** Part 10 file in the store. */
  path: string;
  sopClassUID: string;
  sopInstanceUID: string;
  /**
   * The stored transfer syntax, used to plan the presentation contexts (read from the file if empty). If the
   * file's meta group says otherwise, the file is right: it is sent as what it is (transcoded if need be).
   */
  transferSyntaxUID: string;
}

export type Outcome = 'done' | 'retry' | 'failed';

export interface InstanceOutcome {
  sopInstanceUID: string;
  /** done: stored (success, warning or already there); retry: try again later; failed: needs someone to act. */
  outcome: Outcome;
  /** DIMSE status of the C-STORE-RSP, when one came. */
  status?: number;
  /** What happened, in words (with the status code when there is one). */
  meaning: string;
  /** Error Comment (0000,0902) of the response, if the peer sent one. */
  errorComment?: string;
  /** Set when the data set was sent in another transfer syntax than the stored one. */
  transcoded?: { from: string; to: string };
  /** Data set bytes written for this instance. */
  bytesSent?: number;
}

export interface StoreOptions {
  /** Our AE title (the calling AE). */
  callingAeTitle: string;
  /** Largest PDU we accept from the peer (what we announce). Default 262144. */
  maxPduBytes?: number;
  timeouts?: Partial<ScuTimeouts>;
  /** Called as soon as an instance's outcome is known, with its index in `files`. */
  onResult?: (outcome: InstanceOutcome, index: number) => void;
  /** Cancels: the association is aborted and what is not done yet gets 'retry'. */
  signal?: AbortSignal;
  logger?: Logger;
  /** Most presentation contexts per association, 2..128. Default 128. */
  maxContexts?: number;
  /** Largest data set transcoded in memory. Default 256 MiB. */
  maxTranscodeBytes?: number;
  /** Bytes read from a file at a time (rounded to whole PDUs). Default 1 MiB. */
  readBlockBytes?: number;
}

export interface Prepared {
  index: number;
  file: StoreFile;
}

interface Plan {
  contexts: ProposedContext[];
  items: Prepared[];
}

/** Plan the associations: contexts per (SOP class, stored syntax) plus a fallback per class, at most `max` each. */
export function planAssociations(items: Prepared[], max: number): Plan[] {
  const plans: { classes: Map<string, Set<string>>; items: Prepared[] }[] = [];
  const count = (classes: Map<string, Set<string>>) => {
    let n = 0;
    for (const s of classes.values()) n += s.size + (fallbackFor(s).length ? 1 : 0);
    return n;
  };
  // Units in order of first appearance, so that one (class, syntax) group is never split.
  const units = new Map<string, Prepared[]>();
  for (const it of items) {
    const key = `${it.file.sopClassUID}\n${it.file.transferSyntaxUID}`;
    if (!units.has(key)) units.set(key, []);
    units.get(key)!.push(it);
  }
  let cur: (typeof plans)[number] | undefined;
  for (const [key, group] of units) {
    const [cls, ts] = key.split('\n');
    if (cur) {
      const trial = new Map([...cur.classes].map(([c, s]) => [c, new Set(s)]));
      if (!trial.has(cls)) trial.set(cls, new Set());
      trial.get(cls)!.add(ts);
      if (count(trial) <= max) {
        cur.classes = trial;
        cur.items.push(...group);
        continue;
      }
    }
    cur = { classes: new Map([[cls, new Set([ts])]]), items: [...group] };
    plans.push(cur);
  }
  return plans.map((p) => {
    const contexts: ProposedContext[] = [];
    let id = 1;
    for (const [cls, syntaxes] of p.classes) {
      for (const ts of syntaxes) {
        contexts.push({ id, abstractSyntax: cls, transferSyntaxes: [ts] });
        id += 2;
      }
      const fb = fallbackFor(syntaxes);
      if (fb.length) {
        contexts.push({ id, abstractSyntax: cls, transferSyntaxes: fb });
        id += 2;
      }
    }
    return { contexts, items: [...p.items].sort((a, b) => a.index - b.index) };
  });
}

function fallbackFor(stored: Set<string>): string[] {
  return [EXPLICIT_LE, IMPLICIT_LE].filter((ts) => !stored.has(ts));
}

interface Route {
  context: NegotiatedContext;
  /** Transfer syntax the data set is sent in. */
  syntax: string;
  blocks: (blockSize: number) => AsyncIterable<DataBlock> | Iterable<DataBlock>;
  transcoded?: { from: string; to: string };
}

/** How to send one instance over an open association, or why it cannot be sent. */
async function route(a: ScuAssociation, file: StoreFile, opened: OpenedInstance, maxTranscodeBytes: number): Promise<Route | { error: string }> {
  const cls = file.sopClassUID;
  const layout = opened.layout;
  const stored = layout.transferSyntaxUID;
  const accepted = a.acceptedFor(cls);
  const exact = accepted.find((c) => c.transferSyntax === stored);
  if (exact) return { context: exact, syntax: stored, blocks: (bs) => opened.blocks(bs, stored === DEFLATED_LE) };
  // Not the stored bytes as they are: the opened file is not used.
  await opened.close();
  if (accepted.length === 0) {
    const why = [...a.contexts.values()]
      .filter((c) => c.abstractSyntax === cls)
      .map((c) => describeContextResult(c.result))
      .filter((v, i, all) => all.indexOf(v) === i);
    return { error: `${a.node.aeTitle} does not accept SOP class ${cls}: ${why.join('; ') || 'not negotiated'}` };
  }
  const errors: string[] = [];
  for (const target of [EXPLICIT_LE, IMPLICIT_LE]) {
    const ctx = accepted.find((c) => c.transferSyntax === target);
    if (!ctx) continue;
    const transcoded = { from: stored, to: target };
    if (stored === DEFLATED_LE && target === EXPLICIT_LE) {
      // The same data set, inflated as it is read.
      return { context: ctx, syntax: target, transcoded, blocks: (bs) => inflatedBlocks(file.path, layout.datasetOffset, bs) };
    }
    if (!canTranscode(stored, target)) {
      errors.push(`transcoding from ${syntaxName(stored)} to ${syntaxName(target)} is not supported`);
      continue;
    }
    try {
      const data = await transcodeFile(file.path, layout, target, maxTranscodeBytes);
      return { context: ctx, syntax: target, transcoded, blocks: (bs) => bufferBlocks(data, bs) };
    } catch (e) {
      if (!(e instanceof TranscodeError)) throw e;
      errors.push(e.message);
    }
  }
  const offered = [...new Set(accepted.map((c) => syntaxName(c.transferSyntax)))].join(', ');
  return {
    error: `${a.node.aeTitle} does not accept ${syntaxName(stored)} for this SOP class (it accepts ${offered})${errors.length ? `, and ${errors.join('; ')}` : ''}`,
  };
}

type Opening = { opened: OpenedInstance } | { error: string };

/**
 * First read of every file: the meta group and, for most instances, the whole data set. Larger reads would
 * cost a fresh large buffer per instance (and garbage collection) for the many small ones.
 */
const HEAD_BYTES = 64 * 1024;

/** Open a stored instance and check it is the one asked for. Never throws. */
async function openChecked(file: StoreFile, headBytes: number, log: Logger | undefined): Promise<Opening> {
  let opened: OpenedInstance;
  try {
    opened = await openInstance(file.path, headBytes);
  } catch (e) {
    return { error: `the stored file cannot be read: ${(e as Error).message}` };
  }
  try {
    if (opened.layout.metaSopInstanceUID !== file.sopInstanceUID) {
      // The meta group may disagree with the data set in odd files; what the peer stores is the data set's.
      const h = await readHeader(file.path);
      if (h.sopInstanceUID !== file.sopInstanceUID) {
        await opened.close();
        return { error: `the file holds SOP instance ${h.sopInstanceUID || '(none)'}, not ${file.sopInstanceUID}` };
      }
    }
  } catch (e) {
    await opened.close();
    return { error: `the stored file cannot be read: ${(e as Error).message}` };
  }
  if (file.transferSyntaxUID && file.transferSyntaxUID !== opened.layout.transferSyntaxUID)
    log?.warn({ sopInstanceUID: file.sopInstanceUID, given: file.transferSyntaxUID, file: opened.layout.transferSyntaxUID }, "stored transfer syntax differs from the index; using the file's");
  return { opened };
}

/**
 * Send `files` to `node`, over as few associations as the presentation-context limit allows. Resolves with
 * one outcome per file, in the order of `files` (never rejects for network or peer problems: those are
 * outcomes).
 */
export async function sendInstances(node: ScuNode, files: StoreFile[], opts: StoreOptions): Promise<InstanceOutcome[]> {
  const log = opts.logger;
  const maxContexts = opts.maxContexts ?? 128;
  if (!Number.isInteger(maxContexts) || maxContexts < 2 || maxContexts > 128) throw new RangeError('maxContexts must be an integer from 2 to 128');
  const maxTranscodeBytes = opts.maxTranscodeBytes ?? DEFAULT_MAX_TRANSCODE_BYTES;
  const outcomes: InstanceOutcome[] = new Array(files.length);
  const report = (index: number, o: InstanceOutcome) => {
    outcomes[index] = o;
    log?.debug({ peer: node.aeTitle, sopInstanceUID: o.sopInstanceUID, outcome: o.outcome, status: o.status, transcoded: o.transcoded }, 'c-store outcome');
    opts.onResult?.(o, index);
  };
  const fail = (index: number, outcome: Outcome, meaning: string) => report(index, { sopInstanceUID: files[index].sopInstanceUID, outcome, meaning });

  // 1. What can be sent at all.
  const ready: Prepared[] = [];
  for (let i = 0; i < files.length; i++) {
    const f = files[i];
    if (!f.sopClassUID) fail(i, 'failed', 'the instance has no SOP Class UID, so it cannot be sent by C-STORE');
    else if (!f.sopInstanceUID) fail(i, 'failed', 'the instance has no SOP Instance UID, so it cannot be sent by C-STORE');
    else if (f.transferSyntaxUID) ready.push({ index: i, file: f });
    else {
      // Not given: the file's meta group says (contexts are planned from it).
      try {
        ready.push({ index: i, file: { ...f, transferSyntaxUID: (await readPart10Layout(f.path)).transferSyntaxUID } });
      } catch (e) {
        fail(i, 'failed', `the stored file cannot be read: ${(e as Error).message}`);
      }
    }
  }

  // 2. One association per plan, one request at a time; the next file is opened while the peer answers.
  const plans = planAssociations(ready, maxContexts);
  for (let pi = 0; pi < plans.length; pi++) {
    const plan = plans[pi];
    const rest = () => plans.slice(pi + 1).flatMap((p) => p.items);
    let a: ScuAssociation;
    try {
      a = await ScuAssociation.open(node, {
        callingAeTitle: opts.callingAeTitle,
        contexts: plan.contexts,
        maxPduBytes: opts.maxPduBytes,
        timeouts: opts.timeouts,
        signal: opts.signal,
        logger: log,
      });
    } catch (e) {
      const err = asScuError(e);
      // The peer (or the way to it) is the problem: every remaining instance shares this outcome.
      for (const p of [...plan.items, ...rest()]) fail(p.index, err.disposition, err.message);
      return outcomes;
    }
    const started = Date.now();
    const blockTarget = opts.readBlockBytes ?? 1024 * 1024;
    const blockSize = Math.max(1, Math.floor(blockTarget / a.maxPdvData)) * a.maxPdvData;
    let messageId = 0;
    let broken: ScuError | undefined;
    let next: Promise<Opening> | undefined;
    try {
      for (let k = 0; k < plan.items.length; k++) {
        const p = plan.items[k];
        const opening = next ?? openChecked(p.file, HEAD_BYTES, log);
        next = undefined;
        if (broken) {
          const o = await opening;
          if ('opened' in o) await o.opened.close();
          fail(p.index, 'retry', `not sent: ${broken.message}`);
          continue;
        }
        const o = await opening;
        const prefetch = () => {
          if (k + 1 < plan.items.length) next = openChecked(plan.items[k + 1].file, HEAD_BYTES, log);
        };
        if ('error' in o) {
          fail(p.index, 'failed', o.error);
          continue;
        }
        let r: Route | { error: string };
        try {
          r = await route(a, p.file, o.opened, maxTranscodeBytes);
        } catch (e) {
          await o.opened.close();
          fail(p.index, 'failed', `cannot prepare the data set: ${(e as Error).message}`);
          continue;
        }
        if ('error' in r) {
          fail(p.index, 'failed', r.error);
          continue;
        }
        messageId = (messageId % 0xffff) + 1;
        const command = cStoreRQ(messageId, p.file.sopClassUID, p.file.sopInstanceUID);
        let bytesSent = 0;
        try {
          bytesSent = await a.sendMessage(r.context.id, command, r.blocks(blockSize));
          prefetch();
          const outcome = await awaitStoreResponse(a, messageId, p.file.sopInstanceUID);
          report(p.index, { ...outcome, ...(r.transcoded ? { transcoded: r.transcoded } : {}), bytesSent });
        } catch (e) {
          await o.opened.close();
          if (e instanceof SourceError) {
            // Our file failed mid-message: the message cannot be completed, so the association cannot go on.
            broken = new ScuError('retry', 'the association was aborted after a local read error');
            a.abort(broken);
            fail(p.index, 'failed', `the stored file failed while sending: ${e.message}`);
            continue;
          }
          const err = asScuError(e);
          a.abort(err);
          fail(p.index, 'retry', err.message);
          broken = err;
        }
      }
    } finally {
      if (next) {
        const o = await next;
        if ('opened' in o) await o.opened.close();
      }
    }
    if (broken) {
      log?.warn({ peer: node.aeTitle, why: broken.message, instances: plan.items.length }, 'association ended early');
      for (const p of rest()) fail(p.index, 'retry', `not sent: ${broken.message}`);
      return outcomes;
    }
    await a.release();
    log?.info({ peer: node.aeTitle, instances: plan.items.length, bytes: a.bytesSent, ms: Date.now() - started }, 'c-store association done');
  }
  return outcomes;
}

function asScuError(e: unknown): ScuError {
  if (e instanceof ScuError) return e;
  return new ScuError('retry', `unexpected error: ${(e as Error)?.message ?? String(e)}`, { cause: e });
}

/** Wait for the C-STORE-RSP to `messageId` and turn it into an outcome. Throws ScuError when there is none. */
async function awaitStoreResponse(a: ScuAssociation, messageId: number, sopInstanceUID: string): Promise<InstanceOutcome> {
  const m = await a.nextMessage();
  const rsp = readResponse(m.command);
  if (rsp.commandField !== CommandField.CStoreRSP || rsp.messageIdBeingRespondedTo !== messageId)
    throw new ScuError('retry', `unexpected message from the peer (command 0x${rsp.commandField.toString(16)}, answering ${rsp.messageIdBeingRespondedTo}) instead of the C-STORE response to ${messageId}`);
  if (rsp.status === undefined) throw new ScuError('retry', 'the C-STORE response has no status');
  if (rsp.affectedSopInstanceUID && rsp.affectedSopInstanceUID !== sopInstanceUID)
    return { sopInstanceUID, outcome: 'retry', status: rsp.status, meaning: `the response names another SOP instance (${rsp.affectedSopInstanceUID})` };
  const meaning = statusMeaning(rsp.status);
  return {
    sopInstanceUID,
    outcome: storeDisposition(rsp.status),
    status: rsp.status,
    meaning: rsp.errorComment ? `${meaning}: ${rsp.errorComment}` : meaning,
    ...(rsp.errorComment ? { errorComment: rsp.errorComment } : {}),
  };
}

