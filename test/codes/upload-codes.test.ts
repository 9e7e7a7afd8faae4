// Upload codes in the database: stored only as a hash; distinct errors for mistyped, unknown, expired and
// revoked codes; wrong codes rate-limited per address (IPv6 by /64) and globally; audit entries for creation,
// revocation, entry and failures that never contain the code.
import t from 'tap';
import path from 'node:path';
import { createAuditLog } from '../../appliance/audit/audit-log.ts';
import { generateCode, parseCode } from '../../appliance/codes/code-format.ts';
import { addressKey, createFailureLimiter } from '../../appliance/codes/failure-limiter.ts';
import { createUploadCodes, parseBirthDate, parseExpiry } from '../../appliance/codes/upload-codes.ts';
import { AppError } from '../../appliance/errors.ts';
import { openDb } from '../../appliance/store/db.ts';
import { merge, validate } from '../../config/load.ts';
import { defaults, type Config } from '../../config/schema.ts';

const by = { kind: 'system' as const, name: 'test' };

function world(t: { testdir(): string; teardown(fn: () => unknown): void }, over: Record<string, unknown> = {}, now?: () => Date) {
  const dir = t.testdir();
  const config: Config = {
    ...validate(merge(defaults, merge({ institutions: [{ id: 'main', name: 'Main', phone: '1', email: 'a@b.c', manualUrl: '/m', privacyPolicyUrl: '/p' }] }, over))),
    dataDir: path.join(dir, 'data'),
  };
  const db = openDb(config.dataDir);
  t.teardown(() => db.close());
  const audit = createAuditLog(db);
  return { db, audit, config, codes: createUploadCodes({ db, audit, config, now }) };
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return e instanceof AppError ? e.code : `not an AppError: ${e}`;
  }
  return 'no error';
}

t.test('create: defaults from the config, only a hash stored, audited without the code', async (t) => {
  const { db, codes, config, audit } = world(t);
  const before = Date.now();
  const { code, record } = codes.create({ institutionId: 'main', by });
  t.match(code, /^[0-9A-Z]{4}(-[0-9A-Z]{4}){3}$/);
  t.equal(record.institutionId, 'main');
  t.equal(record.allowanceBytes, config.upload.defaultAllowanceBytes);
  t.equal(record.allowanceBytes, 10 * 1000 ** 3, '10 GB by default');
  t.equal(record.bytesUsed, 0);
  t.equal(record.birthDate, null);
  const days = (Date.parse(record.expiresAt) - before) / 86_400_000;
  t.ok(Math.abs(days - config.upload.defaultCodeDays) < 0.01, `expires after upload.defaultCodeDays (${days.toFixed(3)} d)`);
  t.match(record.ref, /^C[0-9A-Z]{6}$/);
  t.equal(codes.status(record), 'unused');

  // Nothing in the database holds the code, in any spelling.
  const canonical = code.replace(/-/g, '');
  const dump = JSON.stringify(db.prepare('SELECT * FROM upload_codes').all(), (_k, v) => (Buffer.isBuffer(v) || (v && v.type === 'Buffer') ? Buffer.from(v.data ?? v).toString('hex') : v));
  t.notOk(dump.includes(canonical) || dump.includes(code) || dump.includes(Buffer.from(canonical).toString('hex')), 'the code is not stored');
  const rows = audit.list({ action: 'code.create' });
  t.equal(rows.length, 1);
  t.match(JSON.parse(rows[0].detail!), { ref: record.ref, institution: 'main', birthDateGiven: false });
  t.notOk(JSON.stringify(rows).includes(canonical.slice(0, 8)), 'the audit entry does not hold the code');
});

t.test('create: options and refusals', async (t) => {
  const { codes } = world(t);
  const exp = new Date(Date.now() + 3 * 86_400_000);
  const { record } = codes.create({ institutionId: 'main', expiresAt: exp, allowanceBytes: 5_000_000, birthDate: '19700101', by });
  t.equal(record.expiresAt, exp.toISOString());
  t.equal(record.allowanceBytes, 5_000_000);
  t.equal(record.birthDate, '19700101');
  t.equal(codeOf(() => codes.create({ institutionId: 'nope', by })), 'BAD_REQUEST', 'unknown institution');
  t.equal(codeOf(() => codes.create({ institutionId: 'main', birthDate: '19701332', by })), 'BAD_REQUEST', 'impossible birth date');
  t.equal(codeOf(() => codes.create({ institutionId: 'main', expiresAt: new Date(Date.now() - 1000), by })), 'BAD_REQUEST', 'expiry in the past');
  t.equal(codeOf(() => codes.create({ institutionId: 'main', allowanceBytes: 0, by })), 'BAD_REQUEST', 'zero allowance');
});

t.test('enter: accepted in any spelling, marked used, audited', async (t) => {
  const { codes, audit } = world(t);
  const { code, record } = codes.create({ institutionId: 'main', by });
  const got = codes.enter(`  ${code.toLowerCase().replace(/-/g, ' ')} `, { ip: '192.0.2.1' });
  t.equal(got.id, record.id);
  t.equal(codes.status(got), 'in-use');
  t.ok(got.firstUsedAt);
  const entries = audit.list({ action: 'code.enter' });
  t.equal(entries.length, 1);
  t.equal(entries[0].actor, record.ref);
  t.equal(entries[0].ip, '192.0.2.1');
  t.equal(codes.usable(record.id).id, record.id);
  t.same(codes.find(code)?.id, record.id, 'find by code');
  t.same(codes.find(record.ref.toLowerCase())?.id, record.id, 'find by reference');
});

t.test('enter: mistyped, unknown, expired and revoked codes get different errors', async (t) => {
  const past = () => new Date(Date.now() - 30 * 86_400_000);
  const w = world(t);
  const { codes, audit, db, config } = w;
  const live = codes.create({ institutionId: 'main', by });
  // An expired code: made "30 days ago", valid for a day.
  const old = createUploadCodes({ db, audit, config, now: past }).create({ institutionId: 'main', expiresAt: new Date(Date.now() - 29 * 86_400_000), by });
  const revoked = codes.create({ institutionId: 'main', by });
  codes.revoke(revoked.record.id, by);
  t.equal(codes.status(codes.get(revoked.record.id)!), 'revoked');
  t.equal(codes.status(old.record), 'expired');

  const flat = live.code.replace(/-/g, '');
  const swapped = flat.slice(0, 3) + flat[4] + flat[3] + flat.slice(5);
  const ip = { ip: '198.51.100.7' };
  if (flat[3] !== flat[4]) t.equal(codeOf(() => codes.enter(swapped, ip)), 'CODE_MISTYPED', 'two characters swapped: mistyped');
  t.equal(codeOf(() => codes.enter(flat.slice(0, 12), ip)), 'CODE_MISTYPED', 'too short: mistyped');
  // A well-formed code (valid check character) that was never issued.
  const unknown = generateCode();
  t.ok(parseCode(unknown).ok && !codes.find(unknown));
  t.equal(codeOf(() => codes.enter(unknown, ip)), 'CODE_UNKNOWN', 'valid form, never issued: unknown');
  t.equal(codeOf(() => codes.enter(old.code, ip)), 'CODE_EXPIRED');
  t.equal(codeOf(() => codes.enter(revoked.code, ip)), 'CODE_REVOKED');
  t.equal(codeOf(() => codes.usable(old.record.id)), 'CODE_EXPIRED');
  t.equal(codeOf(() => codes.usable(revoked.record.id)), 'CODE_REVOKED');

  const failed = audit.list({ action: 'code.enter-failed' });
  const reasons = failed.map((r) => JSON.parse(r.detail!).reason).sort();
  t.ok(reasons.includes('expired') && reasons.includes('revoked') && reasons.includes('mistyped'), `reasons recorded: ${reasons.join(', ')}`);
  t.equal(failed.find((r) => JSON.parse(r.detail!).reason === 'expired')!.actor, old.record.ref, 'the expired code is named by its reference');
  const all = JSON.stringify(audit.list({ limit: 1000 }));
  for (const c of [live.code, old.code, revoked.code]) {
    t.notOk(all.includes(c) || all.includes(c.replace(/-/g, '')) || all.includes(c.replace(/-/g, '').slice(0, 10)), 'no code in the audit trail');
  }
  t.equal(codes.list().length, 3);
});

t.test('rate limit: per address, then globally; a valid code is refused too while limited', async (t) => {
  const { codes, audit } = world(t, { portal: { codeAttemptsPerAddress: 3, codeAttemptsGlobal: 5, codeAttemptWindowMinutes: 15 } });
  const { code } = codes.create({ institutionId: 'main', by });
  const wrong = generateCode(); // well-formed, never issued
  for (let i = 0; i < 3; i++) t.equal(codeOf(() => codes.enter(wrong, { ip: '203.0.113.1' })), 'CODE_UNKNOWN');
  t.equal(codeOf(() => codes.enter(wrong, { ip: '203.0.113.1' })), 'RATE_LIMITED', '4th wrong code from the address: limited');
  t.equal(codeOf(() => codes.enter(code, { ip: '203.0.113.1' })), 'RATE_LIMITED', 'even the right code waits');
  t.equal(codes.enter(code, { ip: '203.0.113.2' }).institutionId, 'main', 'another address is not limited');
  // IPv6: the whole /64 counts as one address.
  t.equal(codeOf(() => codes.enter(wrong, { ip: '2001:db8:1:2::1' })), 'CODE_UNKNOWN');
  t.equal(codeOf(() => codes.enter(wrong, { ip: '2001:db8:1:2::2' })), 'CODE_UNKNOWN');
  t.equal(codeOf(() => codes.enter(code, { ip: '2001:db8:1:2:ffff::9' })), 'RATE_LIMITED', 'global limit (5) reached after 3 + 2 failures');
  t.equal(codeOf(() => codes.enter(code, { ip: '192.0.2.99' })), 'RATE_LIMITED', 'global: everyone waits');
  const limited = audit.list({ action: 'code.rate-limited' });
  t.ok(limited.length >= 1 && limited.length <= 3, `rate limiting audited once per blocked spell (${limited.length})`);
});

t.test('failure limiter: sliding window and bounded memory', async (t) => {
  let now = 0;
  const l = createFailureLimiter({ perKey: 2, global: 100, windowMs: 1000, maxKeys: 3, now: () => now });
  l.fail('a');
  now = 500;
  l.fail('a');
  t.match(l.check('a'), { scope: 'key', retryAfterMs: 500 });
  now = 1000;
  t.equal(l.check('a'), null, 'the first failure left the window');
  for (const k of ['b', 'c', 'd', 'e']) l.fail(k);
  t.equal(l.count('b'), 0, 'oldest key forgotten beyond maxKeys');
  t.equal(l.count('e'), 1);
  t.equal(addressKey('::ffff:192.0.2.5'), '192.0.2.5');
  t.equal(addressKey('2001:db8:0:1:aaaa:bbbb:cccc:dddd'), '2001:db8:0:1::/64');
  t.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
  t.equal(addressKey('2001:db8::1'), addressKey('2001:0db8:0000:0000:ffff::2'));
});

t.test('parsers for expiry and birth date', async (t) => {
  const now = new Date('2025-06-01T12:00:00Z');
  t.equal(parseExpiry('7d', now)?.toISOString(), '2025-06-08T12:00:00.000Z');
  t.equal(parseExpiry('12h', now)?.toISOString(), '2025-06-02T00:00:00.000Z');
  t.equal(parseExpiry('2w', now)?.toISOString(), '2025-06-15T12:00:00.000Z');
  t.equal(parseExpiry('30m', now)?.toISOString(), '2025-06-01T12:30:00.000Z');
  t.equal(parseExpiry('2025-06-30', now)?.getDate(), 30);
  t.equal(parseExpiry('2025-02-30', now), null);
  t.equal(parseExpiry('soon', now), null);
  t.equal(parseExpiry('0d', now), null);
  t.equal(parseBirthDate('19700101'), '19700101');
  t.equal(parseBirthDate('20000229'), '20000229');
  t.equal(parseBirthDate('19000229'), null);
  t.equal(parseBirthDate('1970-01-01'), null);
});
