// Start, health and shutdown: /healthz is 200 with a small JSON while the database is open and HTTP and DICOM
// listen; SIGTERM finishes cleanly (exit 0, database closed, no consistency check needed on the next start).
import t from 'tap';
import { startAppliance } from '../helpers/appliance.ts';
import { echoscu } from '../helpers/dcmtk.ts';

t.test('health and clean shutdown', async (t) => {
  const app = await startAppliance({ dir: t.testdir(), nodes: [{ name: 'WS', aeTitle: 'ECHOSCU', allow: ['echo'] }] });
  const h = await app.health();
  t.equal(h.status, 200);
  t.match(h.body, { status: 'ok', db: 'open', dicom: 'listening', http: 'listening' });
  t.match(app.output(), new RegExp(`DICOM node: AE title UPLINK on 127\\.0\\.0\\.1:${app.dicomPort}`), 'start banner says where DICOM listens');
  t.match(app.output(), new RegExp(`http://127\\.0\\.0\\.1:${app.httpPort}/`), 'start banner says where HTTP listens');
  t.equal((await echoscu(['-aet', 'ECHOSCU', '-aec', 'UPLINK', '127.0.0.1', String(app.dicomPort)])).code, 0, 'C-ECHO answered');
  const code = await app.stop();
  t.equal(code, 0, 'SIGTERM: exit status 0');
  t.match(app.output(), /"msg":"stopped"/);
  await app.restart();
  t.teardown(() => app.stop());
  t.notMatch(app.output(), /did not shut down cleanly/, 'the next start knows the shutdown was clean');
});
