/**
 * The forwarding worker with a fake C-STORE SCU (no network): batches per destination and study within the
 * caps, never two associations for one destination and study at once, the concurrency limits, retries with
 * the destination held back until its next attempt, jobs interrupted by a crash resumed, stop() putting
 * undelivered jobs back, unconfigured destinations failed, and a throwing SCU not leaving jobs stuck.
 */
import t from 'tap';
import type { InstanceOutcome, StoreFile, StoreOptions } from '../../appliance/dimse/store-scu.ts';
import { createForwardWorker, type Send } from '../../appliance/forward/forward-worker.ts';
import { silentLogger } from '../../appliance/log.ts';
import { forwardWorld, until, type World } from './lib/world.ts';

interface Call {
  node: { aeTitle: string; host: string; port: number };
  files: StoreFile[];
  opts: StoreOptions;
  at: number;
}

/** A fake SCU: answers each file with `decide` after `delayMs`, records the calls and the overlap. */
function fakeSend(decide: (f: StoreFile, call: number, node: string) => Omit<InstanceOutcome, 'sopInstanceUID'>, delayMs = 10) {
  const calls: Call[] = [];
  const active = new Map<string, number>();
  const overlaps: string[] = [];
  let maxPerDest: Record<string, number> = {};
  let maxDestinations = 0;
  const send: Send = async (node, files, opts) => {
    const call = calls.push({ node, files, opts, at: Date.now() }) - 1;
    const key = `${node.aeTitle}|${files[0].path.split('/')[2]}`;
    if (active.has(key)) overlaps.push(key);
    active.set(key, (active.get(key) ?? 0) + 1);
    const perDest = [...active.entries()].filter(([k, n]) => n > 0 && k.startsWith(`${node.aeTitle}|`)).length;
    maxPerDest = { ...maxPerDest, [node.aeTitle]: Math.max(maxPerDest[node.aeTitle] ?? 0, perDest) };
    maxDestinations = Math.max(maxDestinations, new Set([...active.entries()].filter(([, n]) => n > 0).map(([k]) => k.split('|')[0])).size);
    try {
      await new Promise((r) => setTimeout(r, delayMs));
      return files.map((f, i) => {
        const o = { sopInstanceUID: f.sopInstanceUID, ...decide(f, call, node.aeTitle) };
        opts.onResult?.(o, i);
        return o;
      });
    } finally {
      const n = (active.get(key) ?? 1) - 1;
      if (n) active.set(key, n);
      else active.delete(key);
    }
  };
  return { send, calls, overlaps, maxPerDest: () => maxPerDest, maxDestinations: () => maxDestinations };
}

/** Store paths look like /store/<study>/<sop>.dcm so the fake can tell studies apart. */
function worker(w: World, send: Send) {
  const byRel = new Map<string, string>();
  for (const r of w.db.prepare('SELECT i.path, st.study_uid FROM instances i JOIN series se ON se.id = i.series_ref JOIN studies st ON st.id = se.study_ref').all() as { path: string; study_uid: string }[])
    byRel.set(r.path, r.study_uid);
  return createForwardWorker({
    config: w.config,
    queue: w.queue,
    store: { absolute: (rel) => `/store/${byRel.get(rel) ?? 'unknown'}/${rel.slice(2)}` },
    log: silentLogger(),
    send,
    pollMs: 20,
    flushMs: 5,
  });
}

const done = () => ({ outcome: 'done' as const, status: 0, meaning: 'Success (0x0000)' });
const allDone = (w: World) => () => Object.values(w.states()).every((s) => s === 'done');

t.test('batches per destination and study within the caps; one association per destination and study at a time', async (t) => {
  const w = forwardWorld(t.testdir(), { forward: { maxInstancesPerAssociation: 3, concurrentDestinations: 1, associationsPerDestination: 2 } });
  w.clock.now = null;
  t.teardown(() => w.close());
  for (const study of ['1.6.1', '1.6.2', '1.6.3']) for (let i = 1; i <= 5; i++) w.add({ study, sop: `${study}.1.${i}`, policy: 'upload' });
  const fake = fakeSend(done, 15);
  const wk = worker(w, fake.send);
  wk.start();
  t.teardown(() => wk.stop());
  await until(allDone(w), 10000, 'every job done');

  t.equal(Object.keys(w.states()).length, 30, '3 studies x 5 instances x 2 destinations');
  t.equal(fake.calls.length, 12, 'each (destination, study) in two batches: 3 + 2 instances');
  t.ok(fake.calls.every((c) => new Set(c.files.map((f) => f.path.split('/')[2])).size === 1), 'a batch holds one study');
  t.same(fake.calls.map((c) => c.files.length).sort(), [2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3], 'within maxInstancesPerAssociation');
  t.ok(fake.calls.every((c) => c.opts.callingAeTitle === 'UPLINK'), 'our AE title calls');
  t.same(
    new Set(fake.calls.map((c) => JSON.stringify(c.node))),
    new Set([JSON.stringify({ aeTitle: 'PACS', host: '127.0.0.1', port: 1 }), JSON.stringify({ aeTitle: 'OTHER', host: '127.0.0.1', port: 2 })]),
    'each node called as configured',
  );
  const sent = fake.calls.flatMap((c) => c.files.map((f) => `${f.sopInstanceUID}>${c.node.aeTitle}`));
  t.equal(new Set(sent).size, 30, 'each job sent once');
  t.same(fake.overlaps, [], 'never two associations to one destination for one study at once');
  t.ok(Object.values(fake.maxPerDest()).every((n) => n <= 2), `at most associationsPerDestination per destination (${JSON.stringify(fake.maxPerDest())})`);
  t.ok(Object.values(fake.maxPerDest()).some((n) => n === 2), 'and different studies do go in parallel');
  t.equal(fake.maxDestinations(), 1, 'at most concurrentDestinations destinations at a time');
});

t.test('an unreachable destination: retrying, its other studies held until the next attempt, then delivered', async (t) => {
  const w = forwardWorld(t.testdir(), { forward: { associationsPerDestination: 1 } });
  w.clock.now = null;
  t.teardown(() => w.close());
  for (const study of ['1.7.1', '1.7.2']) for (let i = 1; i <= 2; i++) w.add({ study, sop: `${study}.1.${i}`, policy: 'partner' });
  const fake = fakeSend((_f, call) => (call === 0 ? { outcome: 'retry', meaning: 'connection refused by 127.0.0.1:2 (nothing listens there)' } : done()));
  const wk = worker(w, fake.send);
  wk.start();
  t.teardown(() => wk.stop());
  await until(() => Object.values(w.states()).includes('retrying'), 5000, 'a retrying job');
  const first = fake.calls[0].files[0].path.split('/')[2];
  const job = w.job(`${first}.1.1`, 'OTHER')!;
  t.match(job, { state: 'retrying', attempts: 1, last_meaning: /connection refused/ });
  const nextAt = Date.parse(job.next_attempt_at);
  t.ok(nextAt - Date.parse(job.updated_at) === 1000, 'next attempt after retryInitialSeconds');
  const st = w.queue.studyStatus(first)[0];
  t.match(st, { state: 'retrying', retrying: 2, lastMeaning: /connection refused/, nextAttemptAt: job.next_attempt_at }, 'visible in the study status');
  await until(allDone(w), 10000, 'every job done');
  t.ok(fake.calls.length >= 3, 'tried again');
  t.ok(fake.calls.slice(1).every((c) => c.at >= nextAt), 'nothing sent to the destination before its next attempt (the other study waited too)');
  t.equal(w.job(`${first}.1.1`, 'OTHER')!.attempts, 2, 'two attempts counted');
});

t.test('jobs a crash left sending are resumed; unconfigured destinations fail with the reason', async (t) => {
  const w = forwardWorld(t.testdir());
  w.clock.now = null;
  t.teardown(() => w.close());
  for (let i = 1; i <= 3; i++) w.add({ study: '1.8.1', sop: `1.8.1.1.${i}`, policy: 'partner' });
  w.queue.insertForInstance({ instanceId: w.index.findInstance('1.8.1.1.1')!.id }, { studyUid: '1.8.1', seriesUid: '1.8.1.1', sopInstanceUid: '1.8.1.1.1' }, ['GONE'], 'admin', Date.now());
  t.equal(w.queue.claim('OTHER', '1.8.1', { maxInstances: 100, maxBytes: 1e12 }).length, 3, 'claimed by "a previous run"');
  const fake = fakeSend(done);
  const wk = worker(w, fake.send);
  wk.start();
  t.teardown(() => wk.stop());
  await until(() => w.job('1.8.1.1.3', 'OTHER')?.state === 'done', 5000, 'resumed jobs done');
  t.same(fake.calls.flatMap((c) => c.files.map((f) => f.sopInstanceUID)).sort(), ['1.8.1.1.1', '1.8.1.1.2', '1.8.1.1.3'], 'each resumed job sent once');
  t.match(w.job('1.8.1.1.1', 'GONE'), { state: 'failed', last_meaning: /"GONE" is not configured/ });
  t.notOk(fake.calls.some((c) => c.node.aeTitle === 'GONE'), 'nothing sent to it');
});

t.test('stop() aborts and puts undelivered jobs back; a throwing SCU leaves no job stuck in sending', async (t) => {
  const w = forwardWorld(t.testdir());
  w.clock.now = null;
  t.teardown(() => w.close());
  for (let i = 1; i <= 3; i++) w.add({ study: '1.9.1', sop: `1.9.1.1.${i}`, policy: 'partner' });
  let signal: AbortSignal | undefined;
  const hanging: Send = async (_node, files, opts) => {
    signal = opts.signal;
    opts.onResult?.({ sopInstanceUID: files[0].sopInstanceUID, outcome: 'done', status: 0, meaning: 'Success (0x0000)' }, 0);
    await new Promise((r) => opts.signal!.addEventListener('abort', r, { once: true }));
    return files.map((f, i) => (i === 0 ? { sopInstanceUID: f.sopInstanceUID, outcome: 'done' as const, status: 0, meaning: 'Success' } : { sopInstanceUID: f.sopInstanceUID, outcome: 'retry' as const, meaning: 'cancelled' }));
  };
  const wk = worker(w, hanging);
  wk.start();
  await until(() => !!signal && w.job('1.9.1.1.1', 'OTHER')?.state === 'done', 5000, 'the first instance delivered');
  t.equal(wk.active().length, 1, 'one batch on the wire');
  await wk.stop();
  t.ok(signal!.aborted, 'the association was aborted');
  t.same(w.states(), { '1.9.1.1.1>OTHER': 'done', '1.9.1.1.2>OTHER': 'queued', '1.9.1.1.3>OTHER': 'queued' }, 'delivered stays done; the rest queued again');
  t.equal(w.job('1.9.1.1.2', 'OTHER')!.attempts, 0, 'no attempt counted for a stop');

  const throwing: Send = async () => {
    throw new Error('disk on fire');
  };
  const wk2 = worker(w, throwing);
  wk2.start();
  t.teardown(() => wk2.stop());
  await until(() => w.job('1.9.1.1.2', 'OTHER')!.state === 'retrying', 5000, 'retrying after the SCU threw');
  t.match(w.job('1.9.1.1.3', 'OTHER'), { state: 'retrying', last_meaning: /disk on fire/ });
});
