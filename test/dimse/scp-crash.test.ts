// The appliance killed with SIGKILL during a stream of C-STOREs: after a restart every instance that had been
// acknowledged is in the index and in the store (with the bytes that were sent), index and store agree, and
// staging is empty.
import t from 'tap';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { startAppliance } from '../helpers/appliance.ts';
import { datasetBytes, filesUnder, metaSopInstanceUid } from '../helpers/dicom-files.ts';
import { copyWithNewUids, PYDICOM_DIR } from '../helpers/samples.ts';

t.test('SIGKILL during a stream of C-STOREs loses nothing acknowledged', async (t) => {
  const dir = t.testdir();
  const files = copyWithNewUids(Array(400).fill(path.join(PYDICOM_DIR, 'CT_small.dcm')), path.join(dir, 'in'));
  const app = await startAppliance({ dir: path.join(dir, 'uplink'), nodes: [{ name: 'MOD', aeTitle: 'STORESCU', allow: ['store'] }] });

  // storescu -v prints "Sending file: X" ... "Received Store Response (Success)" for each instance.
  const scu = spawn('storescu', ['-v', '-aet', 'STORESCU', '-aec', 'UPLINK', '127.0.0.1', String(app.dicomPort), ...files], {
    env: { ...process.env, TCP_NODELAY: '1' },
  });
  let out = '';
  const acknowledged: string[] = [];
  let current: string | undefined;
  const killed = new Promise<void>((resolve) => {
    const onData = (d: Buffer) => {
      out += d;
      let nl: number;
      while ((nl = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        const sending = /Sending file: (.*)$/.exec(line);
        if (sending) current = sending[1];
        if (/Received Store Response \(Success\)/.test(line) && current) {
          acknowledged.push(current);
          if (acknowledged.length === 150) void app.kill().then(resolve);
        }
      }
    };
    scu.stdout.on('data', onData);
    scu.stderr.on('data', onData);
  });
  await killed;
  await new Promise((r) => scu.once('exit', r));
  t.ok(acknowledged.length >= 150 && acknowledged.length < files.length, `killed mid-stream after ${acknowledged.length} acknowledged instances`);

  await app.restart();
  t.teardown(() => app.stop());
  await app.waitForLog(/did not shut down cleanly: checking the index against the store/);
  t.pass('the restart checked the index against the store');

  const db = new Database(path.join(app.dataDir, 'uplink.sqlite'), { readonly: true });
  const rows = db.prepare('SELECT sop_uid, path FROM instances').all() as { sop_uid: string; path: string }[];
  db.close();
  const indexed = new Map(rows.map((r) => [r.sop_uid, path.join(app.dataDir, 'store', r.path)]));
  let intact = 0;
  for (const f of acknowledged) {
    const uid = metaSopInstanceUid(f);
    const stored = indexed.get(uid);
    if (!stored) t.fail(`acknowledged instance ${uid} is not in the index`);
    else if (datasetBytes(stored).equals(datasetBytes(f))) intact++;
    else t.fail(`acknowledged instance ${uid} is damaged`);
  }
  t.equal(intact, acknowledged.length, 'every acknowledged instance is indexed and stored intact');
  const inStore = filesUnder(path.join(app.dataDir, 'store')).sort();
  t.same(inStore, [...indexed.values()].sort(), 'index and store agree');
  t.same(readdirSync(path.join(app.dataDir, 'staging', 'incoming')), [], 'staging is empty');
  t.equal((await app.health()).status, 200, 'healthy after the restart');
});
