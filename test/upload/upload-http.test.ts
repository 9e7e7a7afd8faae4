// The upload endpoints over HTTP, with a real clamd and the real appliance (in-process, to look inside):
// START UPLOAD's checks (session, CSRF, manifest, files per upload, allowance), the tus endpoint's guards
// (only files of the session's own upload, with the announced size, small metadata, no other methods), a
// non-DICOM file posted straight to the endpoint (refused with its reason, nothing kept), a file sent in
// chunks and resumed at the server's offset, check before send on a second START, cancel (nothing left
// staged), the allowance counted, and an upload by a logged-in user without a code.
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { readHeader } from '../../appliance/dicom/header.ts';
import { createUsers } from '../../appliance/users/users.ts';
import { CLAM_EXE } from '../helpers/clamd.ts';
import { PYDICOM_DIR } from '../helpers/samples.ts';
import { createClient } from '../helpers/server.ts';
import { codeClient, files, manifest, query, startWorld, tusClient, type ManifestFile } from './lib/world.ts';

async function fileOf(p: string): Promise<ManifestFile & { studyUid: string; bytes: Buffer }> {
  const h = await readHeader(p);
  const bytes = readFileSync(p);
  return { sop: h.sopInstanceUID, sopClass: h.sopClassUID, size: bytes.length, name: path.basename(p), studyUid: h.studyInstanceUID, bytes };
}

/** Wait until the upload's record says `state` (the intake runs in the background). */
async function settled(dataDir: string, reference: string, state = 'complete'): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (query<{ state: string }>(dataDir, 'SELECT state FROM uploads WHERE reference = ?', reference)[0]?.state !== state) {
    if (Date.now() > deadline) throw new Error(`upload ${reference} did not become ${state}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('upload endpoints', async (t) => {
  const { srv } = await startWorld(t, { mode: 'in-process', config: { upload: { maxFilesPerUpload: 5 } } });
  const ct = await fileOf(path.join(PYDICOM_DIR, 'CT_small.dcm'));
  const mr = await fileOf(path.join(PYDICOM_DIR, 'MR_small.dcm'));
  const tusDir = path.join(srv.dataDir, 'staging', 'tus');
  const one = (f: typeof ct, comment = '') => manifest([{ studyUid: f.studyUid, comment, files: [{ sop: f.sop, sopClass: f.sopClass, size: f.size, name: f.name }] }]);

  t.test('START UPLOAD: session, CSRF, manifest, files per upload, allowance', async (t) => {
    const anon = createClient(srv.url);
    await anon.get('/');
    const noCode = await anon.postJson('/upload/api/uploads', one(ct));
    t.equal(noCode.status, 401, 'no code in the session: 401');
    t.equal(JSON.parse(noCode.text_).error, 'SESSION_EXPIRED');

    const { client } = await codeClient(srv);
    t.equal((await client.postJson('/upload/api/uploads', one(ct), { csrf: null })).status, 403, 'no CSRF token: 403');
    const bad = await client.postJson('/upload/api/uploads', { studies: [{ studyUid: 'not a uid', files: [] }] });
    t.equal(bad.status, 400);
    t.equal(JSON.parse(bad.text_).error, 'BAD_REQUEST');
    const twice = await client.postJson('/upload/api/uploads', manifest([{ studyUid: ct.studyUid, files: [ct, ct].map((f) => ({ sop: f.sop, sopClass: f.sopClass, size: f.size, name: f.name })) }]));
    t.equal(twice.status, 400, 'a file listed twice');
    const many = manifest([{ studyUid: '1.2.3', files: Array.from({ length: 6 }, (_, i) => ({ sop: `1.2.3.${i}`, sopClass: '1.2.840.10008.5.1.4.1.1.2', size: 10, name: `f${i}` })) }]);
    const tooMany = await client.postJson('/upload/api/uploads', many);
    t.equal(tooMany.status, 413, 'more files than upload.maxFilesPerUpload');
    t.equal(JSON.parse(tooMany.text_).message, 'An upload may have at most 5 files. Untick a study, or send the rest in another upload.');
    const huge = await client.postJson('/upload/api/uploads', manifest([{ studyUid: '1.2.3', files: [{ sop: '1.2.3.4', sopClass: '1.2.3', size: srv.config.upload.maxFileBytes + 1, name: 'big' }] }]));
    t.equal(huge.status, 413, 'a file larger than upload.maxFileBytes');

    const small = await codeClient(srv, { maxBytes: String(ct.size + mr.size - 1) });
    const over = await small.client.postJson('/upload/api/uploads', manifest([ct, mr].map((f) => ({ studyUid: f.studyUid, files: [{ sop: f.sop, sopClass: f.sopClass, size: f.size, name: f.name }] }))));
    t.equal(over.status, 413, 'more than the code allows: refused before anything is sent');
    t.same(JSON.parse(over.text_), { error: 'ALLOWANCE_EXCEEDED', message: 'This upload is larger than your upload code allows.' });
    t.equal(query(srv.dataDir, 'SELECT * FROM uploads').length, 0, 'no upload was recorded for any refused START');
  });

  t.test('the tus endpoint takes only files of the session\'s own upload', async (t) => {
    const a = await codeClient(srv);
    const b = await codeClient(srv);
    const begin = JSON.parse((await a.client.postJson('/upload/api/uploads', one(ct))).text_) as { reference: string; send: { sop: string }[] };
    t.same(begin.send.map((s) => s.sop), [ct.sop], 'the file is to be sent');
    const tusA = tusClient(srv.url, a.client);
    const tusB = tusClient(srv.url, b.client);
    t.equal((await tusA.create(ct.size, { upload: begin.reference, sop: '1.2.3.4.5' })).status, 400, 'a SOP Instance UID not in the manifest');
    t.equal((await tusA.create(ct.size + 1, { upload: begin.reference, sop: ct.sop })).status, 400, 'another size than announced');
    t.equal((await tusA.create(0, { upload: begin.reference, sop: ct.sop }, { 'Upload-Length': '', 'Upload-Defer-Length': '1' })).status, 400, 'a deferred length');
    t.equal((await tusA.create(ct.size, { upload: begin.reference, sop: ct.sop, pad: 'x'.repeat(3000) })).status, 413, 'metadata over 2 KB');
    const other = await tusB.create(ct.size, { upload: begin.reference, sop: ct.sop });
    t.equal(other.status, 404, 'another code\'s session cannot add to this upload');
    t.equal(JSON.parse(other.body).error, 'NOT_FOUND');
    const created = await tusA.create(ct.size, { upload: begin.reference, sop: ct.sop });
    t.equal(created.status, 201);
    t.match(created.location, /^\/upload\/files\/[0-9a-f]+$/, 'a relative upload URL');
    t.equal((await tusB.head(created.location!)).status, 404, 'another session cannot see it');
    t.equal((await tusB.patch(created.location!, 0, ct.bytes)).status, 404, 'nor write to it');
    const cookie = [...a.client.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    for (const method of ['GET', 'DELETE'])
      t.equal((await fetch(`${srv.url}${created.location}`, { method, headers: { cookie, 'Tus-Resumable': '1.0.0', 'X-CSRF-Token': a.client.csrf } })).status, 404, `${method} is not offered`);
    const noCsrf = await fetch(`${srv.url}${created.location}`, { method: 'PATCH', headers: { cookie, 'Tus-Resumable': '1.0.0', 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream' }, body: ct.bytes });
    t.equal(noCsrf.status, 403, 'a PATCH without the CSRF token');

    // In two chunks, the second after asking where to continue.
    const first = await tusA.patch(created.location!, 0, ct.bytes.subarray(0, 10_000));
    t.same([first.status, first.offset], [204, 10_000]);
    t.equal(statSync(path.join(tusDir, path.basename(created.location!))).size, 10_000, 'the acknowledged bytes are in staging');
    const head = await tusA.head(created.location!);
    t.same([head.status, head.offset, head.length], [200, 10_000, ct.size], 'HEAD: resume at the server\'s offset');
    const last = await tusA.patch(created.location!, head.offset, ct.bytes.subarray(head.offset));
    t.same([last.status, last.offset], [204, ct.size]);
    await settled(srv.dataDir, begin.reference);
    const done = await tusA.head(created.location!);
    t.same([done.status, done.offset, done.length], [200, ct.size, ct.size], 'a file taken in answers HEAD as complete');
    t.same(files(tusDir), [], 'nothing left in tus staging');
    const row = query<{ state: string; size: number }>(srv.dataDir, 'SELECT f.state, f.size FROM upload_files f JOIN uploads u ON u.id = f.upload_ref WHERE u.reference = ?', begin.reference);
    t.same(row, [{ state: 'stored', size: ct.size }]);
    const used = query<{ bytes_used: number }>(srv.dataDir, 'SELECT c.bytes_used FROM upload_codes c JOIN uploads u ON u.code_ref = c.id WHERE u.reference = ?', begin.reference)[0];
    t.equal(used.bytes_used, ct.size, 'the code\'s bytes used count the stored file');

    // Check before send: the same file again is not sent again.
    const again = JSON.parse((await a.client.postJson('/upload/api/uploads', one(ct))).text_) as { reference: string; send: unknown[]; done: number };
    t.not(again.reference, begin.reference, 'a new upload (the first is complete)');
    t.same([again.send, again.done], [[], 1], 'the file the code already got in is not sent again');
    await settled(srv.dataDir, again.reference);
    const status = await a.client.get('/upload/status', { 'HX-Request': 'true' });
    t.match(status.text_, 'Upload successful');
    t.match(status.text_, '1 image was already at the hospital and was not sent again.');
    t.equal(query(srv.dataDir, 'SELECT * FROM instances').length, 1, 'stored once');
  });

  t.test('a non-DICOM file posted straight to the endpoint is refused with its reason; nothing is kept', async (t) => {
    const { client } = await codeClient(srv);
    const before = query(srv.dataDir, 'SELECT * FROM instances').length;
    const text = Buffer.from('%PDF-1.4 this is not an image\n'.repeat(20));
    const exe = readFileSync(CLAM_EXE);
    // Announced with made-up UIDs, as a script could.
    const body = manifest([
      {
        studyUid: '1.2.826.0.1.3680043.9.7777.1',
        files: [
          { sop: '1.2.826.0.1.3680043.9.7777.1.1', sopClass: '1.2.840.10008.5.1.4.1.1.7', size: text.length, name: 'report.pdf' },
          { sop: '1.2.826.0.1.3680043.9.7777.1.2', sopClass: '1.2.840.10008.5.1.4.1.1.7', size: exe.length, name: 'setup.exe' },
          { sop: '1.2.826.0.1.3680043.9.7777.1.3', sopClass: '1.2.840.10008.5.1.4.1.1.7', size: 400, name: 'fake.dcm' },
        ],
      },
    ]);
    const begin = JSON.parse((await client.postJson('/upload/api/uploads', body)).text_) as { reference: string };
    const tus = tusClient(srv.url, client);
    for (const [sop, bytes] of [
      ['1.2.826.0.1.3680043.9.7777.1.1', text],
      ['1.2.826.0.1.3680043.9.7777.1.2', exe],
    ] as const) {
      const r = await tus.send({ upload: begin.reference, sop }, bytes);
      t.equal(r.status, 415, 'the last chunk is answered 415');
      t.same(JSON.parse(r.body), { error: 'NOT_DICOM', message: 'This file is not a DICOM image.' });
    }
    // The DICOM marker, then nothing a DICOM reader can use: refused by the ingest path.
    const fake = Buffer.alloc(400, 0x41);
    fake.write('DICM', 128, 'latin1');
    const r = await tus.send({ upload: begin.reference, sop: '1.2.826.0.1.3680043.9.7777.1.3' }, fake);
    t.equal(r.status, 204, 'marker present: taken in, then checked');
    await settled(srv.dataDir, begin.reference);
    const rows = query<{ name: string; state: string; reason: string }>(srv.dataDir, 'SELECT f.name, f.state, f.reason FROM upload_files f JOIN uploads u ON u.id = f.upload_ref WHERE u.reference = ? ORDER BY f.id', begin.reference);
    t.same(rows.slice(0, 2), [
      { name: 'report.pdf', state: 'refused', reason: 'NOT_DICOM' },
      { name: 'setup.exe', state: 'refused', reason: 'NOT_DICOM' },
    ]);
    t.equal(rows[2].state, 'refused');
    t.not(rows[2].reason, null);
    const status = await client.get('/upload/status', { 'HX-Request': 'true' });
    t.match(status.text_, 'Upload finished: no image could be accepted');
    t.match(status.text_, /<span class="file-name">report\.pdf<\/span>: This file is not a DICOM image\./);
    t.match(status.text_, /<span class="file-name">fake\.dcm<\/span>: /);
    t.notMatch(status.text_, /offset|stack|Error:/i, 'no internal detail');
    t.equal(query(srv.dataDir, 'SELECT * FROM instances').length, before, 'nothing stored');
    t.same(files(tusDir), [], 'nothing left in tus staging');
    t.same(files(path.join(srv.dataDir, 'staging', 'incoming')), [], 'nor in the ingest staging');
    t.same(files(path.join(srv.dataDir, 'quarantine')), [], 'nothing quarantined (never scanned: not DICOM)');
  });

  t.test('CANCEL UPLOAD discards everything staged and says so', async (t) => {
    const { client } = await codeClient(srv);
    const body = manifest([ct, mr].map((f) => ({ studyUid: f.studyUid, files: [{ sop: f.sop, sopClass: f.sopClass, size: f.size, name: f.name }] })));
    // CT and MR were stored by earlier subtests? Only CT, under another code: this code sends both.
    const begin = JSON.parse((await client.postJson('/upload/api/uploads', body)).text_) as { reference: string; send: { sop: string }[] };
    t.equal(begin.send.length, 2);
    const tus = tusClient(srv.url, client);
    const c = await tus.create(mr.size, { upload: begin.reference, sop: mr.sop });
    t.equal((await tus.patch(c.location!, 0, mr.bytes.subarray(0, 4096))).status, 204);
    t.equal(files(tusDir).length, 2, 'part of a file staged (data and info)');
    const cancel = await client.postJson(`/upload/api/uploads/${begin.reference}/cancel`, {});
    t.equal(cancel.status, 200);
    t.same(JSON.parse(cancel.text_), { reference: begin.reference, discarded: 2, kept: 0 });
    t.same(files(tusDir), [], 'nothing left staged');
    t.equal((await tus.head(c.location!)).status, 404, 'the partial file is gone');
    t.equal((await tus.patch(c.location!, 4096, mr.bytes.subarray(4096))).status, 404, 'and takes no more bytes');
    t.equal((await tus.create(ct.size, { upload: begin.reference, sop: ct.sop })).status, 409, 'the cancelled upload takes no new files');
    const status = await client.get('/upload/status', { 'HX-Request': 'true' });
    t.match(status.text_, 'Upload cancelled');
    t.match(status.text_, '2 images not yet received and checked have been discarded.');
    t.equal((await client.postJson(`/upload/api/uploads/${begin.reference}/cancel`, {})).status, 409, 'cancelled once only');
    const audit = query<{ action: string; actor: string; detail: string }>(srv.dataDir, "SELECT action, actor, detail FROM audit WHERE action LIKE 'upload.%' AND detail LIKE ?", `%${begin.reference}%`);
    t.same(audit.map((a) => a.action), ['upload.start', 'upload.cancel'], 'start and cancel are audited');
    t.match(audit[0].actor, /^C[0-9A-Z]{6}$/, 'by the code\'s public reference');
  });

  t.test('a logged-in user uploads without a code; the origin is that user', async (t) => {
    const users = createUsers({ db: srv.appliance!.db, audit: srv.appliance!.audit, passwordMinLength: 12 });
    await users.add({ name: 'radiographer', role: 'user', password: 'a long enough password', by: { kind: 'system', name: 'test' } });
    const client = createClient(srv.url);
    await client.get('/login');
    const login = await client.postForm('/login', { name: 'radiographer', password: 'a long enough password' });
    t.equal(login.status, 303);
    const consolePage = await client.get('/admin/studies');
    t.match(consolePage.text_, /<a href="\/upload"[^>]*>Upload<\/a>/, 'the console links to the upload page');
    const page = await client.get('/upload');
    t.equal(page.status, 200, 'the portal page, without a code');
    t.match(page.text_, 'You are uploading as radiographer, without an upload code.');
    t.notMatch(page.text_, 'data-remaining-bytes', 'no allowance for a user');
    const begin = JSON.parse((await client.postJson('/upload/api/uploads', one(mr, 'Sent by the radiographer'))).text_) as { reference: string };
    const r = await tusClient(srv.url, client).send({ upload: begin.reference, sop: mr.sop }, mr.bytes);
    t.equal(r.status, 204);
    await settled(srv.dataDir, begin.reference);
    const inst = query<{ origin_kind: string }>(srv.dataDir, 'SELECT origin_kind FROM instances WHERE sop_uid = ?', mr.sop);
    t.same(inst, [{ origin_kind: 'user' }], 'stored with the user as its origin');
    const info = query<{ by: string; name: string; comment: string }>(srv.dataDir, 'SELECT by, name, comment FROM study_uploads WHERE upload_id = ?', begin.reference);
    t.same(info, [{ by: 'user', name: 'radiographer', comment: 'Sent by the radiographer' }]);
    const audit = query<{ actor_kind: string; actor: string }>(srv.dataDir, "SELECT actor_kind, actor FROM audit WHERE action = 'upload.start' AND detail LIKE ?", `%${begin.reference}%`);
    t.same(audit, [{ actor_kind: 'user', actor: 'radiographer' }]);
    t.notOk(existsSync(path.join(tusDir, path.basename(r.location!))), 'staging cleaned');
  });
});
