// The console's second half over HTTP against the real server (child process), users made with the real CLI:
// a source user gets 403 on every page, fragment and action of merge, transfer, download, delete and the Nodes
// page (and nothing changes); without a log-in, a redirect or 401; without the CSRF token, 403. With the hospital
// PACS unreachable, a search says so and nothing is changed. Without JavaScript every step still works as plain
// pages and form posts: merge search and preview, the delete confirmation, the ZIP download (headers, entries,
// audited), C-ECHO on the Nodes page; the Nodes page in Dutch.
import t from 'tap';
import { unzipSync } from 'fflate';
import { loadCatalogues } from '../../server/web/i18n.ts';
import { createClient } from '../helpers/server.ts';
import { ADMIN, USER, loginHttp } from './lib/world.ts';
import { startMergeWorld, waitFor } from './lib/merge-world.ts';

const HX = { 'HX-Request': 'true' };
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

t.test('merge, transfer, download, delete and nodes over HTTP', async (t) => {
  const w = await startMergeWorld(t, { pacsDown: true });
  const { srv, db, studyUid } = w;
  const study = `/admin/studies/${studyUid}`;
  await waitFor(() => (db.prepare('SELECT count(*) AS n FROM instances').get() as { n: number }).n === 2, 'the study stored');
  const seriesUid = (db.prepare('SELECT series_uid FROM series').get() as { series_uid: string }).series_uid;
  const count = (sql: string) => (db.prepare(sql).get() as { n: number }).n;
  const pages = ['/admin/nodes', '/admin/nodes/queue', `${study}/merge`, `${study}/transfer`, `${study}/delete`];
  const actions: [string, Record<string, string>][] = [
    [`${study}/merge/search`, { source: 'index', name: 'x' }],
    [`${study}/merge/preview`, { patientId: 'X', name: 'X^Y' }],
    [`${study}/merge`, { patientId: 'X', name: 'X^Y', source: 'index' }],
    [`${study}/merge/retry`, {}],
    [`${study}/transfer`, { destination: 'PACS' }],
    [`${study}/transfer`, { destination: 'PACS', series: seriesUid }],
    [`${study}/transfer/resend`, { destination: 'PACS' }],
    [`${study}/download`, {}],
    [`${study}/delete`, { confirm: 'yes' }],
    ['/admin/nodes/PACS/echo', {}],
    ['/admin/nodes/PACS/resend', {}],
  ];

  t.test('a source user: 403 everywhere, and nothing changes', async (t) => {
    const bob = await loginHttp(srv.url, USER);
    const lastId = (db.prepare('SELECT max(id) AS id FROM audit').get() as { id: number }).id;
    for (const p of pages) {
      const r = await bob.get(p);
      t.equal(r.status, 403, `GET ${p}: 403`);
      const h = await bob.get(p, HX);
      t.equal(h.status, 403, `GET ${p} (htmx fragment): 403`);
      t.notMatch(h.text_, /data-section=|node-queue|nodes-table/, 'no fragment content');
    }
    for (const [p, fields] of actions) {
      const r = await bob.postForm(p, fields, { headers: HX });
      t.equal(r.status, 403, `POST ${p}: 403`);
      t.notMatch(r.headers.get('content-type') ?? '', /zip/);
    }
    // (the admin logs in meanwhile, for the tests below: only bob's entries count here)
    t.same(db.prepare("SELECT actor, action FROM audit WHERE id > ? AND (actor = 'bob' OR action NOT IN ('login'))").all(lastId), [], 'nothing recorded: nothing happened');
    t.equal(count('SELECT count(*) AS n FROM study_merges'), 0);
    t.equal(count("SELECT count(*) AS n FROM forward_jobs WHERE origin = 'console'"), 0);
    t.equal(count('SELECT count(*) AS n FROM studies'), 1);
    const panel = await bob.get(study, HX);
    t.equal(panel.status, 200, 'the panel itself: yes');
    t.notMatch(panel.text_, /data-section="(merge|transfer|download|delete)"/, 'without the admin sections');
    t.notMatch((await bob.get('/admin')).text_, /href="\/admin\/nodes"/, 'no Nodes in the navigation');
  });

  t.test('no log-in: pages redirect, htmx 401, actions 401', async (t) => {
    const anon = createClient(srv.url);
    for (const p of pages) {
      const r = await anon.get(p);
      t.equal(r.status, 303, `${p}: to the log-in`);
      t.equal((await anon.get(p, HX)).status, 401);
    }
    await anon.get('/login');
    for (const [p, fields] of actions) t.equal((await anon.postForm(p, fields)).status, 401, `POST ${p}: 401`);
  });

  const alice = await loginHttp(srv.url, ADMIN);

  t.test('CSRF: an action without the token is refused', async (t) => {
    for (const [p, fields] of actions.filter(([p]) => /merge\/search|download|delete|echo/.test(p))) {
      const r = await alice.postForm(p, fields, { csrf: null });
      t.equal(r.status, 403, `${p} without the token: 403`);
    }
    t.equal(count('SELECT count(*) AS n FROM studies'), 1, 'still there');
    t.equal(count("SELECT count(*) AS n FROM audit WHERE action IN ('download', 'delete')"), 0);
  });

  t.test('the hospital PACS unreachable: said, nothing changed', async (t) => {
    const r = await alice.postForm(`${study}/merge/search`, { source: 'pacs', name: 'jansen' }, { headers: HX });
    t.equal(r.status, 200);
    t.match(r.text_, /id="merge-problem"/);
    t.match(r.text_, /The hospital PACS \(PACS\) could not be searched: .*refused.*\. Nothing was changed\./);
    t.match(r.text_, /value="jansen"/, 'the search is kept for another try');
    t.equal(count('SELECT count(*) AS n FROM study_merges'), 0);
    const empty = await alice.postForm(`${study}/merge/search`, { source: 'pacs' }, { headers: HX });
    t.equal(empty.status, 400);
    t.match(empty.text_, /Give a name, a patient ID or a birth date/);
  });

  t.test('without JavaScript: pages and form posts', async (t) => {
    const pid = (db.prepare('SELECT patient_id FROM patients').get() as { patient_id: string }).patient_id;
    const found = await alice.postForm(`${study}/merge/search`, { source: 'index', patientId: pid });
    t.equal(found.status, 200);
    t.match(found.text_, /<html[\s\S]*data-section="merge"[\s\S]*id="merge-results"/, 'the study page with the results');
    t.match(found.text_, /\(this study&#39;s patient now\)|\(this study's patient now\)/);
    const preview = await alice.postForm(`${study}/merge/preview`, { source: 'index', patientId: pid, issuer: 'UPLINK', name: 'CompressedSamples^CT1', birthDate: '', sex: 'O' });
    t.match(preview.text_, /data-blocker="same"/, 'choosing the patient it already has: blocked');
    t.match(preview.text_, /id="merge-apply" disabled/);
    const refused = await alice.postForm(`${study}/merge`, { source: 'index', patientId: pid, issuer: 'UPLINK', name: 'CompressedSamples^CT1', birthDate: '', sex: 'O' });
    t.equal(refused.status, 400, 'and applying it anyway is refused');
    t.equal(count('SELECT count(*) AS n FROM study_merges'), 0);

    const ask = await alice.get(`${study}/delete`);
    t.match(ask.text_, /<h1>Delete study<\/h1>[\s\S]*id="delete-confirm"/, 'the confirmation as a page');
    const unconfirmed = await alice.postForm(`${study}/delete`, {});
    t.equal(unconfirmed.status, 400, 'no confirmation: refused');
    t.match(unconfirmed.text_, /Confirm the deletion first\./);
    t.equal(count('SELECT count(*) AS n FROM studies'), 1);

    const zip = await fetch(`${srv.url}${study}/download`, {
      method: 'POST',
      headers: { cookie: [...alice.cookies].map(([k, v]) => `${k}=${v}`).join('; '), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: alice.csrf }),
    });
    t.equal(zip.status, 200);
    t.equal(zip.headers.get('content-type'), 'application/zip');
    t.match(zip.headers.get('content-disposition'), /^attachment; filename="study-(\d{8}-)?[0-9.]+\.zip"$/);
    t.equal(zip.headers.get('cache-control'), 'no-store');
    const entries = Object.keys(unzipSync(new Uint8Array(await zip.arrayBuffer()))).sort();
    t.same(entries, ['DICOM/ST000001/SE000001/IM000001', 'DICOM/ST000001/SE000001/IM000002', 'DICOMDIR']);
    const audited = db.prepare("SELECT actor, study_uid, detail FROM audit WHERE action = 'download'").all() as { actor: string; study_uid: string; detail: string }[];
    t.equal(audited.length, 1, 'one download, one audit entry');
    t.match(audited[0], { actor: 'alice', study_uid: studyUid });
    t.match(JSON.parse(audited[0].detail), { instances: 2, dicomdir: true });

    const echo = await alice.postForm('/admin/nodes/PACS/echo', {});
    t.equal(echo.status, 200);
    t.match(echo.text_, /<h1>DICOM nodes<\/h1>[\s\S]*data-echo="failed"[\s\S]*refused/, 'the page with the C-ECHO result in its row');
    t.equal((await alice.postForm('/admin/nodes/NOPE/echo', {})).status, 404, 'an unknown node: 404');

    const nl = await alice.get('/admin/nodes', { 'Accept-Language': 'nl' });
    t.match(nl.text_, new RegExp(esc(loadCatalogues().nl['console.nodes.heading'] as string)), 'in Dutch');
    t.match(nl.text_, /PACS ziekenhuis/);
  });
});
