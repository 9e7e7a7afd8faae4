/**
 * Forwarding and DICOM transfer, as the appliance offers it (appliance.forward): the persistent queue
 * (forward-queue.ts), its worker (forward-worker.ts), the auto-forward commit hook (forward-hook.ts) and a
 * C-ECHO per node. What the console calls:
 *   status:   studyStatus(studyUid), studies({destination, state}), destinations(), jobs({...})
 *   actions:  enqueueStudy(studyUid, node, actor), enqueueSeries(seriesUid, node, actor),
 *             resend({destination?, studyUid?}, actor)   (each audited; each wakes the worker)
 *   nodes:    sendableNodes(), echo(nodeName)
 * The CLI (another process) uses createForwardQueue on the same database; the worker polls for its jobs.
 */
import type { Config, NodeConfig } from '../../config/schema.ts';
import type { AuditLog } from '../audit/audit-log.ts';
import type { EchoResult } from '../dimse/echo-scu.ts';
import type { Logger } from '../log.ts';
import type { Db } from '../store/db.ts';
import type { CommitHook } from '../store/study-index.ts';
import { echoNode, sendableNodes } from './destinations.ts';
import { createForwardHook } from './forward-hook.ts';
import { createForwardQueue, type Actor, type DestinationSummary, type EnqueueResult, type ForwardJob, type ForwardProgress, type StatusFilter } from './forward-queue.ts';
import { createForwardWorker, type ActiveBatch, type ForwardWorkerDeps } from './forward-worker.ts';

export type { Actor, DestinationSummary, EnqueueResult, ForwardJob, ForwardProgress, StatusFilter } from './forward-queue.ts';

export interface Forwarding {
  /** Forwarding of one study, per destination. */
  studyStatus(studyUid: string): ForwardProgress[];
  /** (study, destination) pairs, most recently changed first; filter by destination and/or a state some job is in. */
  studies(filter?: StatusFilter): ForwardProgress[];
  /** Each destination's queue (every node with send: true, and gone ones that still have jobs). */
  destinations(): DestinationSummary[];
  /** Single instances' jobs. */
  jobs(filter?: StatusFilter): ForwardJob[];
  /** DICOM transfer: queue a whole study for a node with send: true (audited). */
  enqueueStudy(studyUid: string, destination: string, by: Actor): EnqueueResult;
  /** DICOM transfer of one series (audited). */
  enqueueSeries(seriesUid: string, destination: string, by: Actor): EnqueueResult;
  /** Queue failed (and retrying) jobs again now (audited per study). Returns how many. */
  resend(filter: { destination?: string; studyUid?: string }, by: Actor): number;
  /** Nodes that may be sent to. */
  sendableNodes(): NodeConfig[];
  /** C-ECHO to a configured node. */
  echo(nodeName: string): Promise<EchoResult>;
  /** Batches on the wire now. */
  active(): ActiveBatch[];
  /** The auto-forward hook for ingest (jobs in the instance's commit transaction). */
  readonly hook: CommitHook;
  start(): void;
  stop(): Promise<void>;
}

export interface ForwardingDeps {
  config: Config;
  db: Db;
  audit: AuditLog;
  store: { absolute(relative: string): string };
  log: Logger;
  /** Worker tuning and test doubles (send, clock, poll interval). */
  worker?: Partial<Pick<ForwardWorkerDeps, 'send' | 'now' | 'pollMs' | 'flushMs' | 'timeouts'>>;
  /** Delay of auto-forwarded jobs after their instance arrives (default 2 s). */
  settleMs?: number;
}

export function createForwarding(deps: ForwardingDeps): Forwarding {
  const { config, db, audit, log } = deps;
  const queue = createForwardQueue({ db, config, audit, now: deps.worker?.now });
  const worker = createForwardWorker({ config, queue, store: deps.store, log, ...deps.worker });
  let wakeTimer: NodeJS.Timeout | undefined;
  const hook = createForwardHook({
    config,
    queue,
    settleMs: deps.settleMs,
    now: deps.worker?.now,
    onQueued: (due) => {
      // Due after the settle delay: look then. One timer at a time; the poll and finished batches cover the rest.
      if (wakeTimer) return;
      const wait = Math.max(0, due - (deps.worker?.now ?? Date.now)());
      wakeTimer = setTimeout(() => {
        wakeTimer = undefined;
        worker.wake();
      }, wait);
      wakeTimer.unref();
    },
  });
  const woken = <T>(v: T): T => (worker.wake(), v);
  return {
    studyStatus: (uid) => queue.studyStatus(uid),
    studies: (f) => queue.studies(f),
    destinations: () => queue.destinations(),
    jobs: (f) => queue.jobs(f),
    enqueueStudy: (uid, dest, by) => woken(queue.enqueueStudy(uid, dest, by, by.kind === 'user' ? 'console' : by.kind)),
    enqueueSeries: (uid, dest, by) => woken(queue.enqueueSeries(uid, dest, by, by.kind === 'user' ? 'console' : by.kind)),
    resend: (f, by) => woken(queue.resend(f, by)),
    sendableNodes: () => sendableNodes(config),
    echo: (name) => echoNode(config, name, { logger: log }),
    active: () => worker.active(),
    hook,
    start: () => worker.start(),
    stop() {
      if (wakeTimer) clearTimeout(wakeTimer);
      return worker.stop();
    },
  };
}
