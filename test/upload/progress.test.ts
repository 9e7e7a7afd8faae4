// The upload's progress figures (views/src/upload/progress.ts): the rate over a sliding window, time left,
// durations in words, per mille for <progress>; and the manifest's checks (appliance/uploads/manifest.ts).
import t from 'tap';
import { parseManifest } from '../../appliance/uploads/manifest.ts';
import { createRateMeter, perMille, roundDuration, secondsLeft } from '../../views/src/upload/progress.ts';

t.test('rate over a sliding window', async (t) => {
  const m = createRateMeter(8000, 1500);
  t.equal(m.rate(), null, 'nothing to say yet');
  m.sample(0, 0);
  m.sample(1000, 1_000_000);
  t.equal(m.rate(), null, 'too short a span');
  m.sample(2000, 2_000_000);
  t.equal(m.rate(), 1_000_000, '1 MB/s');
  // A burst long ago leaves the window: the rate follows the recent pace.
  for (let s = 3; s <= 20; s++) m.sample(s * 1000, 2_000_000 + (s - 2) * 250_000);
  t.equal(m.rate(), 250_000, 'the old pace has left the window');
  m.reset();
  t.equal(m.rate(), null, 'a pause forgets the history');
});

t.test('time left and its words', async (t) => {
  t.equal(secondsLeft(10_000_000, 1_000_000), 10);
  t.equal(secondsLeft(1, 3), 1, 'rounded up');
  t.equal(secondsLeft(100, null), null);
  t.equal(secondsLeft(100, 0), null);
  t.same(roundDuration(3), { unit: 'seconds', count: 5 });
  t.same(roundDuration(41), { unit: 'seconds', count: 45 });
  t.same(roundDuration(58), { unit: 'minutes', count: 1 });
  t.same(roundDuration(61), { unit: 'minutes', count: 2 });
  t.same(roundDuration(5400), { unit: 'hours', count: 1.5 });
  t.equal(perMille(1, 3), 333);
  t.equal(perMille(5, 5), 1000);
  t.equal(perMille(0, 0), 1000, 'nothing to send is done');
});

t.test('the manifest: shape, UIDs, sizes, counts', async (t) => {
  const limits = { maxFiles: 3, maxFileBytes: 1000 };
  const file = (sop: string, size = 10) => ({ sop, sopClass: '1.2.840.10008.5.1.4.1.1.2', size, name: `dir/${sop}` });
  const ok = parseManifest({ studies: [{ studyUid: '1.2.3', comment: ' Line one\nline two \u0007', date: '20240101', description: 'CT', files: [file('1.2.3.1')] }], email: 'a@b.org', phone: '' }, limits);
  t.same(ok, {
    studies: [{ studyUid: '1.2.3', comment: 'Line one\nline two', date: '20240101', description: 'CT', files: [file('1.2.3.1')] }],
    email: 'a@b.org',
    phone: '',
  }, 'control characters out, lines kept');
  t.equal(parseManifest({ studies: [{ studyUid: '1.2.3', date: '2024-01-01', files: [file('1.2.3.1')] }] }, limits).studies[0].date, '', 'a date that is not DICOM DA is dropped');
  const bad = (body: unknown) => {
    try {
      parseManifest(body, limits);
      return 'accepted';
    } catch (e) {
      return (e as { code: string }).code;
    }
  };
  t.equal(bad(null), 'BAD_REQUEST');
  t.equal(bad({ studies: [] }), 'BAD_REQUEST', 'no study');
  t.equal(bad({ studies: [{ studyUid: '1.2.x', files: [file('1.2.3.1')] }] }), 'BAD_REQUEST', 'a study UID that is not a UID');
  t.equal(bad({ studies: [{ studyUid: '1.2.3', files: [] }] }), 'BAD_REQUEST', 'a study without files');
  t.equal(bad({ studies: [{ studyUid: '1.2.3', files: [file('1.2.3.1'), file('1.2.3.1')] }] }), 'BAD_REQUEST', 'a file twice');
  t.equal(bad({ studies: [{ studyUid: '1.2.3', files: [file('1.2.3.1')] }, { studyUid: '1.2.3', files: [file('1.2.3.2')] }] }), 'BAD_REQUEST', 'a study twice');
  t.equal(bad({ studies: [{ studyUid: '1.2.3', files: [file('1.2.3.1', 0)] }] }), 'BAD_REQUEST', 'an empty file');
  t.equal(bad({ studies: [{ studyUid: '1.2.3', files: [file('1.2.3.1', 1.5)] }] }), 'BAD_REQUEST', 'a size that is not whole bytes');
  t.equal(bad({ studies: [{ studyUid: '1.2.3', files: [file('1.2.3.1', 1001)] }] }), 'TOO_LARGE', 'a file over the limit');
  t.equal(bad({ studies: [{ studyUid: '1.2.3', files: ['1', '2', '3', '4'].map((n) => file(`1.2.3.${n}`)) }] }), 'TOO_LARGE', 'more files than allowed');
  t.equal(bad({ studies: [{ studyUid: '1.2.3', comment: 'x'.repeat(2001), files: [file('1.2.3.1')] }] }), 'BAD_REQUEST', 'a comment too long');
  t.equal(bad({ studies: [{ studyUid: '1.2.3', files: [file('1.2.3.1')] }], email: 'not an address' }), 'BAD_REQUEST');
  t.equal(bad({ studies: [{ studyUid: '1.2.3', files: [file('1.2.3.1')] }], phone: 'call me' }), 'BAD_REQUEST');
});
