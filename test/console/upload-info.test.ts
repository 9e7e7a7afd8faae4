// The "Uploaded study information" box for studies that came through the portal: a patient's upload with a code
// (the code chosen at the real portal, START UPLOAD's selection with comment and e-mail recorded; the files then
// handed to the real ingest with that upload's information, as the browser upload does) and a logged-in user's
// upload. The box names the code by its reference and institution, shows contact and comment (escaped, lines
// kept), the upload reference and the scan; the origin filter tells portal uploads from node ones.
import t from 'tap';
import { copyFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Origin } from '../../appliance/intake/ingest.ts';
import { createClient, startServer, TEST_INSTITUTION } from '../helpers/server.ts';
import { makeStudies } from '../intake/lib/studies.ts';
import { addUser, ADMIN, loginHttp } from './lib/world.ts';

const HX = { 'HX-Request': 'true' };

t.test('uploaded-study information for code and user uploads', async (t) => {
  const srv = await startServer(t, { mode: 'in-process', config: { policies: { upload: { scan: false } } } });
  const appliance = srv.appliance!;
  await addUser(srv, ADMIN, 'admin');
  const [a, b] = await makeStudies(path.join(t.testdir(), 'in'), [
    { patient: 'ORIG-PAT-A', sample: 'CT_small.dcm', studies: [{ accession: 'ORIG-ACC-A', instances: 1 }] },
    { patient: 'ORIG-PAT-B', sample: 'MR_small.dcm', studies: [{ accession: 'ORIG-ACC-B', instances: 1 }] },
  ]);

  // the patient: code entered at the portal, studies chosen with a comment and an e-mail address (START UPLOAD)
  const code = await srv.createCode();
  const ref = (appliance.db.prepare('SELECT ref FROM upload_codes').get() as { ref: string }).ref;
  const patient = createClient(srv.url);
  await patient.get('/');
  t.equal((await patient.postForm('/', { code })).status, 303);
  await patient.get('/upload');
  const comment = 'Please compare with my 2019 scan.\nSecond line <script>alert(1)</script>';
  const chosen = await patient.postJson('/upload/selection', { studies: [{ studyUid: a.study, files: 1, bytes: statSync(a.file).size, comment }], email: 'pat@example.org' });
  t.equal(chosen.status, 200, chosen.text_);
  const reference = JSON.parse(chosen.text_).reference as string;

  const ingest = async (file: string, origin: Origin) => {
    const staged = appliance.store.stagingPath('.dcm');
    copyFileSync(file, staged);
    const outcome = await appliance.ingest.ingest({ path: staged }, origin);
    t.equal(outcome.kind, 'stored', `${path.basename(file)} stored`);
  };
  await ingest(a.file, {
    kind: 'upload',
    policy: 'upload',
    batch: `upload:${reference}`,
    actor: { kind: 'code', name: ref },
    remoteIP: '127.0.0.1',
    info: { upload: { id: reference, by: 'code', institution: TEST_INSTITUTION.id, comment: { [a.study]: comment }, contact: 'pat@example.org' } },
  });
  await ingest(b.file, {
    kind: 'user',
    policy: 'upload',
    batch: 'upload:U-7',
    actor: { kind: 'user', name: 'alice' },
    info: { upload: { id: 'U-7', by: 'user', name: 'alice', institution: TEST_INSTITUTION.id } },
  });

  const alice = await loginHttp(srv.url, ADMIN);
  const box = (html: string) => /<section class="panel-section upload-info"[\s\S]*?<\/section>/.exec(html)?.[0] ?? '';

  const pa = await alice.get(`/admin/studies/${a.study}`, HX);
  t.equal(pa.status, 200);
  const boxA = box(pa.text_);
  t.match(boxA, /A patient or referring physician, with an upload code/);
  t.match(boxA, new RegExp(`<dt>Upload code</dt>\\s*<dd><code>${ref}</code></dd>`), 'the code, by its reference');
  t.notOk(pa.text_.includes(code) || pa.text_.includes(code.replace(/-/g, '')), 'never the code itself');
  t.match(boxA, `<dd>${TEST_INSTITUTION.name}</dd>`, 'the institution');
  t.match(boxA, `<code>${reference}</code>`, 'the upload reference');
  t.match(boxA, '<dd class="upload-contact">pat@example.org</dd>', 'the contact');
  t.match(boxA, '<dd class="upload-comment">Please compare with my 2019 scan.\nSecond line &lt;script&gt;alert(1)&lt;/script&gt;</dd>', 'the comment: lines kept, markup escaped');
  t.notMatch(pa.text_, /<script>alert/);
  t.match(boxA, /not scanned: the intake policy of this origin does not scan/);
  t.match(pa.text_, /<section class="panel-section" data-section="forwarding"[\s\S]*This study is not forwarded anywhere\./, 'forwarding: none configured');

  const boxB = box((await alice.get(`/admin/studies/${b.study}`, HX)).text_);
  t.match(boxB, /<dd>User alice<\/dd>/, 'uploaded by a logged-in user');
  t.match(boxB, /<dd class="upload-contact">\(none given\)<\/dd>/);
  t.notMatch(boxB, /Upload code/);

  const uids = async (q: string) => [...(await alice.get(`/admin/studies?${q}`, HX)).text_.matchAll(/<tr data-study="([^"]+)"/g)].map((m) => m[1]).sort();
  t.same(await uids('origin=upload'), [a.study, b.study].sort(), 'origin: upload (code and user)');
  t.same(await uids('origin=node'), []);
  t.same(await uids('label=Uploaded'), [a.study, b.study].sort(), "both labelled 'Uploaded'");
  t.same(await uids('name=compressedsamples%20mr'), [b.study], 'by patient name (Family^Given matched as "family given")');
});
