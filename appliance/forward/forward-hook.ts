/**
 * Auto-forward: a CommitHook (runs inside the SQLite transaction that commits each stored instance) that
 * writes the instance's forwarding jobs, one per destination of its intake policy (policies.<name>.forwardTo,
 * plus dicom.pacs for the "upload" policy). Ingest commits only after validation, scan and transform, so
 * nothing is queued, let alone sent, before it is committed and scanned; and a job exists exactly when its
 * instance does (the same transaction).
 *
 * Auto-forwarded jobs become due `settleMs` after the instance arrived: a study arriving instance by instance
 * then goes out over a few associations rather than one per instance.
 */
import type { Config } from '../../config/schema.ts';
import type { CommitHook } from '../store/study-index.ts';
import { destinationsFor } from './destinations.ts';
import type { ForwardQueue } from './forward-queue.ts';

export const DEFAULT_SETTLE_MS = 2000;

export function createForwardHook(opts: {
  config: Config;
  queue: ForwardQueue;
  /** Called (soon after the commit) when jobs were written, to wake the worker. */
  onQueued?: (dueMs: number) => void;
  settleMs?: number;
  now?: () => number;
}): CommitHook {
  const settle = opts.settleMs ?? DEFAULT_SETTLE_MS;
  const clock = opts.now ?? Date.now;
  // Per policy, computed once: the config does not change while the appliance runs.
  const byPolicy = new Map<string, string[]>();
  return (_db, ids, rec) => {
    const policy = rec.policy;
    if (!policy) return;
    let destinations = byPolicy.get(policy);
    if (!destinations) byPolicy.set(policy, (destinations = destinationsFor(opts.config, policy)));
    if (!destinations.length) return;
    const due = clock() + settle;
    const h = rec.header;
    const n = opts.queue.insertForInstance(ids, { studyUid: h.studyInstanceUID, seriesUid: h.seriesInstanceUID, sopInstanceUid: h.sopInstanceUID }, destinations, `policy:${policy}`, due);
    // The transaction is still open: wake the worker once it has committed.
    if (n && opts.onQueued) setImmediate(opts.onQueued, due);
  };
}
