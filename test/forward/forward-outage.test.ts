/**
 * Forwarding when the PACS is not there or will not talk to us, with the real appliance, Debian's Orthanc and
 * the real `uplink` CLI: Orthanc stopped while a study is queued -> retrying with capped backoff (visible in
 * `uplink forward status`), then everything arrives once Orthanc is back, once each; a PACS that rejects the
 * association (wrong called AE title) -> failed with the reason, resent with `uplink forward resend` after
 * the configuration is fixed and the appliance restarted.
 */
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startAppliance } from '../helpers/appliance.ts';
import { dcmsend } from '../helpers/dcmtk.ts';
import { datasetBytes } from '../helpers/dicom-files.ts';
import { startOrthanc } from '../helpers/orthanc.ts';
import { copyWithNewUids, PYDICOM_DIR } from '../helpers/samples.ts';
import { queueReader, uplink, waitFor } from './lib/peers.ts';

const CT_STUDY = '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322';

function copies(dir: string, sample: string, n: number): string[] {
  return copyWithNewUids(Array.from({ length: n }, () => path.join(PYDICOM_DIR, sample)), dir);
}

t.test('the PACS is down while a study is queued: retrying (visible), then all of it arrives once it is back, once', async (t) => {
  const dir = t.testdir();
  const pacs = await startOrthanc({ dir: path.join(dir, 'pacs'), aeTitle: 'PACS' });
  t.teardown(() => pacs.stop());
  const app = await startAppliance({
    dir: path.join(dir, 'uplink'),
    nodes: [
      { name: 'MOD', aeTitle: 'MOD', allow: ['store'], policy: 'relay' },
      { name: 'PACS', aeTitle: 'PACS', port: pacs.dicomPort, allow: [], send: true },
    ],
    config: {
      policies: { relay: { anonymise: false, label: null, workflowStatus: null, scan: false, forwardTo: ['PACS'] } },
      forward: { retryInitialSeconds: 1, retryMaxSeconds: 4 },
    },
  });
  t.teardown(() => app.stop());
  const q = queueReader(app.dataDir);
  t.teardown(() => q.close());

  await pacs.stop();
  const files = copies(path.join(dir, 'in'), 'CT_small.dcm', 20);
  const sent = await dcmsend(['-aet', 'MOD', '-aec', 'UPLINK', '127.0.0.1', String(app.dicomPort), ...files]);
  t.equal(sent.code, 0, `stored in the appliance ${sent.stderr}`);
  t.equal(q.count(), 20, 'one job per instance');

  // Two failed attempts each: the backoff doubles (1 s, then 2 s).
  await waitFor(() => q.count("state = 'retrying' AND attempts >= 2") === 20, 30_000, 'every job retrying after two attempts');
  const j = q.jobs()[0];
  t.match(j.last_meaning, /connection refused/, 'the reason in words');
  t.equal(q.count("state = 'done'"), 0, 'nothing done while the PACS is down');

  const status = await uplink(app.configPath, ['forward', 'status', CT_STUDY]);
  t.equal(status.code, 0, status.stderr);
  t.match(status.stdout, /PACS \(PACS at 127\.0\.0\.1:\d+\): retrying \(next attempt at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\): 20 retrying of 20/, `uplink forward status STUDY shows it:\n${status.stdout}`);
  t.match(status.stdout, /^ {4}20 retrying: connection refused by 127\.0\.0\.1:\d+ \(nothing listens there\) \(attempt [2-9]\)$/m, 'the reason, once for the 20 instances it concerns');
  const overall = await uplink(app.configPath, ['forward', 'status']);
  t.equal(overall.code, 0);
  t.match(overall.stdout, /^PACS\s+PACS\s+127\.0\.0\.1:\d+\s+0\s+0\s+20\s+0\s+0\s+\d{4}-/m, `the destination row counts 20 retrying:\n${overall.stdout}`);
  t.match(overall.stdout, new RegExp(`${CT_STUDY.replace(/\./g, '\\.')}\\s+PACS\\s+retrying`), 'the study is listed as not fully forwarded');
  const json = JSON.parse((await uplink(app.configPath, ['forward', 'status', CT_STUDY, '--json'])).stdout);
  t.match(json.destinations, [{ destination: 'PACS', state: 'retrying', retrying: 20, total: 20 }], '--json for scripts');

  await pacs.restart();
  await waitFor(() => q.count("state = 'done'") === 20, 60_000, 'every job done once the PACS is back');
  t.equal(await pacs.countInstances(), 20, 'the PACS holds each instance once');
  for (const job of q.jobs()) {
    const kept = await pacs.fileOf(job.sop_uid);
    t.ok(kept && kept.subarray(144 + kept.readUInt32LE(140)).equals(datasetBytes(q.storePath(job.path))), `${job.sop_uid}: identical`);
  }
  const done = await uplink(app.configPath, ['forward', 'status', CT_STUDY]);
  t.match(done.stdout, /PACS \(PACS at 127\.0\.0\.1:\d+\): done: 20 done of 20/, 'done, in the CLI too');
});

t.test('a PACS that rejects the association: failed with the reason; resent after the configuration is fixed', async (t) => {
  const dir = t.testdir();
  const pacs = await startOrthanc({ dir: path.join(dir, 'pacs'), aeTitle: 'PACS', checkCalledAet: true });
  t.teardown(() => pacs.stop());
  const app = await startAppliance({
    dir: path.join(dir, 'uplink'),
    nodes: [
      { name: 'MOD', aeTitle: 'MOD', allow: ['store'], policy: 'relay' },
      { name: 'PACS', aeTitle: 'NOT-THE-PACS', port: pacs.dicomPort, allow: [], send: true },
    ],
    config: {
      policies: { relay: { anonymise: false, label: null, workflowStatus: null, scan: false, forwardTo: ['PACS'] } },
      forward: { retryInitialSeconds: 1, retryMaxSeconds: 4 },
    },
  });
  let running = true;
  t.teardown(() => running && app.stop());
  const q = queueReader(app.dataDir);
  t.teardown(() => q.close());

  const files = copies(path.join(dir, 'in'), 'CT_small.dcm', 5);
  t.equal((await dcmsend(['-aet', 'MOD', '-aec', 'UPLINK', '127.0.0.1', String(app.dicomPort), ...files])).code, 0, 'stored in the appliance');
  await waitFor(() => q.count("state = 'failed'") === 5, 30_000, 'every job failed');
  const j = q.jobs()[0];
  t.match(j.last_meaning, /association rejected \(permanent\).*called AE title not recognised/, `the reason: ${j.last_meaning}`);
  t.equal(j.attempts, 1, 'not retried: a permanent rejection needs someone to act');
  t.equal(await pacs.countInstances(), 0);
  const status = await uplink(app.configPath, ['forward', 'status', CT_STUDY]);
  t.match(status.stdout, /PACS \(NOT-THE-PACS at 127\.0\.0\.1:\d+\): failed \(NOT-THE-PACS@127\.0\.0\.1:\d+: association rejected \(permanent\) .*called AE title not recognised\): 5 failed of 5/, status.stdout);
  t.match(status.stdout, /Resend what failed with: uplink forward resend/);
  const echo = await uplink(app.configPath, ['forward', 'echo', 'PACS']);
  t.equal(echo.code, 1, 'C-ECHO fails (exit 1)');
  t.match(echo.stdout, /FAILED: .*called AE title not recognised/);

  // Fix the configuration, restart the appliance, resend with the CLI.
  const config = JSON.parse(readFileSync(app.configPath, 'utf8'));
  config.dicom.nodes.find((n: { name: string }) => n.name === 'PACS').aeTitle = 'PACS';
  writeFileSync(app.configPath, JSON.stringify(config, null, 2));
  running = false;
  t.equal(await app.stop(), 0, 'stopped cleanly');
  await app.restart();
  running = true;
  t.equal(q.count("state = 'failed'"), 5, 'failed jobs stay failed over a restart (nothing is resent by itself)');
  const okEcho = await uplink(app.configPath, ['forward', 'echo', 'PACS']);
  t.equal(okEcho.code, 0, okEcho.stdout + okEcho.stderr);
  t.match(okEcho.stdout, /^OK: C-ECHO to PACS@127\.0\.0\.1:\d+: Success/);
  const resend = await uplink(app.configPath, ['forward', 'resend', CT_STUDY, '--to', 'PACS']);
  t.equal(resend.code, 0, resend.stderr);
  t.match(resend.stdout, /Queued 5 instance\(s\) again of study .* for PACS\./);
  await waitFor(() => q.count("state = 'done'") === 5, 30_000, 'every job done after the resend');
  t.equal(await pacs.countInstances(), 5, 'all five arrived');
  const nothing = await uplink(app.configPath, ['forward', 'resend']);
  t.match(nothing.stdout, /Nothing to resend/);
  const audit = await uplink(app.configPath, ['forward', 'status', '--state', 'failed']);
  t.match(audit.stdout, /No studies with failed instances\./);
});
