// Association policy against DCMTK: wrong called AE, unknown calling AE (or right AE from the wrong address)
// and services outside a node's allow list are refused, each with a log line saying why.
import t from 'tap';
import path from 'node:path';
import { startAppliance } from '../helpers/appliance.ts';
import { runDcmtk } from '../helpers/dcmtk.ts';
import { validSamples } from '../helpers/samples.ts';

const dcmtk = async (cmd: string, args: string[]) => {
  const r = await runDcmtk(cmd, args);
  return { code: r.code, out: `${r.stdout}${r.stderr}` };
};

t.test('association policy', async (t) => {
  const app = await startAppliance({
    dir: t.testdir(),
    nodes: [
      { name: 'ECHOONLY', aeTitle: 'ECHOONLY', allow: ['echo'] },
      { name: 'FARAWAY', aeTitle: 'FARAWAY', host: '10.99.99.99', allow: ['echo', 'store', 'find'] },
      { name: 'MOD', aeTitle: 'MOD', allow: ['echo', 'store'] },
    ],
  });
  t.teardown(() => app.stop());
  const port = String(app.dicomPort);
  const ct = validSamples().find((f) => path.basename(f) === 'CT_small.dcm')!;

  const ok = await dcmtk('echoscu', ['-aet', 'ECHOONLY', '-aec', 'UPLINK', '127.0.0.1', port]);
  t.equal(ok.code, 0, 'a known node may C-ECHO');

  const wrongCalled = await dcmtk('echoscu', ['-aet', 'ECHOONLY', '-aec', 'NOTUPLINK', '127.0.0.1', port]);
  t.not(wrongCalled.code, 0);
  t.match(wrongCalled.out, /Called AE Title Not Recognized/i, 'wrong called AE: A-ASSOCIATE-RJ, called AE not recognised');

  const unknown = await dcmtk('echoscu', ['-aet', 'STRANGER', '-aec', 'UPLINK', '127.0.0.1', port]);
  t.match(unknown.out, /Calling AE Title Not Recognized/i, 'unknown calling AE: A-ASSOCIATE-RJ, calling AE not recognised');

  const wrongHost = await dcmtk('echoscu', ['-aet', 'FARAWAY', '-aec', 'UPLINK', '127.0.0.1', port]);
  t.match(wrongHost.out, /Calling AE Title Not Recognized/i, 'a known AE title from the wrong address is refused');

  const storeNotAllowed = await dcmtk('storescu', ['-aet', 'ECHOONLY', '-aec', 'UPLINK', '127.0.0.1', port, ct]);
  t.not(storeNotAllowed.code, 0, 'C-STORE from an echo-only node fails');
  t.match(storeNotAllowed.out, /Association Rejected|No presentation context|no acceptable presentation context/i);

  const findNotAllowed = await dcmtk('findscu', ['-S', '-aet', 'MOD', '-aec', 'UPLINK', '127.0.0.1', port, '-k', 'QueryRetrieveLevel=STUDY']);
  t.not(findNotAllowed.code, 0, 'C-FIND from a node without "find" fails');

  const expectations: [RegExp, string][] = [
    [/"reject":"called-ae","reason":"called AE title \\"NOTUPLINK\\"/, 'log says the called AE was wrong'],
    [/"reject":"calling-ae","reason":"no configured node has AE title \\"STRANGER\\"/, 'log names the unknown AE'],
    [/"reject":"calling-ae","reason":"no configured node has AE title \\"FARAWAY\\" and address 127\.0\.0\.1/, 'log names the address'],
    [/"reject":"no-context","reason":"node \\"ECHOONLY\\" proposed nothing it may use [^"]*allowed: echo\)/, 'log says which service was not allowed'],
    [/"reject":"no-context","reason":"node \\"MOD\\" proposed nothing it may use \(proposed: find/, 'log says find was not allowed'],
  ];
  for (const [re, what] of expectations) {
    await app.waitForLog(re);
    t.pass(what);
  }
});
