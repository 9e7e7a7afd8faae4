/**
 * DICOM transfer with the real `uplink` CLI against the running appliance, and a crash in the middle of it:
 * a study stored without auto-forward is queued with `uplink forward study STUDY --to PACS`; the appliance is
 * killed with SIGKILL while it sends; after the restart the interrupted jobs are resumed and the study
 * completes at the PACS, each instance once. Usage errors and exit codes of the forward commands.
 */
import t from 'tap';
import path from 'node:path';
import { startAppliance } from '../helpers/appliance.ts';
import { storescu } from '../helpers/dcmtk.ts';
import { datasetBytes } from '../helpers/dicom-files.ts';
import { startOrthanc } from '../helpers/orthanc.ts';
import { copyWithNewUids, PYDICOM_DIR } from '../helpers/samples.ts';
import { queueReader, uplink, waitFor } from './lib/peers.ts';

const CT_STUDY = '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322';
const N = 200;

t.test('uplink forward study, SIGKILL while sending, restart: the study completes, once', async (t) => {
  const dir = t.testdir();
  const pacs = await startOrthanc({ dir: path.join(dir, 'pacs'), aeTitle: 'PACS' });
  t.teardown(() => pacs.stop());
  const app = await startAppliance({
    dir: path.join(dir, 'uplink'),
    nodes: [
      { name: 'MOD', aeTitle: 'MOD', allow: ['store'] },
      { name: 'PACS', aeTitle: 'PACS', port: pacs.dicomPort, allow: [], send: true },
      { name: 'ARCHIVE', aeTitle: 'ARCHIVE', port: 9, allow: [], send: false },
    ],
    // Small associations: the kill lands between and inside them.
    config: { forward: { retryInitialSeconds: 1, retryMaxSeconds: 4, maxInstancesPerAssociation: 20 } },
  });
  let up = true;
  t.teardown(() => up && app.stop());
  const q = queueReader(app.dataDir);
  t.teardown(() => q.close());

  const files = copyWithNewUids(Array.from({ length: N }, () => path.join(PYDICOM_DIR, 'CT_small.dcm')), path.join(dir, 'in'));
  const sent = await storescu(['-aet', 'MOD', '-aec', 'UPLINK', '127.0.0.1', String(app.dicomPort), ...files]);
  t.equal(sent.code, 0, `stored in the appliance ${sent.stderr}`);
  t.equal(q.count(), 0, 'the modality policy forwards nothing by itself');

  // Usage errors first (nothing queued by them).
  const noNode = await uplink(app.configPath, ['forward', 'study', CT_STUDY]);
  t.equal(noNode.code, 2, 'missing --to: exit 2');
  t.match(noNode.stderr, /--to NODE is required \(nodes that may be sent to: PACS\)/);
  const notSendable = await uplink(app.configPath, ['forward', 'study', CT_STUDY, '--to', 'ARCHIVE']);
  t.equal(notSendable.code, 2, 'a node without send: true: exit 2');
  t.match(notSendable.stderr, /"ARCHIVE" is not a node that may be sent to/);
  const noStudy = await uplink(app.configPath, ['forward', 'study', '1.2.3.4', '--to', 'PACS']);
  t.equal(noStudy.code, 1, 'an unknown study: exit 1');
  t.match(noStudy.stderr, /no study 1\.2\.3\.4/);
  const noStatus = await uplink(app.configPath, ['forward', 'status', '1.2.3.4']);
  t.equal(noStatus.code, 1, 'status of an unknown study: exit 1');
  const badState = await uplink(app.configPath, ['forward', 'status', '--state', 'lost']);
  t.equal(badState.code, 2, 'an unknown state: exit 2');
  const notYet = await uplink(app.configPath, ['forward', 'status', CT_STUDY]);
  t.equal(notYet.code, 0);
  t.match(notYet.stdout, /Not forwarded to any destination\./);
  t.equal(q.count(), 0, 'nothing queued by the refused commands');

  const queued = await uplink(app.configPath, ['forward', 'study', CT_STUDY, '--to', 'PACS']);
  t.equal(queued.code, 0, queued.stderr);
  t.match(queued.stdout, new RegExp(`Queued ${N} instance\\(s\\) of study ${CT_STUDY.replace(/\./g, '\\.')} for PACS\\.`));

  // The running worker picks the CLI's jobs up; kill it as soon as the PACS has the first instance.
  const deadline = Date.now() + 30_000;
  while ((await pacs.countInstances()) === 0) {
    if (Date.now() > deadline) throw new Error('nothing reached the PACS within 30 s');
    await new Promise((r) => setTimeout(r, 10));
  }
  await app.kill();
  up = false;
  const doneAtKill = q.count("state = 'done'");
  const sendingAtKill = q.count("state = 'sending'");
  t.ok(doneAtKill < N, `killed in the middle: ${doneAtKill} of ${N} recorded done`);
  t.ok(sendingAtKill > 0, `${sendingAtKill} jobs were on the wire`);
  const atPacs = await pacs.countInstances();
  t.ok(atPacs < N, `the PACS had ${atPacs} of ${N}`);

  await app.restart();
  up = true;
  await app.waitForLog(/interrupted by the last stop or crash are queued again/, 10_000);
  await waitFor(() => q.count("state = 'done'") === N, 120_000, 'the study completed after the restart');
  t.equal(await pacs.countInstances(), N, 'the PACS holds every instance, once');
  let identical = 0;
  for (const j of q.jobs()) {
    const kept = await pacs.fileOf(j.sop_uid);
    if (kept && kept.subarray(144 + kept.readUInt32LE(140)).equals(datasetBytes(q.storePath(j.path)))) identical++;
  }
  t.equal(identical, N, 'every instance identical');
  const status = await uplink(app.configPath, ['forward', 'status', CT_STUDY]);
  t.match(status.stdout, new RegExp(`PACS \\(PACS at 127\\.0\\.0\\.1:\\d+\\): done: ${N} done of ${N}`));

  // The audit trail has the transfer, by the CLI's user.
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(path.join(app.dataDir, 'uplink.sqlite'), { readonly: true });
  t.teardown(() => db.close());
  const audit = db.prepare("SELECT * FROM audit WHERE action = 'forward'").all() as { actor: string; actor_kind: string; study_uid: string; detail: string }[];
  t.equal(audit.length, 1, 'the transfer is audited once');
  t.match(audit[0], { actor_kind: 'system', actor: /^cli:/, study_uid: CT_STUDY });
  t.match(JSON.parse(audit[0].detail), { destination: 'PACS', instances: N, origin: 'cli' });
});
