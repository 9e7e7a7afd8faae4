/**
 * The forwarding queue without a network: backoff and batching rules, auto-forward jobs written in the
 * instance's own transaction (by policy, upload -> dicom.pacs), admin enqueues (study, series; audited),
 * outcome recording (done, retry with capped exponential backoff, give-up, failed, release), resend, status.
 */
import t from 'tap';
import { retryDelayMs, shouldGiveUp } from '../../appliance/forward/backoff.ts';
import { takeBatch } from '../../appliance/forward/batch.ts';
import { destinationsFor } from '../../appliance/forward/destinations.ts';
import { forwardWorld, T0 } from './lib/world.ts';

const admin = { kind: 'user' as const, name: 'alice', ip: '127.0.0.1' };

t.test('backoff: initial delay doubling to the cap; give up after the configured hours', async (t) => {
  const p = { retryInitialSeconds: 30, retryMaxSeconds: 600, giveUpAfterHours: 168 };
  t.same([1, 2, 3, 4, 5, 6, 7, 50, 5000].map((n) => retryDelayMs(n, p) / 1000), [30, 60, 120, 240, 480, 600, 600, 600, 600]);
  const q = { retryInitialSeconds: 1, retryMaxSeconds: 4, giveUpAfterHours: 1 };
  t.same([1, 2, 3, 4].map((n) => retryDelayMs(n, q)), [1000, 2000, 4000, 4000]);
  t.equal(retryDelayMs(0, q), 1000, 'a first failure counts as one');
  t.notOk(shouldGiveUp(T0, T0 + 3599_999, q), 'not before the hour');
  t.ok(shouldGiveUp(T0, T0 + 3600_000, q), 'at the hour');
});

t.test('batching: instance and byte caps, an oversized instance alone', async (t) => {
  const jobs = [500, 500, 500, 500, 500].map((size, id) => ({ id, size }));
  t.same(takeBatch(jobs, { maxInstances: 3, maxBytes: 1e9 }).map((j) => j.id), [0, 1, 2], 'instance cap');
  t.same(takeBatch(jobs, { maxInstances: 100, maxBytes: 1200 }).map((j) => j.id), [0, 1], 'byte cap');
  t.same(takeBatch([{ id: 9, size: 5000 }, ...jobs], { maxInstances: 100, maxBytes: 1200 }).map((j) => j.id), [9], 'larger than the cap: alone');
  t.same(takeBatch([], { maxInstances: 1, maxBytes: 1 }), []);
});

t.test('destinations of a policy: forwardTo, plus dicom.pacs for upload; only sendable nodes', async (t) => {
  const w = forwardWorld(t.testdir());
  t.teardown(() => w.close());
  t.same(destinationsFor(w.config, 'modality'), []);
  t.same(destinationsFor(w.config, 'partner'), ['OTHER']);
  t.same(destinationsFor(w.config, 'upload'), ['OTHER', 'PACS']);
  t.same(destinationsFor(w.config, undefined), []);
});

t.test('auto-forward jobs are written in the instance commit transaction', async (t) => {
  const w = forwardWorld(t.testdir());
  t.teardown(() => w.close());
  w.add({ study: '1.2.1', sop: '1.2.1.1.1', policy: 'upload' });
  w.add({ study: '1.2.1', sop: '1.2.1.1.2', policy: 'partner' });
  w.add({ study: '1.2.1', sop: '1.2.1.1.3', policy: 'modality' });
  t.same(w.states(), { '1.2.1.1.1>OTHER': 'queued', '1.2.1.1.1>PACS': 'queued', '1.2.1.1.2>OTHER': 'queued' }, 'one job per destination of the policy');
  const j = w.job('1.2.1.1.1', 'PACS')!;
  t.equal(j.origin, 'policy:upload');
  t.equal(j.study_uid, '1.2.1');
  t.equal(j.next_attempt_at, new Date(T0).toISOString(), 'due after the settle delay (0 here)');

  // A later hook throws: the instance and its jobs roll back together.
  const boom = () => {
    throw new Error('boom');
  };
  t.throws(() => w.add({ study: '1.2.2', sop: '1.2.2.1.1', policy: 'upload', hooks: [w.hook, boom] }), /boom/);
  t.notOk(w.index.findInstance('1.2.2.1.1'), 'no instance');
  t.notOk(w.job('1.2.2.1.1', 'PACS'), 'no job either');

  // Deleting the instance deletes its jobs.
  w.index.removeInstances([w.index.findInstance('1.2.1.1.2')!.id]);
  t.notOk(w.job('1.2.1.1.2', 'OTHER'), 'jobs go with their instance');
});

t.test('admin enqueue of a study or a series: validated, counted, audited, re-sends what was done', async (t) => {
  const w = forwardWorld(t.testdir());
  t.teardown(() => w.close());
  for (let i = 1; i <= 3; i++) w.add({ study: '1.3.1', series: '1.3.1.1', sop: `1.3.1.1.${i}` });
  for (let i = 1; i <= 2; i++) w.add({ study: '1.3.1', series: '1.3.1.2', sop: `1.3.1.2.${i}` });

  const r = w.queue.enqueueSeries('1.3.1.2', 'OTHER', admin);
  t.same(r, { destination: 'OTHER', studyUid: '1.3.1', seriesUid: '1.3.1.2', instances: 2, created: 2, requeued: 0 });
  const s = w.queue.enqueueStudy('1.3.1', 'OTHER', admin);
  t.same(s, { destination: 'OTHER', studyUid: '1.3.1', instances: 5, created: 3, requeued: 2 });
  t.equal(Object.keys(w.states()).length, 5, 'one job per instance and destination, never two');

  const entries = w.audit.list({ action: 'forward' });
  t.equal(entries.length, 2, 'each request audited');
  t.equal(entries[0].actor, 'alice');
  t.equal(entries[0].study_uid, '1.3.1');
  t.match(JSON.parse(entries[1].detail!), { destination: 'OTHER', seriesUid: '1.3.1.2', instances: 2 });

  t.throws(() => w.queue.enqueueStudy('1.3.1', 'MOD', admin), { code: 'BAD_REQUEST', message: /send": true/ }, 'a node without send: true is refused');
  t.throws(() => w.queue.enqueueStudy('1.3.1', 'NOPE', admin), { code: 'BAD_REQUEST', message: /not configured/ }, 'an unknown node is refused');
  t.throws(() => w.queue.enqueueStudy('9.9.9', 'OTHER', admin), { code: 'NOT_FOUND' }, 'an unknown study is refused');
  t.throws(() => w.queue.enqueueSeries('9.9.9', 'OTHER', admin), { code: 'NOT_FOUND' }, 'an unknown series is refused');
  t.equal(w.audit.list({ action: 'forward' }).length, 2, 'refusals change nothing');

  // Deliver everything, then ask again: all five go again.
  const claimed = w.queue.claim('OTHER', '1.3.1', { maxInstances: 100, maxBytes: 1e12 });
  t.equal(claimed.length, 5);
  w.queue.record(claimed.map((job) => ({ job, kind: 'done' as const, status: 0, meaning: 'Success (0x0000)' })));
  t.same(new Set(Object.values(w.states())), new Set(['done']));
  const again = w.queue.enqueueStudy('1.3.1', 'OTHER', admin);
  t.equal(again.requeued, 5);
  t.same(new Set(Object.values(w.states())), new Set(['queued']));
});

t.test('outcomes: done, retry with backoff, give-up, failed with its meaning, resend, release', async (t) => {
  const w = forwardWorld(t.testdir());
  t.teardown(() => w.close());
  for (let i = 1; i <= 4; i++) w.add({ study: '1.4.1', sop: `1.4.1.1.${i}`, policy: 'partner' });
  const caps = { maxInstances: 100, maxBytes: 1e12 };
  let jobs = w.queue.claim('OTHER', '1.4.1', caps);
  t.equal(jobs.length, 4);
  t.same(new Set(Object.values(w.states())), new Set(['sending']), 'claimed jobs are sending');
  t.same(w.queue.claim('OTHER', '1.4.1', caps), [], 'a claimed job is not claimed twice');
  const [a, b, c, d] = jobs;
  const s = w.queue.record([
    { job: a, kind: 'done', status: 0, meaning: 'Success (0x0000)', transcoded: { from: '1.2.840.10008.1.2.4.50', to: '1.2.840.10008.1.2.1' } },
    { job: b, kind: 'retry', meaning: 'connection refused by 127.0.0.1:2' },
    { job: c, kind: 'failed', status: 0xc000, meaning: 'Error: cannot understand (0xC000)' },
    { job: d, kind: 'release' },
  ]);
  t.match(s, { done: 1, retrying: 1, failed: 1, released: 1, nextRetryMs: T0 + 1000 });
  t.match(w.job('1.4.1.1.1', 'OTHER'), { state: 'done', attempts: 1, last_status: 0, transcoded_from: '1.2.840.10008.1.2.4.50', transcoded_to: '1.2.840.10008.1.2.1' });
  t.match(w.job('1.4.1.1.2', 'OTHER'), { state: 'retrying', attempts: 1, last_meaning: /connection refused/, next_attempt_at: new Date(T0 + 1000).toISOString(), first_failure_at: new Date(T0).toISOString() });
  t.match(w.job('1.4.1.1.3', 'OTHER'), { state: 'failed', attempts: 1, last_status: 0xc000, last_meaning: /cannot understand/ });
  t.match(w.job('1.4.1.1.4', 'OTHER'), { state: 'queued', attempts: 0 }, 'released: queued again, no attempt counted');

  const st = w.queue.studyStatus('1.4.1');
  t.equal(st.length, 1);
  t.match(st[0], { destination: 'OTHER', state: 'retrying', total: 4, done: 1, retrying: 1, failed: 1, queued: 1, transcoded: 1, nextAttemptAt: new Date(T0).toISOString() });

  // Not due before its time; then doubling to the cap.
  t.same(w.queue.claim('OTHER', '1.4.1', caps).map((j) => j.sopInstanceUid), ['1.4.1.1.4'], 'only the released one is due now');
  const expected = [2000, 4000, 4000];
  for (const delay of expected) {
    w.clock.now = Date.parse(w.job('1.4.1.1.2', 'OTHER')!.next_attempt_at);
    jobs = w.queue.claim('OTHER', '1.4.1', caps).filter((j) => j.sopInstanceUid === '1.4.1.1.2');
    t.equal(jobs.length, 1, 'due at its next attempt');
    w.queue.record([{ job: jobs[0], kind: 'retry', meaning: 'Refused: out of resources (0xA700)', status: 0xa700 }]);
    t.equal(Date.parse(w.job('1.4.1.1.2', 'OTHER')!.next_attempt_at) - w.now(), delay, `next delay ${delay} ms`);
  }
  t.equal(w.job('1.4.1.1.2', 'OTHER')!.first_failure_at, new Date(T0).toISOString(), 'the give-up clock runs from the first failure');
  w.clock.now = T0 + 3600_000;
  jobs = w.queue.claim('OTHER', '1.4.1', caps).filter((j) => j.sopInstanceUid === '1.4.1.1.2');
  const g = w.queue.record([{ job: jobs[0], kind: 'retry', meaning: 'connection refused by 127.0.0.1:2' }]);
  t.equal(g.gaveUp, 1);
  t.match(w.job('1.4.1.1.2', 'OTHER'), { state: 'failed', last_meaning: /gave up after 1 h .*connection refused/ });

  // Resend: failed ones queued again, attempts reset, audited per study.
  const n = w.queue.resend({ destination: 'OTHER' }, admin);
  t.equal(n, 2, 'both failed jobs');
  t.match(w.job('1.4.1.1.2', 'OTHER'), { state: 'queued', attempts: 0, first_failure_at: null, last_meaning: null });
  t.match(w.job('1.4.1.1.3', 'OTHER'), { state: 'queued', attempts: 0 });
  t.match(w.audit.list({ action: 'forward-resend' }), [{ actor: 'alice', study_uid: '1.4.1', detail: /"instances":2/ }]);
  t.equal(w.queue.resend({}, admin), 0, 'nothing left to resend');

  // An admin re-queue while a job is sending wins: the worker's outcome does not overwrite it.
  const [x] = w.queue.claim('OTHER', '1.4.1', { maxInstances: 1, maxBytes: 1e12 });
  w.queue.enqueueStudy('1.4.1', 'OTHER', admin);
  w.queue.record([{ job: x, kind: 'done', status: 0, meaning: 'Success' }]);
  t.equal(w.job(x.sopInstanceUid, 'OTHER')!.state, 'queued', 'sent again later');
});

t.test('status per destination and per study; interrupted and unconfigured jobs', async (t) => {
  const w = forwardWorld(t.testdir());
  t.teardown(() => w.close());
  for (let i = 1; i <= 3; i++) w.add({ study: '1.5.1', sop: `1.5.1.1.${i}`, policy: 'upload' });
  w.add({ study: '1.5.2', sop: '1.5.2.1.1', policy: 'partner' });
  w.queue.insertForInstance({ instanceId: w.index.findInstance('1.5.2.1.1')!.id }, { studyUid: '1.5.2', seriesUid: '1.5.2.1', sopInstanceUid: '1.5.2.1.1' }, ['GONE'], 'admin', T0);

  const claimed = w.queue.claim('PACS', '1.5.1', { maxInstances: 2, maxBytes: 1e12 });
  t.equal(claimed.length, 2, 'capped at two instances');
  const dests = w.queue.destinations();
  t.same(dests.map((d) => d.destination), ['PACS', 'OTHER', 'GONE'], 'configured destinations first, then ones that still have jobs');
  t.match(dests[0], { configured: true, aeTitle: 'PACS', queued: 1, sending: 2, pendingStudies: 1 });
  t.match(dests[2], { configured: false, queued: 1 });
  t.same(w.queue.studies({ destination: 'OTHER' }).map((p) => p.studyUid).sort(), ['1.5.1', '1.5.2']);
  t.same(w.queue.studies({ state: 'sending' }).map((p) => `${p.studyUid}>${p.destination}`), ['1.5.1>PACS']);

  t.equal(w.queue.resumeInterrupted(), 2, 'sending jobs of a previous run are queued again');
  t.equal(w.job('1.5.1.1.1', 'PACS')!.state, 'queued');
  t.equal(w.queue.failUnconfigured(), 1, 'the job for a node that is gone fails');
  t.match(w.job('1.5.2.1.1', 'GONE'), { state: 'failed', last_meaning: /"GONE" is not configured/ });
  t.throws(() => w.queue.resend({ destination: 'GONE' }, admin), /not configured/, 'resending to it is refused with the reason');
  const st = w.queue.studyStatus('1.5.2');
  t.match(st.find((p) => p.destination === 'GONE'), { state: 'failed', failed: 1, lastMeaning: /not configured/ });
  t.same(w.queue.jobs({ studyUid: '1.5.2', state: 'failed' }).map((j) => j.destination), ['GONE']);
});
