/**
 * The forwarding worker (appliance process only). It finds due jobs (forward-queue.ts) grouped per
 * destination and study, claims a batch of a group (the per-association caps), sends it with the C-STORE SCU
 * (dimse/store-scu.ts: bit-preserving, bounded memory, an outcome per instance) and records each outcome:
 *   done -> done; retry -> retrying with capped exponential backoff, failed after forward.giveUpAfterHours;
 *   failed -> failed with the status and its meaning (resendable).
 * Rules:
 * - never two associations to the same destination for the same study at once; at most
 *   forward.associationsPerDestination associations (different studies) per destination and
 *   forward.concurrentDestinations destinations at a time;
 * - when a destination cannot be reached at all (no instance got a status and none was delivered), its other
 *   studies wait for the same retry time instead of each trying in turn;
 * - jobs left 'sending' by a crash are queued again at start; jobs for destinations no longer configured are
 *   failed with that reason;
 * - the queue is polled every `pollMs` (the CLI writes jobs from another process) and woken at once by
 *   in-process enqueues and finished batches;
 * - outcomes are written in small transactions (every `flushMs` or 256 outcomes), not one fsync per instance;
 *   an outcome lost to a crash means the instance is sent again, which a PACS acknowledges as already stored;
 * - stop() aborts the associations and puts what was not delivered back in the queue (no attempt counted).
 * One log line per batch (one association, unless its SOP class / syntax mix needs more): destination,
 * study UID, counts, bytes, time. Never patient data.
 */
import type { Config, NodeConfig } from '../../config/schema.ts';
import type { ScuTimeouts } from '../dimse/scu-association.ts';
import { planAssociations, sendInstances, type InstanceOutcome, type StoreFile } from '../dimse/store-scu.ts';
import type { Logger } from '../log.ts';
import { groupKey } from './batch.ts';
import { sendableNode } from './destinations.ts';
import type { ClaimedJob, ForwardQueue, JobResult, RecordSummary } from './forward-queue.ts';

export type Send = typeof sendInstances;

export interface ForwardWorkerDeps {
  config: Config;
  queue: ForwardQueue;
  /** Resolves a stored instance's relative path. */
  store: { absolute(relative: string): string };
  log: Logger;
  /** The C-STORE SCU (tests may pass a fake). */
  send?: Send;
  now?: () => number;
  /** How often the queue is looked at without being woken. Default 1000 ms. */
  pollMs?: number;
  /** Longest time an outcome waits before it is written. Default 250 ms. */
  flushMs?: number;
  timeouts?: Partial<ScuTimeouts>;
}

export interface ActiveBatch {
  destination: string;
  studyUid: string;
  instances: number;
  startedAt: string;
}

export interface ForwardWorker {
  /** Resume interrupted jobs, fail jobs of unknown destinations, and start polling. */
  start(): void;
  /** Abort what is on the wire (undelivered jobs go back to the queue) and stop. */
  stop(): Promise<void>;
  /** Look at the queue now (after an in-process enqueue). */
  wake(): void;
  /** Batches on the wire now. */
  active(): ActiveBatch[];
}

const FLUSH_COUNT = 256;

export function createForwardWorker(deps: ForwardWorkerDeps): ForwardWorker {
  const { config, queue, store, log } = deps;
  const send = deps.send ?? sendInstances;
  const clock = deps.now ?? Date.now;
  const pollMs = deps.pollMs ?? 1000;
  const flushMs = deps.flushMs ?? 250;
  const caps = { maxInstances: config.forward.maxInstancesPerAssociation, maxBytes: config.forward.maxBytesPerAssociation };
  const maxDestinations = config.forward.concurrentDestinations;
  const perDestination = config.forward.associationsPerDestination;
  // SCU warnings (rejections, aborts) are worth a line; its per-association info line would repeat ours.
  const scuLog = log.child({}, { level: log.levelVal > 40 ? log.level : 'warn' });

  const running = new Map<string, { batch: ActiveBatch; done: Promise<void> }>();
  const perDest = new Map<string, number>();
  /** Destinations that could not be reached: not tried again before this time (ms). */
  const holdUntil = new Map<string, number>();
  const abort = new AbortController();
  let poll: NodeJS.Timeout | undefined;
  let woken = false;
  let started = false;
  let stopped = false;

  function wake(): void {
    if (!started || stopped || woken) return;
    woken = true;
    setImmediate(() => {
      woken = false;
      tick();
    });
  }

  function tick(): void {
    if (stopped) return;
    let unknown = false;
    let groups;
    try {
      groups = queue.dueGroups(200);
    } catch (e) {
      log.error({ err: e }, 'cannot read the forwarding queue');
      return;
    }
    const now = clock();
    for (const g of groups) {
      const node = sendableNode(config, g.destination);
      if (!node) {
        unknown = true;
        continue;
      }
      const key = groupKey(g.destination, g.studyUid);
      if (running.has(key)) continue;
      if ((holdUntil.get(g.destination) ?? 0) > now) continue;
      const n = perDest.get(g.destination) ?? 0;
      if (n >= perDestination) continue;
      if (n === 0 && perDest.size >= maxDestinations) continue;
      start(node, g.studyUid);
    }
    if (unknown) {
      const n = queue.failUnconfigured();
      if (n) log.warn({ jobs: n }, 'jobs for destinations that are not configured (any more) failed');
    }
  }

  function start(node: NodeConfig, studyUid: string): void {
    let jobs: ClaimedJob[];
    try {
      jobs = queue.claim(node.name, studyUid, caps);
    } catch (e) {
      log.error({ err: e, destination: node.name }, 'cannot claim forwarding jobs');
      return;
    }
    if (!jobs.length) return;
    const key = groupKey(node.name, studyUid);
    const batch: ActiveBatch = { destination: node.name, studyUid, instances: jobs.length, startedAt: new Date(clock()).toISOString() };
    perDest.set(node.name, (perDest.get(node.name) ?? 0) + 1);
    const done = runBatch(node, studyUid, jobs)
      .catch((e) => log.error({ err: e, destination: node.name, study: studyUid }, 'forwarding batch failed'))
      .finally(() => {
        running.delete(key);
        const left = (perDest.get(node.name) ?? 1) - 1;
        if (left > 0) perDest.set(node.name, left);
        else perDest.delete(node.name);
        wake();
      });
    running.set(key, { batch, done });
  }

  async function runBatch(node: NodeConfig, studyUid: string, jobs: ClaimedJob[]): Promise<void> {
    const t0 = performance.now();
    const files: StoreFile[] = jobs.map((j) => ({
      path: store.absolute(j.path),
      sopClassUID: j.sopClassUid,
      sopInstanceUID: j.sopInstanceUid,
      transferSyntaxUID: j.transferSyntax,
    }));
    const totals: RecordSummary = { done: 0, retrying: 0, failed: 0, gaveUp: 0, released: 0, nextRetryMs: null };
    const reported = new Set<number>();
    let pending: JobResult[] = [];
    let timer: NodeJS.Timeout | undefined;
    let transcoded = 0;
    let bytes = 0;
    let statuses = 0;
    let firstProblem: string | undefined;

    const flush = () => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      if (!pending.length) return;
      const results = pending;
      pending = [];
      try {
        const s = queue.record(results);
        totals.done += s.done;
        totals.retrying += s.retrying;
        totals.failed += s.failed;
        totals.gaveUp += s.gaveUp;
        totals.released += s.released;
        if (s.nextRetryMs !== null && (totals.nextRetryMs === null || s.nextRetryMs < totals.nextRetryMs)) totals.nextRetryMs = s.nextRetryMs;
      } catch (e) {
        // The database failed (disk full?): the jobs stay 'sending' and are resumed at the next start.
        log.error({ err: e, destination: node.name, jobs: results.length }, 'cannot record forwarding outcomes');
      }
    };
    const add = (r: JobResult) => {
      pending.push(r);
      if (pending.length >= FLUSH_COUNT) flush();
      else timer ??= setTimeout(flush, flushMs);
    };
    const onResult = (o: InstanceOutcome, i: number) => {
      if (reported.has(i)) return;
      reported.add(i);
      const job = jobs[i];
      if (o.status !== undefined) statuses++;
      if (o.bytesSent) bytes += o.bytesSent;
      if (o.outcome === 'retry' && abort.signal.aborted) return add({ job, kind: 'release' });
      if (o.outcome !== 'done') firstProblem ??= o.meaning;
      if (o.outcome === 'done') {
        if (o.transcoded) transcoded++;
        return add({ job, kind: 'done', status: o.status, meaning: o.meaning, ...(o.transcoded ? { transcoded: o.transcoded } : {}) });
      }
      add({ job, kind: o.outcome, status: o.status, meaning: o.meaning });
    };

    let associations = 1;
    try {
      associations = planAssociations(
        files.map((file, index) => ({ index, file })),
        128,
      ).length;
    } catch {
      /* only for the log line */
    }
    try {
      const outcomes = await send({ aeTitle: node.aeTitle, host: node.host, port: node.port }, files, {
        callingAeTitle: config.dicom.aeTitle,
        maxPduBytes: config.dicom.maxPduBytes,
        signal: abort.signal,
        onResult,
        logger: scuLog,
        timeouts: deps.timeouts,
      });
      outcomes.forEach((o, i) => o && onResult(o, i));
    } catch (e) {
      // sendInstances does not reject for network or peer problems; this is a bug or a local failure.
      log.error({ err: e, destination: node.name, study: studyUid }, 'the C-STORE SCU failed');
      firstProblem ??= `local error while sending: ${(e as Error).message}`;
    }
    // Whatever got no outcome (a bug above) must not stay 'sending' until the next start.
    jobs.forEach((job, i) => {
      if (!reported.has(i)) {
        reported.add(i);
        add(abort.signal.aborted ? { job, kind: 'release' } : { job, kind: 'retry', meaning: firstProblem ?? 'no outcome was reported for this instance' });
      }
    });
    flush();

    if (totals.done > 0) holdUntil.delete(node.name);
    else if (statuses === 0 && totals.retrying > 0 && totals.nextRetryMs !== null) holdUntil.set(node.name, totals.nextRetryMs);

    const fields = {
      destination: node.name,
      peer: node.aeTitle,
      study: studyUid,
      instances: jobs.length,
      done: totals.done,
      retrying: totals.retrying,
      failed: totals.failed,
      ...(totals.gaveUp ? { gaveUp: totals.gaveUp } : {}),
      ...(totals.released ? { requeued: totals.released } : {}),
      transcoded,
      bytes,
      associations,
      ms: Math.round(performance.now() - t0),
      ...(totals.nextRetryMs !== null ? { nextAttemptAt: new Date(totals.nextRetryMs).toISOString() } : {}),
      ...(firstProblem ? { problem: firstProblem } : {}),
    };
    if (totals.retrying || totals.failed) log.warn(fields, 'forwarded with problems');
    else log.info(fields, 'forwarded');
  }

  return {
    start() {
      if (started) return;
      started = true;
      const resumed = queue.resumeInterrupted();
      if (resumed) log.warn({ jobs: resumed }, 'forwarding jobs interrupted by the last stop or crash are queued again');
      const failed = queue.failUnconfigured();
      if (failed) log.warn({ jobs: failed }, 'jobs for destinations that are not configured (any more) failed');
      poll = setInterval(tick, pollMs);
      wake();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (poll) clearInterval(poll);
      abort.abort();
      await Promise.allSettled([...running.values()].map((r) => r.done));
    },
    wake,
    active: () => [...running.values()].map((r) => r.batch),
  };
}
