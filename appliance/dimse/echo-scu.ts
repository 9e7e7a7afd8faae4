/**
 * C-ECHO SCU: "can we talk to this node?" for the node check in the console and the CLI. One association,
 * one C-ECHO, released; every way it can go wrong is reported in words (refused connection, rejected
 * association with its reason, no answer in time, a non-success status).
 *
 * Built on the same association code as the C-STORE SCU (scu-association.ts) rather than dcmjs-dimse's
 * Client, so that a rejection or a timeout comes back as a reason instead of a log line.
 */
import type { Logger } from '../log.ts';
import { ScuAssociation, ScuError, type ScuNode, type ScuTimeouts } from './scu-association.ts';
import { cEchoRQ, CommandField, readResponse } from './command-set.ts';
import { describeContextResult } from './scu-pdu.ts';
import { statusMeaning } from './scu-status.ts';
import { EXPLICIT_LE, IMPLICIT_LE } from '../dicom/transfer-syntax.ts';

export const VERIFICATION_SOP_CLASS = '1.2.840.10008.1.1';

export interface EchoOptions {
  callingAeTitle: string;
  timeouts?: Partial<ScuTimeouts>;
  signal?: AbortSignal;
  logger?: Logger;
}

export interface EchoResult {
  ok: boolean;
  /** Wall time from connecting to the end of the association. */
  ms: number;
  /** What happened, in words. */
  detail: string;
  status?: number;
}

export async function echo(node: ScuNode, opts: EchoOptions): Promise<EchoResult> {
  const t0 = performance.now();
  const ms = () => Math.round(performance.now() - t0);
  const who = `${node.aeTitle}@${node.host}:${node.port}`;
  let a: ScuAssociation | undefined;
  try {
    a = await ScuAssociation.open(node, {
      callingAeTitle: opts.callingAeTitle,
      contexts: [{ id: 1, abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [EXPLICIT_LE, IMPLICIT_LE] }],
      timeouts: opts.timeouts,
      signal: opts.signal,
      logger: opts.logger,
    });
    const ctx = a.contexts.get(1)!;
    if (ctx.result !== 0) {
      await a.release();
      return { ok: false, ms: ms(), detail: `${who} does not offer verification (C-ECHO): ${describeContextResult(ctx.result)}` };
    }
    await a.sendMessage(1, cEchoRQ(1));
    const rsp = readResponse((await a.nextMessage()).command);
    if (rsp.commandField !== CommandField.CEchoRSP || rsp.messageIdBeingRespondedTo !== 1) {
      a.abort(new ScuError('retry', 'unexpected message instead of the C-ECHO response'));
      return { ok: false, ms: ms(), detail: `${who} answered with an unexpected message (command 0x${rsp.commandField.toString(16)})` };
    }
    await a.release();
    if (rsp.status === undefined) return { ok: false, ms: ms(), detail: `${who} answered C-ECHO without a status` };
    const meaning = statusMeaning(rsp.status);
    return { ok: rsp.status === 0, ms: ms(), status: rsp.status, detail: `C-ECHO to ${who}: ${meaning}${rsp.errorComment ? `: ${rsp.errorComment}` : ''}` };
  } catch (e) {
    a?.abort();
    const text = e instanceof ScuError ? e.message : `unexpected error: ${(e as Error).message}`;
    return { ok: false, ms: ms(), detail: text.startsWith(node.aeTitle) ? text : `C-ECHO to ${who} failed: ${text}` };
  }
}
