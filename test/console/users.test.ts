// Console users: scrypt hashes in PHC form at the recommended cost, verification (constant answer for unknown
// names), parameter bounds, rehash of weaker hashes, password rules; the users table (case-insensitive names,
// audit entries, sessions ended by disabling or a new password); the log-in check (audit of every outcome).
import t from 'tap';
import path from 'node:path';
import { createAuditLog } from '../../appliance/audit/audit-log.ts';
import { openDb } from '../../appliance/store/db.ts';
import { createLogin } from '../../appliance/users/login.ts';
import { createLoginThrottle } from '../../appliance/users/login-throttle.ts';
import { hashPassword, needsRehash, parseHash, passwordProblem, SCRYPT_COST, verifyPassword } from '../../appliance/users/password.ts';
import { createUsers } from '../../appliance/users/users.ts';
import { defaults, type Config } from '../../config/schema.ts';
import { createSessionStore } from '../../server/session/session-store.ts';

// Low cost where the cost is not what a test is about (the real cost takes most of a second per hash here).
const CHEAP = { ln: 10, r: 8, p: 1 };

t.test('hashes: PHC form at N=2^17, r=8, p=1, salted, verified', async (t) => {
  t.same(SCRYPT_COST, { ln: 17, r: 8, p: 1 }, 'the OWASP-recommended scrypt cost');
  const h = await hashPassword('correct horse battery');
  t.match(h, /^\$scrypt\$ln=17,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/, 'PHC string, 16-byte salt, 32-byte key');
  t.ok(await verifyPassword('correct horse battery', h), 'the right password');
  t.notOk(await verifyPassword('correct horse batterY', h), 'one character off');
  t.notOk(needsRehash(h), 'current cost: no rehash');

  const a = await hashPassword('same password!', CHEAP);
  const b = await hashPassword('same password!', CHEAP);
  t.not(a, b, 'a fresh salt each time');
  t.ok(await verifyPassword('same password!', a));
  t.ok(needsRehash(a), 'a weaker hash asks to be redone');
  // NFKC: the ligature "ﬁ" and "fi" are one password
  const lig = await hashPassword('ﬁne password 1', CHEAP);
  t.ok(await verifyPassword('fine password 1', lig), 'normalised before hashing');
});

t.test('hashes that cannot be read, or ask for too much, never verify', async (t) => {
  const good = await hashPassword('password password', CHEAP);
  t.ok(parseHash(good));
  for (const bad of ['', 'plain', good.replace('$scrypt$', '$argon2id$'), good.replace('ln=10', 'ln=30'), good.replace('r=8', 'r=99'), good.replace('ln=10', 'ln=4'), `${good}$x`]) {
    t.equal(parseHash(bad), null, `unreadable: ${bad.slice(0, 30)}`);
    t.notOk(await verifyPassword('password password', bad));
    t.ok(needsRehash(bad));
  }
});

t.test('password rules', async (t) => {
  const opts = { minLength: 12, userName: 'alice' };
  t.match(passwordProblem('short', opts), /at least 12/);
  t.match(passwordProblem('aaaaaaaaaaaaaaaa', opts), /more different characters/);
  t.match(passwordProblem('alice', { minLength: 1, userName: 'Alice' }), /not be the user name/);
  t.match(passwordProblem('tab\tinside password', opts), /control characters/);
  t.match(passwordProblem('x'.repeat(1025), opts), /at most 1024/);
  t.equal(passwordProblem('correct horse battery', opts), null);
  t.equal(passwordProblem('ünïcødé pässwörd', opts), null, 'any letters');
});

function world(t: { testdir(): string; teardown(fn: () => unknown): void }, opts: { realCost?: boolean } = {}) {
  const config: Config = { ...defaults, dataDir: path.join(t.testdir(), 'data') };
  const db = openDb(config.dataDir);
  t.teardown(() => db.close());
  const audit = createAuditLog(db);
  const users = createUsers({ db, audit, passwordMinLength: 12, hashCost: opts.realCost ? undefined : CHEAP });
  const sessions = createSessionStore(db, config);
  /** A user with a cheap hash, straight into the table (the real cost is tested above). */
  const addCheap = async (name: string, role: 'admin' | 'user', password: string) => {
    const at = new Date().toISOString();
    db.prepare('INSERT INTO users (name, role, password_hash, created_at, created_by, password_changed_at) VALUES (?, ?, ?, ?, ?, ?)').run(name, role, await hashPassword(password, CHEAP), at, 'test:t', at);
    return users.byName(name)!;
  };
  return { db, audit, users, sessions, addCheap };
}

t.test('users: add, names without regard to case, audit, no plain password anywhere', async (t) => {
  const { db, audit, users } = world(t);
  const by = { kind: 'system' as const, name: 'cli:test' };
  const u = await users.add({ name: 'Alice', role: 'admin', password: 'correct horse battery', by });
  t.match(u, { name: 'Alice', role: 'admin', disabledAt: null, createdBy: 'system:cli:test' });
  t.equal(users.byName('alice')?.id, u.id, 'found in any case');
  await t.rejects(users.add({ name: 'ALICE', role: 'user', password: 'another long password', by }), { code: 'CONFLICT' });
  await t.rejects(users.add({ name: 'bob', role: 'user', password: 'short', by }), { code: 'BAD_REQUEST' });
  await t.rejects(users.add({ name: 'bad name', role: 'user', password: 'another long password', by }), { code: 'BAD_REQUEST' });
  await t.rejects(users.add({ name: 'carol', role: 'root' as 'admin', password: 'another long password', by }), { code: 'BAD_REQUEST' });
  const everything = JSON.stringify(db.prepare('SELECT * FROM users').all()) + JSON.stringify(db.prepare('SELECT * FROM audit').all());
  t.notOk(everything.includes('correct horse battery'), 'the password is stored nowhere');
  t.match(audit.list({ action: 'user.add' }), [{ actor: 'cli:test', detail: JSON.stringify({ user: 'Alice', role: 'admin' }) }]);
});

t.test('verify: each reason; disabling and a new password end the sessions', async (t) => {
  const { users, sessions, addCheap, audit } = world(t);
  const alice = await addCheap('alice', 'admin', 'correct horse battery');
  t.match(await users.verify('ALICE', 'correct horse battery'), { ok: true, user: { id: alice.id } });
  t.match(await users.verify('alice', 'wrong horse battery'), { ok: false, reason: 'wrong-password' });
  t.match(await users.verify('nobody', 'correct horse battery'), { ok: false, reason: 'unknown-user', user: null });

  const s1 = sessions.create({ userId: alice.id });
  const s2 = sessions.create({ userId: alice.id });
  const other = sessions.create({});
  users.setDisabled('alice', true, { kind: 'system', name: 'cli:test' });
  t.equal(sessions.load(s1.id), null, 'session 1 ended');
  t.equal(sessions.load(s2.id), null, 'session 2 ended');
  t.ok(sessions.load(other.id), 'others untouched');
  t.match(await users.verify('alice', 'correct horse battery'), { ok: false, reason: 'disabled' });
  users.setDisabled('alice', false, { kind: 'system', name: 'cli:test' });
  t.match(await users.verify('alice', 'correct horse battery'), { ok: true });

  const s3 = sessions.create({ userId: alice.id });
  await users.setPassword('alice', 'a brand new passphrase', { kind: 'system', name: 'cli:test' });
  t.equal(sessions.load(s3.id), null, 'a new password ends the sessions');
  t.match(await users.verify('alice', 'a brand new passphrase'), { ok: true });
  t.same(audit.list().map((r) => r.action).reverse(), ['user.disable', 'user.enable', 'user.password']);
});

t.test('a successful log-in upgrades a weaker hash (and keeps the sessions)', async (t) => {
  const { db, users, sessions, addCheap } = world(t, { realCost: true });
  const u = await addCheap('dave', 'user', 'correct horse battery');
  const s = sessions.create({ userId: u.id });
  await users.recordLogin(u, 'correct horse battery');
  const row = db.prepare('SELECT password_hash, last_login_at FROM users WHERE id = ?').get(u.id) as { password_hash: string; last_login_at: string };
  t.match(row.password_hash, /^\$scrypt\$ln=17,r=8,p=1\$/, 'rehashed at the current cost');
  t.ok(row.last_login_at);
  t.ok(sessions.load(s.id), 'an upgrade is not a password change');
  t.match(await users.verify('dave', 'correct horse battery'), { ok: true });
});

t.test('log-in: audited outcomes, throttled without a check, never the password', async (t) => {
  const { db, audit, users, addCheap } = world(t);
  await addCheap('erin', 'admin', 'correct horse battery');
  let now = 1_000_000;
  const throttle = createLoginThrottle({ perAddress: 10, perUser: 2, windowMs: 60_000, now: () => now });
  const login = createLogin({ users, audit, throttle, now: () => now });
  t.match(await login.attempt('erin', 'correct horse battery', '10.0.0.1'), { ok: true, user: { name: 'erin' } });
  t.match(await login.attempt('Erin', 'wrong password 1', '10.0.0.1'), { ok: false, error: 'failed' });
  t.match(await login.attempt('erin', 'wrong password 2', '10.0.0.2'), { ok: false, error: 'failed' });
  const blocked = await login.attempt('erin', 'correct horse battery', '10.0.0.3');
  t.match(blocked, { ok: false, error: 'throttled' }, 'the name is blocked: even the right password waits');
  t.ok(blocked.ok === false && blocked.error === 'throttled' && blocked.retryAfterMs > 0 && blocked.retryAfterMs <= 60_000);
  await login.attempt('erin', 'correct horse battery', '10.0.0.4');
  t.equal(audit.list({ action: 'login.throttled' }).length, 1, 'one audit entry per blocked spell');
  now += 60_001;
  t.match(await login.attempt('erin', 'correct horse battery', '10.0.0.1'), { ok: true }, 'after the window');
  t.match(await login.attempt('nobody', 'whatever password', '10.0.0.9'), { ok: false, error: 'failed' });
  const rows = audit.list().reverse();
  t.same(rows.map((r) => r.action), ['login', 'login.failed', 'login.failed', 'login.throttled', 'login', 'login.failed']);
  t.match(rows[1], { actor: 'erin', ip: '10.0.0.1', detail: JSON.stringify({ reason: 'wrong-password' }) }, 'the stored name, not as typed');
  t.match(rows[5], { actor: 'nobody', detail: JSON.stringify({ reason: 'unknown-user' }) });
  const all = JSON.stringify(db.prepare('SELECT * FROM audit').all());
  t.notOk(/correct horse|wrong password|whatever password/.test(all), 'no password in the trail');
});
