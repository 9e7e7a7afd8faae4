// The console's read side of the index (filters, sort, paging, details) and its write side (labels and workflow
// status: one transaction and one audit entry per change), the query parameters of the list, CSV cells, and the
// audit trail query (filters, paging, batches).
import t from 'tap';
import path from 'node:path';
import { createAuditLog } from '../../appliance/audit/audit-log.ts';
import type { DicomHeader } from '../../appliance/dicom/header.ts';
import { createStudyLabels, UPLOADED, UPLOADED_REVIEWED } from '../../appliance/studies/labels.ts';
import { createStudyQuery, type StudyListQuery } from '../../appliance/studies/study-query.ts';
import { openDb } from '../../appliance/store/db.ts';
import { createStudyIndex, type OriginKind } from '../../appliance/store/study-index.ts';
import { defaults, type Config } from '../../config/schema.ts';
import { createAuditTrail, parseAuditParams } from '../../server/console/audit-trail.ts';
import { csvCell, csvLine, parseCsv } from '../../server/console/csv.ts';
import { parseStudyParams, studyQueryString } from '../../server/console/study-filters.ts';

interface Spec {
  study: string;
  name: string;
  pid: string;
  date: string;
  modality: string;
  images?: number;
  labels?: string[];
  status?: string | null;
  origin?: OriginKind;
}

function world(t: { testdir(): string; teardown(fn: () => unknown): void }) {
  const config: Config = { ...defaults, dataDir: path.join(t.testdir(), 'data') };
  const db = openDb(config.dataDir);
  t.teardown(() => db.close());
  const index = createStudyIndex(db);
  const audit = createAuditLog(db);
  let n = 0;
  const add = (s: Spec) => {
    for (let i = 0; i < (s.images ?? 1); i++) {
      n++;
      const header = {
        sopInstanceUID: `1.2.3.${n}`,
        sopClassUID: '1.2.840.10008.5.1.4.1.1.2',
        studyInstanceUID: s.study,
        seriesInstanceUID: `${s.study}.1`,
        transferSyntaxUID: '1.2.840.10008.1.2.1',
        patientName: s.name,
        patientID: s.pid,
        issuerOfPatientID: '',
        patientBirthDate: '19700101',
        patientSex: 'F',
        studyDate: s.date,
        studyTime: '101500',
        accessionNumber: `ACC-${s.study}`,
        studyID: '1',
        studyDescription: `Study ${s.study}`,
        referringPhysicianName: '',
        modality: s.modality,
        seriesNumber: '1',
        seriesDescription: '',
        instanceNumber: String(i + 1),
        numberOfFrames: '',
        specificCharacterSet: '',
      } as unknown as DicomHeader;
      index.commitInstance({
        header,
        path: `x/${n}.dcm`,
        size: 1000,
        sha256: 'x',
        originKind: s.origin ?? 'dicom',
        labels: s.labels ?? [],
        workflowStatus: s.status ?? null,
      });
    }
  };
  return { db, config, audit, add, q: createStudyQuery(db), labels: createStudyLabels({ db, audit, config }) };
}

const base: Omit<StudyListQuery, 'filter'> = { sort: 'received', dir: 'desc', page: 1, pageSize: 25 };

t.test('list: filters, combined with AND', async (t) => {
  const w = world(t);
  w.add({ study: '9.1', name: 'Doe^John', pid: 'UPAAA1', date: '20240105', modality: 'CT', labels: [UPLOADED], status: 'Finalized', origin: 'upload', images: 3 });
  w.add({ study: '9.2', name: 'Doe^Jane', pid: 'UPBBB2', date: '20240210', modality: 'MR', labels: [], status: null, origin: 'dicom' });
  w.add({ study: '9.3', name: 'Smith^Anna', pid: 'H100%_', date: '20231231', modality: 'CT', labels: [UPLOADED, 'Urgent'], status: 'In review', origin: 'user' });
  w.add({ study: '9.4', name: "O'Brien^Pat", pid: 'X9', date: '', modality: 'US', origin: 'import' });
  const uids = (filter: StudyListQuery['filter']) => w.q.list({ ...base, filter }).rows.map((r) => r.studyUid).sort();

  t.same(uids({}), ['9.1', '9.2', '9.3', '9.4']);
  t.same(uids({ patientName: 'doe' }), ['9.1', '9.2'], 'name contains, any case');
  t.same(uids({ patientName: 'doe john' }), ['9.1'], 'a space matches the ^ between name parts');
  t.same(uids({ patientName: "o'brien" }), ['9.4'], 'quotes are just text');
  t.same(uids({ patientId: 'upb' }), ['9.2']);
  t.same(uids({ patientId: '%' }), ['9.3'], '% is literal, not a wildcard');
  t.same(uids({ patientId: '_' }), ['9.3'], '_ is literal');
  t.same(uids({ dateFrom: '20240101' }), ['9.1', '9.2'], 'from, inclusive; no date never matches a range');
  t.same(uids({ dateFrom: '20240105', dateTo: '20240105' }), ['9.1'], 'a single day');
  t.same(uids({ dateTo: '20240131' }), ['9.1', '9.3']);
  t.same(uids({ modality: 'CT' }), ['9.1', '9.3']);
  t.same(uids({ label: UPLOADED }), ['9.1', '9.3'], 'Contains Label = Uploaded');
  t.same(uids({ label: 'Urgent', modality: 'CT' }), ['9.3']);
  t.same(uids({ status: 'Finalized' }), ['9.1']);
  t.same(uids({ status: '-' }), ['9.2', '9.4'], 'no status');
  t.same(uids({ origin: 'upload' }), ['9.1', '9.3'], 'portal uploads: by code and by user');
  t.same(uids({ origin: 'node' }), ['9.2']);
  t.same(uids({ origin: 'import' }), ['9.4']);
  t.same(uids({ studyUids: ['9.3', '9.4', '9.99'] }), ['9.3', '9.4'], 'a list of studies (the forwarding filter)');
  t.same(uids({ studyUids: [] }), [], 'an empty list: nothing');
  const row = w.q.list({ ...base, filter: { patientId: 'UPAAA1' } }).rows[0];
  t.match(row, { patientName: 'Doe^John', patientId: 'UPAAA1', modalities: ['CT'], labels: [UPLOADED], workflowStatus: 'Finalized', originKind: 'upload', instances: 3, series: 1, accession: 'ACC-9.1' });
});

t.test('list: sort and pages', async (t) => {
  const w = world(t);
  const names = ['Cole^C', 'adams^A', 'Baker^B', 'Evans^E', 'Dunn^D'];
  names.forEach((name, i) => w.add({ study: `8.${i}`, name, pid: `P${i}`, date: `2024010${5 - i}`, modality: 'CT' }));
  const order = (sort: StudyListQuery['sort'], dir: StudyListQuery['dir']) => w.q.list({ ...base, sort, dir, filter: {} }).rows.map((r) => r.patientName[0].toUpperCase()).join('');
  t.equal(order('patient', 'asc'), 'ABCDE', 'patient name, case-insensitive');
  t.equal(order('patient', 'desc'), 'EDCBA');
  t.equal(order('date', 'asc'), 'DEBAC', 'study date');
  t.equal(order('received', 'asc'), 'CABED', 'received: arrival order');
  t.equal(order('received', 'desc'), 'DEBAC');
  const p1 = w.q.list({ ...base, sort: 'patient', dir: 'asc', pageSize: 2, page: 1, filter: {} });
  const p3 = w.q.list({ ...base, sort: 'patient', dir: 'asc', pageSize: 2, page: 3, filter: {} });
  t.match(p1, { total: 5, pages: 3, page: 1 });
  t.same(p1.rows.map((r) => r.patientName[0].toUpperCase()), ['A', 'B']);
  t.same(p3.rows.map((r) => r.patientName[0].toUpperCase()), ['E']);
  t.equal(w.q.list({ ...base, pageSize: 2, page: 99, filter: {} }).page, 3, 'past the end: the last page');
  t.equal(w.q.list({ ...base, pageSize: 2, page: 0, filter: {} }).page, 1);
});

t.test('details: patient, study, series with image counts, senders, originals flag', async (t) => {
  const w = world(t);
  w.add({ study: '7.1', name: 'Doe^John', pid: 'UPAAA1', date: '20240105', modality: 'CT', images: 4, labels: ['B', 'A'] });
  const d = w.q.detail('7.1')!;
  t.match(d, { studyUid: '7.1', patient: { patientId: 'UPAAA1', name: 'Doe^John', birthDate: '19700101', sex: 'F' }, accession: 'ACC-7.1', instances: 4, bytes: 4000, labels: ['A', 'B'], hasOriginals: false });
  t.same(d.series.map((s) => [s.seriesUid, s.modality, s.images]), [['7.1.1', 'CT', 4]]);
  t.same(d.codes, []);
  t.same(d.quarantined, []);
  t.equal(w.q.detail('7.404'), null);
  t.same(w.q.modalities(), ['CT']);
});

t.test('labels: add, remove, "Mark reviewed" in one step; each change audited once', async (t) => {
  const w = world(t);
  w.add({ study: '6.1', name: 'A^B', pid: 'P', date: '', modality: 'CT', labels: [UPLOADED], status: 'Finalized' });
  const by = { kind: 'user' as const, name: 'alice', ip: '127.0.0.1' };
  t.same(w.labels.known().slice(0, 2), [UPLOADED, UPLOADED_REVIEWED], "'Uploaded-Reviewed' exists before any study has it");
  t.same(w.labels.markReviewed('6.1', by), [UPLOADED_REVIEWED]);
  const review = w.audit.list({ action: 'label.review' });
  t.equal(review.length, 1, 'one audit entry');
  t.match(review[0], { actor: 'alice', study_uid: '6.1', ip: '127.0.0.1', detail: JSON.stringify({ removed: [UPLOADED], added: [UPLOADED_REVIEWED] }) });
  t.same(w.labels.markReviewed('6.1', by), [UPLOADED_REVIEWED], 'again: nothing to do');
  t.equal(w.audit.list({ action: 'label.review' }).length, 1, 'and nothing audited');

  t.same(w.labels.add('6.1', '  Second opinion ', by), ['Second opinion', UPLOADED_REVIEWED]);
  t.same(w.labels.add('6.1', 'Second opinion', by), ['Second opinion', UPLOADED_REVIEWED], 'already there');
  t.ok(w.labels.known().includes('Second opinion'), 'a new label becomes known');
  t.same(w.labels.remove('6.1', UPLOADED_REVIEWED, by), ['Second opinion']);
  t.same(w.labels.remove('6.1', 'not there', by), ['Second opinion']);
  t.same(w.audit.list().map((r) => r.action).reverse(), ['label.review', 'label.add', 'label.remove']);
  t.throws(() => w.labels.add('6.1', 'a\\b', by), { code: 'BAD_REQUEST' });
  t.throws(() => w.labels.add('6.1', 'x'.repeat(65), by), { code: 'BAD_REQUEST' });
  t.throws(() => w.labels.add('6.1', '', by), { code: 'BAD_REQUEST' });
  t.throws(() => w.labels.add('6.404', 'X', by), { code: 'NOT_FOUND' });
  t.throws(() => w.labels.markReviewed('6.404', by), { code: 'NOT_FOUND' });

  // a failing audit write rolls the label change back (one transaction)
  const failing = createStudyLabels({ db: w.db, audit: { record: () => { throw new Error('disk'); }, list: () => [] }, config: w.config });
  t.throws(() => failing.add('6.1', 'Lost', by));
  t.same(w.labels.of('6.1'), ['Second opinion'], 'no label without its audit entry');

  t.equal(w.labels.setWorkflowStatus('6.1', 'In review', by), 'In review');
  t.equal(w.labels.setWorkflowStatus('6.1', 'In review', by), 'In review', 'unchanged: not audited');
  t.equal(w.labels.setWorkflowStatus('6.1', '', by), null, 'cleared');
  t.same(w.audit.list({ action: 'workflow.change' }).map((r) => JSON.parse(r.detail!)).reverse(), [{ from: 'Finalized', to: 'In review' }, { from: 'In review', to: null }]);
  t.same(w.labels.statuses().slice(0, 3), defaults.console.workflowStatuses, 'configured statuses first');
});

t.test('list parameters: clean values, invalid ones named, links that keep the filters', async (t) => {
  const p = parseStudyParams(new URLSearchParams('name=Doe&pid=%20UP1%20&from=2024-01-05&to=2024-02-30&modality=ct&label=Uploaded&status=-&origin=mars&fwd=failed&sort=patient&page=x'), { forwarding: false });
  t.same(p.filter, { patientName: 'Doe', patientId: 'UP1', dateFrom: '20240105', label: 'Uploaded', status: '-' });
  t.same(p.invalid.sort(), ['fwd', 'modality', 'origin', 'page', 'to'], 'named: an impossible date, lower-case modality, unknown origin, forwarding unavailable, page');
  t.equal(p.sort, 'patient');
  t.equal(p.dir, 'asc', 'patient sorts A-Z by default');
  t.equal(p.page, 1);
  const f = parseStudyParams(new URLSearchParams('fwd=failed&origin=node&modality=MR'), { forwarding: true });
  t.equal(f.forwardState, 'failed');
  t.same(f.filter, { origin: 'node', modality: 'MR' });
  const d = parseStudyParams(new URLSearchParams(''), { forwarding: true });
  t.match(d, { sort: 'received', dir: 'desc', page: 1, invalid: [] });
  t.equal(studyQueryString(p, { page: 2 }), '?name=Doe&pid=UP1&from=2024-01-05&label=Uploaded&status=-&sort=patient&dir=asc&page=2');
  t.equal(studyQueryString(d), '?sort=received&dir=desc', 'page 1 and empty values are left out');
  t.equal(parseStudyParams(new URLSearchParams(`name=${'x'.repeat(500)}`), { forwarding: false }).form.name.length, 64, 'text is capped');
});

t.test('CSV: quoting and formula injection', async (t) => {
  t.equal(csvCell('plain'), 'plain');
  t.equal(csvCell(null), '');
  t.equal(csvCell(42), '42');
  t.equal(csvCell('a,b'), '"a,b"');
  t.equal(csvCell('say "hi"'), '"say ""hi"""');
  t.equal(csvCell('two\nlines'), '"two\nlines"');
  t.equal(csvCell(' padded'), '" padded"');
  for (const bad of ['=1+1', '+1', '-2', '@SUM(A1)', '\tx', '\rx']) t.equal(csvCell(bad)[0] === '"' ? csvCell(bad)[1] : csvCell(bad)[0], "'", `${JSON.stringify(bad)} starts with an apostrophe`);
  t.equal(csvCell('=HYPERLINK("http://x","y")'), `"'=HYPERLINK(""http://x"",""y"")"`);
  const text = `\ufeff${csvLine(['a', 'b,c', 'd"e'])}${csvLine(['x\r\ny', '', '=cmd'])}`;
  t.same(parseCsv(text), [['a', 'b,c', 'd"e'], ['x\r\ny', '', "'=cmd"]], 'parses back (BOM skipped)');
});

t.test('audit trail: filters, pages, batches', async (t) => {
  const w = world(t);
  for (let i = 0; i < 7; i++) w.audit.record({ actorKind: 'user', actor: i % 2 ? 'alice' : 'bob_2', action: i < 3 ? 'login' : 'label.add', studyUid: i < 3 ? null : '1.2.3', ip: '127.0.0.1', detail: { i } });
  const trail = createAuditTrail(w.db);
  t.same(trail.actions(), ['label.add', 'login']);
  const page = (q: string, n = 1, size = 3) => trail.page(parseAuditParams(new URLSearchParams(q)).filter, n, size);
  t.match(page(''), { total: 7, pages: 3, page: 1 });
  t.same(page('').rows.map((r) => r.details[0][1]), ['6', '5', '4'], 'newest first, details as pairs');
  t.same(page('', 3).rows.map((r) => r.details[0][1]), ['0']);
  t.equal(page('action=login').total, 3);
  t.equal(page('user=ALI').total, 3, 'user: contains, any case');
  t.equal(page('user=_').total, 4, '_ is literal');
  t.equal(page('study=1.2.3').total, 4);
  const today = new Date();
  const ymd = (d: Date) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
  t.equal(page(`from=${ymd(today)}&to=${ymd(today)}`).total, 7, 'today, inclusive');
  t.equal(page(`to=${ymd(new Date(today.getTime() - 2 * 86_400_000))}`).total, 0);
  t.same(parseAuditParams(new URLSearchParams('study=<script>&from=nope')).invalid, ['study', 'from']);
  const batches = [...trail.batches({}, 3)];
  t.same(batches.map((b) => b.length), [3, 3, 1], 'in batches');
  t.same(batches.flat().map((r) => r.id), [7, 6, 5, 4, 3, 2, 1], 'every row once, newest first');
});
